"""Seed recipes of the Dice family, each one call of the family's fused op (``ops.dice``):
one pass over the pixels, one finisher, one backward pass."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from triton_segloss._core.validate import check_reduction, finite_float, shape_str

from .api import _run

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


def _per_image_dice(x: Tensor, t: Tensor, smooth_num: float, smooth_den: float, **kw) -> Tensor:
    """Batch mean of ``1 - (2 I + smooth_num) / (P + T + smooth_den)`` per image (1 - score, or the
    mean score with ``score=True``); an image with P + T == 0 scores 1."""
    return _run(x, t, mode="binary", kind="dice", smooth_num=smooth_num, smooth_den=smooth_den, eps=0.0,
                per_image=True, **kw)


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
    return _per_image_dice(x, t, 0.0, 0.0, squared=True, signed=True, label_weight=(w0, w1), w_pow_i=2, w_pow_pt=2)


# ---- seed 001 ----------------------------------------------------------------------

def soft_dice_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Seed 001's ``SoftDiceLoss``: ``1 - mean_n 2 (I_n + 1) / (P_n + T_n + 1)`` with p = sigmoid(logits).

    As in the seed the score of an empty image can exceed 1 (smooth 2 over 1); only an
    image with exactly ``P + T == 0`` differs (it scores 1, the seed 2).
    """
    x, t = _pair(logits, "logits", labels, "labels")
    return _per_image_dice(x, t, 2.0, 1.0)


def weighted_soft_dice_loss(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Seed 001's ``WeightedSoftDiceLoss``: as :func:`soft_dice_loss` with ``weights**2`` in all three sums."""
    x, t = _pair(logits, "logits", labels, "labels")
    _, w = _pair(logits, "logits", weights, "weights")
    return _per_image_dice(x, t, 2.0, 1.0, weight=w, w_pow_i=2, w_pow_pt=2)


def dice_score(logits: Tensor, labels: Tensor, threshold: float = 0.5) -> Tensor:
    """Seed 001's ``DiceScore``: the batch mean of the hard Dice ``2 I / (P + T)`` of
    ``sigmoid(logits) > threshold``. The threshold is applied in the kernel (nothing
    input-sized is written). The seed returns NaN for an image with an empty mask and an
    empty prediction; here that image scores 1. A metric: its gradient is zero.
    """
    x, t = _pair(logits, "logits", labels, "labels")
    return _per_image_dice(x, t, 0.0, 0.0, threshold=finite_float(threshold, "threshold"), score=True)


def bce_dice_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                  size_average: bool = True) -> Tensor:
    """albu's ``BCEDiceLoss`` (seed 001): ``BCEWithLogitsLoss(weight)(input, target) + 1 - dice``.

    dice per image = ``2 (sum (w p)(w t) + 1) / (sum w p + sum w t + 1)`` (albu multiplies
    predictions and targets by the weight); with ``size_average`` the BCE is the mean over
    all elements and the dice the batch mean clamped to [0, 1]; without, the BCE is
    summed and ``1 - dice`` is returned per image, shape (N,). One fused pass per direction
    gives ``[bce, dice terms]`` side by side; the clamp and the sum are torch ops on them.
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
    terms = _per_image_dice(x, t, 2.0, 1.0, weight=w, w_pow_i=2, w_pow_pt=1, pixel="xent", split=True,
                            reduction="mean" if size_average else "none",
                            pixel_reduction="mean" if size_average else "sum")
    if size_average:  # terms = [mean bce, mean (1 - score)]
        return terms[0] + 1 - torch.clamp(1 - terms[1], 0.0, 1.0)
    return terms[0] + terms[1:]  # [summed bce, 1 - score per image]


# ---- seed 003 ----------------------------------------------------------------------

def binary_dice_loss(input: Tensor, targets: Tensor) -> Tensor:
    """Seed 003's ``BinaryDiceLoss``: probabilities in, ``1 - mean_n (2 I + 1) / (P + T + 1)``."""
    x, t = _pair(input, "input", targets, "targets")
    return _per_image_dice(x, t, 1.0, 1.0, from_logits=False)


# ---- seed 004 ----------------------------------------------------------------------

def _pooled_multiclass_dice(smooth: float) -> dict:
    """One Dice over every image, class and pixel: the generalized Dice of uniform weights, pooled."""
    return dict(kind="generalized", weight_type="uniform", smooth_num=smooth, smooth_den=smooth, eps=0.0)


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
    return _run(output, target, mode="multiclass", **_pooled_multiclass_dice(finite_float(smooth, "smooth")))


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
    return _run(output, target, mode="multiclass", ignore_index=ignore_index, pixel="xent",
                pixel_class_weight=weight, pixel_class_weight_name="weight", pixel_weighs_count=True,
                reduction=reduction, **_pooled_multiclass_dice(finite_float(smooth, "smooth")))
