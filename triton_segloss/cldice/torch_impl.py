"""PyTorch path of the clDice family: the same functions and contract as ``kernels.py``.

Soft skeleton (Shit et al. 2021, Algorithm 1, as MONAI's ``soft_skel``) from max pools:
erosion = min of the (3, 1) and (1, 3) min pools (three axes in 3D), dilation = 3x3(x3)
max pool, open = dilate(erode). The backward is written by hand: a taped forward of the
prediction's skeleton (``_skel_taped``) keeps the pools' indices and the reverse pass routes
each gradient to the pool's arg-max (torch's own ``max_pool*_with_indices_backward``, first
index on ties); the erosion's axis minima combine as MONAI's ``torch.min(torch.min(p1, p2), p3)``,
whose gradient splits a tie in halves (``torch.minimum``): the tie rule of ``kernels.py``'s docstring.

The tape holds only what the reverse pass reads, per level (the erosion and the open of one
iteration): the erosion's axis-pool indices and tie shares, the dilation's indices, and the two
relus of the level folded into two factors (the gradient into the level's delta, and what passes
on to the previous skeleton); no pool's values. On the custom-op route (the op's contract: nothing
full-size is saved) the backward builds it from the logits; on the eager route the forward builds
it in place of the values-only skeleton and keeps it, with the probabilities, the one-hot and the
target's skeleton (``_core/tape.py``), and the backward is the reverse pass alone. One function
builds the tape on both routes, so the gradient is bitwise the same; the taped skeleton's values
are the values-only ones (min and max are exact whatever the pools' form). Kept per pixel of a
used channel, iterations K, fp32 (int64 indices): 2D 29 + 36 K B (137 at K = 3), 3D 57 + 64 K B
(249), fp64 2D 33 + 48 K (177); plus the probabilities and the target's skeleton (8 B per
element) and a multiclass one-hot (4 B). MONAI's autograd graph keeps each pool's input and
indices, and each min's and relu's inputs, for 1 + 2K erosions and K + 1 dilations: more.

On the CPU the cost is mostly memory, not arithmetic: temporaries go to reused buffers
(``_Scratch``, ``out=`` forms of the pools and of their backward), the erosions' backward
scatter-adds straight into the gradient, and a 0/1 target (every one-hot; a mask whose values
are all 0 or 1) is skeletonised in bool, bitwise the same values at a quarter of the bytes.
"""

from __future__ import annotations

import torch

from triton_segloss._core import tape
from triton_segloss._core.validate import acc_dtype

from .ops import first_channel


class _Scratch:
    """Full-size buffers of one pass, by name, made on first use and then rewritten (``out=``).

    On the CPU a fresh full-size tensor can cost its first-touch page faults (glibc hands large
    freed blocks back to the OS), more than the op that fills it (on the 2-core bench machine an
    elementwise op into a new 2 MB tensor took up to ~100x the time of the same op into a reused
    one). So the skeletons' temporaries live in a few of these and only what a level keeps is new."""

    def __init__(self, like):
        self.like, self.bufs = like, {}

    def __call__(self, name, dtype=None):
        b = self.bufs.get(name)
        if b is None:
            b = self.bufs[name] = torch.empty_like(self.like, dtype=dtype, memory_format=torch.contiguous_format)
        return b


def _pool(x, k, pad, out, idx):
    """Max pool of ``x`` into ``out`` with its arg-max into ``idx`` (torch's CPU pool makes the indices
    even when not asked for: here they go to a buffer)."""
    if x.dim() == 4:
        torch.ops.aten.max_pool2d_with_indices.out(x, list(k), [1, 1], list(pad), [1, 1], False, out=out, indices=idx)
    else:
        torch.ops.aten.max_pool3d_with_indices.out(x, list(k), [1] * 3, list(pad), [1] * 3, False, out=out,
                                                    indices=idx)
    return out


def _pool_back(g, like, k, pad, idx, out):
    """Scatter ``g`` to the pool's arg-max ``idx`` into ``out`` (zeroed first); ``like`` gives the
    input's shape (its values are not read)."""
    if like.dim() == 4:
        return torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
            g, like, list(k), [1, 1], list(pad), [1, 1], False, idx, grad_input=out)
    return torch.ops.aten.max_pool3d_with_indices_backward.grad_input(
        g, like, list(k), [1] * 3, list(pad), [1] * 3, False, idx, grad_input=out)


