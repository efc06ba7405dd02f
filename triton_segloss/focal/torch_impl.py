"""PyTorch path of the focal family: the same functions, contract and math as ``kernels.py``.

The elementwise terms are the kernels' cancellation-free forms written with torch
ops (``q = 1 - p_t`` as a sum of the other probabilities, ``q ** gamma`` with its
limit at q = 0, the gradient with ``q ** (gamma - 1)`` multiplied out), in place where
a buffer is free and with the scalars folded into one multiply.

Sigmoid, from logits: binary targets (one-vs-rest labels, or a float mask that a one-pass
check finds in {0, 1} on the CPU) use z = (1 - 2t) x, q = sigmoid(z), ce = softplus(z),
p_t = sigmoid(-z); soft targets the general terms. Softmax, from logits: the cross-entropy
path's shifted exponentials (``_core.shifted_exp.shifted_exp``: e_k = e^(x_k - x_y) on the CPU, no
softmax tensor) with the label's slot 0, d_o their class sum: q = d_o / (1 + d_o) and
ce = log1p(d_o) without cancellation; in the backward e becomes the gradient. Probabilities
(``from_logits=False``) keep the elementwise forms.
"""

from __future__ import annotations

import torch

from triton_segloss._core import tape
from triton_segloss._core.cache import device_values
from triton_segloss._core.shifted_exp import at_label, put_label_, shifted_exp
from triton_segloss._core.validate import acc_dtype, label_range


def _pow(q, gamma):
    """q ** gamma with its limit at q == 0 (1 for gamma == 0, else 0), as the kernels take it."""
    zero_pow = 1.0 if gamma == 0 else 0.0
    return torch.where(q > 0, torch.exp(gamma * torch.log(torch.where(q > 0, q, 1.0))), zero_pow)


def _reduce(loss, valid, o):
    """(loss, coef) of an elementwise loss map (0 where not valid) for ``o.reduction``."""
    if o.reduction == "none":
        return loss.contiguous(), loss.new_empty((0,))  # the kernels' (and the fake's) contiguous map
    total = loss.sum()  # in the accumulation dtype, as the kernels' partials (fp64 for fp64 logits)
    if o.reduction == "sum":
        return total, loss.new_ones((1,))
    if loss.device.type == "cpu":  # the count as a number: free there, and two small ops fewer
        n = loss.numel() if valid is None else max(int(valid.sum()), 1)  # every pixel ignored: the loss is 0
        return total / n, torch.full((1,), 1.0 / n, dtype=loss.dtype)
    if valid is None:
        count = torch.full((), float(loss.numel()), dtype=loss.dtype, device=loss.device)
    else:
        count = valid.sum(dtype=loss.dtype).clamp_min(1)  # every pixel ignored: the loss is 0
    return total / count, (1.0 / count).reshape(1)


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
    t, valid = _sigmoid_target(x, t, o, acc)
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


def _sigmoid_target(x, t, o, acc):
    """(t as ``acc`` with 0 where not valid, valid mask (N, C, S) or None)."""
    C = x.shape[1]
    if o.labels:
        y = t.long()  # (N, 1, S) integer labels
        valid = (y >= 0) & (y < C)
        if o.ignore_index is not None:
            valid &= y != int(o.ignore_index)
        classes = torch.arange(C, device=x.device).view(1, C, 1)
        return ((y == classes) & valid).to(acc), valid.expand(x.shape)
    t = t.to(acc)
    if o.ignore_index is None:
        return t, None
    valid = t != o.ignore_index
    return torch.where(valid, t, 0.0), valid


def _affine(t, c0, c1):
    """c0 + c1 t in one pass (``c0``, ``c1``: numbers or 0-d tensors)."""
    def full(v):
        return v if isinstance(v, torch.Tensor) else torch.full((), v, dtype=t.dtype, device=t.device)

    if not isinstance(c1, torch.Tensor):
        return torch.add(full(c0), t, alpha=c1)  # a number as alpha: the fastest form on the CPU
    return torch.addcmul(full(c0), t, full(c1))


