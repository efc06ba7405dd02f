"""PyTorch path of the distance-map losses: the same functions and contract as ``kernels.py``."""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype

from .ops import first_class, row_scale


def _probs_target(x, t, o, acc):
    xa = x.to(acc)
    n, c, s = x.shape
    if o.multiclass:
        p = torch.softmax(xa, dim=1) if o.from_logits else xa
        cls = torch.arange(c, device=x.device).view(1, c, 1)
        tt = (t.to(torch.int64) == cls).to(acc)
    else:
        p = torch.sigmoid(xa) if o.from_logits else xa
        tt = t.to(acc)
    return p, tt


def _field_pow(f, alpha, acc):
    f = f.to(acc)
    f = torch.where(torch.isinf(f), 0.0, f)  # the field of an empty or full mask
    if alpha == 0:
        return torch.ones_like(f)
    return f.pow(alpha)


def _weight(fa, fb, tt, o, acc):
    if o.kind == "hausdorff":
        return _field_pow(fa, o.alpha, acc) + _field_pow(fb, o.alpha, acc)
    phi = torch.where(tt > 0.5, 1.0 - fb.to(acc), fa.to(acc))
    return torch.where(torch.isinf(phi), 0.0, phi)  # a class empty or full in the row


def forward(x, t, fa, fb, o):
    """The loss (see ``ops.py``)."""
    acc = acc_dtype(x.dtype)
    n, c, s = x.shape
    c0 = first_class(o, c)
    p, tt = _probs_target(x, t, o, acc)
    w = _weight(fa, fb, tt, o, acc)
    l = (p - tt).square() * w if o.kind == "hausdorff" else p * w
    rows = l[:, c0:].sum(dim=2)  # (N, K)
    scale = row_scale(o, n, c, s)
    if o.reduction == "none":
        return rows * scale if o.per_image else rows.sum(dim=0, keepdim=True) * scale
    return rows.sum() * scale


def backward(g, x, t, fa, fb, o):
    """dLoss/dx with the logits' dtype and layout."""
    acc = acc_dtype(x.dtype)
    n, c, s = x.shape
    c0 = first_class(o, c)
    p, tt = _probs_target(x, t, o, acc)
    w = _weight(fa, fb, tt, o, acc)
    gp = 2.0 * (p - tt) * w if o.kind == "hausdorff" else w
    scale = g.to(acc) * row_scale(o, n, c, s)
    if o.reduction == "none":
        scale = scale.unsqueeze(-1)  # (N or 1, K, 1)
    gk = gp[:, c0:] * scale
    gp = torch.cat([torch.zeros_like(gp[:, :c0]), gk], dim=1) if c0 else gk
    if o.from_logits:
        if o.multiclass:
            gp = p * (gp - (p * gp).sum(dim=1, keepdim=True))
        else:
            gp = gp * p * (1.0 - p)
    out = torch.empty_like(x)
    return out.copy_(gp)
