"""Eager references for the BCE family."""

import torch
import torch.nn.functional as F


def bce_with_logits(logits, target, weight=None, pos_weight=None, balance=None, ignore_index=None,
                    label_smoothing=0.0, reduction="mean"):
    x = logits.double()
    t = target.double().reshape(x.shape)
    s = t * (1 - label_smoothing) + label_smoothing / 2
    pw = 1.0
    if pos_weight is not None:
        pw = pos_weight.double() if torch.is_tensor(pos_weight) else float(pos_weight)
        if torch.is_tensor(pw) and pw.dim() == 1 and pw.numel() == x.shape[1]:
            pw = pw.view((1, -1) + (1,) * (x.dim() - 2))
    # -[pw * s * log(sigmoid(x)) + (1 - s) * log(1 - sigmoid(x))]
    loss = -(pw * s * F.logsigmoid(x) + (1 - s) * F.logsigmoid(-x))
    if weight is not None:
        w = weight.double()
        if w.dim() == x.dim() - 1 and x.shape[1] == 1 and w.shape[0] == x.shape[0]:
            w = w.unsqueeze(1)  # an (N, *spatial) map for a binary logit
        loss = loss * w
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if balance is not None:
        a, b = balance
        pos = valid & (t > 0.5)
        neg = valid & (t < 0.5)
        n_pos, n_neg = pos.sum(), neg.sum()
        share = torch.zeros_like(loss)
        share[pos] = a / max(int(n_pos), 1)
        share[neg] = b / max(int(n_neg), 1)
        loss = loss * share
        return loss if reduction == "none" else loss.sum()
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    n = int(valid.sum())
    return loss.sum() / n if n else loss.sum() * 0


def seed000_weighted_bce(logit, truth):
    """Seed 000's weighted BCE, restated: 0.25 * mean over positives + 0.75 * mean over negatives."""
    x = logit.double().flatten()
    t = truth.double().flatten()
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    pos = (t > 0.5).double()
    neg = (t < 0.5).double()
    return (0.25 * pos * loss / (pos.sum() + 1e-12) + 0.75 * neg * loss / (neg.sum() + 1e-12)).sum()


def seed001_weighted_bce_loss2d(logits, labels, weights):
    """Seed 001's WeightedBCELoss2d, restated: sum(w * l) / sum(w), l the stable BCE with logits."""
    x = logits.double().flatten()
    t = labels.double().flatten()
    w = weights.double().flatten()
    loss = x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))
    return (loss * w).sum() / w.sum()
