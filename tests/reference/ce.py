"""Eager references for the cross-entropy family (float64, autograd for gradients)."""

import torch
import torch.nn.functional as F


def cross_entropy(logits, target, weight=None, pixel_weight=None, balance=False, ignore_index=-100,
                  label_smoothing=0.0, reduction="mean"):
    """The documented math, written out per pixel:

        l  = m * [(1 - eps) * w[y] * (-log p_y) + eps / C * sum_c w[c] * (-log p_c)]
        wt = m * w[y]
    mean = sum l / sum wt (0 if sum wt == 0), sum = sum l, none = l.
    balance: w[c] *= 1 / #{valid pixels labelled c}, 0 for an absent class.
    """
    x = logits.double()
    C = x.shape[1]
    t = target.long()
    if t.dim() == x.dim():
        t = t.squeeze(1)
    valid = (t >= 0) & (t < C)
    if ignore_index is not None:
        valid &= t != ignore_index
    y = torch.where(valid, t, torch.zeros_like(t))
    w = torch.ones(C, dtype=torch.float64) if weight is None else torch.as_tensor(weight).double()
    if balance:
        counts = torch.tensor([float(((t == c) & valid).sum()) for c in range(C)], dtype=torch.float64)
        inv = torch.tensor([1.0 / n if n > 0 else 0.0 for n in counts.tolist()], dtype=torch.float64)
        w = w * inv
    logp = torch.log_softmax(x, dim=1)
    nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1)
    wshape = (1, C) + (1,) * (x.dim() - 2)
    smooth = -(logp * w.view(wshape)).sum(1)
    loss = (1 - label_smoothing) * w[y] * nll + label_smoothing / C * smooth
    wt = w[y]
    if pixel_weight is not None:
        m = pixel_weight.double()
        if m.dim() == x.dim():
            m = m.squeeze(1)
        m = m.expand(t.shape)
        loss = loss * m
        wt = wt * m
    zero = torch.zeros_like(loss)
    loss = torch.where(valid, loss, zero)
    wt = torch.where(valid, wt, torch.zeros_like(wt))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    den = float(wt.sum())
    return loss.sum() / den if den != 0 else loss.sum() * 0


def seed001_cross_entropy2d(input, target, weight=None, size_average=True):
    """Seed 001's cross_entropy2d, restated: NLL of log-softmax over pixels with target >= 0,
    summed with class weights, divided by the number of those pixels when size_average."""
    x = input.double()
    n, c = x.shape[:2]
    log_p = torch.log_softmax(x, dim=1).permute(0, 2, 3, 1).reshape(-1, c)
    t = target.reshape(-1).long()
    mask = t >= 0
    w = None if weight is None else weight.double()
    loss = F.nll_loss(log_p[mask], t[mask], weight=w, reduction="sum")
    if size_average:
        loss = loss / mask.sum()
    return loss


def seed003_balanced_bce(output, target):
    """Seed 003's BalancedBCELoss, restated: class weights 1 / (count + 1e-6) of labels 0 and 1,
    then torch's weighted mean cross entropy."""
    w = torch.tensor([1.0 / (float((target == 0).sum()) + 1e-6), 1.0 / (float((target == 1).sum()) + 1e-6)],
                     dtype=torch.float64)
    return F.cross_entropy(output.double(), target.long(), weight=w)
