"""Public functions of the BCE family: fused sigmoid + binary cross entropy."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import Tensor

from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_binary_values, check_logits, check_reduction, finite_float, pair,
    pixel_map_ncs,
)

from .ops import BCEOptions, bce

__all__ = ["bce_with_logits"]


def _pos_weight(logits: Tensor, pos_weight) -> tuple[Optional[Tensor], float]:
    """(map or None, scalar): a number stays a scalar option, a tensor becomes an (N, C, S) map."""
    if pos_weight is None:
        return None, 1.0
    if not isinstance(pos_weight, Tensor):
        return None, finite_float(pos_weight, "pos_weight")
    c = logits.shape[1]
    if pos_weight.dim() == 1 and pos_weight.numel() == c:
        # a per-channel vector, the segmentation convention (torch would broadcast it over the last dim)
        pos_weight = pos_weight.view((1, c) + (1,) * (logits.dim() - 2))
    return pixel_map_ncs(logits, pos_weight, "pos_weight"), 1.0


def bce_with_logits(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Optional[Tensor] = None,
    pos_weight: Union[float, Tensor, None] = None,
    balance: Optional[Sequence[float]] = None,
    ignore_index: Optional[float] = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Sigmoid + binary cross entropy in one pass over the logits.

    Per pixel, with ``s = target * (1 - label_smoothing) + label_smoothing / 2``::

        l = weight * [pos_weight * s * log(1 + e^-x) + (1 - s) * log(1 + e^x)]

    Args:
        logits: ``(N, C, *spatial)`` float16/bfloat16/float32/float64, any strides.
        target: mask of the shape of ``logits`` (or ``(N, *spatial)`` when C == 1); float
            (soft labels in [0, 1]), bool or integer.
        weight: per-pixel map broadcastable to ``logits`` (an ``(N, *spatial)`` map is
            accepted for C == 1).
        pos_weight: weight of the positive term: a number, a per-channel vector of length
            C, or a tensor broadcastable to ``logits``.
        balance: ``(a, b)``: the loss becomes ``a * sum_pos(l) / n_pos + b * sum_neg(l) / n_neg``
            with pos = target > 0.5, neg = target < 0.5 (seed 000 uses ``(0.25, 0.75)``). It is
            already normalised, so ``"mean"`` and ``"sum"`` both return it and ``"none"`` returns
            each pixel's share ``a * l / n_pos`` or ``b * l / n_neg``. An empty side contributes 0.
        ignore_index: pixels whose target equals it get no loss and zero gradient.
        label_smoothing: in [0, 1]; pulls targets towards 1/2.
        reduction: ``"mean"`` (over non-ignored pixels; 0 when every pixel is ignored),
            ``"sum"`` or ``"none"`` (the elementwise loss, shaped like ``logits``).

    Returns the loss in float32 (float64 for float64 logits); the gradient has the
    logits' dtype and layout.
    """
    check_logits(logits)
    check_reduction(reduction)
    t = binary_target_ncs(logits, target)
    if ignore_index is not None:
        ignore_index = finite_float(ignore_index, "ignore_index")
    check_binary_values(target, ignore_index, binary=True)  # its answer saves the PyTorch path a test
    label_smoothing = finite_float(label_smoothing, "label_smoothing")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    w = pixel_map_ncs(logits, weight, "weight")
    pw, pw_value = _pos_weight(logits, pos_weight)
    opts = BCEOptions(
        pos_weight=pw_value, ignore_index=ignore_index, label_smoothing=label_smoothing,
        balance=None if balance is None else pair(balance, "balance"), reduction=reduction,
    )
    n, c = logits.shape[:2]
    loss, _ = bce(as_ncs(logits, n, c), t, w, pw, opts)
    if reduction == "none":
        return loss.view(logits.shape)
    return loss
