"""PyTorch path of the clDice family: the same functions and contract as ``kernels.py``.

Soft skeleton (Shit et al. 2021, Algorithm 1, as MONAI's ``soft_skel``) from max pools:
erosion = min of the (3, 1) and (1, 3) min pools (three axes in 3D), dilation = 3x3(x3)
max pool, open = dilate(erode). The backward is written by hand: it recomputes the
forward keeping the pools' indices and routes each gradient to the pool's arg-max
(torch's own ``max_pool*_with_indices_backward``, first index on ties); the erosion's
axis minima combine as MONAI's ``torch.min(torch.min(p1, p2), p3)``, whose gradient
splits a tie in halves (``torch.minimum``): the tie rule of ``kernels.py``'s docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from triton_segloss._core.validate import acc_dtype

from .ops import first_channel


def _pool(x, k, pad, indices=True):
    if x.dim() == 4:
        return F.max_pool2d(x, k, 1, pad, return_indices=indices)
    return F.max_pool3d(x, k, 1, pad, return_indices=indices)


def _pool_back(g, x, k, pad, idx):
    if x.dim() == 4:
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, list(k), [1, 1], list(pad), [1, 1], False, idx)
    return torch.ops.aten.max_pool3d_with_indices_backward(g, x, list(k), [1] * 3, list(pad), [1] * 3, False, idx)


def _axes(nd):
    """(kernel, padding) of the erosion's axis pools for ``nd`` spatial dims."""
    out = []
    for a in range(nd):
        k = [1] * nd
        p = [0] * nd
        k[a], p[a] = 3, 1
        out.append((tuple(k), tuple(p)))
    return out


def _half(a, b):
    """torch.minimum(a, b)'s share of the gradient for ``a``: 1 if a < b, 1/2 if a == b, else 0."""
    return torch.where(a < b, 1.0, torch.where(a == b, 0.5, 0.0)).to(a.dtype)


def _erode(x, tape):
    nd = x.dim() - 2
    if tape is None:  # values only: the min of the axis minima is the cross min, whatever the ties
        neg = -x
        best = None
        for k, p in _axes(nd):
            v = _pool(neg, k, p, indices=False)
            best = v if best is None else torch.maximum(best, v, out=best)
        return best.neg_()
    mins, saved = [], []
    for k, p in _axes(nd):
        v, idx = _pool(-x, k, p)
        mins.append(-v)
        saved.append((k, p, idx))
    if nd == 2:
        w0 = _half(mins[0], mins[1])
        weights = [w0, 1.0 - w0]
        best = torch.minimum(mins[0], mins[1])
    else:
        m01 = torch.minimum(mins[0], mins[1])
        w01 = _half(m01, mins[2])
        w0 = w01 * _half(mins[0], mins[1])
        weights = [w0, w01 - w0, 1.0 - w01]
        best = torch.minimum(m01, mins[2])
    if tape is not None:
        tape.append(("erode", x, saved, weights))
    return best


def _dilate(x, tape):
    nd = x.dim() - 2
    if tape is None:  # values only: the square max as separable axis maxima (exact)
        v = x
        for k, p in _axes(nd):
            v = _pool(v, k, p, indices=False)
        return v
    # 3D: separable W, H, D passes, each keeping its first maximum: the composite choice is the raster-first
    # one of the cube pool (kernels.py's tie rule), at 3 (not 27) reads per pass (on a 2-core CPU 8% faster
    # per clDice step in 3D; in 2D the one 3 x 3 pool is faster)
    passes, v = [], x
    for k, p in reversed(_axes(nd)) if nd == 3 else [((3, 3), (1, 1))]:
        out, idx = _pool(v, k, p)
        passes.append((v, k, p, idx))
        v = out
    tape.append(("dilate", passes, v))
    return v


def _soft_skel(img, iterations, tape=None):
    """MONAI's ``soft_skel`` on (N, C, *spatial); ``tape`` (a list) records what the backward needs."""
    e1 = _erode(img, tape)
    skel = F.relu(img - _dilate(e1, tape))
    levels = [(img, e1, None, None)]
    for _ in range(iterations):
        img = e1
        e1 = _erode(img, tape)
        delta = F.relu(img - _dilate(e1, tape))
        prev = skel
        skel = skel + F.relu(delta - skel * delta)
        levels.append((img, e1, delta, prev))
    return skel, levels


