"""PyTorch path of the distance-map losses: the same functions and contract as ``kernels.py``."""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype

from .ops import boundary_options, first_class, row_scale


def fields(x, t, o):
    """``(2, N, C, *spatial)`` constant maps (see ``ops.py``): hausdorff ``DT(m) + DT(~m)`` of the
    prediction's mask and of the target's; boundary ``DT(m_t)`` and ``DT(~m_t)`` (inf where the mask
    is empty). One exact EDT (the distance family's PyTorch path) of the stacked masks."""
    from triton_segloss.distance import torch_impl as edt_impl
    from triton_segloss.distance.ops import DistanceOptions

    acc = acc_dtype(x.dtype)
    n, c, *sp = x.shape
    if o.multiclass:
        cls = torch.arange(c, device=x.device).view((1, c) + (1,) * len(sp))
        mt = t.unsqueeze(1).to(torch.int64) == cls
    else:
        mt = t > 0.5
    masks = [mt, ~mt]
    if o.kind == "hausdorff":
        if not o.from_logits:
            mp = x > 0.5
        elif o.multiclass:
            mp = torch.softmax(x.to(acc), dim=1) > 0.5
        else:
            mp = x > 0
        masks = [mp, ~mp] + masks
    b3 = (-1,) + (1,) * (3 - o.ndim) + tuple(sp)
    stack = torch.cat([m.reshape(b3) for m in masks]).to(acc)  # the EDT's dtype is its mask's
    d = edt_impl.edt(stack, DistanceOptions(spacing=tuple(o.spacing), ndim=o.ndim)).view(len(masks), n, c, *sp)
    if o.kind == "hausdorff":
        return torch.stack([d[0] + d[1], d[2] + d[3]])
    return d


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


def _ratio(num, den, total, eps):
    """score = num / max(den, eps), exactly 1 where total == 0 (an empty class or row), 0 where the
    clamped den is 0; with d score / d num and d score / d den (0 where den < eps). NaN sums stay NaN."""
    empty = total == 0
    dc = torch.clamp_min(den, eps)
    ok = (dc > 0) & ~empty
    safe = torch.where(ok, dc, 1.0)
    s = torch.where(empty, 1.0, torch.where(ok, num / safe, 0.0))
    ds_num = torch.where(ok, 1.0 / safe, 0.0)
    ds_den = torch.where(ok & (den >= eps), -s / safe, 0.0)
    bad = num + den + total
    nan = torch.isnan(bad)
    return torch.where(nan, bad, s), torch.where(nan, bad, ds_num), torch.where(nan, bad, ds_den)


def _region_terms(i, p, t, o):
    """The region loss ("mean" over images, and over classes for Dice) and its dLoss/dI, dLoss/dP
    per (image, class), from the float64 sums (N, C). Generalized Dice: g_c = 1 / T_c^2, a class
    absent from the image's target taking the image's largest finite weight (MONAI); score
    2 sum g I / max(sum g (P + T), eps). Dice: 2 I / max(P + T, eps) per class."""
    n, c = i.shape
    if o.region == "dice":
        s, dn, dd = _ratio(2.0 * i, p + t, p + t, o.eps)
        mult = 1.0 / (n * c)
        return (1.0 - s).sum() * mult, -mult * 2.0 * dn, -mult * dd
    finite = t != 0
    safe = torch.where(finite, t, 1.0)
    gw = torch.where(finite, 1.0 / (safe * safe), 0.0)
    gw = torch.where(finite, gw, gw.amax(dim=1, keepdim=True))
    den = (gw * (p + t)).sum(dim=1)
    s, dn, dd = _ratio(2.0 * (gw * i).sum(dim=1), den, den, o.eps)
    mult = 1.0 / n
    return (1.0 - s).sum() * mult, -mult * 2.0 * dn[:, None] * gw, -mult * dd[:, None] * gw


def dice_boundary_forward(x, t, fa, fb, o):
    """``(1 - w) region + w boundary`` and the region's coefficients (N, C, 2) times (1 - w)."""
    acc = acc_dtype(x.dtype)
    p, tt = _probs_target(x, t, o, acc)
    bnd = forward(x, t, fa, fb, boundary_options(o))
    sums = [v.to(torch.float64) for v in ((p * tt).sum(dim=2), p.sum(dim=2), tt.sum(dim=2))]
    reg, di, dp = _region_terms(*sums, o)
    w = o.weight
    loss = (reg * (1.0 - w) + bnd.to(torch.float64) * w).to(acc)
    return loss, (torch.stack([di, dp], dim=-1) * (1.0 - w)).to(acc)


def dice_boundary_backward(g, coef, x, t, fa, fb, o):
    """dLoss/dx: the boundary term's (its backward, times w) plus the region's chain rule."""
    acc = acc_dtype(x.dtype)
    p, tt = _probs_target(x, t, o, acc)
    gr = g.to(acc) * (coef[..., :1].to(acc) * tt + coef[..., 1:].to(acc))  # dLoss/dp of the region term
    if o.from_logits:
        if o.multiclass:
            gr = p * (gr - (p * gr).sum(dim=1, keepdim=True))
        else:
            gr = gr * p * (1.0 - p)
    dx = backward(g * o.weight, x, t, fa, fb, boundary_options(o))
    return dx.copy_(dx.to(acc) + gr)
