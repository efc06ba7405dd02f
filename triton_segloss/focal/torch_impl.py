"""PyTorch path of the focal family: the same functions, contract and math as ``kernels.py``.

The elementwise terms are the kernels' cancellation-free forms written with torch
ops (``q = 1 - p_t`` as a sum of the other probabilities, ``q ** gamma`` with its
limit at q = 0, the gradient with ``q ** (gamma - 1)`` multiplied out).
"""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype


def _pow(q, gamma):
    """q ** gamma with its limit at q == 0 (1 for gamma == 0, else 0), as the kernels take it."""
    zero_pow = 1.0 if gamma == 0 else 0.0
    return torch.where(q > 0, torch.exp(gamma * torch.log(torch.where(q > 0, q, 1.0))), zero_pow)


def _reduce(loss, valid, o):
    """(loss, coef) of an elementwise loss map (0 where not valid) for ``o.reduction``."""
    if o.reduction == "none":
        return loss.contiguous(), loss.new_empty((0,))  # the kernels' (and the fake's) contiguous map
    total = loss.sum(dtype=torch.float64)
    if o.reduction == "sum":
        return total.to(loss.dtype), loss.new_ones((1,))
    if valid is None:
        count = torch.full((), float(loss.numel()), dtype=torch.float64, device=loss.device)
    else:
        count = valid.sum(dtype=torch.float64).clamp_min(1)  # every pixel ignored: the loss is 0
    return (total / count).to(loss.dtype), (1.0 / count).reshape(1).to(loss.dtype)


def _like(dx, x):
    """``dx`` in ``x``'s dtype and layout (what the kernels and the fake promise)."""
    return torch.empty_like(x).copy_(dx)


def _scale(dx, g, coef):
    if coef.numel():
        dx = dx * coef[0]
    return dx * g.to(dx.dtype)


def _class_view(w, acc, ndim):
    """A per-class (C,) tensor as (1, C, 1) for (N, C, S) maps."""
    return w.to(acc).view(1, -1, *([1] * (ndim - 2)))


# ---- sigmoid focal ------------------------------------------------------------------------

def _sigmoid_terms(x, t, o):
    acc = acc_dtype(x.dtype)
    x = x.to(acc)
    C = x.shape[1]
    if o.labels:
        y = t.long()  # (N, 1, S) integer labels
        valid = (y >= 0) & (y < C)
        if o.ignore_index is not None:
            valid &= y != int(o.ignore_index)
        classes = torch.arange(C, device=x.device).view(1, C, 1)
        t = ((y == classes) & valid).to(acc)
        valid = valid.expand(x.shape)
    else:
        t = t.to(acc)
        valid = None if o.ignore_index is None else t != o.ignore_index
        if valid is not None:
            t = torch.where(valid, t, 0.0)
    if o.from_logits:
        p = torch.sigmoid(x)
        pm = torch.sigmoid(-x)  # 1 - p without cancellation
        ce = torch.log1p(torch.exp(-x.abs())) + (x.clamp_min(0.0) - x * t)  # softplus(x) - x t, exact tails
        lp_ok = lq_ok = None
    else:
        p, pm = x, 1.0 - x
        lp, lq = torch.log(x), torch.log1p(-x)
        lp_ok, lq_ok = lp > -100.0, lq > -100.0
        ce = -(torch.where(t > 0, t * lp.clamp_min(-100.0), 0.0) + torch.where(t < 1, (1.0 - t) * lq.clamp_min(-100.0),
                                                                                 0.0))
    q = t * pm + (1.0 - t) * p
    return t, valid, p, pm, ce, q, lp_ok, lq_ok


def _sigmoid_weight(t, alpha_w, class_w, o):
    """alpha_t * class_weight[c] * scale, broadcastable to the (N, C, S) map (a float when uniform)."""
    w = o.scale
    if alpha_w is not None:
        a = _class_view(alpha_w, t.dtype, t.dim())
        w = w * (a * t + (1.0 - a) * (1.0 - t))
    elif o.alpha is not None:
        w = w * (o.alpha * t + (1.0 - o.alpha) * (1.0 - t))
    if class_w is not None:
        w = w * _class_view(class_w, t.dtype, t.dim())
    return w


def sigmoid_forward(x, t, alpha_w, class_w, o):
    """Same contract as ``kernels.sigmoid_forward``."""
    t, valid, _p, _pm, ce, q, _lp_ok, _lq_ok = _sigmoid_terms(x, t, o)
    loss = _pow(q, o.gamma) * ce * _sigmoid_weight(t, alpha_w, class_w, o)
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    return _reduce(loss, valid, o)


