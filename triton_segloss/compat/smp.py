"""segmentation_models_pytorch (0.6) losses on triton_segloss's fused kernels.

Same class names, constructor signatures (positional order included), defaults, input
conventions, output shapes and numbers as ``segmentation_models_pytorch.losses``. Each
``forward`` is one call of a core function plus at most one cheap op (named in the class
docstring). Options whose smp semantics the core cannot express yet raise
``NotImplementedError`` naming the option (docs/MIGRATION.md lists them).

Notes common to all classes: the loss comes back in float32 (float64 for float64 inputs),
where smp returns the input's dtype; smp's class-wise ``assert``s are ``ValueError``s here.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from triton_segloss import functional as F
from ._patch import has_option, need

__all__ = [
    "BINARY_MODE", "MULTICLASS_MODE", "MULTILABEL_MODE",
    "DiceLoss", "JaccardLoss", "TverskyLoss", "FocalLoss", "LovaszLoss",
    "SoftBCEWithLogitsLoss", "SoftCrossEntropyLoss", "MCCLoss",
]

BINARY_MODE: str = "binary"
MULTICLASS_MODE: str = "multiclass"
MULTILABEL_MODE: str = "multilabel"
_MODES = (BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE)


def _check_mode(mode):
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def _as_float_list(v, name) -> Optional[tuple]:
    if v is None:
        return None
    if isinstance(v, Tensor):
        v = v.tolist()
    return tuple(float(a) for a in v)


class _Region(nn.Module):
    """smp's Dice / Jaccard / Tversky: per-class scores of the batch-pooled sums
    (``dims=(0, 2)``), ``1 - score`` (or ``-log``), zero for a class absent from the target,
    then the mean (or the ``class_weights``-weighted mean) over ``classes``.

    Mapping: ``per_image=False``, ``zero_absent=True``, ``soft_label=True`` (smp forms the
    intersection as ``(P + T - |p - t|_1) / 2``, which equals ``sum p t`` for hard targets),
    Dice ``smooth -> 2 smooth`` and ``eps -> 2 eps`` (smp's Dice denominator is ``(P + T) / 2
    + smooth``), Jaccard / Tversky as given.
    """

    _kind = "dice"

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None,
                 eps=1e-7, class_weights=None):
        super().__init__()
        _check_mode(mode)
        if class_weights is not None and mode == BINARY_MODE:
            raise ValueError("class_weights are not supported with mode=binary")
        if classes is not None and mode == BINARY_MODE:
            raise ValueError("Masking classes is not supported with mode=binary")
        self.mode = mode
        self.classes = None if classes is None else [int(k) for k in (classes.tolist() if isinstance(classes, Tensor) else classes)]
        self.log_loss = bool(log_loss)
        self.from_logits = bool(from_logits)
        self.smooth = float(smooth)
        self.ignore_index = ignore_index
        self.eps = float(eps)
        self.class_weights = _as_float_list(class_weights, "class_weights")

    def _fn(self):
        return {"dice": F.dice_loss, "jaccard": F.jaccard_loss, "tversky": F.tversky_loss}[self._kind]

    def _kwargs(self, y_pred: Tensor) -> dict:
        fn = self._fn()
        name = type(self).__name__
        need(name, fn, "zero_absent", "smp's zero loss for a class absent from the target")
        kw = dict(mode=self.mode, per_image=False, zero_absent=True, from_logits=self.from_logits,
                  log_loss=self.log_loss, ignore_index=self.ignore_index, reduction="mean")
        if has_option(fn, "soft_label"):
            kw["soft_label"] = True  # exact for soft targets too; without it, exact for hard targets
        scale = 2.0 if self._kind == "dice" else 1.0
        kw["smooth"] = scale * self.smooth
        kw["eps"] = scale * self.eps
        if self.classes is not None:
            kw["classes"] = self.classes
        if self.class_weights is not None:  # smp's weights are indexed by class, like ours
            kw["class_weight"] = self.class_weights
        return kw

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if y_true.shape[0] != y_pred.shape[0]:
            raise ValueError(f"y_true and y_pred must have the same batch size, got {tuple(y_true.shape)} "
                             f"and {tuple(y_pred.shape)}")
        return self._fn()(y_pred, y_true, **self._kwargs(y_pred))


class DiceLoss(_Region):
    """smp's ``DiceLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, class_weights=None)`` on :func:`triton_segloss.dice_loss`
    (no extra op). See :class:`_Region` for the mapping."""

    _kind = "dice"

    def __init__(self, mode: str, classes: Optional[List[int]] = None, log_loss: bool = False,
                 from_logits: bool = True, smooth: float = 0.0, ignore_index: Optional[int] = None,
                 eps: float = 1e-7, class_weights: Optional[List[float]] = None):
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, class_weights)


class JaccardLoss(_Region):
    """smp's ``JaccardLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, class_weights=None)`` on :func:`triton_segloss.jaccard_loss`
    (no extra op)."""

    _kind = "jaccard"

    def __init__(self, mode: str, classes: Optional[List[int]] = None, log_loss: bool = False,
                 from_logits: bool = True, smooth: float = 0.0, ignore_index: Optional[int] = None,
                 eps: float = 1e-7, class_weights: Optional[List[float]] = None):
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, class_weights)


class TverskyLoss(_Region):
    """smp's ``TverskyLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, alpha=0.5, beta=0.5, gamma=1.0, class_weights=None)`` on
    :func:`triton_segloss.tversky_loss`. smp raises the class *mean* to ``gamma`` (ours raises
    each class loss), so ``gamma != 1`` costs one extra op: ``loss ** gamma`` of the mean."""

    _kind = "tversky"

    def __init__(self, mode: str, classes: Optional[List[int]] = None, log_loss: bool = False,
                 from_logits: bool = True, smooth: float = 0.0, ignore_index: Optional[int] = None,
                 eps: float = 1e-7, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0,
                 class_weights: Optional[List[float]] = None):
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, class_weights)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if y_true.shape[0] != y_pred.shape[0]:
            raise ValueError(f"y_true and y_pred must have the same batch size, got {tuple(y_true.shape)} "
                             f"and {tuple(y_pred.shape)}")
        loss = F.tversky_loss(y_pred, y_true, alpha=self.alpha, beta=self.beta, gamma=1.0, **self._kwargs(y_pred))
        if self.gamma == 1.0:
            return loss
        if self.gamma < 1.0:
            # d(m^gamma)/dm is infinite at m == 0 (smp's own gradient is NaN there, e.g. an empty
            # binary target, whose loss smp zeroes): start the power at the smallest normal number,
            # which changes the value by at most tiny^gamma (1e-29 in float32) and gives gradient 0
            loss = loss.clamp_min(torch.finfo(loss.dtype).tiny)
        return loss ** self.gamma


class FocalLoss(nn.Module):
    """smp's ``FocalLoss(mode, alpha=None, gamma=2.0, ignore_index=None, from_logits=True, eps=1e-7,
    reduction="mean", normalized=False, reduced_threshold=None, class_weights=None)`` on
    :func:`triton_segloss.focal_loss`.

    binary: torchvision's sigmoid focal over the non-ignored pixels. multiclass: smp runs the
    *sigmoid* focal one-vs-rest on each class's mask ``y == c`` and averages the class means:
    ``use_softmax=False``. multilabel: the class mean of the per-channel means. ``class_weights``
    become the core's ``class_weight`` rescaled once at construction so that ours ("mean" over
    pixels x C) equals smp's ``sum(cw * class_mean) / sum(cw)``. ``reduction="batchwise_mean"``
    is ``"sum"`` (binary, or with ``ignore_index``) or ``"sum" / spatial size`` (one extra op).
    Soft targets differ (smp forms ``p_t = exp(-BCE)``); ``normalized`` and ``reduced_threshold``
    are not expressible (NotImplementedError).
    """

    def __init__(self, mode: str, alpha: Optional[float] = None, gamma: Optional[float] = 2.0,
                 ignore_index: Optional[int] = None, from_logits: bool = True, eps: float = 1e-7,
                 reduction: Optional[str] = "mean", normalized: bool = False,
                 reduced_threshold: Optional[float] = None, class_weights: Optional[List[float]] = None):
        super().__init__()
        _check_mode(mode)
        if class_weights is not None and mode == BINARY_MODE:
            raise ValueError("class_weights are not supported with mode=binary")
        if normalized:
            raise NotImplementedError("FocalLoss: normalized=True (the normalized focal loss) is not expressible "
                                      "with triton_segloss.focal_loss")
        if reduced_threshold is not None:
            raise NotImplementedError("FocalLoss: reduced_threshold (the reduced focal loss) is not expressible "
                                      "with triton_segloss.focal_loss")
        if reduction not in ("mean", "sum", "none", "batchwise_mean"):
            raise ValueError(f"reduction must be 'mean', 'sum', 'none' or 'batchwise_mean', got {reduction!r}")
        self.mode = mode
        self.alpha = None if alpha is None else float(alpha)
        self.gamma = float(gamma)
        self.ignore_index = ignore_index
        self.from_logits = bool(from_logits)
        self.eps = float(eps)
        self.reduction = reduction
        self.class_weights = _as_float_list(class_weights, "class_weights")
        if not self.from_logits and mode == MULTICLASS_MODE:
            raise NotImplementedError("FocalLoss: from_logits=False with mode='multiclass' (smp applies a sigmoid "
                                      "to log-probabilities) is not expressible")

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        name = type(self).__name__
        fn = F.focal_loss
        red = self.reduction
        kw = dict(alpha=self.alpha, gamma=self.gamma, ignore_index=self.ignore_index)
        if not self.from_logits:
            need(name, fn, "from_logits", "from_logits=False")
            kw["from_logits"] = False
        if self.mode == BINARY_MODE:
            if y_true.dim() == y_pred.dim() - 1 and y_pred.dim() >= 2 and y_pred.shape[1] == 1:
                y_true = y_true.unsqueeze(1)  # a view: (N, *S) masks for (N, 1, *S) logits
            x = y_pred if y_pred.dim() >= 2 else y_pred.reshape(-1, 1)
            if red == "none":
                if self.ignore_index is not None:
                    raise NotImplementedError("FocalLoss: reduction='none' with ignore_index returns smp's "
                                              "filtered 1-D tensor; not expressible without a host sync")
                return fn(x, y_true.reshape(x.shape), mode="binary", reduction="none", **kw).reshape(-1)
            return fn(x, y_true.reshape(x.shape), mode="binary", reduction="sum" if red == "batchwise_mean" else red,
                      **kw)
        c = y_pred.shape[1]
        if self.mode == MULTICLASS_MODE:
            need(name, fn, "use_softmax", "smp's one-vs-rest sigmoid focal in mode='multiclass'")
            kw["use_softmax"] = False
        cw = self.class_weights
        if cw is not None:  # smp: sum(cw * class_mean) / sum(cw); ours: sum(cw' * class_sum) / (n or 1) / C
            need(name, fn, "class_weight", "class_weights")
            scale = c if red in ("mean", "none") else 1.0
            kw["class_weight"] = tuple(v * scale / sum(cw) for v in cw)
        if red == "none":
            if self.ignore_index is not None or cw is not None:
                raise NotImplementedError("FocalLoss: reduction='none' with ignore_index or class_weights (smp "
                                          "returns filtered or mis-broadcast tensors) is not expressible")
            return fn(y_pred, y_true, mode=self.mode, reduction="none", **kw).movedim(1, 0)
        if red == "batchwise_mean" and cw is not None:
            raise NotImplementedError("FocalLoss: batchwise_mean with class_weights (smp broadcasts the "
                                      "weights against the last spatial dim) is not expressible")
        if red == "mean":
            return fn(y_pred, y_true, mode=self.mode, reduction="mean", **kw)
        s = fn(y_pred, y_true, mode=self.mode, reduction="sum", **kw)
        div = 1.0 if cw is not None else float(c)  # smp's class mean of the class sums
        if red == "batchwise_mean" and self.ignore_index is None:
            div *= y_pred[0, 0].numel()  # smp sums over the batch only, then averages the rest
        return s if div == 1.0 else s / div


class LovaszLoss(nn.Module):
    """smp's ``LovaszLoss(mode, per_image=False, ignore_index=None, from_logits=True)``.

    binary / multilabel: :func:`triton_segloss.lovasz_hinge` on every channel of an image
    flattened into one segment, as smp does (a reshape to ``(N, 1, C * S)``: a view for
    contiguous inputs). multiclass: :func:`triton_segloss.lovasz_softmax` with
    ``classes="present"``. smp ignores ``from_logits`` (it always applies the softmax); so do we.
    No extra op.
    """

    def __init__(self, mode: str, per_image: bool = False, ignore_index: Optional[int] = None,
                 from_logits: bool = True):
        super().__init__()
        _check_mode(mode)
        self.mode = mode
        self.ignore_index = ignore_index
        self.per_image = bool(per_image)
        self.from_logits = from_logits

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if self.mode == MULTICLASS_MODE:
            return F.lovasz_softmax(y_pred, y_true, classes="present", per_image=self.per_image,
                                    ignore_index=self.ignore_index)
        n = y_pred.shape[0]
        return F.lovasz_hinge(y_pred.reshape(n, 1, -1), y_true.reshape(n, 1, -1), per_image=self.per_image,
                              ignore_index=self.ignore_index)


class SoftBCEWithLogitsLoss(nn.Module):
    """smp's ``SoftBCEWithLogitsLoss(weight=None, ignore_index=-100, reduction="mean",
    smooth_factor=None, pos_weight=None)`` on :func:`triton_segloss.bce_with_logits`
    (``label_smoothing = 2 * smooth_factor``; ``weight`` / ``pos_weight`` buffers, broadcast
    like torch's). smp's ``"mean"`` divides by every element, ignored ones included: with
    ``ignore_index`` set that is our ``"sum"`` / numel (one extra op)."""

    def __init__(self, weight: Optional[Tensor] = None, ignore_index: Optional[int] = -100,
                 reduction: str = "mean", smooth_factor: Optional[float] = None,
                 pos_weight: Optional[Tensor] = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.smooth_factor = smooth_factor
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        pw = self.pos_weight
        if pw is not None and pw.dim() < y_pred.dim():  # torch aligns it with the trailing dims
            pw = pw.view((1,) * (y_pred.dim() - pw.dim()) + tuple(pw.shape))
        ls = 0.0 if self.smooth_factor is None else 2.0 * float(self.smooth_factor)
        red = self.reduction
        mean_all = red == "mean" and self.ignore_index is not None
        loss = F.bce_with_logits(y_pred, y_true, weight=self.weight, pos_weight=pw, ignore_index=self.ignore_index,
                                 label_smoothing=ls, reduction="sum" if mean_all else red)
        return loss / y_pred.numel() if mean_all else loss


class SoftCrossEntropyLoss(nn.Module):
    """smp's ``SoftCrossEntropyLoss(reduction="mean", smooth_factor=None, ignore_index=-100, dim=1)``
    on :func:`triton_segloss.cross_entropy` (``label_smoothing = smooth_factor``; the class dim
    moved to 1 by a view). smp's ``"mean"`` counts ignored pixels: with ``ignore_index`` set it
    is our ``"sum"`` / pixels (one extra op); ``"none"`` keeps smp's shapes (a size-1 class dim
    with ``ignore_index``). smp itself fails with ``smooth_factor=None``; we read it as 0."""

    def __init__(self, reduction: str = "mean", smooth_factor: Optional[float] = None,
                 ignore_index: Optional[int] = -100, dim: int = 1):
        super().__init__()
        self.smooth_factor = smooth_factor
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.dim = dim

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        x = y_pred if self.dim in (1, 1 - y_pred.dim()) else y_pred.movedim(self.dim, 1)
        ls = 0.0 if self.smooth_factor is None else float(self.smooth_factor)
        red = self.reduction
        mean_all = red == "mean" and self.ignore_index is not None
        loss = F.cross_entropy(x, y_true, ignore_index=self.ignore_index, label_smoothing=ls,
                               reduction="sum" if mean_all else red)
        if mean_all:
            return loss / y_true.numel()
        if red == "none" and self.ignore_index is not None:
            return loss.unsqueeze(self.dim)
        return loss


class MCCLoss(nn.Module):
    """smp's ``MCCLoss(eps=1e-5)``: ``1 - MCC`` of the batch-pooled soft confusion counts, each
    plus ``eps``; ``y_pred`` holds probabilities (smp applies no activation). On
    :func:`triton_segloss.mcc_loss` (``mode="binary"``, ``from_logits=False``), no extra op."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        fn = getattr(F, "mcc_loss", None)
        if fn is None:
            raise NotImplementedError("MCCLoss needs triton_segloss.mcc_loss, which this version does not have yet")
        n = y_true.shape[0]
        kw = {"per_image": False} if has_option(fn, "per_image") else {}
        return fn(y_pred.reshape(n, 1, -1), y_true.reshape(n, 1, -1), mode="binary", eps=self.eps,
                  from_logits=False, **kw)
