"""Seed recipes of the soft-overlap (Dice) family, computed through the fused partial-sums op."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from triton_segloss._core.validate import check_reduction, finite_float, shape_str
from ..functional._dice import _TINY, PIXEL_XENT, _ratio, _sums, _vector

__all__ = [
    "weighted_soft_dice", "soft_dice_loss", "weighted_soft_dice_loss", "dice_score", "bce_dice_loss",
    "binary_dice_loss", "multiclass_dice_loss", "ce_dice_loss",
]


def _flat(x: Tensor, name: str, n: int) -> Tensor:
    """``x.view(n, -1)`` of the seeds, as the (N, 1, S) view the op reads."""
    if x.dim() < 1 or x.shape[0] != n:
        raise ValueError(f"{name} must have batch size {n}, got {name} {shape_str(x)}")
    return x.reshape(n, 1, -1)


def _pair(a: Tensor, a_name: str, b: Tensor, b_name: str) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{a_name} and {b_name} must be tensors")
    if a.numel() != b.numel() or a.dim() < 1 or b.dim() < 1 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same batch size and number of elements, got "
            f"{a_name} {shape_str(a)} and {b_name} {shape_str(b)}"
        )
    n = a.shape[0]
    return _flat(a, a_name, n), _flat(b, b_name, n)


def _per_image_score(sums: Tensor, smooth_num: float, smooth_den: float) -> Tensor:
    """(2 I + smooth_num) / (P + T + smooth_den) per image of (N, 1, 5) sums; 1 where P + T == 0."""
    inter, psum, tsum = sums[:, 0, 0], sums[:, 0, 1], sums[:, 0, 2]
    return _ratio(2 * inter + smooth_num, psum + tsum + smooth_den, psum + tsum, 0.0)


# ---- seed 000 ----------------------------------------------------------------------

def weighted_soft_dice(logit_pixel: Tensor, truth_pixel: Tensor, weight: Sequence[float] = (0.2, 0.8)) -> Tensor:
    """Seed 000's ``soft_dice_criterion`` averaged over the batch (its ``criterion_pixel``).

    Per image, with w = weight[0] + (weight[1] - weight[0]) t, p' = w (2 sigmoid(x) - 1),
    t' = w (2 t - 1): ``1 - 2 sum p't' / (sum p'^2 + sum t'^2)``; then the batch mean. One
    pass of the Dice kernel with its ``signed``, ``label_weight`` and ``squared`` options.
    An image whose denominator is 0 (only possible with soft t == 0.5 everywhere and
    p == 0.5) scores 1 where the seed returns NaN.
    """
    x, t = _pair(logit_pixel, "logit_pixel", truth_pixel, "truth_pixel")
    w0, w1 = (finite_float(v, "weight") for v in weight)
    sums = _sums(x, t, mode="binary", squared=True, signed=True, label_weight=(w0, w1), w_pow=(2, 2))
    return (1 - _per_image_score(sums, 0.0, 0.0)).mean()


# ---- seed 001 ----------------------------------------------------------------------

def soft_dice_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Seed 001's ``SoftDiceLoss``: ``1 - mean_n 2 (I_n + 1) / (P_n + T_n + 1)`` with p = sigmoid(logits).

    As in the seed the score of an empty image can exceed 1 (smooth 2 over 1); only an
    image with exactly ``P + T == 0`` differs (it scores 1, the seed 2).
    """
    x, t = _pair(logits, "logits", labels, "labels")
    return 1 - _per_image_score(_sums(x, t, mode="binary"), 2.0, 1.0).mean()