def _axes(nd):
    """(kernel, padding) of the erosion's axis pools for ``nd`` spatial dims."""
    out = []
    for a in range(nd):
        k = [1] * nd
        p = [0] * nd
        k[a], p[a] = 3, 1
        out.append((tuple(k), tuple(p)))
    return out


def _dilate_passes(nd):
    # 3D: separable W, H, D passes, each keeping its first maximum: the composite choice is the raster-first
    # one of the cube pool (kernels.py's tie rule), at 3 (not 27) reads per pass (on a 2-core CPU 8% faster
    # per clDice step in 3D; in 2D the one 3 x 3 pool is faster)
    return list(reversed(_axes(nd))) if nd == 3 else [((3, 3), (1, 1))]


def _erode(x, out, ws):
    """Values only, into ``out``: the min of the axis minima (max pools of -x) is the cross min."""
    neg = torch.neg(x, out=ws("neg"))
    for j, (k, p) in enumerate(_axes(x.dim() - 2)):
        if j == 0:
            _pool(neg, k, p, out, ws("idx", torch.int64))
        else:
            torch.maximum(out, _pool(neg, k, p, ws("v"), ws("idx", torch.int64)), out=out)
    return out.neg_()


def _dilate(x, out, ws):
    """Values only, into ``out``: the square max as separable axis maxima (exact)."""
    axes = _axes(x.dim() - 2)
    v = x
    for j, (k, p) in enumerate(axes):
        v = _pool(v, k, p, out if j == len(axes) - 1 else ws(f"d{j % 2}"), ws("idx", torch.int64))
    return v


def _soft_skel(img, iterations):
    """MONAI's ``soft_skel`` on (N, C, *spatial), values only (a new tensor; ``img`` is not written)."""
    img = img.contiguous()
    ws = _Scratch(img)
    e = (ws("e0"), ws("e1"))  # the erosions, img of the next level: two buffers in turn
    e1 = _erode(img, e[0], ws)
    skel = torch.sub(img, _dilate(e1, ws("dil"), ws)).relu_()
    for j in range(iterations):
        img = e1
        e1 = _erode(img, e[(j + 1) % 2], ws)
        delta = torch.sub(img, _dilate(e1, ws("dil"), ws), out=ws("dil")).relu_()
        up = torch.mul(skel, delta, out=ws("up"))
        skel.add_(torch.sub(delta, up, out=up).relu_())
    return skel


def _sl(nd, d, a, b):
    s = [slice(None)] * (nd + 2)
    s[2 + d] = slice(a, b)
    return tuple(s)


def _soft_skel_binary(tb, iterations, dtype):
    """``_soft_skel`` of a 0/1 map given as bool: on {0, 1} the cross min, the box max, relu(a - b)
    and s + relu(d - s d) are and, or, a and not b, s or d, so this is bitwise the float skeleton
    (as ``dtype``), at a quarter of the bytes. Outside the image a min pool sees -inf padding of
    -x (neutral: True for the and) and a max pool -inf (False for the or)."""
    nd = tb.dim() - 2
    x0 = tb.contiguous()
    ws = _Scratch(x0)

    def erode(x, out):
        out.copy_(x)
        for d in range(nd):
            out[_sl(nd, d, 1, None)].bitwise_and_(x[_sl(nd, d, None, -1)])
            out[_sl(nd, d, None, -1)].bitwise_and_(x[_sl(nd, d, 1, None)])
        return out

    def dilate_not(x):  # not dilate(x), into the buffer "dil"
        src = x
        for d in range(nd):
            dst = ws("dil") if d == nd - 1 else ws(f"d{d % 2}")
            dst.copy_(src)
            dst[_sl(nd, d, 1, None)].bitwise_or_(src[_sl(nd, d, None, -1)])
            dst[_sl(nd, d, None, -1)].bitwise_or_(src[_sl(nd, d, 1, None)])
            src = dst
        return src.bitwise_not_()

    e = (ws("e0"), ws("e1"))
    img = x0
    e1 = erode(img, e[0])
    skel = torch.bitwise_and(img, dilate_not(e1), out=ws("skel"))
    for j in range(iterations):
        img = e1
        e1 = erode(img, e[(j + 1) % 2])
        skel.bitwise_or_(dilate_not(e1).bitwise_and_(img))
    return skel.to(dtype)


