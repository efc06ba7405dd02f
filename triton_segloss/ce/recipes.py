"""Recipes of the cross-entropy family: seed 001's ``cross_entropy2d``, seed 003's ``BalancedBCELoss``."""

from __future__ import annotations

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from .api import cross_entropy

__all__ = ["cross_entropy2d", "balanced_bce_loss"]


def cross_entropy2d(input: Tensor, target: Tensor, weight=None, size_average: bool = True) -> Tensor:
    """Seed 001's ``cross_entropy2d``: softmax cross entropy over the pixels whose label is
    ``>= 0`` (every negative label is ignored), summed with the class ``weight``, and divided
    by the number of those pixels when ``size_average`` -- a pixel count, not torch's sum of
    weights.

    Differs from the seed where the seed fails: when every label is negative the seed
    returns NaN (0 / 0); this returns 0.
    """
    if target.dtype != torch.uint8:  # uint8 has no negative labels
        target = target.clamp_min(-1)
    loss = cross_entropy(input, target, weight=weight, ignore_index=-1, reduction="sum")
    if size_average:
        loss = loss / (target >= 0).sum().clamp_min(1)
    return loss


def balanced_bce_loss(output: Tensor, target: Tensor) -> Tensor:
    """Seed 003's ``BalancedBCELoss(target)(output, target)``: class weights
    ``1 / (#{target == k} + 1e-6)`` for k = 0, 1, then torch's weighted mean cross entropy
    over the two classes of ``output`` ``(B, 2, H, W)``. The counts stay on the device.
    """
    if output.dim() < 2 or output.shape[1] != 2:
        raise ValueError(
            f"balanced_bce_loss takes two-class logits (B, 2, *spatial), like the seed's two weights; "
            f"got output of shape {tuple(output.shape)}"
        )
    acc = acc_dtype(output.dtype)
    counts = torch.stack([(target == 0).sum(), (target == 1).sum()]).to(acc)
    return cross_entropy(output, target, weight=1.0 / (counts + 1e-6))
