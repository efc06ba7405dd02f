"""The ``eager`` providers: float32 code as the seed blog posts write it.

tests/reference/ computes in float64 (it is the ground truth for tests), so it
would be an unfair baseline to time. These are the plain PyTorch versions
people actually run, each following the seed snippet named in its docstring
(bugs fixed where the snippet would not run, behaviour otherwise unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------- BCE

def bce_seed001(logits, labels):
    """Seed 001 ``BCELoss2d``: ``nn.BCEWithLogitsLoss()`` on flattened views."""
    return nn.BCEWithLogitsLoss()(logits.view(-1), labels.view(-1))


def bce_balanced_seed000(logit_pixel, truth_pixel):
    """Seed 000 weighted BCE: 0.25 * mean over positives + 0.75 * mean over negatives (with its ``.item()`` syncs)."""
    logit = logit_pixel.view(-1)
    truth = truth_pixel.view(-1)
    loss = F.binary_cross_entropy_with_logits(logit, truth, reduction="none")
    pos = (truth > 0.5).float()
    neg = (truth < 0.5).float()
    pos_weight = pos.sum().item() + 1e-12
    neg_weight = neg.sum().item() + 1e-12
    return (0.25 * pos * loss / pos_weight + 0.75 * neg * loss / neg_weight).sum()


# --------------------------------------------------------------------- Dice

def dice_binary_seed003(logits, targets, smooth=1.0):
    """Seed 003 ``BinaryDiceLoss`` on ``sigmoid(logits)``: per image (2I + 1) / (P + T + 1), 1 - batch mean."""
    n = targets.size(0)
    input_flat = torch.sigmoid(logits).view(n, -1)
    targets_flat = targets.view(n, -1)
    intersection = input_flat * targets_flat
    dice_eff = (2 * intersection.sum(1) + smooth) / (input_flat.sum(1) + targets_flat.sum(1) + smooth)
    return 1 - dice_eff.sum() / n


def dice_multiclass_seed004(output, target, smooth=1.0):
    """Seed 004 ``DiceLoss`` made per class: one-hot by ``scatter_``, softmax, per-class Dice over the batch, mean."""
    c = output.size(1)
    one_hot = torch.zeros_like(output).scatter_(1, target.unsqueeze(1), 1)
    probs = F.softmax(output, dim=1)
    dims = (0, *range(2, output.dim()))
    inter = (probs * one_hot).sum(dims)
    card = probs.sum(dims) + one_hot.sum(dims)
    dice = (2.0 * inter + smooth) / (card + smooth)
    return 1.0 - dice.sum() / c


# -------------------------------------------------------------------- Focal

def focal_sigmoid_torchvision(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision's ``sigmoid_focal_loss`` (mean reduction), the reference binary focal loss."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * loss).mean()


def focal_softmax_seed004(output, target, gamma=2.0):
    """Seed 004 ``FocalLoss`` (typos fixed, no class weights): CE per pixel, p = exp(-CE), mean((1 - p)^g CE)."""
    log_pi = F.cross_entropy(output, target, reduction="none")
    pi = torch.exp(-log_pi)
    return (log_pi * (1 - pi) ** gamma).mean()


# ----------------------------------------------------------------- Boundary

def boundary_bce_dice_seed001(logits, labels, kernel_size):
    """Seed 001 ``combined_loss(is_weight=True)``: avg-pool boundary weights, weighted BCE + weighted soft Dice.

    The seed is 2D with a kernel size table; here the size is given and a 3D volume uses ``avg_pool3d``.
    """
    pool = F.avg_pool2d if logits.dim() == 4 else F.avg_pool3d
    a = pool(labels, kernel_size=kernel_size, padding=kernel_size // 2, stride=1)
    ind = (a.ge(0.01) * a.le(0.99)).float()
    weights = torch.ones(a.size(), device=logits.device)
    w0 = weights.sum()
    weights = weights + ind * 2
    w1 = weights.sum()
    weights = weights / w1 * w0
    # WeightedBCELoss2d
    w, x, gt = weights.view(-1), logits.view(-1), labels.view(-1)
    bce = x.clamp(min=0) - x * gt + torch.log(1 + torch.exp(-x.abs()))
    bce = (bce * w).sum() / w.sum()
    # WeightedSoftDiceLoss
    num = labels.size(0)
    probs = torch.sigmoid(logits)
    w = weights.view(num, -1)
    w2 = w * w
    m1 = probs.view(num, -1)
    m2 = labels.view(num, -1)
    intersection = m1 * m2
    score = 2.0 * ((w2 * intersection).sum(1) + 1) / ((w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
    dice = 1 - score.sum() / num
    return bce + dice


def seed001_kernel_size(height: int) -> int:
    """Seed 001's table (128: 11, 256: 21, 512: 21, 1024: 41, 1280: 51); other heights: the odd size nearest H / 12."""
    table = {128: 11, 256: 21, 512: 21, 1024: 41, 1280: 51}
    return table.get(height, max(3, 2 * round(height / 24) + 1))


