"""PyTorch path of the Dice family: the same functions and contract as ``kernels.py``.

The pass over the pixels is vectorised: no Python loop over images or classes
and no one-hot tensor. Multiclass sums read the label's channel with ``gather``
((N, 1, S)) and add it into (N, C) with ``scatter_add``; with the signed /
label-weight options, the identity ``sum_s f(t_cs) = sum_s f(0) + sum_{s: y_s = c}
(f(1) - f(0))`` does the same (an elementwise pass with t = 0, plus the label
channel's correction). The spatial axis is processed in chunks so temporaries
stay bounded (``_CHUNK`` elements of (N, C, chunk)), whatever the volume.

The finisher is the kernel's, written with torch ops on (rows, C) tensors in
float64: the loss and the hand-derived coefficient table dLoss/d(I, P, L). On
CPU the common finishers of a small table run on Python floats instead (the same
float64 math per entry; ~70 small torch ops cost a third of a millisecond).

On CPU the host may read small results for free (no device to sync with): the
common cases check once per call that every label is a class (no masks then)
and that the logits lie in the exponent range (the softmax then skips its max).
Each pass over the (N, C, s) tile counts: a softmax is exp, a sum over C and an
in-place division, and the plain backward never forms the probabilities.

On the eager route (``_core/tape.py``) a forward of one chunk keeps what its backward would
recompute (the sigmoid probabilities, the softmax's exponentials and their sum, the masked targets
and labels), and hands over a tensor it no longer needs as the buffer the backward writes: on the
CPU a fresh input-sized allocation costs about as much as a pass (its pages are faulted in), so the
backward's recompute and its temporaries go together. What the backward derives from the kept
tensors is bitwise what it would recompute: the custom-op route keeps nothing.
"""

from __future__ import annotations

import math

import torch

from triton_segloss._core import tape
from triton_segloss._core.dist import all_reduce_sum
from triton_segloss._core.validate import acc_dtype, label_range

from .ops import NCOEF, TINY, class_positions, class_vector, grad_layout, out_shape, pixel_reduction, pixel_scale

PIXEL_CODES = {"none": 0, "xent": 1, "focal": 2, "sfocal": 3}

_CHUNK = 1 << 22  # elements of an (N, C, chunk) temporary (16 MiB in float32; one chunk for most 2D batches)
_TINY = TINY


