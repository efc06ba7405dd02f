"""Shifted class exponentials on the CPU path: e_c = e^(x_c - s) per pixel with s the label's logit
where that cannot overflow (no max pass), the label's entries by ``gather`` / ``scatter_`` along the
class dim. Shared by the CE and focal families' PyTorch paths (``ce/torch_impl.py``, ``focal/torch_impl.py``)."""

from __future__ import annotations

import torch


def put_label_(e, y, v):
    """e[n, y, s] = v[n, 0, s] in place for labels ``y`` (N, 1, S) and values ``v`` (N, 1, S) or a
    0-d tensor; returns e."""
    return e.scatter_(1, y, v.expand(y.shape) if v.dim() == 0 else v)


def at_label(w, y):
    """w[y] for a (C,) tensor and labels (N, 1, S) (``index_select``: the fastest lookup on the CPU)."""
    return w.index_select(0, y.reshape(-1)).view(y.shape)


def class_sum(p, wc):
    """sum_c w_c p_c over the class dim, (N, 1, S) (w_c = 1 when ``wc`` is None)."""
    if wc is None:
        return p.sum(1, keepdim=True)
    return torch.einsum("ncs,c->ns", p, wc).unsqueeze(1)


_LOG2E = 1.4426950408889634
_SHIFT_LIMIT = 2.0 ** 64


def exp_(u):
    """e^u in place, as 2^(u log2 e). torch's CPU exp (as fast as exp2 with AVX-512 where every
    result is a normal number) drops to a slow path for any vector holding an argument outside that
    range: 4-20x slower on 4x21x128x128 fp32 (1 thread) with one class in 21 at -inf (a label slot),
    -90, -200 or +100, arguments that confident logits produce; exp2 slows only where a result is
    subnormal (2^-149..2^-126, 5x there) and is about twice as fast as exp with AVX2 only.
    The extra rounding of u log2 e is another |u| ulp, the size of the one u carries already."""
    return u.mul_(_LOG2E).exp2_()


def _exp_sum(x, s, y, wc, smooth, others, u):
    """(d, su) per pixel (N, 1, S): u = x - s written into ``u`` (N, C, S), which becomes e^u in place,
    d = sum_c e^u_c and, with ``smooth``, su = sum_c w_c u_c; with ``others`` the label's slot is 0."""
    torch.sub(x, s, out=u)
    su = class_sum(u, wc) if smooth else None  # read before u becomes e^u
    if others:  # e^-inf = 0: the label's slot leaves the class sum
        put_label_(u, y, torch.full((), float("-inf"), dtype=u.dtype, device=u.device))
    return exp_(u).sum(1, keepdim=True), su


def shifted_exp(x, y, wc, acc, smooth=False, others=False, keep=False):
    """(e, d, u_y, su) for labels ``y`` (N, 1, S) in [0, C): e_c = e^(x_c - s), d = sum_c e_c,
    u_y = x_y - s (None for 0), with ``smooth`` su = sum_c w_c (x_c - s). e is an (N, C, S) ``acc``
    buffer of its own in the logits' layout (fp16/bf16 widened) with ``keep``, else None. With ``others`` the label's slot of e is 0: then
    d is the sum over c != y, d' (1 - p_y) with d' the full sum, without cancellation where p_y ~ 1.

    The shift s is x_y where every d < 2^64 (read on the CPU, where that is free): u_y = 0, e_y = 1
    and no max pass. Elsewhere (the other classes' sum ~44 nats above the label's; kept far from
    overflow so that 1 / d' times a small scale stays a normal number), and off the CPU,
    s = max_c x_c, so e_c <= 1."""
    xy = x.gather(1, y)
    xy = xy if xy.dtype == acc else xy.to(acc)
    e = torch.empty_like(x, dtype=acc)
    if x.device.type == "cpu":
        d, su = _exp_sum(x, xy, y, wc, smooth, others, e)
        if float(d.max()) < _SHIFT_LIMIT:  # a NaN compares False: the max shift then, as elsewhere
            return e if keep else None, d, None, su
    m = x.amax(1, keepdim=True)
    m = m if m.dtype == acc else m.to(acc)
    d, su = _exp_sum(x, m, y, wc, smooth, others, e)
    return e if keep else None, d, xy - m, su