def _target_skel(tu, tb, iterations):
    """The target's skeleton: in bool when the target is 0/1 (``tb``: its bool form, given for a
    one-hot; for a mask on the CPU, where reading the check back is free, when every value is 0 or
    1), else the float skeleton of its values (soft targets)."""
    if tb is None and tu.device.type == "cpu" and tu.numel():
        nz = tu != 0
        if bool((nz == tu).all()):
            tb = nz
    if tb is None:
        return _soft_skel(tu, iterations)
    return _soft_skel_binary(tb, iterations, tu.dtype)


def _erode_taped(x, out, ws):
    """``_erode(x)`` into ``out`` (the same values: the same maxima of the negated axis pools) and its
    tape: the axis pools' indices and torch.minimum's tie shares, {0, 1/2, 1}. A pool of -x holds
    v = -min, so axis a's share against b is heaviside(v_a - v_b, 1/2): 1 where its min is the smaller."""
    neg = torch.neg(x, out=ws("neg"))
    vs, idx = [], []
    for j, (k, p) in enumerate(_axes(x.dim() - 2)):
        i = torch.empty_like(x, dtype=torch.int64)
        vs.append(_pool(neg, k, p, ws(f"v{j}"), i))
        idx.append(i)
    half = x.new_tensor(0.5)
    w0 = torch.heaviside(torch.sub(vs[0], vs[1], out=neg), half)
    best = torch.maximum(vs[0], vs[1], out=out)
    if len(vs) == 2:
        return best.neg_(), (idx, (w0,))
    w01 = torch.heaviside(torch.sub(best, vs[2], out=neg), half)  # the (D, H) min's share against W's
    best = torch.maximum(best, vs[2], out=best)
    return best.neg_(), (idx, (w0.mul_(w01), w01))


def _dilate_taped(x, out, ws):
    """``_dilate(x)`` into ``out`` (the same values) and the indices of its passes."""
    passes = _dilate_passes(x.dim() - 2)
    idx, v = [], x
    for j, (k, p) in enumerate(passes):
        i = torch.empty_like(x, dtype=torch.int64)
        v = _pool(v, k, p, out if j == len(passes) - 1 else ws(f"d{j % 2}"), i)
        idx.append(i)
    return v, idx


def _skel_taped(img, iterations):
    """``_soft_skel(img)`` (bitwise: the same values by the same elementwise ops) and the tape its
    reverse pass reads, one (erosion, dilation, into-delta, pass-on) entry per level.

    Level 0: skel = relu(img - dil), into-delta the mask skel > 0. Level j: delta = relu(img - dil),
    skel' = skel + relu(u), u = delta - skel delta. With on = [u > 0] (then delta > 0 too: u = 0 where
    delta = 0, so on is the whole gate of delta's relu as well), d skel'/d delta = on (1 - skel), and
    d skel'/d skel = 1 - on delta: the two factors, one multiply each in the reverse pass."""
    img = img.contiguous()
    ws = _Scratch(img)
    e = (ws("e0"), ws("e1"))
    e1, er = _erode_taped(img, e[0], ws)
    dil, di = _dilate_taped(e1, ws("dil"), ws)
    skel = torch.sub(img, dil).relu_()
    levels = [(er, di, skel > 0, None)]
    for j in range(iterations):
        img = e1
        e1, er = _erode_taped(img, e[(j + 1) % 2], ws)
        dil, di = _dilate_taped(e1, ws("dil"), ws)
        delta = torch.sub(img, dil, out=dil).relu_()
        up = torch.mul(skel, delta, out=ws("up"))
        torch.sub(delta, up, out=up).relu_()
        on = torch.sign(up)
        keep = torch.mul(on, delta).neg_().add_(1.0)
        into = on.mul_(torch.neg(skel, out=ws("neg")).add_(1.0))
        skel.add_(up)
        levels.append((er, di, into, keep))
    return skel, levels