def _skel_backward(g, img0, iterations):
    """d<g, soft_skel(img0)>/d img0 by a hand-written reverse pass."""
    tape = []
    _, levels = _soft_skel(img0, iterations, tape)
    # tape per level: erode(img_k) then dilate(e_{k+1}); level k uses entries 2k, 2k+1
    grad_img = [None] * (iterations + 2)  # d/d img_k (img_{K+1} = last e1); None: nothing yet
    gs = g
    for k in range(iterations, -1, -1):
        img, e1, delta, prev = levels[k]
        _, passes, dil = tape[2 * k + 1]
        if k == 0:
            gd = gs
        else:
            on = (delta - prev * delta) > 0
            gd = torch.where(on, gs * (1 - prev), 0.0)
            gs = gs - torch.where(on, gs * delta, 0.0)
        gdel = torch.where(img > dil, gd, 0.0)
        grad_img[k] = gdel if grad_img[k] is None else grad_img[k].add_(gdel)
        back = -gdel
        for src, kk, p, idx in reversed(passes):
            back = _pool_back(back, src, kk, p, idx)
        grad_img[k + 1] = back if grad_img[k + 1] is None else grad_img[k + 1].add_(back)
        tape[2 * k + 1] = None  # the indices and values are not needed again
    # erosions: img_{k+1} = erode(img_k), walked backwards
    for k in range(iterations, -1, -1):
        _, x, saved, weights = tape[2 * k]
        gk1 = grad_img[k + 1]
        neg = -x
        for (kk, p, idx), w in zip(saved, weights):
            grad_img[k].add_(_pool_back(w * gk1, neg, kk, p, idx))
        tape[2 * k] = None
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
    acc = acc_dtype(x.dtype)
    if o.mode == "multiclass":
        c = torch.arange(x.shape[1], device=x.device).view((1, -1) + (1,) * (x.dim() - 2))
        return (t.unsqueeze(1).long() == c).to(acc)
    return t.to(acc).view(x.shape)


def _terms(p, t, o):
    """Per-image sums [A, B, A2, B2] and per-(image, class) Dice sums over the used channels."""
    c0 = first_channel(o, p.shape[1])
    pu, tu = p[:, c0:], t[:, c0:]
    sp, _ = _soft_skel(pu, o.iterations)
    st, _ = _soft_skel(tu, o.iterations)
    red = tuple(range(1, p.dim()))
    sums = torch.stack([(sp * tu).sum(red), sp.sum(red), (st * pu).sum(red), st.sum(red)])
    red2 = tuple(range(2, p.dim()))
    dice = torch.stack([(pu * tu).sum(red2), pu.sum(red2), tu.sum(red2)])
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
    sums, dice = _terms(p, _onehot(x, t, o), o)
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
    p = _probs(x, o)
    tt = _onehot(x, t, o)
    c0 = first_channel(o, x.shape[1])
    pu, tu = p[:, c0:], tt[:, c0:]
    n, cu = coef.shape[0], coef.shape[1]
    cf = coef.to(acc) * g.to(acc).expand(n).view(n, 1, 1)
    shape = (n, cu) + (1,) * (x.dim() - 2)
    k1, k0, k2, b1, b0 = (v.reshape(shape) for v in cf.unbind(-1))
    st, _ = _soft_skel(tu, o.iterations)
    gp = _skel_backward(k1 * tu + k0, pu, o.iterations) + k2 * st + b1 * tu + b0
    if c0:
        gp = torch.cat([torch.zeros_like(gp[:, :1]), gp], dim=1)
    if o.from_logits:
        if o.mode == "multiclass":
            gp = p * (gp - (p * gp).sum(1, keepdim=True))
        else:
            gp = gp * p * (1.0 - p)
    out = torch.empty_like(x)
    return out.copy_(gp)
