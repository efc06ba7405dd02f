"""Recipes of the boundary family: seed 001's boundary-weighted BCE + Dice ``combined_loss``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import boundary_weight_map

__all__ = ["combined_loss"]


def combined_loss(logits: Tensor, labels: Tensor, is_weight: bool = True, is_log_dice: bool = False):
    """Seed 001's ``combined_loss``: returns ``(loss, bce_loss, dice_loss)``.

    ``logits`` ``(N, 1, H, W)``, ``labels`` a 0/1 mask with N*H*W elements (the seed views both
    as ``(N, H, W)``). With ``is_weight`` the seed's boundary weights
    (:func:`~triton_segloss.boundary_weight_map` with its kernel-size table) feed
    ``WeightedBCELoss2d`` (``sum(w l) / sum(w)``) and ``WeightedSoftDiceLoss``
    (``1 - mean_n 2 (sum(w^2 p t) + 1) / (sum(w^2 p) + sum(w^2 t) + 1)``); without, plain
    ``BCEWithLogitsLoss`` and ``SoftDiceLoss`` (the same Dice with w = 1). ``loss`` is
    ``bce + dice``, or ``bce - log(1 - dice)`` with ``is_log_dice``. Both terms come from one
    fused pass over the logits.

    Differs from the seed: heights outside its table (128, 256, 512, 1024, 1280) get the
    kernel size of :func:`~triton_segloss.functional._boundary.default_kernel_size` instead of
    ``ValueError('Unknown height')``; it runs on any device (the seed calls ``.cuda()``); the
    weighted BCE divides by the number of pixels, which the normalisation makes equal to
    ``sum(w)`` up to rounding.
    """
    from ..dice import bce_dice_terms  # provided by the Dice family

    size = logits.shape
    if logits.dim() != 4 or size[1] != 1:
        raise ValueError(f"logits must have shape (N, 1, H, W), got {tuple(size)}")
    if labels.numel() != logits.numel():
        raise ValueError(
            f"labels must have N*H*W = {logits.numel()} elements like logits {tuple(size)}, got {tuple(labels.shape)}"
        )
    labels = labels.reshape(size)
    weight = boundary_weight_map(labels) if is_weight else None
    bce, dice = bce_dice_terms(logits, labels, weight=weight, smooth_num=2.0, smooth_den=1.0)
    loss = bce - torch.log1p(-dice) if is_log_dice else bce + dice
    return loss, bce, dice
