"""Seed recipes of the BCE family."""

from __future__ import annotations

from torch import Tensor

from .api import bce_with_logits

__all__ = ["weighted_bce", "weighted_bce_loss2d"]


def weighted_bce(logit_pixel: Tensor, truth_pixel: Tensor) -> Tensor:
    """Seed 000's weighted BCE: ``0.25 * sum_pos(l) / n_pos + 0.75 * sum_neg(l) / n_neg``
    over every pixel of the batch (pos = truth > 0.5, neg = truth < 0.5).

    The seed adds 1e-12 to the counts; here an empty side contributes exactly 0,
    which differs from the seed by at most 1e-12 relative.
    """
    if logit_pixel.numel() != truth_pixel.numel():
        raise ValueError(
            f"logit_pixel and truth_pixel must have the same number of elements, got "
            f"{tuple(logit_pixel.shape)} and {tuple(truth_pixel.shape)}"
        )
    x = logit_pixel.reshape(1, 1, -1)
    t = truth_pixel.reshape(1, 1, -1)
    return bce_with_logits(x, t, balance=(0.25, 0.75))


def weighted_bce_loss2d(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Seed 001's ``WeightedBCELoss2d``: ``sum(w * l) / sum(w)`` over every pixel."""
    if not (logits.numel() == labels.numel() == weights.numel()):
        raise ValueError(
            f"logits, labels and weights must have the same number of elements, got "
            f"{tuple(logits.shape)}, {tuple(labels.shape)} and {tuple(weights.shape)}"
        )
    x = logits.reshape(1, 1, -1)
    w = weights.reshape(1, 1, -1)
    return bce_with_logits(x, labels.reshape(1, 1, -1), weight=w, reduction="sum") / w.sum()
