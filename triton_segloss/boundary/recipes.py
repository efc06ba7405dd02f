"""Recipes of the boundary family: seed 001's boundary-weighted BCE + Dice ``combined_loss``."""

from __future__ import annotations

from torch import Tensor

from .api import _bce_dice_terms

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
    kernel size of :func:`~triton_segloss.boundary.ops.default_kernel_size` instead of
    ``ValueError('Unknown height')``; it runs on any device (the seed calls ``.cuda()``); the
    weighted BCE divides by the number of pixels, which the normalisation makes equal to
    ``sum(w)`` up to rounding.
    """
    size = logits.shape
    if logits.dim() != 4 or size[1] != 1:
        raise ValueError(f"logits must have shape (N, 1, H, W), got {tuple(size)}")
    if labels.numel() != logits.numel():
        raise ValueError(
            f"labels must have N*H*W = {logits.numel()} elements like logits {tuple(size)}, got {tuple(labels.shape)}"
        )
    return _bce_dice_terms(logits, labels.reshape(size), None, is_weight, is_log_dice, "combined_loss")