def _alpha_t(t, alpha_w, class_w, o, k=1.0):
    """k alpha_t class_weight[c] scale as an (N, C, S) map (or a number when uniform); one pass when
    alpha is a number: alpha t + (1 - alpha)(1 - t) = (1 - alpha) + (2 alpha - 1) t. ``k``: a number
    or a 0-d tensor folded in."""
    if alpha_w is None and class_w is None:
        if o.alpha is not None:
            return _affine(t, k * (o.scale * (1.0 - o.alpha)), k * (o.scale * (2.0 * o.alpha - 1.0)))
        return k * o.scale
    return k * _sigmoid_weight(t, alpha_w, class_w, o)


def _logit_terms(x, t):
    """From logits: (p, 1 - p, 1 - t, q = 1 - p_t, ce), each without cancellation, in ``x``'s dtype.

    p and 1 - p are two sigmoids; q = (1 - t) p + t (1 - p) from the two products; the BCE
    ce = max(x, 0) - x t - log(1 - sigmoid(-|x|)) keeps the tiny losses of confident pixels
    (sigmoid(-|x|) = min(p, 1 - p) = e^-|x| / (1 + e^-|x|) is exact, log1p takes its log)."""
    p = torch.sigmoid(x)
    pm = torch.neg(x).sigmoid_()
    tm = torch.rsub(t, 1.0)
    q = torch.mul(pm, t).addcmul_(p, tm)
    # max(x, 0) - x t first (exact for t in {0, 1}), then the small log term
    ce = x.clamp_min(0.0).addcmul_(x, t, value=-1.0).sub_(torch.minimum(p, pm).neg_().log1p_())
    return p, pm, tm, q, ce


def _sum_or_map(loss, valid, o):
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    return _reduce(loss, valid, o)


def _mul(a, w):
    """a * w, in place when ``w`` is a number or broadcasts to ``a``'s shape."""
    if not isinstance(w, torch.Tensor) or torch.broadcast_shapes(a.shape, w.shape) == a.shape:
        return a.mul_(w)
    return a * w


def _binary(t, o):
    """(every target is 0 or 1, a scratch buffer of ``t``'s shape or None): one-vs-rest labels always
    are; a float mask is checked on the CPU, where reading the answer costs no device sync (elsewhere
    the general path runs)."""
    if o.labels or not t.is_floating_point():
        return True, None
    if t.device.type != "cpu" or t.numel() == 0:
        return False, None
    # the targets were checked to lie in [0, 1]: t - t^2 > 0 exactly for the others (fp32 included)
    buf = torch.addcmul(t, t, t, value=-1.0)
    return not bool(buf.max() > 0), buf


def _binary_z(x, t, buf):
    """z = (1 - 2t) x, in ``buf`` when it fits."""
    if buf is None or buf.shape != x.shape:
        return torch.addcmul(x, x, t, value=-2.0)
    return torch.addcmul(x, x, t, value=-2.0, out=buf)


def _softplus_(z):
    """softplus(z) in place: log(1 + e^z), exact for z < 20 where it is small, z itself above (relative
    error < 1e-9)."""
    return torch._C._nn.softplus(z, 1, 20, out=z)


def _binary_forward(x, t, valid, alpha_w, class_w, o, buf):
    """For targets in {0, 1}, with z = (1 - 2t) x: q = 1 - p_t = sigmoid(z), ce = softplus(z)."""
    z = _binary_z(x, t, buf)
    q = torch.sigmoid(z)
    loss = _softplus_(z)
    g = o.gamma
    if g == 2.0:
        loss.mul_(q.mul_(q))
    elif g == 1.0:
        loss.mul_(q)
    elif g != 0.0:
        loss.mul_(q.pow_(g))  # 0 ** g is the limit 0 for g > 0
    loss = _mul(loss, _alpha_t(t, alpha_w, class_w, o))
    return _sum_or_map(loss, valid, o)


