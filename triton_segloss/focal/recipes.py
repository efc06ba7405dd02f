"""Recipes of the focal family: seed 004's ``FocalLoss``."""

from __future__ import annotations

from torch import Tensor

from .api import focal_loss as _focal_loss

__all__ = ["focal_loss"]


def focal_loss(output: Tensor, target: Tensor, alpha=None, beta=2):
    """Seed 004's ``FocalLoss`` as its evident intent: ``sum`` over pixels of
    ``alpha_y * (1 - p_y) ** beta * (-log p_y)``, with ``p_y`` the softmax probability of the
    label and pixels labelled -100 (cross entropy's default ignore_index) contributing nothing.

    ``output`` ``(N, C, *spatial)`` logits, ``target`` integer labels ``(N, *spatial)``.
    ``alpha``: per-class weights (a sequence or tensor of length C, the seed's CE ``weight``),
    a number (a uniform factor) or None (no weights).

    Differs from the seed's code, which does not run as written (``reduction=None``,
    ``weght=``, ``foward``, ``return loss.sum`` without the call): the seed forms
    ``pi = exp(-CE)`` from the alpha-*weighted* CE, which is ``p_y ** alpha_y``; its own comment
    says that ``pi`` must be the class probability for the loss to be the focal loss, which is
    what this computes. With ``alpha=None`` the two agree.
    """
    return _focal_loss(output, target, mode="multiclass", alpha=alpha, gamma=beta, ignore_index=-100,
                       reduction="sum")
