"""PyTorch path of the soft-overlap (Dice) family; mirrors ``kernels/dice.py``.

Same math, vectorised: no Python loop over images or classes and no one-hot
tensor. Multiclass sums read the label's channel with ``gather`` ((N, 1, S)) and
add it into (N, C) with ``scatter_add``; with the signed / label-weight options,
the identity ``sum_s f(t_cs) = sum_s f(0) + sum_{s: y_s = c} (f(1) - f(0))`` does
the same (an elementwise pass with t = 0, plus the label channel's correction).
The spatial axis is processed in chunks so temporaries stay bounded
(``_CHUNK`` elements of (N, C, chunk)), whatever the volume.
"""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype

_CHUNK = 1 << 20  # elements of an (N, C, chunk) temporary (4 MiB in float32)
_TINY = 1e-30


def _chunks(n: int, c: int, s: int):
    step = max(1, _CHUNK // max(1, n * c))
    return [(a, min(s, a + step)) for a in range(0, s, step)] or [(0, 0)]


def _mul(a, b):
    """a * b where None stands for 1 and a Python 1.0 is skipped."""
    if a is None or (isinstance(a, float) and a == 1.0):
        return b
    if b is None or (isinstance(b, float) and b == 1.0):
        return a
    return a * b


def _zero(u) -> bool:
    return isinstance(u, float) and u == 0.0


class _Flags:
    def __init__(self, ignore_index, squared, signed, label_weight, w_pow_i, w_pow_pt, pixel, alpha, gamma):
        self.ignore_index = ignore_index
        self.squared = squared
        self.signed = signed
        self.lw = label_weight
        self.w_pow_i = w_pow_i
        self.w_pow_pt = w_pow_pt
        self.pixel = pixel
        self.gamma = float(gamma)
        on = alpha is not None and alpha >= 0
        self.a_pos, self.a_neg = (float(alpha), 1.0 - float(alpha)) if on else (1.0, 1.0)

    def weights(self, base, t):
        """(wi, wp) from om = base * label weight(t); None stands for 1. ``t`` may be a Python 0.0 / 1.0."""
        om = base
        if self.lw is not None:
            om = _mul(om, self.lw[0] + (self.lw[1] - self.lw[0]) * t)
        om2 = None if om is None else om * om
        return (om2 if self.w_pow_i == 2 else om), (om2 if self.w_pow_pt == 2 else om)

    def qu(self, p, t):
        if self.signed:
            return 2.0 * p - 1.0, 2.0 * t - 1.0
        return p, t

    def sums3(self, p, t, base):
        """Elementwise terms of I, P, T before summing over pixels; None where identically 0."""
        wi, wp = self.weights(base, t)
        q, u = self.qu(p, t)
        i = None if _zero(u) else _mul(wi, _mul(q, u))
        pk = q * q if self.squared else q
        tk = u * u if self.squared else u
        return i, _mul(wp, pk), (None if _zero(tk) else _mul(wp, tk))

    def dsums(self, p, t, base, g_i, g_p):
        """dLoss/dp of the I and P terms: m (gI wi u + gP wp (squared ? 2q : 1))."""
        wi, wp = self.weights(base, t)
        q, u = self.qu(p, t)
        a = _mul(g_p, wp)
        if self.squared:
            a = a * (2.0 * q)
        if not _zero(u):
            a = a + _mul(g_i, _mul(wi, u))
        return 2.0 * a if self.signed else a


# ---- binary / multilabel (sigmoid per channel) ----------------------------------------

def _binary_prep(x, t, w, from_logits, f, need_pn):
    acc = acc_dtype(x.dtype)
    x = x.to(acc)
    t = t.to(acc)
    valid = None
    if f.ignore_index is not None:
        valid = t != f.ignore_index
        t = torch.where(valid, t, 0.0)
    wl = _mul(None if valid is None else valid.to(acc), None if w is None else w.to(acc))
    if from_logits:  # 1 - sigmoid(x) as sigmoid(-x): no cancellation for large x
        p, pn = torch.sigmoid(x), (torch.sigmoid(-x) if need_pn else None)
    else:
        p, pn = x, 1.0 - x
    return x, t, valid, wl, p, pn


def _bce(x, t):
    return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs())) - x * t