def _chunks(n: int, c: int, s: int):
    step = max(1, _CHUNK // max(1, n * c))
    return [(a, min(s, a + step)) for a in range(0, s, step)] or [(0, 0)]


def _pieces(x, t, w):
    """(a, b, x, t, w) over the spatial chunks [a, b); one chunk is the tensors themselves (no views)."""
    chunks = _chunks(*x.shape)
    if len(chunks) == 1:
        return [(0, x.shape[-1], x, t, w)]
    return [(a, b, x[..., a:b], t[..., a:b], None if w is None else w[..., a:b]) for a, b in chunks]


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
    def __init__(self, o):
        self.ignore_index = o.ignore_index
        self.squared = o.squared
        self.signed = o.signed
        self.lw = o.label_weight
        self.w_pow_i = o.w_pow_i
        self.w_pow_pt = o.w_pow_pt
        self.pixel = PIXEL_CODES[o.pixel]
        self.gamma = float(o.focal_gamma)
        alpha = o.focal_alpha
        on = alpha is not None and alpha >= 0
        self.a_pos, self.a_neg = (float(alpha), 1.0 - float(alpha)) if on else (1.0, 1.0)
        self.ls = float(o.label_smoothing)
        self.pos_weight = float(o.pos_weight_value)
        self.pb = None  # a per-channel pos_weight tensor, (1, C, 1)
        self.soft = bool(o.soft_label) and not o.squared and not o.multiclass  # I = sum w min(p, t)

    def bce_terms(self, t):
        """(1 + (pw - 1) s, pw s) of BCE with the smoothed target s and the positive weight pw."""
        sm = t * (1.0 - self.ls) + 0.5 * self.ls if self.ls else t
        pb = self.pos_weight if self.pb is None else self.pb
        return 1.0 + (pb - 1.0) * sm, pb * sm

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
        if self.soft and not isinstance(u, float):
            i = _mul(wi, torch.minimum(q, u))
        else:
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
        if self.soft and not isinstance(u, float):
            u = 0.5 * (1.0 - torch.sign(q - u))  # d min(q, u) / dq: 1 below t, 1/2 at p = t
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


def _sigmoid_focal(x, t, p, pn, f):
    """torchvision's alpha_t ce d^gamma, d = 1 - p_t."""
    d = t * pn + (1.0 - t) * p
    return _bce(x, t) * (f.a_neg + (f.a_pos - f.a_neg) * t) * d.clamp_min(_TINY) ** f.gamma


def _sigmoid_focal_grad(x, t, p, pn, f):
    d = (t * pn + (1.0 - t) * p).clamp_min(_TINY)
    mod = d ** f.gamma
    at = f.a_neg + (f.a_pos - f.a_neg) * t
    return at * ((p - t) * mod + _bce(x, t) * f.gamma * mod * (1.0 - 2.0 * t) * (p * pn / d))


def _onehot(x, ys, valid):
    """(t, p, 1 - p) of the per-channel sigmoid of integer labels: t = [y = c] (N, C, s)."""
    cls = torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
    t = ((cls == ys) & valid).to(x.dtype)
    return t, torch.sigmoid(x), torch.sigmoid(-x)


def _binary_fast(w, from_logits, f, hard) -> bool:
    """Plain soft Dice / Jaccard / Tversky of sigmoid probabilities (no weight map, no pixel term, no
    recipe-only options): the same sums in fewer passes."""
    return (w is None and from_logits and not hard and not f.signed and f.lw is None and f.pixel == 0
            and not f.soft)


def _binary_fwd_fast(x, t, f, keep=False):
    """``keep``: the eager route records (``_core/tape.py``). The backward then reads p and the masked
    target as they are here, and the product p t, a tensor of its own instead of p multiplied in place,
    is handed over as the buffer the backward's multiply-add writes: the step allocates two input-sized
    tensors (p, which becomes the gradient, and p t) instead of three, and skips a sigmoid."""
    s = x.shape[-1]
    x, t, valid, vf, p, _ = _binary_prep(x, t, None, True, f, False)  # vf: the valid mask as float, or None
    pv = p if vf is None else p * vf
    p_sum = (pv * p if f.squared else pv).sum(-1)
    t_sum = (t * t if f.squared else t).sum(-1)
    if keep:
        tape.keep("dice", p=p, t=t, valid=valid)
    if pv is p and keep:  # (the same product as in place: bit for bit)
        pv = torch.mul(p, t)
        tape.keep("dice", buf=pv)  # (only its memory is read back)
        i_sum = pv.sum(-1)
    else:  # pv is this function's own: the product in place (a batched matvec is slower)
        i_sum = pv.mul_(t).sum(-1)
    count = torch.full_like(i_sum, s) if vf is None else vf.sum(-1)
    return torch.stack([i_sum, p_sum, t_sum, torch.zeros_like(i_sum), count], -1)


def _same_rows(g):
    """(gI, gP) as numbers where every (n, c) row of the CPU table g has the same ones, else None."""
    if g.device.type != "cpu" or g.shape[0] * g.shape[1] > _SMALL:
        return None
    rows = g[:, :, :2].reshape(-1, 2).tolist()
    return rows[0] if all(r == rows[0] for r in rows) else None


def _binary_bwd_fast(x, t, g, f, kept=None):
    """dx = (gI t + gP (2 p if squared)) p (1 - p), zero on ignored elements: sigmoid, a multiply-add
    and sigmoid's own backward, written over p (this function's own: recomputed, or handed over by
    the tape). On the eager route (``kept``) p and the masked t are the forward's and the multiply-add
    goes to the forward's p t buffer when there is one: no sigmoid and no allocation. Where every row
    has the same (gI, gP) (the pooled binary loss) the multiply-add is one pass, gP + gI t with numbers."""
    if kept is None:
        x, t, valid, _, p, _ = _binary_prep(x, t, None, True, f, False)
        out = {}
    else:
        p, t, valid = kept["p"], kept["t"], kept["valid"]
        out = {"out": kept["buf"]} if "buf" in kept else {}
    g_i, g_p = g[:, :, 0:1], g[:, :, 1:2]
    one = None if f.squared else _same_rows(g)
    if one is not None:  # gP + gI t in one pass (the pooled binary case: every row has the same coefficients)
        a = torch.add(t.new_tensor(one[1]), t, alpha=one[0], **out)
    else:
        a = torch.mul(t, g_i, **out).add_(g_p * (2.0 * p) if f.squared else g_p)  # (addcmul broadcasting gP is slower)
    dx = torch.ops.aten.sigmoid_backward.grad_input(a, p, grad_input=p)  # (p's layout: the logits')
    return dx if valid is None else dx.masked_fill_(~valid, 0.0)


def _binary_fwd(x, t, w, from_logits, f, hard, threshold, keep=False):
    """The (N, C, 5) sums of one chunk. ``keep``: the eager route records (``_core/tape.py``); the
    general form keeps what ``_binary_prep`` gives, which nothing here writes in place."""
    if _binary_fast(w, from_logits, f, hard):
        return _binary_fwd_fast(x, t, f, keep)
    x, t, valid, wl, p, pn = _binary_prep(x, t, w, from_logits, f, f.pixel == 2)
    if keep and not hard:  # (a hard prediction has no backward pass to feed)
        tape.keep("dice", prep=(x, t, valid, wl, p, pn))
    if hard:
        p = (p > threshold).to(x.dtype)
    out = [a.expand_as(x).sum(-1) for a in f.sums3(p, t, wl)]
    if f.pixel == 0:
        out.append(torch.zeros_like(out[0]))
    elif f.pixel == 1:
        a, b = f.bce_terms(t)
        out.append(_mul(wl, a * _bce(x, 0.0) - b * x).sum(-1))
    else:
        out.append(_mul(wl, _sigmoid_focal(x, t, p, pn, f)).sum(-1))
    out.append(torch.full_like(out[0], x.shape[-1]) if valid is None else valid.sum(-1).to(x.dtype))
    return torch.stack(out, -1)


def _binary_bwd(x, t, w, g, from_logits, f, kept=None):
    """dx of one chunk; ``kept``: the forward's tensors on the eager route, else None (recompute)."""
    if _binary_fast(w, from_logits, f, False):
        return _binary_bwd_fast(x, t, g, f, kept)
    x, t, valid, wl, p, pn = _binary_prep(x, t, w, from_logits, f, f.pixel == 2) if kept is None else kept["prep"]
    dx = f.dsums(p, t, wl, g[:, :, 0:1], g[:, :, 1:2])
    if from_logits:  # dx * p (1 - p) in one pass, as torch's own sigmoid backward
        dx = torch.ops.aten.sigmoid_backward(dx.expand_as(x), p)
    if f.pixel == 1:
        a, b = f.bce_terms(t)
        dx = dx + g[:, :, 2:3] * _mul(wl, a * p - b)
    elif f.pixel == 2:
        dx = dx + g[:, :, 2:3] * _mul(wl, _sigmoid_focal_grad(x, t, p, pn, f))
    if valid is not None:
        dx = torch.where(valid, dx, 0.0)
    return dx.expand_as(x)


# ---- multiclass (softmax over C from integer labels) -----------------------------------

def _mc_labels(x, y, f):
    """(x in the accumulation dtype, labels with 0 where not valid (N, 1, s), valid, valid as float):
    ignored labels and labels outside [0, C) are not valid."""
    acc = acc_dtype(x.dtype)
    c = x.shape[1]
    y = y.long()
    valid = (y >= 0) & (y < c)
    if f.ignore_index is not None:
        valid &= y != int(f.ignore_index)
    return x.to(acc), torch.where(valid, y, 0), valid, valid.to(acc)


def _mc_prep(x, y, w, from_logits, f):
    """Probabilities, labels and weights of one chunk; the label's channel gathered, never one-hot."""
    acc = acc_dtype(x.dtype)
    x, ys, valid, vf = _mc_labels(x, y, f)
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


def _mc_fast(w, from_logits, f) -> bool:
    """The common multiclass case (softmax of logits, no weight map, no recipe-only options, the pixel
    term none or plain CE) takes fewer passes over the (N, C, s) tile: the same math, fewer temporaries."""
    return (w is None and from_logits and not f.signed and f.lw is None
            and (f.pixel == 0 or (f.pixel == 1 and not f.ls)))


def _fast_labels(x, y, f):
    """(x contiguous in the accumulation dtype, labels (N, 1, s), valid as float or None where every label
    is a class): one aminmax of the labels tells on CPU (no device sync there); elsewhere, or with an
    ignored label or one outside [0, C) present, the masked form of ``_mc_labels``. Contiguous logits
    make every later pass (and its summation order) the same whatever the caller's layout."""
    c = x.shape[1]
    x = x.to(acc_dtype(x.dtype), memory_format=torch.contiguous_format).contiguous()  # (to() keeps a same-dtype x)
    if y.device.type == "cpu" and y.numel():
        lo, hi = label_range(y)
        ig = f.ignore_index
        if lo >= 0 and hi < c and (ig is None or not lo <= ig <= hi):
            return x, y.long(), None
    _, ys, _, vf = _mc_labels(x, y, f)
    return x, ys, vf


# |x| (the largest plus log C) up to which exp(x), its sums over C and the backward's sum_c gP_c exp(x_c)
# stay normal and finite, even under a loss scale of 2^16 or more
_EXP_RANGE = {torch.float32: 64.0, torch.float64: 600.0}


def _exp_sum(x):
    """(e, z, m) over C of (N, C, s): e = exp(x - m), z = sum_c e (N, 1, s), so that softmax = e / z and
    logsumexp = m + log z. On CPU logits well inside the exponent range (one aminmax: |x| <= 64 in
    float32, see ``_EXP_RANGE``) take m = 0 (None): exp(x) is then as exact as exp(x - max) and the
    max and the subtraction, two passes over the tile, are saved. Elsewhere m = max_c x."""
    lim = _EXP_RANGE.get(x.dtype)
    if x.device.type == "cpu" and lim is not None and x.numel():
        lo, hi = (float(v) for v in torch.aminmax(x))  # NaN fails the test
        if lo >= -lim and hi + math.log(x.shape[1]) <= lim:
            e = torch.exp(x)
            return e, e.sum(1, keepdim=True), None
    m = x.amax(1, keepdim=True)
    e = torch.sub(x, m).exp_()
    return e, e.sum(1, keepdim=True), m


def _at_label(a, idx):
    """a (N, C, 1) at the label's class: (N, 1, s)."""
    n = idx.shape[0]
    return a.view(n, -1).gather(1, idx).view(n, 1, -1)


def _mc_fwd_fast(x, y, f, keep=False):
    """I, P, T, L, n of the fast case: P over every channel, I / T / L / n scattered to the label's class.
    ``keep``: the backward reads e and z (not p: its e / z is e * (1 / z)), so p is then a tensor of its
    own instead of e divided in place, handed to the backward as the buffer its gradient is written in."""
    n, c = x.shape[:2]
    x, ys, vf = _fast_labels(x, y, f)
    idx = ys.view(n, -1)
    zeros = torch.zeros((n, c), dtype=x.dtype, device=x.device)
    e, z, m = _exp_sum(x)
    p = torch.div(e, z) if keep else e.div_(z)
    if keep:  # (buf: only its memory is read back)
        tape.keep("dice", e=e, z=z, ys=ys, vf=vf, buf=p)
    pk = p * p if f.squared else p
    if vf is None:
        p_sum, w = pk.sum(-1), torch.ones_like(idx, dtype=x.dtype)
    else:  # ignored pixels, or labels outside [0, C) (value checks off): in no sum
        p_sum, w = torch.bmm(pk, vf.transpose(1, 2)).squeeze(-1), vf.view(n, -1)
    p_y = p.gather(1, ys).view(n, -1)
    count = zeros.scatter_add(1, idx, w)
    l_sum = zeros
    if f.pixel == 1:  # CE: lse - x_y, lse = m + log z
        lse = torch.log(z) if m is None else m + torch.log(z)
        l_y = (lse - x.gather(1, ys)).view(n, -1)
        l_sum = zeros.scatter_add(1, idx, l_y if vf is None else l_y * w)
    return torch.stack([zeros.scatter_add(1, idx, p_y if vf is None else p_y * w), p_sum, count, l_sum, count], -1)


def _mc_bwd_fast(x, y, g, f, kept=None):
    """dx of the fast case: with a_c = gP_c (2 p_c if squared) + gI_c [c = y] + the CE term gL_y,
    dx_c = p_c (a_c - sum_c' p_c' a_c') + [c = y] (gI_y p_y - gL_y). Unsquared, with p = e / z and
    r = sum_c' p_c' gP_c' + gI_y p_y - gL_y (a (1, C) x (C, s) product per image, then (N, 1, s) math),
    dx = e (gP / z - r / z): one broadcast pass and one in place, p never written. On the eager route
    e, z and the labels come from the forward (``kept``): the exponentials and their sum are not redone,
    and the forward's p, no longer needed, is the buffer the broadcast pass writes (no allocation)."""
    n = x.shape[0]
    if kept is None:
        x, ys, vf = _fast_labels(x, y, f)
        e, z, _ = _exp_sum(x)
        out = {}
    else:
        e, z, ys, vf = kept["e"], kept["z"], kept["ys"], kept["vf"]
        out = {"out": kept["buf"]}  # (N, C, s) as the results below: the same values in a kept tensor
    idx = ys.view(n, -1)
    g_i, g_p, g_l = (g[:, :, k:k + 1] for k in range(3))  # (N, C, 1)
    rz = z.reciprocal()
    extra = e.gather(1, ys) * rz * _at_label(g_i, idx)  # p_y gI_y: the label channel's I term
    if f.pixel == 1:  # CE: gL_y (p_j - [j = y])
        extra = extra - _at_label(g_l, idx)
    if f.squared:
        p = e.mul_(rz)
        u = torch.mul(2.0 * g_p, p, **out)
        dx = u.sub_((p * u).sum(1, keepdim=True) + extra).mul_(p)
    else:
        r = torch.bmm(g_p.transpose(1, 2), e).mul_(rz).add_(extra)
        dx = torch.addcmul(r.mul_(rz).neg_(), g_p, rz, **out).mul_(e)
    dx.scatter_add_(1, ys, extra)
    return dx if vf is None else dx.mul_(vf)


def _mc_fwd(x, y, w, from_logits, f, keep=False):
    """The (N, C, 5) sums of one chunk; ``keep`` as ``_binary_fwd`` (nothing here writes the prep in place)."""
    if _mc_fast(w, from_logits, f):
        return _mc_fwd_fast(x, y, f, keep)
    n, c = x.shape[:2]
    x, ys, valid, vf, wl, wl_y, p = _mc_prep(x, y, w, from_logits, f)
    if keep:
        tape.keep("dice", prep=(x, ys, valid, vf, wl, wl_y, p))
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
    if f.pixel == 3:  # per-channel sigmoid focal of t = [y = c], in class c
        t1, sp, sn = _onehot(x, ys, valid)
        l_sum = (wl * _sigmoid_focal(x, t1, sp, sn, f)).sum(-1)
    elif f.pixel:
        l, _, _ = _pixel_mc(x, ys, f)
        l_sum = zeros.scatter_add(1, idx, (wl_y * l).view(n, -1))
        if f.pixel == 1 and f.ls:  # label smoothing: (1 - eps) in the label's class, eps / C (lse - x_c) in every c
            lse = torch.logsumexp(x, 1, keepdim=True)
            l_sum = (1.0 - f.ls) * l_sum + (f.ls / c) * _class_sum(lse - x, wl_y)
    out.append(l_sum)
    out.append(zeros.scatter_add(1, idx, vf.view(n, -1)))
    return torch.stack(out, -1)


def _mc_bwd(x, y, w, g, from_logits, f, kept=None):
    """dx of one chunk; ``kept`` as ``_binary_bwd``."""
    if _mc_fast(w, from_logits, f):
        return _mc_bwd_fast(x, y, g, f, kept)
    x, ys, valid, vf, wl, wl_y, p = _mc_prep(x, y, w, from_logits, f) if kept is None else kept["prep"]
    g_i, g_p, g_l = (g[:, :, k:k + 1] for k in range(3))  # (N, C, 1)
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
    if f.pixel == 3:
        t1, sp, sn = _onehot(x, ys, valid)
        dx = dx + g_l * wl * _sigmoid_focal_grad(x, t1, sp, sn, f)
    elif f.pixel:
        coef = g_l.expand(-1, -1, ys.shape[2]).gather(1, ys) * wl_y
        if f.pixel == 2:
            _, v, logp = _pixel_mc(x, ys, f)
            r = torch.where(v < 1e-4, -1.0 - v * (0.5 + v / 3.0), logp / v.clamp_min(1e-4))
            coef = coef * v.clamp_min(_TINY) ** f.gamma * (1.0 - f.gamma * (1.0 - v) * r)
        if f.pixel == 1 and f.ls:
            coef = (1.0 - f.ls) * coef
            dx = dx + (f.ls / x.shape[1]) * wl_y * (g_l.sum(1, keepdim=True) * p - g_l)
        dx = dx + coef * p
        dx = dx.scatter_add(1, ys, -coef)
    return torch.where(valid, dx, 0.0)


# ---- the finisher (the kernel's math, on (rows, C) tensors) ------------------------------------

def _ratio_grad(num, den, total, eps):
    """score = num / max(den, eps) (1 where total == 0, 0 where the clamped den is 0) and its
    derivatives in num and den (0 in den where the clamp holds)."""
    empty = total == 0
    dc = den.clamp_min(eps)
    ok = (dc > 0) & ~empty
    safe = torch.where(ok, dc, 1.0)
    s = torch.where(empty, 1.0, torch.where(ok, num / safe, 0.0))
    ds_num = torch.where(ok, 1.0 / safe, 0.0)
    ds_den = torch.where(ok & (den >= eps), -s / safe, 0.0)
    bad = num + den + total  # a NaN sum (a NaN logit) must reach the loss, as in the kernel
    nan = torch.isnan(bad)
    return torch.where(nan, bad, s), torch.where(nan, bad, ds_num), torch.where(nan, bad, ds_den)


def _score(i_s, p_s, t_s, nv, o):
    """(score, d score / dI, d score / dP) as the kernel's ``_score``: the ratios or MCC."""
    if o.kind == "mcc":
        e = o.eps
        tp, fp, fn, tn = i_s + e, p_s - i_s + e, t_s - i_s + e, nv - p_s - t_s + i_s + e
        a, dd = tp + fp, tn + fn
        prod = a * (tp + fn) * (tn + fp) * dd
        ok = prod > 0
        den = torch.sqrt(torch.where(ok, prod, 1.0))
        sc = torch.where(ok, (tp * tn - fp * fn) / den, 0.0)
        ds_i = torch.where(ok, (tp + tn + fp + fn) / den, 0.0)
        ds_p = torch.where(ok, -(tp + fn) / den - 0.5 * sc * (1.0 / torch.where(ok, a, 1.0)
                                                               - 1.0 / torch.where(ok, dd, 1.0)), 0.0)
        bad = i_s + p_s + t_s
        nan = torch.isnan(bad)
        return torch.where(nan, bad, sc), torch.where(nan, bad, ds_i), torch.where(nan, bad, ds_p)
    if o.kind == "dice":
        num, den, a_i, b_i, b_p = 2.0 * i_s + o.smooth_num, p_s + t_s + o.smooth_den, 2.0, 0.0, 1.0
    elif o.kind == "jaccard":
        num, den, a_i, b_i, b_p = i_s + o.smooth_num, p_s + t_s - i_s + o.smooth_den, 1.0, -1.0, 1.0
    else:
        num = i_s + o.smooth_num
        den = i_s + o.alpha * (p_s - i_s) + o.beta * (t_s - i_s) + o.smooth_den
        a_i, b_i, b_p = 1.0, 1.0 - o.alpha - o.beta, o.alpha
    s, ds_num, ds_den = _ratio_grad(num, den, p_s + t_s, o.eps)
    return s, ds_num * a_i + ds_den * b_i, ds_den * b_p


def _loss_of(s, o):
    """(loss, d loss / d score), as the kernel's LOSS switch; NaN in, NaN out."""
    l, dl = _loss_of_finite(s, o)
    nan = torch.isnan(s)
    return torch.where(nan, s, l), torch.where(nan, s, dl)


def _loss_of_finite(s, o):
    if o.score:
        return s, torch.ones_like(s)
    if o.log_loss:
        cl = max(o.eps, _TINY)
        sc = s.clamp_min(cl)
        return -torch.log(sc), torch.where(s >= cl, -1.0 / sc, 0.0)
    if o.gamma == 1.0:
        return 1.0 - s, torch.full_like(s, -1.0)
    d = 1.0 - s
    pos = d > 0
    ds = torch.where(pos, d, 1.0)
    pw = ds ** o.gamma
    return torch.where(pos, pw, 0.0), torch.where(pos, -o.gamma * pw / ds, 0.0)


def _finish(sums, cw, pw, o):
    """(loss, coef) from the (N, C, 5) float64 sums: see ``kernels._dice_finish_kernel``."""
    n, c = sums.shape[:2]
    dev = sums.device
    f64 = torch.float64
    pos = class_positions(o, c, dev)
    sel = torch.ones(c, dtype=torch.bool, device=dev) if pos is None else pos >= 0
    cwv = sel.to(f64) if cw is None else torch.where(sel, cw.to(dev, f64), 0.0)
    cw_sum = cwv.sum()
    ps = pixel_scale(o, c)
    pwv = torch.full((c,), ps, dtype=f64, device=dev) if pw is None else pw.to(dev, f64) * ps
    pwc = pwv if o.pixel_weighs_count else torch.ones(c, dtype=f64, device=dev)
    rows = sums if o.per_image else sums.sum(0, keepdim=True)
    r = rows.shape[0]
    i_s, p_s, t_s, l_s, k_s = rows.unbind(-1)
    lam_r, lam_p = o.lambda_region, o.lambda_pixel
    combo_rows = o.reduction == "none" and o.pixel != "none" and not o.split
    if o.kind == "generalized":
        if o.weight_type == "uniform":
            finite, absent = sel.expand_as(t_s), torch.zeros_like(t_s, dtype=torch.bool)
        else:
            finite, absent = sel & (t_s != 0), sel & (t_s == 0)
        safe = torch.where(finite, t_s, 1.0)
        gw = {"square": 1.0 / (safe * safe), "simple": 1.0 / safe, "uniform": torch.ones_like(safe)}[o.weight_type]
        gw = torch.where(finite, gw, 0.0)
        gw = torch.where(absent, gw.amax(1, keepdim=True), gw) * cwv
        den0 = (gw * (p_s + t_s)).sum(1)
        s, ds_num, ds_den = _ratio_grad(2.0 * (gw * i_s).sum(1) + o.smooth_num, den0 + o.smooth_den, den0, o.eps)
        l, dl = _loss_of(s, o)
        mult = 1.0 / r if o.reduction == "mean" else 1.0
        reg_rows = mult * l
        region_none = l
        c_i = (lam_r * mult * dl * ds_num * 2.0)[:, None] * gw
        c_p = (lam_r * mult * dl * ds_den)[:, None] * gw
    else:
        nv = k_s.sum(1, keepdim=True).expand_as(k_s) if o.multiclass else k_s
        if o.micro:
            pooled = [(cwv * a).sum(1) for a in (i_s, p_s, t_s, nv)]
            s, ds_i, ds_p = _score(*pooled, o)
            l, dl = _loss_of(s, o)
            if o.zero_absent:
                absent = pooled[2] == 0
                l, dl = torch.where(absent, 0.0, l), torch.where(absent, 0.0, dl)
            mult = 1.0 / r if o.reduction == "mean" else 1.0
            reg_rows = mult * l
            region_none = l
            c_i = (lam_r * mult * dl * ds_i)[:, None] * cwv
            c_p = (lam_r * mult * dl * ds_p)[:, None] * cwv
        else:
            s, ds_i, ds_p = _score(i_s, p_s, t_s, nv, o)
            l, dl = _loss_of(s, o)
            if o.zero_absent:
                absent = t_s == 0
                l, dl = torch.where(absent, 0.0, l), torch.where(absent, 0.0, dl)
            l = torch.where(sel, l, 0.0)
            cdiv = cw_sum if o.normalize_class_weight else sel.to(f64).sum()
            if o.reduction == "mean":
                mult = cwv / (r * cdiv).clamp_min(_TINY)
            elif combo_rows:
                mult = cwv / cdiv.clamp_min(_TINY)
            else:
                mult = cwv
            reg_rows = (mult * l).sum(1)
            keep = list(range(c)) if o.classes is None else list(o.classes)
            region_none = (cwv * l)[:, keep]
            c_i = lam_r * mult * dl * ds_i
            c_p = lam_r * mult * dl * ds_p
    pix = None
    if o.pixel != "none":
        lw = pwv * l_s
        if pixel_reduction(o) == "none":
            den_row = (pwc * k_s).sum(1).clamp_min(_TINY)
            pix = lw.sum(1) / den_row
            c_l = (lam_p / den_row)[:, None] * pwv
        elif pixel_reduction(o) == "mean":
            den_p = (pwc * sums[..., 4]).sum().clamp_min(_TINY)
            pix = lw.sum() / den_p
            c_l = (lam_p / den_p) * pwv.expand_as(lw)
        else:
            pix = lw.sum()
            c_l = lam_p * pwv.expand_as(lw)
    else:
        c_l = torch.zeros_like(c_i)
    if o.split:
        region = reg_rows.sum().reshape(1) if o.reduction != "none" else region_none.reshape(-1)
        loss = torch.cat([pix.reshape(1), region])
    elif o.reduction == "none":
        loss = lam_p * pix + lam_r * reg_rows if o.pixel != "none" else region_none
    else:
        loss = lam_r * reg_rows.sum() + (lam_p * pix if pix is not None else 0.0)
    coef = torch.stack([c_i, c_p, c_l], -1).expand(n, c, NCOEF).contiguous()
    return loss.reshape(out_shape(o, n, c)), coef


# ---- the finisher of a small table on the CPU, on Python floats ------------------------------------

_SMALL = 128  # rows x classes up to which a CPU finisher runs on Python floats (~1 us per entry)


def _small_finish(o, sums) -> bool:
    """The common finishers (the ratio kinds averaged per class; no pixel term, or one reduced to a
    number) of a small CPU table run on Python floats: the same float64 math as ``_finish`` per
    (row, class), as the kernel writes it, without ~70 small torch ops (a third of a millisecond)."""
    r = sums.shape[0] if o.per_image else 1
    return (sums.device.type == "cpu" and r * sums.shape[1] <= _SMALL and o.kind in ("dice", "jaccard", "tversky")
            and not o.micro and not o.split and o.process_group is None
            and (o.pixel == "none" or (o.reduction != "none" and pixel_reduction(o) != "none")))


def _ratio_grad_f(num, den, total, eps):
    """``_ratio_grad`` of one entry."""
    bad = num + den + total
    if bad != bad:  # a NaN sum reaches the loss
        return bad, bad, bad
    if total == 0:
        return 1.0, 0.0, 0.0
    dc = den if den > eps else eps
    if not dc > 0:
        return 0.0, 0.0, 0.0
    s = num / dc
    return s, 1.0 / dc, (-s / dc if den >= eps else 0.0)


def _score_f(i_s, p_s, t_s, o):
    """``_score`` of one entry (the ratio kinds)."""
    if o.kind == "dice":
        num, den, a_i, b_i, b_p = 2.0 * i_s + o.smooth_num, p_s + t_s + o.smooth_den, 2.0, 0.0, 1.0
    elif o.kind == "jaccard":
        num, den, a_i, b_i, b_p = i_s + o.smooth_num, p_s + t_s - i_s + o.smooth_den, 1.0, -1.0, 1.0
    else:
        num = i_s + o.smooth_num
        den = i_s + o.alpha * (p_s - i_s) + o.beta * (t_s - i_s) + o.smooth_den
        a_i, b_i, b_p = 1.0, 1.0 - o.alpha - o.beta, o.alpha
    s, ds_num, ds_den = _ratio_grad_f(num, den, p_s + t_s, o.eps)
    return s, ds_num * a_i + ds_den * b_i, ds_den * b_p


def _loss_of_f(s, o):
    """``_loss_of`` of one entry."""
    if s != s:
        return s, s
    if o.score:
        return s, 1.0
    if o.log_loss:
        cl = max(o.eps, _TINY)
        sc = s if s > cl else cl
        return -math.log(sc), (-1.0 / sc if s >= cl else 0.0)
    if o.gamma == 1.0:
        return 1.0 - s, -1.0
    d = 1.0 - s
    if not d > 0:
        return 0.0, 0.0
    try:
        pw = d ** o.gamma
    except OverflowError:
        pw = math.inf
    return pw, -o.gamma * pw / d


def _finish_f(sums, cw, pw, o):
    """(loss, coef per row) of ``_small_finish``'s cases as Python floats: the loss a number, or the
    "none" table (rows, kept classes); coef (rows, C, 3)."""
    c = sums.shape[1]
    rows = (sums if o.per_image else sums.sum(0, keepdim=True)).tolist()
    r = len(rows)
    keep = list(range(c)) if o.classes is None else list(o.classes)
    sel = [True] * c
    if o.classes is not None:
        sel = [False] * c
        for k in keep:
            sel[k] = True
    cwl = [1.0] * c if cw is None else [float(v) for v in cw.tolist()]
    cwv = [cwl[k] if sel[k] else 0.0 for k in range(c)]
    cdiv = sum(cwv) if o.normalize_class_weight else float(len(keep))
    if o.reduction == "mean":
        mult = [v / max(r * cdiv, _TINY) for v in cwv]
    else:
        mult = cwv
    lam_r, lam_p = o.lambda_region, o.lambda_pixel
    reg, none_rows, coef = 0.0, [], []
    for row in rows:
        ls, crow = [], []
        for k, (i_s, p_s, t_s, _, _) in enumerate(row):
            s, ds_i, ds_p = _score_f(i_s, p_s, t_s, o)
            l, dl = _loss_of_f(s, o)
            if o.zero_absent and t_s == 0:
                l, dl = 0.0, 0.0
            ls.append(l if sel[k] else 0.0)
            crow.append([lam_r * mult[k] * dl * ds_i, lam_r * mult[k] * dl * ds_p, 0.0])
        reg += sum(m * l for m, l in zip(mult, ls))
        none_rows.append([cwv[k] * ls[k] for k in keep])
        coef.append(crow)
    if o.reduction == "none":
        return none_rows, coef
    loss = lam_r * reg
    if o.pixel != "none":
        ps = pixel_scale(o, c)
        pwv = [ps] * c if pw is None else [float(v) * ps for v in pw.tolist()]
        lw = sum(pwv[k] * row[k][3] for row in rows for k in range(c))
        if pixel_reduction(o) == "mean":
            pwc = pwv if o.pixel_weighs_count else [1.0] * c
            den_p = max(sum(pwc[k] * row[k][4] for row in rows for k in range(c)), _TINY)
            pix, scale = lw / den_p, lam_p / den_p
        else:
            pix, scale = lw, lam_p
        loss = loss + lam_p * pix
        for crow in coef:
            for k in range(c):
                crow[k][2] = scale * pwv[k]
    return loss, coef


# ---- the launcher functions of kernels.py ---------------------------------------------------------

def forward(x, t, w, cw, pw, pb, o):
    """Same contract as ``kernels.forward``."""
    f = _Flags(o)
    if pb is not None:
        f.pb = pb.to(acc_dtype(x.dtype)).view(1, -1, 1)
    n, c = x.shape[:2]
    acc = acc_dtype(x.dtype)
    sums = None
    pieces = _pieces(x, t, w)
    # the eager route keeps the per-pixel tensors of one chunk for the backward (``_core/tape.py``)
    keep = len(pieces) == 1 and tape.recording_now()
    for _, _, xs, ts, ws in pieces:  # partial sums per chunk, added in float64 in a fixed order
        if o.multiclass:
            part = _mc_fwd(xs, ts, ws, o.from_logits, f, keep)
        else:
            part = _binary_fwd(xs, ts, ws, o.from_logits, f, o.threshold is not None, o.threshold, keep)
        part = part.to(torch.float64)
        sums = part if sums is None else sums + part
    if o.process_group is not None:  # the batch pooled across ranks: every rank finishes the global sums
        sums = all_reduce_sum(sums.sum(0, keepdim=True), o.process_group)
    cwv = class_vector(cw, o.class_weight_list, x.device)
    pwv = class_vector(pw, o.pixel_class_weight_list, x.device)
    if _small_finish(o, sums):  # (the "none" table's rows are the loss layout's)
        loss, coef = _finish_f(sums, cwv, pwv, o)
        coef = torch.tensor(coef, dtype=acc, device=x.device)
        if not o.per_image:
            coef = coef.expand(n, c, NCOEF).contiguous()
        return torch.tensor(loss, dtype=acc, device=x.device), coef
    loss, coef = _finish(sums, cwv, pwv, o)
    return loss.to(acc), coef.to(acc)


def _upstream(g, coef, o, n, c, acc):
    """g (N, C, 3) = dLoss/d(I, P, L): the coefficients times the upstream gradient element each
    (n, c) feeds (``ops.grad_layout``)."""
    if g.dim() == 0 and o.classes is None and coef.shape[0] == n:  # one loss value that every (n, c) feeds
        return coef * g.to(acc)
    off_r, sr, sc, off_p, sp = grad_layout(g, o, n, c)
    extent = 1 + sum((k - 1) * st for k, st in zip(g.shape, g.stride()))
    flat = g.as_strided((extent,), (1,), g.storage_offset()).to(acc)
    dev = g.device
    pos = class_positions(o, c, dev)
    pos = torch.arange(c, device=dev) if pos is None else pos.long()
    img = torch.arange(n, device=dev)
    r = img if o.per_image else torch.zeros_like(img)
    idx = off_r + r[:, None] * sr + pos[None, :] * sc
    g_r = torch.where(pos >= 0, flat[idx.clamp_min(0)], 0.0)
    out = torch.zeros((n, c, NCOEF), dtype=acc, device=dev)
    out[..., 0] = coef[..., 0] * g_r
    out[..., 1] = coef[..., 1] * g_r
    if o.pixel != "none":
        out[..., 2] = coef[..., 2] * flat[off_p + img * sp][:, None]
    return out


def backward(g, coef, x, t, w, cw, pw, pb, o):
    """Same contract as ``kernels.backward``. On the eager route the forward's per-pixel tensors of a
    single chunk (``kept``) replace their recomputation, bit for bit."""
    kept = tape.taken("dice")
    if o.threshold is not None:  # a thresholded prediction is piecewise constant
        return torch.zeros_like(x)
    f = _Flags(o)
    if pb is not None:
        f.pb = pb.to(acc_dtype(x.dtype)).view(1, -1, 1)
    n, c = x.shape[:2]
    acc = acc_dtype(x.dtype)
    gs = _upstream(g, coef.to(acc), o, n, c, acc)
    fn = _mc_bwd if o.multiclass else _binary_bwd
    pieces = _pieces(x, t, w)
    d = None
    if len(pieces) == 1:  # one chunk: the gradient is returned as computed when it has the logits' layout
        d = fn(x, t, w, gs, o.from_logits, f, kept)
        if d.dtype == x.dtype and d.stride() == x.stride():
            return d
    dx = torch.empty_like(x)  # the logits' layout, as the kernels and the fake promise
    for a, b, xs, ts, ws in pieces:  # (one chunk: copied once, not computed again)
        dx[..., a:b] = d if d is not None else fn(xs, ts, ws, gs, o.from_logits, f)
    return dx
