"""PyTorch path of the focal family; mirrors ``kernels/focal.py`` (same names, signatures, math)."""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype


def _acc(x):
    return acc_dtype(x.dtype)


def _pow(q, gamma):
    """q ** gamma with its limit at q == 0 (1 for gamma == 0, else 0), as the kernels take it."""
    zero_pow = 1.0 if gamma == 0 else 0.0
    return torch.where(q > 0, torch.exp(gamma * torch.log(torch.where(q > 0, q, 1.0))), zero_pow)


def _sigmoid_terms(x, t, ignore_index):
    acc = _acc(x)
    x = x.to(acc)
    t = t.to(acc)
    valid = None if ignore_index is None else t != ignore_index
    if valid is not None:
        t = torch.where(valid, t, 0.0)
    p = torch.sigmoid(x)
    pm = torch.sigmoid(-x)  # 1 - p without cancellation
    ce = torch.log1p(torch.exp(-x.abs())) + (x.clamp_min(0.0) - x * t)  # softplus(x) - x t, exact tails
    q = t * pm + (1.0 - t) * p
    return x, t, valid, p, pm, ce, q


def _alpha_t(t, alpha):
    return alpha * t + (1.0 - alpha) * (1.0 - t)


def focal_sigmoid_forward(x, t, alpha, gamma, ignore_index, store_loss):
    """Same contract as ``kernels.focal.focal_sigmoid_forward``; partials as one (1, 2) row."""
    x, t, valid, p, pm, ce, q = _sigmoid_terms(x, t, ignore_index)
    loss = _pow(q, gamma) * ce
    if alpha is not None:
        loss = loss * _alpha_t(t, alpha)
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
        count = valid.sum().to(loss.dtype)
    else:
        count = torch.tensor(float(t.numel()), dtype=loss.dtype, device=t.device)
    part = torch.stack([loss.sum(), count]).unsqueeze(0)
    return (loss if store_loss else None), part


def focal_sigmoid_backward(x, t, g_map, coef, alpha, gamma, ignore_index):
    """Same contract as ``kernels.focal.focal_sigmoid_backward``."""
    dtype = x.dtype
    x, t, valid, p, pm, ce, q = _sigmoid_terms(x, t, ignore_index)
    qpos = q > 0
    r = torch.where(qpos, p * pm / torch.where(qpos, q, 1.0), 0.0)
    dx = _pow(q, gamma) * (gamma * (1.0 - 2.0 * t) * r * ce + ((1.0 - t) * p - t * pm))
    if alpha is not None:
        dx = dx * _alpha_t(t, alpha)
    scale = coef[0] if g_map is None else coef[0] * g_map.to(dx.dtype)
    dx = dx * scale
    if valid is not None:
        dx = torch.where(valid, dx, 0.0)
    return dx.to(dtype)


def _softmax_stats(x, y, ignore_index):
    acc = _acc(x)
    x = x.to(acc)
    C = x.shape[1]
    y = y.long()
    valid = (y >= 0) & (y < C)
    if ignore_index is not None:
        valid &= y != ignore_index
    yc = torch.where(valid, y, 0)
    m = x.amax(dim=1)
    ex = torch.exp(x - m.unsqueeze(1))
    se = ex.sum(dim=1)
    so = ex.scatter(1, yc.unsqueeze(1), 0.0).sum(dim=1)  # sum over k != y: no cancellation when p_y ~ 1
    xy = x.gather(1, yc.unsqueeze(1)).squeeze(1)
    ey = torch.exp(xy - m)
    big = ey > 0.5
    ce = torch.where(big, torch.log1p(so / torch.where(big, ey, 1.0)), torch.log(se) + (m - xy))
    q = so / se
    return x, valid, yc, m, se, ey, ce, q


def _class_weight(yc, alpha_w, alpha):
    return alpha_w[yc] if alpha_w is not None else alpha


def focal_softmax_forward(x, y, alpha_w, alpha, gamma, ignore_index, store_loss):
    """Same contract as ``kernels.focal.focal_softmax_forward``; partials as one (1, 2) row."""
    x, valid, yc, _, _, _, ce, q = _softmax_stats(x, y, ignore_index)
    loss = _pow(q, gamma) * ce * _class_weight(yc, alpha_w, alpha)
    loss = torch.where(valid, loss, 0.0)
    part = torch.stack([loss.sum(), valid.sum().to(loss.dtype)]).unsqueeze(0)
    return (loss if store_loss else None), part


def focal_softmax_backward(x, y, alpha_w, g_map, coef, alpha, gamma, ignore_index):
    """Same contract as ``kernels.focal.focal_softmax_backward``."""
    dtype = x.dtype
    x, valid, yc, m, se, ey, ce, q = _softmax_stats(x, y, ignore_index)
    qpos = q > 0
    ratio = torch.where(qpos, ce / torch.where(qpos, q, 1.0), 1.0)
    f = _pow(q, gamma) * (1.0 + gamma * (ey / se) * ratio) * _class_weight(yc, alpha_w, alpha) * coef[0]
    if g_map is not None:
        f = f * g_map.to(f.dtype)
    f = torch.where(valid, f, 0.0)
    pk = torch.exp(x - m.unsqueeze(1)) / se.unsqueeze(1)
    d = pk.scatter(1, yc.unsqueeze(1), -q.unsqueeze(1))  # p_k - [k == y], with p_y - 1 = -q
    return (d * f.unsqueeze(1)).to(dtype)
