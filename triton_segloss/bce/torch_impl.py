"""PyTorch path of the BCE family: the same functions and contract as ``kernels.py``.

The elementwise loss is ``(1 - s) softplus(x) + pw s softplus(-x)`` (softplus takes
``log1p``, so confident pixels keep their tiny losses, which torch's fused BCE rounds to
0); ignore masks and per-pixel weights multiply it. The backward is the
hand-derived gradient with in-place ops, so it allocates one input-sized buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from triton_segloss._core.validate import acc_dtype


def _smoothed(t, acc, eps):
    t = t.to(acc)
    return t * (1.0 - eps) + 0.5 * eps if eps else t


def _weight(t, w, o, acc):
    valid = None if o.ignore_index is None else t != o.ignore_index
    weight = None if w is None else w.to(acc)
    if valid is not None:
        weight = valid.to(acc) if weight is None else weight * valid
    return valid, weight


def _elementwise(x, t, w, pw, o, acc, reduction):
    valid, weight = _weight(t, w, o, acc)
    ts = _smoothed(t, acc, o.label_smoothing)
    if valid is not None:
        ts = torch.where(valid, ts, 0.0)  # an ignore value (e.g. 255) must not reach the formula
    if pw is not None:
        pw = pw.to(acc)
    elif o.pos_weight != 1.0:
        pw = torch.full((), o.pos_weight, dtype=acc, device=x.device)
    # (1 - ts) sp(x) + pw ts sp(-x) with sp = softplus, which takes log1p: torch's fused BCE forms
    # log(1 + e^-|x|) by cancellation and returns 0 for l = log(1 + e^-20) = 2.06e-9
    xa = x.to(acc)
    loss = F.softplus(xa).mul_(1.0 - ts)
    neg = F.softplus(-xa).mul_(ts)
    loss = loss.add_(neg if pw is None else neg.mul_(pw))
    if weight is not None:
        loss = loss.mul_(weight)
    if reduction == "sum":
        loss = loss.sum()
    return loss, valid


def _sides(t, valid, acc):
    tv = t.to(acc)
    pos, neg = tv > 0.5, tv < 0.5
    if valid is not None:
        pos, neg = pos & valid, neg & valid
    return pos, neg


def _count(valid, t, acc):
    if valid is None:
        return torch.full((), float(t.numel()), dtype=acc, device=t.device)
    return valid.sum().to(acc)


def forward(x, t, w, pw, o):
    """Same contract as ``kernels.forward``."""
    acc = acc_dtype(x.dtype)
    none = o.reduction == "none"
    if o.balance is not None:
        a, b = o.balance
        loss, valid = _elementwise(x, t, w, pw, o, acc, "none")
        pos, neg = _sides(t, valid, acc)
        coef = torch.stack([a / pos.sum().clamp_min(1).to(acc), b / neg.sum().clamp_min(1).to(acc)])
        if none:
            return loss * torch.where(pos, coef[0], torch.where(neg, coef[1], 0.0)), coef
        return (torch.where(pos, loss, 0.0).sum() * coef[0] + torch.where(neg, loss, 0.0).sum() * coef[1]), coef
    if none:
        return _elementwise(x, t, w, pw, o, acc, "none")[0], x.new_empty((0,), dtype=acc)
    total, valid = _elementwise(x, t, w, pw, o, acc, "sum")
    if o.reduction == "mean":
        scale = 1.0 / _count(valid, t, acc).clamp_min(1)
        return total * scale, torch.stack([scale, scale])
    one = torch.ones((), dtype=acc, device=x.device)
    return total.clone(), torch.stack([one, one])


def backward(g, coef, x, t, w, pw, o):
    """Same contract as ``kernels.backward``:
    dl/dx = w [(1 - s) sigma - pw s (1 - sigma)] = w [sigma - s] when pw == 1."""
    acc = acc_dtype(x.dtype)
    ts = _smoothed(t, acc, o.label_smoothing)
    dx = torch.sigmoid(x.to(acc))
    if pw is None and o.pos_weight == 1.0:
        dx.sub_(ts)
    else:
        p = o.pos_weight if pw is None else pw.to(acc)
        dx = dx * (1.0 - ts) - p * ts * (1.0 - dx)
    if w is not None:
        dx.mul_(w.to(acc))
    if o.balance is not None:
        tv = t.to(acc)
        dx.mul_(torch.where(tv > 0.5, coef[0], torch.where(tv < 0.5, coef[1], 0.0)))
    elif coef.numel():
        dx.mul_(coef[0])
    dx.mul_(g.to(acc))
    if o.ignore_index is not None:
        dx.masked_fill_(t == o.ignore_index, 0.0)
    out = torch.empty_like(x)  # the logits' layout, as the kernels and the fake promise
    return out.copy_(dx)