def _binary_fwd(x, t, w, from_logits, f, hard, threshold):
    x, t, valid, wl, p, pn = _binary_prep(x, t, w, from_logits, f, f.pixel == 2)
    if hard:
        p = (p > threshold).to(x.dtype)
    out = [a.expand_as(x).sum(-1) for a in f.sums3(p, t, wl)]
    if f.pixel == 0:
        out.append(torch.zeros_like(out[0]))
    else:
        ce = _bce(x, t)
        if f.pixel == 2:
            d = t * pn + (1.0 - t) * p
            ce = ce * (f.a_neg + (f.a_pos - f.a_neg) * t) * d.clamp_min(_TINY) ** f.gamma
        out.append(_mul(wl, ce).sum(-1))
    out.append(torch.full_like(out[0], x.shape[-1]) if valid is None else valid.sum(-1).to(x.dtype))
    return torch.stack(out, -1)


def _binary_bwd(x, t, w, g, from_logits, f):
    x, t, valid, wl, p, pn = _binary_prep(x, t, w, from_logits, f, f.pixel == 2)
    dx = f.dsums(p, t, wl, g[:, :, 0:1], g[:, :, 1:2])
    if from_logits:  # dx * p (1 - p) in one pass, as torch's own sigmoid backward
        dx = torch.ops.aten.sigmoid_backward(dx.expand_as(x), p)
    if f.pixel == 1:
        dx = dx + g[:, :, 3:4] * _mul(wl, p - t)
    elif f.pixel == 2:
        d = (t * pn + (1.0 - t) * p).clamp_min(_TINY)
        mod = d ** f.gamma
        at = f.a_neg + (f.a_pos - f.a_neg) * t
        term = at * ((p - t) * mod + _bce(x, t) * f.gamma * mod * (1.0 - 2.0 * t) * (p * pn / d))
        dx = dx + g[:, :, 3:4] * _mul(wl, term)
    if valid is not None:
        dx = torch.where(valid, dx, 0.0)
    return dx.expand_as(x)


# ---- multiclass (softmax over C from integer labels) -----------------------------------

def _mc_prep(x, y, w, from_logits, f):
    """Probabilities, labels and weights of one chunk; the label's channel gathered, never one-hot."""
    acc = acc_dtype(x.dtype)
    c = x.shape[1]
    x = x.to(acc)
    y = y.long()
    valid = (y >= 0) & (y < c)
    if f.ignore_index is not None:
        valid &= y != int(f.ignore_index)
    ys = torch.where(valid, y, 0)  # (N, 1, s)
    vf = valid.to(acc)
    wl = vf if w is None else vf * w.to(acc)  # (N, 1 or C, s)
    p = torch.softmax(x, 1) if from_logits else x
    wl_y = wl.expand_as(x).gather(1, ys) if wl.shape[1] != 1 else wl
    return x, ys, valid, vf, wl, wl_y, p


def _pixel_mc(x, ys, f):
    """Per-pixel CE / focal loss (N, 1, s), v = 1 - p_y (as -expm1(log p_y): no cancellation), log p_y."""
    logp = x.gather(1, ys) - torch.logsumexp(x, 1, keepdim=True)
    v = -torch.expm1(logp)
    if f.pixel == 1:
        return -logp, v, logp
    return -(v.clamp_min(_TINY) ** f.gamma) * logp, v, logp


def _class_sum(a, wl):
    """sum over pixels of a (N, C, s) times wl (N, 1, s) or (N, C, s) -> (N, C); a bmm when wl is shared."""
    if wl.shape[1] == 1 and a.shape[1] != 1:
        return torch.bmm(a, wl.transpose(1, 2)).squeeze(-1)
    return (a * wl).sum(-1)


def _mc_fwd(x, y, w, from_logits, f):
    n, c = x.shape[:2]
    x, ys, valid, vf, wl, wl_y, p = _mc_prep(x, y, w, from_logits, f)
    idx = ys.view(n, -1)
    zeros = torch.zeros((n, c), dtype=x.dtype, device=x.device)
    p_y = p.gather(1, ys)
    if f.signed or f.lw is not None:
        # general form: every pixel as if t = 0, plus the label channel's f(t=1) - f(t=0), scattered
        base = [zeros if a is None else a.expand_as(x).sum(-1) for a in f.sums3(p, 0.0, wl)]
        one = f.sums3(p_y, 1.0, wl_y)
        off = f.sums3(p_y, 0.0, wl_y)
        out = []
        for b, o1, o0 in zip(base, one, off):
            fix = (o1 if o0 is None else o1 - o0) * vf
            out.append(b.scatter_add(1, idx, fix.expand_as(p_y).reshape(n, -1)))
    else:  # t = [y = c]: I and T live on the label channel only, P on every channel
        wi_y = wl_y * wl_y if f.w_pow_i == 2 else wl_y
        wp, wp_y = (wl * wl, wl_y * wl_y) if f.w_pow_pt == 2 else (wl, wl_y)
        out = [zeros.scatter_add(1, idx, (wi_y * p_y).view(n, -1)),
               _class_sum(p * p if f.squared else p, wp),
               zeros.scatter_add(1, idx, wp_y.view(n, -1))]
    l_sum = zeros
    if f.pixel:
        l, _, _ = _pixel_mc(x, ys, f)
        l_sum = zeros.scatter_add(1, idx, (wl_y * l).view(n, -1))
    out.append(l_sum)
    out.append(zeros.scatter_add(1, idx, vf.view(n, -1)))
    return torch.stack(out, -1)


