"""Public functions of the confusion-matrix family: a fused argmax + histogram confusion
matrix, the scores that come from it, and a streaming accumulator that sums counts
across ``torch.distributed`` ranks.

All of it stays on the device: no ``.item()``, no host copy of the predictions.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from triton_segloss._core.validate import LABEL_DTYPES, check_logits, check_same_device, multiclass_target_ns, shape_str

from .ops import ConfusionOptions, confusion

__all__ = ["confusion_matrix", "scores", "ConfusionMatrix"]

_PRED_DTYPES = LABEL_DTYPES + (torch.int16, torch.int8, torch.bool)


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return num_classes


def _check_ignore_index(ignore_index) -> Optional[int]:
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    return ignore_index


def confusion_matrix(
    pred_or_logits: Tensor, target: Tensor, num_classes: int, *, ignore_index: Optional[int] = None
) -> Tensor:
    """Confusion matrix ``cm[true, pred]`` as int64 ``(C, C)``: ``np.bincount(C * true + pred)``.

    Args:
        pred_or_logits: logits ``(N, C, *spatial)`` (any float dtype and strides; the
            prediction is their argmax over C, the first maximum winning as in
            ``torch.argmax``, fused with the histogram so no label map is written) or
            integer predicted labels with the shape of ``target``.
        target: integer labels ``(N, *spatial)`` (an ``(N, 1, *spatial)`` map is accepted
            with logits).
        num_classes: C.
        ignore_index: label whose pixels are not counted.

    Pixels whose true label is outside ``[0, C)`` are skipped (seed 001's ``_fast_hist``
    mask), and so are predicted labels outside ``[0, C)`` (``np.bincount`` would count
    those in another cell). No gradient; works under ``torch.compile(fullgraph=True)``.
    """
    C = _check_num_classes(num_classes)
    ignore_index = _check_ignore_index(ignore_index)
    if not isinstance(pred_or_logits, Tensor):
        raise TypeError(f"pred_or_logits must be a torch.Tensor, got {type(pred_or_logits).__name__}")
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    opts = ConfusionOptions(num_classes=C, ignore_index=ignore_index)
    x = pred_or_logits.detach()
    if x.is_floating_point():
        check_logits(x, "pred_or_logits")
        if x.shape[1] != C:
            raise ValueError(
                f"logits {shape_str(x)} have {x.shape[1]} classes in dim 1 but num_classes={C}"
            )
        t = multiclass_target_ns(x, target, min_classes=1)
        n = x.shape[0]
        return confusion(x.reshape(n, C, -1), t, opts)
    if x.dtype not in _PRED_DTYPES:
        raise TypeError(f"pred_or_logits must be float logits or integer labels, got dtype {x.dtype}")
    if target.dtype not in LABEL_DTYPES:
        raise TypeError(f"target must hold integer labels (int64, int32 or uint8), got dtype {target.dtype}")
    if x.shape != target.shape or x.dim() == 0:
        raise ValueError(
            f"predicted labels and target must have the same shape (N, *spatial); got pred_or_logits "
            f"{shape_str(x)} and target {shape_str(target)}"
        )
    check_same_device(target, "target", x, "pred_or_logits")
    if x.dtype == torch.bool:
        x = x.view(torch.uint8)
    n = x.shape[0]
    return confusion(x.reshape(n, 1, -1), target.reshape(n, 1, -1), opts)


def scores(cm) -> dict:
    """Scores of a confusion matrix (rows = true class), as float64 tensors on ``cm``'s device.

    Seed 001's ``label_accuracy_score`` plus per-class IoU and Dice::

        pixel_acc = trace / total
        mean_acc  = nanmean_c(cm[c, c] / row_c)
        iou       = cm[c, c] / (row_c + col_c - cm[c, c])      (per class)
        miou      = nanmean_c(iou)
        fwiou     = sum over classes with row_c > 0 of (row_c / total) * iou_c
        dice      = 2 cm[c, c] / (row_c + col_c)                (per class)

    A class with no pixels and no predictions has NaN accuracy, IoU and Dice and is left
    out of the means (``nanmean``, as the seed); an empty matrix gives NaN pixel
    accuracy and means, and fwiou 0 -- the seed's numbers.
    """
    hist = torch.as_tensor(cm)
    if hist.dim() != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"cm must be a square (C, C) matrix, got shape {tuple(hist.shape)}")
    hist = hist.to(torch.float64)
    diag = hist.diagonal()
    rows, cols, total = hist.sum(1), hist.sum(0), hist.sum()
    iou = diag / (rows + cols - diag)
    freq = rows / total
    return {
        "pixel_acc": diag.sum() / total,
        "mean_acc": torch.nanmean(diag / rows),
        "iou": iou,
        "miou": torch.nanmean(iou),
        "fwiou": torch.where(freq > 0, freq * iou, 0.0).sum(),
        "dice": 2 * diag / (rows + cols),
    }


class ConfusionMatrix:
    """Streaming confusion matrix: ``update`` per batch, ``sync`` across ranks, ``compute``.

    ``update(logits_or_pred, target)`` adds :func:`confusion_matrix` of the batch to
    this rank's counts (on the batch's device, no host sync). ``sync(group=None)``
    all-reduces (sum) the counts gathered since the last ``sync`` over a
    ``torch.distributed`` process group -- every rank must call it -- after which every
    rank holds the global counts; counts are added exactly once however ``update`` and
    ``sync`` interleave. Without an initialised process group ``sync`` does nothing.
    ``compute()`` returns the int64 ``(C, C)`` matrix, ``scores()`` its :func:`scores`,
    ``reset()`` zeroes everything.

    ``device``: where the counts live before the first ``update`` (a rank that saw no
    batch still joins ``sync``); default: the current CUDA device under an NCCL group,
    else CPU.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = None, device=None):
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.device = None if device is None else torch.device(device)
        self.reset()

    def reset(self) -> None:
        self._synced: Optional[Tensor] = None  # global counts as of the last sync
        self._local: Optional[Tensor] = None  # this rank's counts since then

    def update(self, logits_or_pred: Tensor, target: Tensor) -> None:
        cm = confusion_matrix(logits_or_pred, target, self.num_classes, ignore_index=self.ignore_index)
        self._local = cm if self._local is None else self._local + cm

    def _zeros(self) -> Tensor:
        device = self.device
        if device is None:
            import torch.distributed as dist

            nccl = dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl"
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        return torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64, device=device)

    def sync(self, group=None) -> "ConfusionMatrix":
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        local = self._zeros() if self._local is None else self._local.clone()
        dist.all_reduce(local, op=dist.ReduceOp.SUM, group=group)
        self._synced = local if self._synced is None else self._synced + local
        self._local = None
        return self

    def compute(self) -> Tensor:
        parts = [p for p in (self._synced, self._local) if p is not None]
        if not parts:
            return self._zeros()
        return parts[0].clone() if len(parts) == 1 else parts[0] + parts[1]

    def scores(self) -> dict:
        return scores(self.compute())

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index})"
