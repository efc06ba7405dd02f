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


_SHIFT_LIMIT = 2.0 ** 64

# Arguments whose e^u is a normal number: [log of the smallest normal, log of the largest finite],
# rounded inward (e^-87 = 1.65e-38, e^88 = 1.65e38; e^-708 = 3.3e-308, e^709 = 8.2e307).
_EXP_LIMITS = {torch.float32: (-87.0, 88.0), torch.float64: (-708.0, 709.0)}


def exp_(u):
    """e^u in place, for u in the accumulation dtype (fp32 or fp64), its arguments first clamped to
    ``_EXP_LIMITS``. torch's CPU exp drops to a slow path for any vector holding an argument whose
    result is not a normal number: a label slot at -inf, or gaps below -87.3 (fp32) that confident
    logits produce, cost it 5-20x (4x21x128x128 with 2% of the arguments at -87.5: 2200 us against
    116). Clamped, every result is normal: in range it is torch's exp bit for bit, below it is e^lo,
    an absolute change under 1.7e-38 (fp32) / 3.4e-308 (fp64), far below the resolution of the class
    sums it enters (d' >= 1) and of any gradient. Above the range (only with the label's shift, where
    d >= 2^64 already sends the caller to the max shift, every argument <= 0) it stays huge.
    Timed side by side (4x21x128x128, 2 threads, AVX-512): clamp + exp 211 us, the earlier
    scale + exp2 274 us; fp64 458 against 681; under ATEN_CPU_CAPABILITY=avx2 211 against 397."""
    lim = _EXP_LIMITS.get(u.dtype)
    return (u if lim is None else u.clamp_(*lim)).exp_()


def _exp_sum(x, s, y, wc, smooth, others, u):
    """(d, su) per pixel (N, 1, S): u = x - s written into ``u`` (N, C, S), which becomes e^u in place,
    d = sum_c e^u_c and, with ``smooth``, su = sum_c w_c u_c; with ``others`` the label's slot is 0."""
    torch.sub(x, s, out=u)
    su = class_sum(u, wc) if smooth else None  # read before u becomes e^u
    exp_(u)
    if others:  # the label's slot leaves the class sum (set after the exp: its argument stays normal)
        put_label_(u, y, u.new_zeros(()))
    return u.sum(1, keepdim=True), su


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
