"""Recipes of the NCut family: seed 003's soft normalized-cut loss."""

from __future__ import annotations

from torch import Tensor

from .api import ncut_loss as _ncut_loss

__all__ = ["ncut_loss"]


def ncut_loss(labels: Tensor, inputs: Tensor, radius: int = 5, sigma_1: float = 4, sigma_2: float = 10) -> Tensor:
    """Seed 003's ``NCutLoss2D(radius, sigma_1, sigma_2).forward(labels, inputs)``: the soft
    normalized cut of class probabilities ``labels`` (B, K, H, W) over raw images ``inputs``
    (B, Cin, H, W), in the seed's running form (class-mean pixel weights; the seed builds
    its spatial kernel but does not use it, so ``radius`` and ``sigma_1`` have no effect).
    """
    return _ncut_loss(labels, inputs, radius=radius, sigma_spatial=sigma_1, sigma_value=sigma_2)