def sigmoid_backward(g, coef, x, t, alpha_w, class_w, o):
    """Same contract as ``kernels.sigmoid_backward``."""
    t, valid, p, pm, ce, q, lp_ok, lq_ok = _sigmoid_terms(x, t, o)
    qpos = q > 0
    if o.from_logits:
        r = torch.where(qpos, p * pm / torch.where(qpos, q, 1.0), 0.0)
        dx = _pow(q, o.gamma) * (o.gamma * (1.0 - 2.0 * t) * r * ce + ((1.0 - t) * p - t * pm))
    else:
        ratio = torch.where(qpos, ce / torch.where(qpos, q, 1.0), 1.0)
        sp, spm = torch.where(p > 0, p, 1.0), torch.where(pm > 0, pm, 1.0)
        inner = (p > 0) & (pm > 0) & lp_ok & lq_ok
        edge = torch.where(lq_ok & (t < 1), (1.0 - t) / spm, 0.0) - torch.where(lp_ok & (t > 0), t / sp, 0.0)
        dce = torch.where(inner, (p - t) / sp / spm, edge)
        dx = _pow(q, o.gamma) * (o.gamma * (1.0 - 2.0 * t) * ratio + dce)
    dx = _scale(dx * _sigmoid_weight(t, alpha_w, class_w, o), g, coef)
    if valid is not None:
        dx = torch.where(valid, dx, 0.0)
    return _like(dx, x)


# ---- softmax focal ------------------------------------------------------------------------

def _softmax_stats(x, y, alpha_w, class_w, o):
    acc = acc_dtype(x.dtype)
    x = x.to(acc)
    C = x.shape[1]
    y = y.long()
    valid = (y >= 0) & (y < C)
    if o.ignore_index is not None:
        valid &= y != o.ignore_index
    yc = torch.where(valid, y, 0)
    a = alpha_w.to(acc)[yc] if alpha_w is not None else o.alpha
    if class_w is not None:
        a = a * class_w.to(acc)[yc]
    a = a * o.scale
    if not o.from_logits:
        p = x.gather(1, yc.unsqueeze(1)).squeeze(1)
        lp = torch.log(p)
        return x, valid, yc, p, lp > -100.0, -lp.clamp_min(-100.0), 1.0 - p, a
    m = x.amax(dim=1)
    ex = torch.exp(x - m.unsqueeze(1))
    se = ex.sum(dim=1)
    so = ex.scatter(1, yc.unsqueeze(1), 0.0).sum(dim=1)  # sum over k != y: no cancellation when p_y ~ 1
    xy = x.gather(1, yc.unsqueeze(1)).squeeze(1)
    ey = torch.exp(xy - m)
    big = ey > 0.5
    ce = torch.where(big, torch.log1p(so / torch.where(big, ey, 1.0)), torch.log(se) + (m - xy))
    q = so / se
    return x, valid, yc, (m, se), ey, ce, q, a


def softmax_forward(x, y, alpha_w, class_w, o):
    """Same contract as ``kernels.softmax_forward``."""
    _, valid, _, _, _, ce, q, a = _softmax_stats(x, y, alpha_w, class_w, o)
    loss = torch.where(valid, _pow(q, o.gamma) * ce * a, 0.0)
    return _reduce(loss, valid, o)


def softmax_backward(g, coef, x, y, alpha_w, class_w, o):
    """Same contract as ``kernels.softmax_backward``."""
    xa, valid, yc, stats, ey, ce, q, a = _softmax_stats(x, y, alpha_w, class_w, o)
    qpos = q > 0
    ratio = torch.where(qpos, ce / torch.where(qpos, q, 1.0), 1.0)
    if not o.from_logits:
        p, lp_ok = stats, ey
        f = -_pow(q, o.gamma) * (torch.where(lp_ok, 1.0 / torch.where(lp_ok, p, 1.0), 0.0) + o.gamma * ratio) * a
        f = torch.where(valid, _scale(f, g, coef), 0.0)
        d = torch.zeros_like(xa).scatter_(1, yc.unsqueeze(1), f.unsqueeze(1))
        return _like(d, x)
    m, se = stats
    f = _pow(q, o.gamma) * (1.0 + o.gamma * (ey / se) * ratio) * a
    f = torch.where(valid, _scale(f, g, coef), 0.0)
    pk = torch.exp(xa - m.unsqueeze(1)) / se.unsqueeze(1)
    d = pk.scatter(1, yc.unsqueeze(1), -q.unsqueeze(1))  # p_k - [k == y], with p_y - 1 = -q
    return _like(d * f.unsqueeze(1), x)