def _number(v):
    """A 0-d tensor as a Python number on the CPU (free there; elsewhere it stays a tensor, no sync)."""
    return float(v) if v.device.type == "cpu" else v


def _binary_backward(up, x, t, valid, alpha_w, class_w, o, buf):
    """dl/dx = (1 - 2t) w q^g [g p_t ce + q] (dq/dz = q p_t, dce/dz = q), p_t = sigmoid(-z): no
    division, no cancellation, finite at q = 0 for every g >= 0."""
    z = _binary_z(x, t, buf)
    q = torch.sigmoid(z)
    g = o.gamma
    if g == 0.0:
        dz = q
    else:
        ce = torch.nn.functional.softplus(z)
        dz = z.neg_().sigmoid_().mul_(ce).add_(q, alpha=1.0 / g)  # p_t ce + q / g (g folded in below)
        del ce
        up = up * g
        if g == 2.0:
            dz.mul_(q.mul_(q))
        elif g == 1.0:
            dz.mul_(q)
        else:
            dz.mul_(q.pow_(g))
    # (1 - 2t) alpha_t = (1 - alpha) - t for t in {0, 1}: one affine map with the scales folded in
    if alpha_w is None and class_w is None and up.dim() == 0:
        up = _number(up)
        if o.alpha is not None:
            w = _affine(t, up * (o.scale * (1.0 - o.alpha)), up * (-o.scale))
        else:
            w = _affine(t, up * o.scale, up * (-2.0 * o.scale))
        return dz.mul_(w)
    dz = _mul(_mul(dz, _affine(t, 1.0, -2.0)), _alpha_t(t, alpha_w, class_w, o))
    return _mul(dz, up)


def sigmoid_forward(x, t, alpha_w, class_w, o):
    """Same contract as ``kernels.sigmoid_forward``."""
    if not o.from_logits:
        return _sigmoid_forward_probs(x, t, alpha_w, class_w, o)
    acc = acc_dtype(x.dtype)
    x = x.to(acc)
    t, valid = _sigmoid_target(x, t, o, acc)
    binary, buf = _binary(t, o)
    if binary:
        return _binary_forward(x, t, valid, alpha_w, class_w, o, buf)
    p, pm, tm, q, loss = _logit_terms(x, t)
    del p, pm, tm
    g = o.gamma
    if g == 2.0:
        loss.mul_(q.mul_(q))
    elif g == 1.0:
        loss.mul_(q)
    elif g != 0.0:
        loss.mul_(q.pow_(g))  # 0 ** g is the limit 0 for g > 0; 0 ** 0 = 1
    loss = _mul(loss, _alpha_t(t, alpha_w, class_w, o))
    return _sum_or_map(loss, valid, o)