def _erode_shares(g, w):
    """``g`` split over the erosion's axis pools (MONAI's min(min(p1, p2), p3) in 3D); ``g`` and the
    shares are overwritten. Exact: the shares are 0, 1/4, 1/2 or 1 of g."""
    if len(w) == 1:
        g0 = w[0].mul_(g)
        return g0, g.sub_(g0)
    w0, w01 = w
    g0 = w0.mul_(g)
    g01 = w01.mul_(g)
    g2 = g.sub_(g01)
    return g0, g01.sub_(g0), g2


def _skel_reverse(g, levels, like):
    """d<g, soft_skel(img0)>/d img0 from ``_skel_taped``'s tape; ``g`` (contiguous) and the tape are
    overwritten (each entry is dropped once read). ``like``: img0, contiguous, for the pools' shape.

    The dilations' reverse runs through torch's pool backward (into buffers); the erosions' axis
    pools scatter-add their shares straight into the gradient of their input (``scatter_add_`` on
    the per-plane flat indices the pools give): no zeroed buffer and no add per pool."""
    nd = like.dim() - 2
    nc = like.shape[0] * like.shape[1]
    passes = _dilate_passes(nd)
    ws = _Scratch(like)
    n = len(levels)
    grad_img = [None] * (n + 1)  # d/d img_k (img_n = last e1); None: nothing yet
    gs = g  # d/d skel of the level being undone
    for k in range(n - 1, -1, -1):
        er, di, into, keep = levels[k]
        if keep is None:
            gdel = gs.mul_(into)  # level 0: gs's last use
        else:
            gdel = into.mul_(gs)
            gs.mul_(keep)
        grad_img[k] = gdel if grad_img[k] is None else grad_img[k].add_(gdel)
        back = gdel  # delta = relu(img_k - dilate(img_{k+1})): -gdel into the dilation
        for j in range(len(passes) - 1, -1, -1):
            fresh = j == 0 and grad_img[k + 1] is None
            out = torch.empty_like(like) if fresh else ws(f"b{j % 2}")
            back = _pool_back(back, like, passes[j][0], passes[j][1], di[j], out)
        grad_img[k + 1] = back.neg_() if grad_img[k + 1] is None else grad_img[k + 1].sub_(back)
        levels[k] = er
    # erosions: img_{k+1} = erode(img_k), walked backwards
    for k in range(n - 1, -1, -1):
        idx, w = levels[k]
        levels[k] = None
        gk = grad_img[k].view(nc, -1)
        for share, i in zip(_erode_shares(grad_img[k + 1], w), idx):
            gk.scatter_add_(1, i.view(nc, -1), share.view(nc, -1))
        grad_img[k + 1] = None
    return grad_img[0]


def _probs(x, o):
    acc = acc_dtype(x.dtype)
    xa = x.to(acc)
    if not o.from_logits:
        return xa
    if o.mode == "multiclass":
        return torch.softmax(xa, dim=1)
    return torch.sigmoid(xa)


def _onehot(x, t, o):
    """(target as the accumulation dtype, its bool form for a one-hot, else None)."""
    acc = acc_dtype(x.dtype)
    if o.mode == "multiclass":
        c = torch.arange(x.shape[1], device=x.device).view((1, -1) + (1,) * (x.dim() - 2))
        tb = t.unsqueeze(1).long() == c
        return tb.to(acc), tb
    return t.to(acc).view(x.shape), None


def _terms(pu, tu, sp, st):
    """Per-image sums [A, B, A2, B2] and per-(image, class) Dice sums over the used channels."""
    red = tuple(range(1, pu.dim()))
    tmp = torch.empty_like(sp)
    sums = torch.stack([torch.mul(sp, tu, out=tmp).sum(red), sp.sum(red), torch.mul(st, pu, out=tmp).sum(red),
                        st.sum(red)])
    red2 = tuple(range(2, pu.dim()))
    dice = torch.stack([torch.mul(pu, tu, out=tmp).sum(red2), pu.sum(red2), tu.sum(red2)])
    return sums, dice


def _reduce(v, reduction):
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    return v


