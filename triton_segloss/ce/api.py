"""Public function of the cross-entropy family: fused softmax cross entropy."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.validate import (
    as_ncs, check_label_values, check_logits, check_reduction, check_same_device, finite_float,
    multiclass_target_ns, shape_str,
)

from .ops import CEOptions, ce

__all__ = ["cross_entropy"]


def _ignore_index(ignore_index) -> Optional[int]:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    return ignore_index


def _class_weight(logits: Tensor, weight) -> tuple[Optional[Tensor], Optional[tuple[float, ...]]]:
    """(tensor or None, numbers or None): a tensor stays the op's input, numbers become an option."""
    if weight is None:
        return None, None
    c = logits.shape[1]
    if not isinstance(weight, Tensor):
        try:
            values = tuple(weight)
        except TypeError:
            raise TypeError(f"weight must be a tensor or a sequence of C={c} numbers, got {weight!r}") from None
        if len(values) != c:
            raise ValueError(
                f"weight must have C = {c} values for logits {shape_str(logits)}; got {len(values)} values"
            )
        return None, tuple(finite_float(v, f"weight[{i}]") for i, v in enumerate(values))
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating tensor, got dtype {weight.dtype}")
    if weight.shape != (c,):
        raise ValueError(
            f"weight must have shape (C,) = ({c},) for logits {shape_str(logits)}; got weight {shape_str(weight)}"
        )
    check_same_device(logits, "logits", weight, "weight")
    return weight, None  # read in its own dtype and stride: no copy (a gradient asked of it raises)


def _pixel_weight(logits: Tensor, pixel_weight) -> Optional[Tensor]:
    """A map broadcastable to (N, *spatial) (an (N, 1, *spatial) map is accepted too), as an (N, 1, S) view."""
    if pixel_weight is None:
        return None
    if not isinstance(pixel_weight, Tensor):
        raise TypeError(f"pixel_weight must be a torch.Tensor or None, got {type(pixel_weight).__name__}")
    w = pixel_weight
    if w.dtype == torch.bool:
        w = w.view(torch.uint8)
    if not (w.is_floating_point() or w.dtype in (torch.uint8, torch.int32, torch.int64)):
        raise TypeError(f"pixel_weight must be a real tensor, got dtype {pixel_weight.dtype}")
    check_same_device(logits, "logits", w, "pixel_weight")
    n = logits.shape[0]
    want = (n, *logits.shape[2:])
    if w.dim() == logits.dim() and w.shape[1] == 1:
        w = w.squeeze(1)
    try:
        w = w.expand(want)
    except RuntimeError:
        raise ValueError(
            f"pixel_weight of shape {shape_str(pixel_weight)} does not broadcast to (N, *spatial) = {want} "
            f"of logits {shape_str(logits)}"
        ) from None
    return w.reshape(n, 1, -1)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Union[Tensor, Sequence[float], None] = None,
    pixel_weight: Optional[Tensor] = None,
    balance: bool = False,
    ignore_index: Optional[int] = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Softmax cross entropy over the class dim in one pass over the logits.

    Per pixel with label ``y``, class weights ``w`` (ones if not given), pixel weight
    ``m`` (1 if not given) and ``eps = label_smoothing``::

        l  = m * [(1 - eps) * w[y] * (-log p_y) + eps / C * sum_c w[c] * (-log p_c)]
        wt = m * w[y]

    which is ``torch.nn.functional.cross_entropy`` (same weights, ignore_index,
    label_smoothing) when ``m == 1``.

    Args:
        logits: ``(N, C, *spatial)`` float16/bfloat16/float32/float64, any strides.
        target: integer labels ``(N, *spatial)`` (or ``(N, 1, *spatial)``), int64/int32/uint8.
        weight: per-class weights: a ``(C,)`` tensor or a sequence of C numbers (a constant:
            no gradient flows to it).
        pixel_weight: per-pixel weights broadcastable to ``(N, *spatial)`` (e.g. seed 001's
            boundary weights); a constant.
        balance: class weights from the target: ``w[c] = 1 / n_c`` with ``n_c`` the number
            of non-ignored pixels labelled ``c`` in the batch (counted on the device, no host
            sync), and ``w[c] = 0`` for a class absent from the batch; multiplied by
            ``weight`` when both are given. With ``"mean"`` the loss is then the average over
            the present classes of each class's mean loss (with pixel weights: each class's
            weighted mean). With label smoothing, absent classes (weight 0) get no smoothing
            term.
        ignore_index: label whose pixels get no loss and zero gradient (``None``: none).
            Labels outside ``[0, C)`` are an error (checked on CPU, and on CUDA with
            ``TRITON_SEGLOSS_VALIDATE=1``); unchecked, both backends skip them like ignored
            pixels.
        label_smoothing: in ``[0, 1]``, as in torch.
        reduction: ``"mean"``: ``sum l / sum wt`` -- the weighted mean over non-ignored
            pixels, with the same denominator torch uses for class weights (the sum of
            ``w[y]``), extended by the pixel weights; without weights it is the mean over
            non-ignored pixels. It is 0 (with zero gradient) when ``sum wt == 0``, e.g.
            every pixel ignored, where torch returns NaN. ``"sum"``: ``sum l``.
            ``"none"``: ``l`` per pixel, shaped ``(N, *spatial)``.

    Returns the loss in float32 (float64 for float64 logits); the gradient has the
    logits' dtype and layout.

    Example:
        >>> import torch, triton_segloss as tsl
        >>> logits = torch.zeros(1, 2, 2, 2)
        >>> target = torch.tensor([[[0, 1], [1, 255]]])
        >>> round(float(tsl.cross_entropy(logits, target, ignore_index=255)), 4)  # log 2
        0.6931
    """
    check_logits(logits)
    check_reduction(reduction)
    n, c = logits.shape[:2]
    t = multiclass_target_ns(logits, target)
    ignore_index = _ignore_index(ignore_index)
    check_label_values(target, c, ignore_index)
    label_smoothing = finite_float(label_smoothing, "label_smoothing")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if not isinstance(balance, bool):
        raise TypeError(f"balance must be True or False, got {balance!r}")
    w, w_values = _class_weight(logits, weight)
    opts = CEOptions(weight_values=w_values, balance=balance, ignore_index=ignore_index,
                     label_smoothing=label_smoothing, reduction=reduction)
    loss, _, _ = ce(as_ncs(logits, n, c), t, w, _pixel_weight(logits, pixel_weight), opts)
    if reduction == "none":
        return loss.view(n, *logits.shape[2:])
    return loss