def sigmoid_backward(g, coef, x, t, alpha_w, class_w, o):
    """Same contract as ``kernels.sigmoid_backward``:
    dl/dx = w q^g [g (1 - 2t) r ce + (1 - t) p - t (1 - p)], r = p (1 - p) / q, with
    q^g r = q^(g-1) p (1 - p) multiplied out for g >= 1 (no division)."""
    if not o.from_logits:
        return _sigmoid_backward_probs(g, coef, x, t, alpha_w, class_w, o)
    acc = acc_dtype(x.dtype)
    xa = x.to(acc)
    t, valid = _sigmoid_target(xa, t, o, acc)
    up = g.to(acc)
    if coef.numel():
        up = coef[0] * up  # the finisher's scale times the upstream gradient
    binary, buf = _binary(t, o)
    if binary:
        return _finish_dx(_binary_backward(up, xa, t, valid, alpha_w, class_w, o, buf), valid, x)
    p, pm, tm, q, ce = _logit_terms(xa, t)
    gamma = o.gamma
    d = torch.mul(tm, p).addcmul_(t, pm, value=-1.0)  # (1 - t) p - t (1 - p), exact at both ends
    tm.sub_(t)  # 1 - 2t
    k = 1.0
    if gamma == 0.0:
        dx = d
    elif gamma >= 1.0:
        # g q^(g-1) [(1 - 2t) p (1 - p) ce + q d / g]
        dx = p.mul_(pm).mul_(tm).mul_(ce).addcmul_(q, d, value=1.0 / gamma)
        if gamma == 2.0:
            dx.mul_(q)
        elif gamma != 1.0:
            dx.mul_(q.pow_(gamma - 1.0))
        k = gamma
    else:
        # q^g [g (1 - 2t) r ce + d], r = p (1 - p) / q (0 where q == 0, as the kernels take it)
        qpos = q > 0
        r = p.mul_(pm).div_(torch.where(qpos, q, 1.0)).masked_fill_(~qpos, 0.0)
        dx = r.mul_(tm).mul_(ce).mul_(gamma).add_(d).mul_(q.pow_(gamma))
    del p, pm, tm, q, ce
    # the finisher's scale and the upstream gradient folded into the weight
    if up.dim() == 0:
        dx = _mul(dx, _alpha_t(t, alpha_w, class_w, o, k * _number(up)))
    else:
        dx = _mul(_mul(dx, _alpha_t(t, alpha_w, class_w, o, k)), up)
    return _finish_dx(dx, valid, x)


def _finish_dx(dx, valid, x):
    """Zero where not valid; in ``x``'s dtype and layout."""
    if valid is not None:
        dx = dx.masked_fill_(~valid, 0.0) if valid.shape == dx.shape else torch.where(valid, dx, 0.0)
    if dx.dtype == x.dtype and dx.stride() == x.stride():
        return dx
    return _like(dx, x)


def _sigmoid_forward_probs(x, t, alpha_w, class_w, o):
    """Same contract as ``kernels.sigmoid_forward``."""
    t, valid, _p, _pm, ce, q, _lp_ok, _lq_ok = _sigmoid_terms(x, t, o)
    loss = _pow(q, o.gamma) * ce * _sigmoid_weight(t, alpha_w, class_w, o)
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    return _reduce(loss, valid, o)


def _sigmoid_backward_probs(g, coef, x, t, alpha_w, class_w, o):
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

def _softmax_prob_stats(x, y, alpha_w, class_w, o):
    """From probabilities (``from_logits=False``): (x, valid, labels, p_y, log p_y > -100,
    ce = -max(log p_y, -100), q = 1 - p_y, a), the per-pixel ones (N, S)."""
    acc = acc_dtype(x.dtype)
    x = x.to(acc)
    C = x.shape[1]
    y = y.long()
    valid = (y >= 0) & (y < C)
    if o.ignore_index is not None:
        valid &= y != o.ignore_index
    yc = torch.where(valid, y, 0)
    a = _softmax_weight(yc, alpha_w, class_w, o, acc)
    p = x.gather(1, yc.unsqueeze(1)).squeeze(1)
    lp = torch.log(p)
    return x, valid, yc, p, lp > -100.0, -lp.clamp_min(-100.0), 1.0 - p, a


def _softmax_labels(x, y, o):
    """(labels (N, 1, S) for gathers, in [0, C); valid (N, S) or None when every pixel is valid: on the
    CPU one aminmax, whose reading costs no device sync there, tells)."""
    C = x.shape[1]
    y = y.long()
    ii = o.ignore_index
    if y.device.type == "cpu" and y.numel():
        lo, hi = label_range(y)
        if 0 <= lo and hi < C and (ii is None or not lo <= ii <= hi):
            return y.unsqueeze(1), None
    yc = y.clamp(0, C - 1)
    valid = yc == y
    if ii is not None:
        valid &= y != ii
    return yc.unsqueeze(1), valid


