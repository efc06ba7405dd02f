"""Shifted class exponentials on the CPU path: e_c = e^(x_c - s) per pixel with s the label's logit
where that cannot overflow (no max pass), the label's entries by flat offsets (``take`` / ``put_``).
Shared by the CE and focal families' PyTorch paths (``ce/torch_impl.py``, ``focal/torch_impl.py``)."""

from __future__ import annotations

import torch


def label_offsets(y, C):
    """The label entries' offsets in a row-major (N, C, S) tensor, (N, 1, S) int64: ``take`` and ``put_``
    with them read and write those entries (in any layout), faster on the CPU than ``gather`` and
    ``scatter_`` along the class dim."""
    N, _, S = y.shape
    base = torch.arange(0, N * C * S, C * S, device=y.device).view(N, 1, 1) + torch.arange(S, device=y.device)
    return base.add_(y, alpha=S)


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
    """e^u in place, as 2^(u log2 e): torch's exp2 is about twice as fast as its exp on the CPU,
    and the extra rounding of u log2 e is another |u| ulp, the size of the one u carries already."""
    return u.mul_(_LOG2E).exp2_()


def _exp_sum(x, s, at, wc, smooth, others, u):
    """(d, su) per pixel (N, 1, S): u = x - s written into ``u`` (N, C, S), which becomes e^u in place,
    d = sum_c e^u_c and, with ``smooth``, su = sum_c w_c u_c; with ``others`` the label's slot is 0."""
    torch.sub(x, s, out=u)
    su = class_sum(u, wc) if smooth else None  # read before u becomes e^u
    if others:  # e^-inf = 0: the label's slot leaves the class sum
        u.put_(at, torch.full((), float("-inf"), dtype=u.dtype, device=u.device).expand(at.shape))
    return exp_(u).sum(1, keepdim=True), su


def shifted_exp(x, y, wc, acc, smooth=False, others=False, keep=False):
    """(e, d, u_y, su, at) for labels ``y`` (N, 1, S): e_c = e^(x_c - s), d = sum_c e_c, u_y = x_y - s
    (None for 0), with ``smooth`` su = sum_c w_c (x_c - s), and the label offsets ``at``
    (``label_offsets``). e is an (N, C, S) ``acc`` buffer of its own in the logits' layout
    (fp16/bf16 widened) with ``keep``, else None. With ``others`` the label's slot of e is 0: then
    d is the sum over c != y, d' (1 - p_y) with d' the full sum, without cancellation where p_y ~ 1.

    The shift s is x_y where every d < 2^64 (read on the CPU, where that is free): u_y = 0, e_y = 1
    and no max pass. Elsewhere (the other classes' sum ~44 nats above the label's; kept far from
    overflow so that 1 / d' times a small scale stays a normal number), and off the CPU,
    s = max_c x_c, so e_c <= 1."""
    at = label_offsets(y, x.shape[1])
    xy = x.take(at)
    xy = xy if xy.dtype == acc else xy.to(acc)
    e = torch.empty_like(x, dtype=acc)
    if x.device.type == "cpu":
        d, su = _exp_sum(x, xy, at, wc, smooth, others, e)
        if float(d.max()) < _SHIFT_LIMIT:  # a NaN compares False: the max shift then, as elsewhere
            return e if keep else None, d, None, su, at
    m = x.amax(1, keepdim=True)
    m = m if m.dtype == acc else m.to(acc)
    d, su = _exp_sum(x, m, at, wc, smooth, others, e)
    return e if keep else None, d, xy - m, su, at