def weighted_soft_dice_loss(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Seed 001's ``WeightedSoftDiceLoss``: as :func:`soft_dice_loss` with ``weights**2`` in all three sums."""
    x, t = _pair(logits, "logits", labels, "labels")
    _, w = _pair(logits, "logits", weights, "weights")
    return 1 - _per_image_score(_sums(x, t, mode="binary", weight=w, w_pow=(2, 2)), 2.0, 1.0).mean()


def dice_score(logits: Tensor, labels: Tensor, threshold: float = 0.5) -> Tensor:
    """Seed 001's ``DiceScore``: the batch mean of the hard Dice ``2 I / (P + T)`` of
    ``sigmoid(logits) > threshold``. The threshold is applied in the kernel (nothing
    input-sized is written). The seed returns NaN for an image with an empty mask and an
    empty prediction; here that image scores 1. A metric: its gradient is zero.
    """
    x, t = _pair(logits, "logits", labels, "labels")
    sums = _sums(x, t, mode="binary", hard=True, threshold=finite_float(threshold, "threshold"))
    return _per_image_score(sums, 0.0, 0.0).mean()


def bce_dice_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                  size_average: bool = True) -> Tensor:
    """albu's ``BCEDiceLoss`` (seed 001): ``BCEWithLogitsLoss(weight)(input, target) + 1 - dice``.

    dice per image = ``2 (sum (w p)(w t) + 1) / (sum w p + sum w t + 1)`` (albu multiplies
    predictions and targets by the weight); with ``size_average`` the BCE is the mean over
    all elements and the dice the batch mean clamped to [0, 1]; without, the BCE is
    summed and ``1 - dice`` is returned per image, shape (N,). One fused pass per direction.
    """
    x, t = _pair(input, "input", target, "target")
    w = None
    if weight is not None:
        if not isinstance(weight, Tensor):
            raise TypeError(f"weight must be a tensor or None, got {type(weight).__name__}")
        try:
            w = weight.expand(input.shape)
        except RuntimeError:
            raise ValueError(f"weight of shape {shape_str(weight)} does not broadcast to input {shape_str(input)}") \
                from None
        w = _flat(w, "weight", input.shape[0])
    sums = _sums(x, t, mode="binary", weight=w, w_pow=(2, 1), pixel=PIXEL_XENT)
    score = _per_image_score(sums, 2.0, 1.0)
    if size_average:
        bce = sums[..., 3].sum() / sums[..., 4].sum()
        return bce + 1 - torch.clamp(score.mean(), 0.0, 1.0)
    return sums[..., 3].sum() + 1 - score


# ---- seed 003 ----------------------------------------------------------------------

def binary_dice_loss(input: Tensor, targets: Tensor) -> Tensor:
    """Seed 003's ``BinaryDiceLoss``: probabilities in, ``1 - mean_n (2 I + 1) / (P + T + 1)``."""
    x, t = _pair(input, "input", targets, "targets")
    sums = _sums(x, t, mode="binary", from_logits=False)
    return 1 - _per_image_score(sums, 1.0, 1.0).mean()


# ---- seed 004 ----------------------------------------------------------------------

def _pooled_multiclass_dice(sums: Tensor, smooth: float) -> Tensor:
    total = sums.sum((0, 1))
    return 1 - _ratio(2 * total[0] + smooth, total[1] + total[2] + smooth, total[1] + total[2], 0.0)


def multiclass_dice_loss(output: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Seed 004's ``DiceLoss``: softmax, then one Dice over every image, class and pixel pooled:
    ``1 - (2 sum_{n,c} I + smooth) / (sum P + sum T + smooth)``.

    Differs from the seed's code where it is wrong, following its evident intent: the seed
    compares the softmax with itself (``target_flat = output...``), which is a typo for the
    one-hot target; it ignores its ``smooth`` argument (always 1; here it is used); and the
    one-hot target is never built (integer labels are read directly).
    """
    if not isinstance(output, Tensor) or output.dim() < 2:
        raise ValueError("output must be a tensor of shape (N, C, *spatial)")
    sums = _sums(output, target, mode="multiclass")
    return _pooled_multiclass_dice(sums, finite_float(smooth, "smooth"))


def ce_dice_loss(output: Tensor, target: Tensor, smooth: float = 1.0, reduction: str = "mean",
                 ignore_index: int = 255, weight: Optional[Tensor] = None) -> Tensor:
    """Seed 004's ``CE_DiceLoss``: ``CrossEntropyLoss(weight, reduction, ignore_index) + DiceLoss``,
    sharing one softmax: one fused pass per direction.

    Follows the seed's evident intent where its code is wrong: ``smooth`` reaches the Dice
    term (the seed stores it and never uses it; its default 1 gives the seed's numbers);
    pixels labelled ``ignore_index`` are left out of the Dice term too (the seed's one-hot
    encoding would fail on them); the Dice is :func:`multiclass_dice_loss`. ``reduction``
    is ``"mean"`` (torch's weighted mean) or ``"sum"``; the seed's ``"none"`` would add a
    per-pixel map to a scalar and is not supported.
    """
    check_reduction(reduction)
    if reduction == "none":
        raise ValueError("ce_dice_loss supports reduction 'mean' or 'sum' (a per-pixel CE map is not computed)")
    if not isinstance(output, Tensor) or output.dim() < 2:
        raise ValueError("output must be a tensor of shape (N, C, *spatial)")
    sums = _sums(output, target, mode="multiclass", ignore_index=ignore_index, pixel=PIXEL_XENT)
    term, counts = sums[..., 3], sums[..., 4]
    cw = _vector(weight, output.shape[1], "weight", sums)
    if cw is not None:
        term, counts = term * cw, counts * cw
    ce = term.sum() if reduction == "sum" else term.sum() / counts.sum().clamp_min(_TINY)
    return ce + _pooled_multiclass_dice(sums, finite_float(smooth, "smooth"))