def _softmax_terms(x, y, alpha_w, class_w, o, keep=False):
    """From logits: (e, r, q, p_y, ce, a, labels in [0, C), valid), the per-pixel ones (N, 1, S), valid (N, S).

    e_k = e^(x_k - s) in a buffer of its own (N, C, S) with the label's slot 0 and d' = d_o + e_y
    the full class sum (``_core.shifted_exp.shifted_exp``: s = x_y on the CPU where that overflows
    nothing, so e_y = 1, else s = max x), r = 1 / d', so p_k = e_k r. q = 1 - p_y = d_o r is the
    sum of the other classes' probabilities (no cancellation where p_y ~ 1); ce = -log p_y =
    log1p(d_o / e_y), or lse - x_y = log d' - (x_y - s) where p_y underflows."""
    acc = acc_dtype(x.dtype)
    yc, valid = _softmax_labels(x, y, o)
    e, do, uy, _ = shifted_exp(x, yc, None, acc, others=True, keep=keep)
    if uy is None:  # e_y = 1
        r = (do + 1.0).reciprocal_()
        py, ce = r, torch.log1p(do)
    else:
        ey = torch.exp(uy)
        d = do + ey
        r = d.reciprocal()
        py = ey * r
        ce = torch.where(py < 1e-30, d.log_().sub_(uy), torch.div(do, ey).log1p_())
    a = _softmax_weight(yc, alpha_w, class_w, o, acc)
    return e, r, do * r, py, ce, a, yc, valid


def _zero(x):
    """A cached (1,) zero in x's accumulation dtype: the addend of an ``addcmul`` that is a scaled product."""
    return device_values((0.0,), x.device, acc_dtype(x.dtype))


def _softmax_weight(yc, alpha_w, class_w, o, acc):
    """a_y w_y scale per pixel (yc's shape), or a number when both are uniform."""
    a = at_label(alpha_w.to(acc), yc) if alpha_w is not None else o.alpha
    if class_w is not None:
        a = a * at_label(class_w.to(acc), yc)
    return a * o.scale


def _upstream(g, coef, acc):
    """The upstream gradient times the finisher's scale: a number for a 0-d one on the CPU (free
    there), else a tensor."""
    if g.dim() == 0 and g.device.type == "cpu":
        return float(g) * (float(coef[0]) if coef.numel() else 1.0)
    up = g.to(acc)
    return coef[0] * up if coef.numel() else up


def softmax_forward(x, y, alpha_w, class_w, o):
    """Same contract as ``kernels.softmax_forward``: (loss, coef, stats), ``stats`` zeros (not read here)."""
    loss, coef = _softmax_forward(x, y, alpha_w, class_w, o)
    from .ops import softmax_stats_shape  # ops imports this module

    N, C, S = x.shape
    return loss, coef, tape.unread_zeros(x, softmax_stats_shape(N, C, S, o), coef.dtype)


def _softmax_forward(x, y, alpha_w, class_w, o):
    if o.from_logits:
        keep = tape.recording_now()  # the eager route keeps the terms for the backward (_core/tape.py)
        terms = _softmax_terms(x, y, alpha_w, class_w, o, keep=keep)
        if keep:
            tape.keep("focal", terms=terms)
        _, _, q, _, ce, a, _, valid = terms
        g = o.gamma
        if g == 2.0 and not isinstance(a, torch.Tensor):  # a q^2 ce: the number a folded into one addcmul
            loss = torch.addcmul(_zero(x), q, q, value=a).mul_(ce)  # q and ce (maybe kept) stay
        else:
            if keep:  # the kept q and ce stay as they are: per-pixel maps, a C-th of the logits' size
                loss = ce.clone() if g == 0.0 else ce * (q * q if g == 2.0 else q if g == 1.0 else q.pow(g))
            else:
                loss = ce if g == 0.0 else ce.mul_(q.mul_(q) if g == 2.0 else q if g == 1.0 else q.pow_(g))
            loss = loss.mul_(a) if isinstance(a, torch.Tensor) or a != 1.0 else loss
        if o.reduction == "none" or valid is not None:
            loss = loss[:, 0]  # (N, S); a sum reads the (N, 1, S) map as it is
        if valid is not None:
            loss = torch.where(valid, loss, 0.0)
        return _reduce(loss, valid, o)
    _, valid, _, _, _, ce, q, a = _softmax_prob_stats(x, y, alpha_w, class_w, o)
    loss = torch.where(valid, _pow(q, o.gamma) * ce * a, 0.0)
    return _reduce(loss, valid, o)


