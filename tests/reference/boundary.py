"""Eager references for seed 001's boundary weights and its CombinedLoss (restated, not imported
from the library)."""

import torch
import torch.nn.functional as F

SEED001_KERNEL_SIZES = {128: 11, 256: 21, 512: 21, 1024: 41, 1280: 51}


def seed001_kernel_size(height):
    """Seed 001's table; any other height raises there (``ValueError('Unknown height')``)."""
    return SEED001_KERNEL_SIZES[height]


def seed001_weight_map(labels, kernel_size, low=0.01, high=0.99, boundary_weight=3.0, normalize=True,
                       spatial_dims=2):
    """Seed 001's weights, with its constants as arguments and avg_pool3d for volumes::

        a = avg_pool(labels, k, padding=k // 2, stride=1)     (count_include_pad: divisor k^d)
        ind = (a >= low) & (a <= high)                        (compared in labels' dtype)
        w = 1 + 2 * ind;  w = w / sum(w) * numel              (boundary_weight - 1 = 2)

    ``labels`` float, any leading dims; the last ``spatial_dims`` dims are pooled.
    Returns float32 weights like the seed (float64 for float64 labels).
    """
    shape = labels.shape
    x = labels.reshape(-1, 1, *shape[-spatial_dims:])
    pool = F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d
    a = pool(x, kernel_size, stride=1, padding=kernel_size // 2).reshape(shape)
    ind = (a.ge(low) * a.le(high)).to(torch.float64 if labels.dtype == torch.float64 else torch.float32)
    weights = torch.ones_like(ind)
    w0 = weights.sum()
    weights = weights + ind * (boundary_weight - 1)
    if not normalize:
        return weights
    w1 = weights.sum()
    return weights / w1 * w0


def _weighted_bce(logits, labels, weights):
    w = weights.reshape(-1)
    x = logits.reshape(-1)
    t = labels.reshape(-1)
    loss = x.clamp(min=0) - x * t + torch.log(1 + torch.exp(-x.abs()))
    return (loss * w).sum() / w.sum()


def _weighted_soft_dice(logits, labels, weights):
    probs = torch.sigmoid(logits)
    num = labels.size(0)
    w2 = weights.reshape(num, -1) ** 2
    m1 = probs.reshape(num, -1)
    m2 = labels.reshape(num, -1)
    score = 2.0 * ((w2 * m1 * m2).sum(1) + 1) / ((w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
    return 1 - score.sum() / num


def _combine(bce, dice, is_log_dice):
    loss = bce - (1 - dice).log() if is_log_dice else bce + dice
    return loss, bce, dice


def seed001_combined_loss(logits, labels, is_weight=True, is_log_dice=False):
    """Seed 001's ``combined_loss`` restated: (loss, bce, dice) for logits (N, 1, H, W).

    Weighted: the weights above from the labels as given (the seed pools the labels in their
    own dtype) with the seed's kernel-size table, then WeightedBCELoss2d + WeightedSoftDiceLoss
    in the logits' dtype. Unweighted: BCEWithLogitsLoss (mean) + SoftDiceLoss.
    """
    n, _, h, w = logits.shape
    x = logits.reshape(n, h, w)
    t = labels.reshape(n, h, w)
    if is_weight:
        weights = seed001_weight_map(t, seed001_kernel_size(h)).to(x.dtype)
        t = t.to(x.dtype)
        return _combine(_weighted_bce(x, t, weights), _weighted_soft_dice(x, t, weights), is_log_dice)
    t = t.to(x.dtype)
    bce = F.binary_cross_entropy_with_logits(x.reshape(-1), t.reshape(-1))
    return _combine(bce, _weighted_soft_dice(x, t, torch.ones_like(t)), is_log_dice)


def boundary_bce_dice_loss(logits, target, kernel_size=None, log_dice=False):
    """The weighted CombinedLoss for (N, 1, *spatial) logits, 2D or 3D, any odd kernel size."""
    n = logits.shape[0]
    spatial = logits.shape[2:]
    t = target.reshape(n, *spatial)
    k = seed001_kernel_size(spatial[-2]) if kernel_size is None else kernel_size
    weights = seed001_weight_map(t, k, spatial_dims=len(spatial)).to(logits.dtype)
    x = logits.reshape(n, *spatial)
    t = t.to(x.dtype)
    return _combine(_weighted_bce(x, t, weights), _weighted_soft_dice(x, t, weights), log_dice)[0]