def forward(x, t, o):
    """(loss, coef): the loss, 0-d or (N,) per image for reduction "none" (clDice only), and the
    (N, Cu, 5) gradient coefficients [k1, k0, k2, b1, b0] per unit upstream gradient (``ops.py``)."""
    p = _probs(x, o)
    tt, tb = _onehot(x, t, o)
    c0 = first_channel(o, p.shape[1])
    pu, tu = p[:, c0:], tt[:, c0:]
    taped = tape.recording_now()  # the eager route: build the backward's tape now, keep it
    if taped:
        sp, levels = _skel_taped(pu, o.iterations)
    else:
        sp = _soft_skel(pu, o.iterations)
    st = _target_skel(tu, None if tb is None else tb[:, c0:], o.iterations)
    sums, dice = _terms(pu, tu, sp, st)
    if taped:
        tape.keep("cldice", p=p, tt=tt, st=st, levels=levels)
    a, b, a2, b2 = sums
    tp = (a + o.smooth) / (b + o.smooth)
    ts = (a2 + o.smooth) / (b2 + o.smooth)
    den = tp + ts + o.eps
    cl = 1.0 - 2.0 * tp * ts / den
    n, cu = dice.shape[1], dice.shape[2]
    w_cl = 1.0 if o.alpha is None else o.alpha
    w_d = 0.0 if o.alpha is None else 1.0 - o.alpha
    if o.reduction == "mean":
        w_cl, w_d = w_cl / n, w_d / (n * cu)
    k1 = w_cl * (-2.0 * ts * (ts + o.eps) / den ** 2) / (b + o.smooth)
    k2 = w_cl * (-2.0 * tp * (tp + o.eps) / den ** 2) / (b2 + o.smooth)
    inter, ps, tsum = dice
    dd = ps + tsum + o.smooth
    b1 = -2.0 * w_d / dd
    b0 = w_d * (2.0 * inter + o.smooth) / dd ** 2
    per_image = torch.stack([k1, -k1 * tp, k2], -1).unsqueeze(1).expand(n, cu, 3)
    coef = torch.cat([per_image, torch.stack([b1, b0], -1)], -1)
    loss = _reduce(cl, o.reduction)
    if o.alpha is not None:
        d = 1.0 - (2.0 * inter + o.smooth) / dd
        loss = (1.0 - o.alpha) * _reduce(d, o.reduction) + o.alpha * loss
    return loss, coef


def backward(g, coef, x, t, o):
    """dLoss/dlogits with the logits' dtype and layout; ``g``: 0-d, or (N,) for "none"."""
    acc = acc_dtype(x.dtype)
    c0 = first_channel(o, x.shape[1])
    kept = tape.taken("cldice")  # the forward's tape on the eager route (_core/tape.py), else rebuild it
    if kept is None:
        p, (tt, tb) = _probs(x, o), _onehot(x, t, o)
        pu, tu = p[:, c0:], tt[:, c0:]
        st = _target_skel(tu, None if tb is None else tb[:, c0:], o.iterations)
        levels = _skel_taped(pu, o.iterations)[1]
    else:
        p, tt, st, levels = kept["p"], kept["tt"], kept["st"], kept["levels"]  # handed over: ours to overwrite
        pu, tu = p[:, c0:], tt[:, c0:]
    # the taped skeleton's shape and (contiguous) layout for the reverse pass's buffers and pool backwards,
    # which never read its values: left empty, so its pages are never touched
    like = torch.empty(pu.shape, dtype=pu.dtype, device=pu.device)
    n, cu = coef.shape[0], coef.shape[1]
    cf = coef.to(acc) * g.to(acc).expand(n).view(n, 1, 1)
    shape = (n, cu) + (1,) * (x.dim() - 2)
    k1, k0, k2, b1, b0 = (v.reshape(shape) for v in cf.unbind(-1))
    gsk = torch.mul(k1, tu, out=torch.empty_like(like)).add_(k0)
    gp = _skel_reverse(gsk, levels, like).add_(st.mul_(k2))
    gp = gp.add_(torch.mul(b1, tu, out=st)).add_(b0)  # st's buffer, read already
    if c0:
        gp = torch.cat([torch.zeros_like(gp[:, :1]), gp], dim=1)
    if o.from_logits:  # p is the softmax / sigmoid here: a new tensor, ours to overwrite too
        if o.mode == "multiclass":
            gp = gp.sub_((p * gp).sum(1, keepdim=True)).mul_(p)
        else:
            gp = gp.mul_(p).mul_(p.neg_().add_(1.0))
    if gp.dtype == x.dtype and gp.stride() == x.stride():
        return gp
    out = torch.empty_like(x)
    return out.copy_(gp)