def softmax_backward(g, coef, stats, x, y, alpha_w, class_w, o):
    """Same contract as ``kernels.softmax_backward``."""
    if not o.from_logits:
        return _softmax_backward_probs(g, coef, x, y, alpha_w, class_w, o)
    # dl/dx_k = f (p_k - [k == y]), f = a q^g (1 + g p_y ce / q) = a (q^g + g p_y ce q^(g-1)),
    # the label slot -q f; q^(g-1) multiplied out for g >= 1 (no division)
    kept = tape.taken("focal")
    terms = kept["terms"] if kept is not None else _softmax_terms(x, y, alpha_w, class_w, o, keep=True)
    e, r, q, py, ce, a, yc, valid = terms
    gamma = o.gamma
    if gamma == 0.0:
        f = torch.ones_like(q)
    elif gamma >= 1.0:
        qg1 = None if gamma == 1.0 else q if gamma == 2.0 else q.pow(gamma - 1.0)
        f = torch.addcmul(q, py, ce, value=gamma)
        f = f if qg1 is None else f.mul_(qg1)
    else:
        qpos = q > 0
        ratio = torch.where(qpos, ce / torch.where(qpos, q, 1.0), 1.0)
        f = torch.addcmul(torch.ones_like(q), py, ratio, value=gamma).mul_(q.pow(gamma))
    up = _upstream(g, coef, f.dtype)
    if isinstance(up, torch.Tensor) and up.dim():
        up = up.unsqueeze(1)  # "none": (N, S) -> (N, 1, S)
    k = a * up  # a number where alpha and the upstream gradient are uniform (then folded into addcmul)
    if isinstance(k, torch.Tensor):
        f = f.mul_(k)
        e.mul_(r.mul_(f))  # f p_k = f e_k / d' (r, maybe p_y too, is not read again)
        at_y = f.mul_(q).neg_()
    else:
        z = _zero(x)
        at_y = torch.addcmul(z, q, f, value=-k)  # -k f q
        e.mul_(torch.addcmul(z, r, f, value=k, out=r))  # k f p_k = k f e_k / d' (r, maybe p_y, not read again)
    put_label_(e, yc, at_y)  # the label's slot
    if valid is not None:
        e.masked_fill_(~valid.unsqueeze(1), 0.0)  # 0, not 0 * p, where not valid (a NaN logit there stays out)
    if e.dtype == x.dtype and e.stride() == x.stride():
        return e
    return _like(e, x)


def _softmax_backward_probs(g, coef, x, y, alpha_w, class_w, o):
    """From probabilities: only p_y gets a gradient, -a q^g (1 / p_y + g ce / q) (1 / p_y taken as 0
    where log p_y is clamped)."""
    xa, valid, yc, p, lp_ok, ce, q, a = _softmax_prob_stats(x, y, alpha_w, class_w, o)
    qpos = q > 0
    ratio = torch.where(qpos, ce / torch.where(qpos, q, 1.0), 1.0)
    f = -_pow(q, o.gamma) * (torch.where(lp_ok, 1.0 / torch.where(lp_ok, p, 1.0), 0.0) + o.gamma * ratio) * a
    f = torch.where(valid, _scale(f, g, coef), 0.0)
    d = torch.zeros_like(xa).scatter_(1, yc.unsqueeze(1), f.unsqueeze(1))
    return _like(d, x)