# ------------------------------------------------------------------- Lovász (Berman, seeds 002 / 004)

def _lovasz_grad(gt_sorted):
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.float().cumsum(0)
    union = gts + (1 - gt_sorted).float().cumsum(0)
    jaccard = 1.0 - intersection / union
    if p > 1:
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


def _lovasz_hinge_flat(logits, labels):
    if len(labels) == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels.float() - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    grad = _lovasz_grad(labels[perm])
    return torch.dot(F.relu(errors_sorted), grad)


def lovasz_hinge_berman(logits, labels, per_image=True):
    """Berman's ``lovasz_hinge`` (logits (B, 1, ...) squeezed, labels {0, 1}), a Python loop over images."""
    logits = logits.flatten(1)
    labels = labels.flatten(1)
    if per_image:
        return torch.stack([_lovasz_hinge_flat(lg, lb) for lg, lb in zip(logits, labels)]).mean()
    return _lovasz_hinge_flat(logits.reshape(-1), labels.reshape(-1))


def lovasz_softmax_berman(logits, labels, classes="present"):
    """Berman's ``lovasz_softmax`` on ``softmax(logits)`` (per_image=False): a Python loop over classes."""
    probas = F.softmax(logits, dim=1)
    c = probas.size(1)
    probas = probas.movedim(1, -1).reshape(-1, c)
    labels = labels.reshape(-1)
    losses = []
    for k in (range(c) if classes in ("all", "present") else classes):
        fg = (labels == k).float()
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm])))
    return torch.stack(losses).mean() if losses else probas.sum() * 0.0


# ------------------------------------------------------------ Cross entropy

def cross_entropy2d_seed001(input, target, weight=None, size_average=True):
    """Seed 001 ``cross_entropy2d`` (pytorch-fcn), generalised to any spatial rank by ``movedim``."""
    c = input.size(1)
    log_p = F.log_softmax(input, dim=1)
    log_p = log_p.movedim(1, -1).contiguous()
    log_p = log_p[target.unsqueeze(-1).expand(*target.shape, c) >= 0]
    log_p = log_p.view(-1, c)
    mask = target >= 0
    target = target[mask]
    loss = F.nll_loss(log_p, target, weight=weight, reduction="sum")
    if size_average:
        loss = loss / mask.data.sum()
    return loss


def balanced_ce_seed003(output, target, eps=1e-6):
    """Seed 003 ``BalancedBCELoss`` for C classes: weights 1 / (count + eps) from the target, then CE."""
    c = output.size(1)
    weight = torch.stack([torch.reciprocal(torch.sum(target == k).float() + eps) for k in range(c)])
    return nn.CrossEntropyLoss(weight)(output, target)


# ------------------------------------------------------------------ Metrics

def confusion_seed001(logits, labels, num_classes):
    """Seed 001 ``_fast_hist`` in torch: argmax, then ``bincount(n * true + pred)``."""
    pred = logits.argmax(1)
    mask = (labels >= 0) & (labels < num_classes)
    hist = torch.bincount(num_classes * labels[mask] + pred[mask], minlength=num_classes**2)
    return hist.reshape(num_classes, num_classes)
