"""Fused softmax cross entropy."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .. import ops as _ops  # noqa: F401  (registers the custom ops)
from triton_segloss._core.validate import (
    acc_dtype, as_ncs, check_label_values, check_logits, check_reduction, check_same_device, finite_float,
    multiclass_target_ns, shape_str,
)

__all__ = ["cross_entropy"]


def _ignore_index(ignore_index) -> Optional[int]:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    return ignore_index


def _class_weight(logits: Tensor, weight) -> Optional[Tensor]:
    if weight is None:
        return None
    c = logits.shape[1]
    if not isinstance(weight, Tensor):
        try:
            weight = torch.tensor(weight, dtype=acc_dtype(logits.dtype), device=logits.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"weight must be a tensor or a sequence of C={c} numbers, got {weight!r}") from None
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating tensor, got dtype {weight.dtype}")
    if weight.shape != (c,):
        raise ValueError(
            f"weight must have shape (C,) = ({c},) for logits {shape_str(logits)}; got weight {shape_str(weight)}"
        )
    check_same_device(logits, "logits", weight, "weight")
    return weight.detach().to(acc_dtype(logits.dtype)).contiguous()


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
    return w.detach().reshape(n, 1, -1)


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
        weight: per-class weights ``(C,)`` (a constant: no gradient flows to it).
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
            ``TRITON_SEGLOSS_VALIDATE=1``); unchecked, the kernels skip them like ignored
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
    w = _class_weight(logits, weight)
    pw = _pixel_weight(logits, pixel_weight)
    loss, _, _ = torch.ops.triton_segloss.ce_forward(
        as_ncs(logits, n, c), t, w, pw, balance,
        ignore_index is not None, 0 if ignore_index is None else ignore_index,
        label_smoothing, reduction,
    )
    if reduction == "none":
        return loss.view(n, *logits.shape[2:])
    return loss