def _mc_bwd(x, y, w, g, from_logits, f):
    x, ys, valid, vf, wl, wl_y, p = _mc_prep(x, y, w, from_logits, f)
    g_i, g_p, g_l = (g[:, :, k:k + 1] for k in (0, 1, 3))  # (N, C, 1)
    gi_y = g_i.expand(-1, -1, ys.shape[2]).gather(1, ys)
    gp_y = g_p.expand(-1, -1, ys.shape[2]).gather(1, ys)
    p_y = p.gather(1, ys)
    # dLoss/dp: every channel as if t = 0, then the label channel's t = 1 term replaces it
    a = f.dsums(p, 0.0, wl, g_i, g_p).expand_as(x).contiguous()
    fix = f.dsums(p_y, 1.0, wl_y, gi_y, gp_y) - f.dsums(p_y, 0.0, wl_y, gi_y, gp_y)
    a.scatter_add_(1, ys, fix * vf)
    if from_logits:
        dx = p * (a - (p * a).sum(1, keepdim=True))
    else:
        dx = a
    if f.pixel:
        coef = g_l.expand(-1, -1, ys.shape[2]).gather(1, ys) * wl_y
        if f.pixel == 2:
            _, v, logp = _pixel_mc(x, ys, f)
            r = torch.where(v < 1e-4, -1.0 - v * (0.5 + v / 3.0), logp / v.clamp_min(1e-4))
            coef = coef * v.clamp_min(_TINY) ** f.gamma * (1.0 - f.gamma * (1.0 - v) * r)
        dx = dx + coef * p
        dx = dx.scatter_add(1, ys, -coef)
    return torch.where(valid, dx, 0.0)


# ---- the launcher signatures of kernels/dice.py ----------------------------------------

def dice_forward(x, t, w, multiclass, from_logits, ignore_index, squared, signed, label_weight,
                 w_pow_i, w_pow_pt, pixel, alpha, gamma, hard, threshold):
    """Same contract as ``kernels.dice.dice_forward``: partials (chunks, N, C, 5)."""
    f = _Flags(ignore_index, squared, signed, label_weight, w_pow_i, w_pow_pt, pixel, alpha, gamma)
    n, c, s = x.shape
    parts = []
    for a, b in _chunks(n, c, s):
        xs, ts = x[..., a:b], t[..., a:b]
        ws = None if w is None else w[..., a:b]
        if multiclass:
            parts.append(_mc_fwd(xs, ts, ws, from_logits, f))
        else:
            parts.append(_binary_fwd(xs, ts, ws, from_logits, f, hard, threshold))
    return torch.stack(parts)


def dice_backward(x, t, w, g, multiclass, from_logits, ignore_index, squared, signed, label_weight,
                  w_pow_i, w_pow_pt, pixel, alpha, gamma):
    """Same contract as ``kernels.dice.dice_backward``."""
    f = _Flags(ignore_index, squared, signed, label_weight, w_pow_i, w_pow_pt, pixel, alpha, gamma)
    n, c, s = x.shape
    g = g.to(acc_dtype(x.dtype))
    fn = _mc_bwd if multiclass else _binary_bwd
    chunks = _chunks(n, c, s)
    if len(chunks) == 1:  # no staging copy
        return fn(x, t, w, g, from_logits, f).to(x.dtype).contiguous()
    dx = torch.empty_like(x)
    for a, b in chunks:
        ws = None if w is None else w[..., a:b]
        dx[..., a:b] = fn(x[..., a:b], t[..., a:b], ws, g, from_logits, f)
    return dx
