"""Triton kernels of the focal family and their launchers (the family's only triton import).

Sigmoid focal (binary / multilabel, torchvision's semantics) and softmax focal
(multiclass, integer labels). Tensors are seen as (N, C, S) with their own strides,
labels as (N, S). In the sigmoid kernels one program handles BLOCK pixels of one
(n, c) row; in the softmax kernels one program handles BLOCK_S pixels of one image
and walks the classes in chunks of BLOCK_C with an online log-sum-exp, so the labels
are never one-hot encoded.

A training step is three launches for ``"mean"``/``"sum"``: the forward kernel writes
per-program partials ``[sum l, #valid]``, the one-program finisher sums them in a
fixed order and writes the loss and the gradient coefficient, and the backward kernel
reads that coefficient and the upstream gradient from device memory. ``"none"`` is
two: the forward writes the map, the backward reads the upstream map. Nothing goes
through the host.

Both forms keep ``q = 1 - p_t`` free of cancellation (it is computed as a sum of the
other probabilities, never as ``1 - p_t``), take ``q ** gamma`` as
``exp(gamma * log q)`` (with its limit at q = 0: 1 for gamma = 0, else 0) and write
the gradient with the ``q ** (gamma - 1)`` factor multiplied out, so it stays finite
for gamma < 1 as p_t -> 1.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, device_guard, load_ncs, log1p_exp_neg_abs, pick, row_tile, scalar, \
    split_f64, sum_rows, tl_acc
from triton_segloss._core.validate import acc_dtype

from .ops import ONE_TILE_CLASSES, softmax_stats_shape

NPART = 2  # partials per program: [sum l, #valid]
FINISH_BLOCK = 256


@triton.jit
def _log1p(z):
    """log(1 + z) for z >= 0, exact to rounding as z -> 0 (no 1 + z cancellation)."""
    u = 1.0 + z
    return tl.where(u == 1.0, z, tl.log(u) * z / tl.where(u == 1.0, 1.0, u - 1.0))


@triton.jit
def _pow_q(q, gamma):
    """q ** gamma for q >= 0, with its limit at q == 0: 1 for gamma == 0, else 0."""
    return tl.where(q > 0, tl.exp(gamma * tl.log(tl.where(q > 0, q, 1.0))), tl.where(gamma == 0.0, 1.0, 0.0))


@triton.jit
def _log1m(p):
    """log(1 - p) for p <= 1, exact to rounding as p -> 0 (no 1 - p cancellation); -inf at p = 1."""
    u = 1.0 - p
    return tl.where(u == 1.0, -p, tl.log(u) * (-p) / tl.where(u == 1.0, 1.0, u - 1.0))


@triton.jit
def _sigmoid_terms(x_ptr, t_ptr, n, c, C, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
                   ig_hi, ig_lo, HAS_IGNORE: tl.constexpr, LABELS: tl.constexpr, FROM_PROBS: tl.constexpr,
                   ACC: tl.constexpr):
    """The prologue both sigmoid passes share: (t, valid, p, 1 - p, ce, q, lp_ok, lq_ok) with t = 0 on
    ignored pixels. LABELS: the target holds integer labels (stride_tc = 0) and t = [label == c];
    labels outside [0, C) count as ignored. FROM_PROBS: x holds p itself, ce uses logs clamped at -100
    (lp_ok / lq_ok: log p / log(1 - p) above the clamp)."""
    x = load_ncs(x_ptr, n, c, s, stride_xn, stride_xc, stride_xs, mask, 0.5 if FROM_PROBS else 0.0, ACC)
    if LABELS:
        lab = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=mask, other=0).to(tl.int64)
        valid = mask & (lab >= 0) & (lab < C)
        if HAS_IGNORE:
            valid = valid & (lab != scalar(ig_hi, ig_lo, tl.float64).to(tl.int64))
        t = tl.where(valid & (lab == c), 1.0, 0.0).to(ACC)
    else:
        t = load_ncs(t_ptr, n, c, s, stride_tn, stride_tc, stride_ts, mask, 0, ACC)
        valid = mask
        if HAS_IGNORE:
            valid = valid & (t != scalar(ig_hi, ig_lo, ACC))
        t = tl.where(valid, t, 0.0)
    if FROM_PROBS:
        p = x
        pm = 1.0 - p
        lp = tl.log(p)
        lq = _log1m(p)
        lp_ok = lp > -100.0
        lq_ok = lq > -100.0
        # t = 0 / 1 multiply a clamped log only where it carries weight (0 * -100 = 0, never 0 * -inf)
        ce = -(tl.where(t > 0, t * tl.maximum(lp, -100.0), 0.0) + tl.where(t < 1, (1.0 - t) * tl.maximum(lq, -100.0),
                                                                              0.0))
    else:
        e = tl.exp(-tl.abs(x))
        inv = 1.0 / (1.0 + e)
        p = tl.where(x >= 0, inv, e * inv)
        pm = tl.where(x >= 0, e * inv, inv)  # 1 - p, exact: e / (1 + e) for x >= 0
        ce = log1p_exp_neg_abs(x) + (tl.maximum(x, 0.0) - x * t)  # the bracket is exact for hard targets: add it last
        lp_ok = mask
        lq_ok = mask
    q = t * pm + (1.0 - t) * p
    return t, valid, p, pm, ce, q, lp_ok, lq_ok


@triton.jit
def _sigmoid_weight(t, c, a_ptr, stride_a, w_ptr, stride_w, al_hi, al_lo, sc_hi, sc_lo, HAS_ALPHA: tl.constexpr,
                    ALPHA_PER_CLASS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr, ACC: tl.constexpr):
    """alpha_t * class_weight[c] * scale: alpha_t = a t + (1 - a)(1 - t), a = alpha[c] or alpha."""
    wgt = tl.zeros_like(t) + scalar(sc_hi, sc_lo, ACC)
    if ALPHA_PER_CLASS:
        a = tl.load(a_ptr + c * stride_a).to(ACC)
        wgt = wgt * (a * t + (1.0 - a) * (1.0 - t))
    elif HAS_ALPHA:
        a = scalar(al_hi, al_lo, ACC)
        wgt = wgt * (a * t + (1.0 - a) * (1.0 - t))
    if HAS_CLASS_WEIGHT:
        wgt = wgt * tl.load(w_ptr + c * stride_w).to(ACC)
    return wgt


@triton.jit
def _focal_sigmoid_fwd_kernel(
    x_ptr,  # logits (probabilities if FROM_PROBS), (N, C, S) strided
    t_ptr,  # target in [0, 1] (or ignore_index), (N, C, S) strided, its own dtype; LABELS: labels (N, S), stride_tc 0
    a_ptr,  # per-class alpha (C,) strided, its own dtype; read only if ALPHA_PER_CLASS
    w_ptr,  # per-class weight (C,) strided, its own dtype; read only if HAS_CLASS_WEIGHT
    loss_ptr,  # elementwise loss out, contiguous (N, C, S) in ACC; written only if STORE_LOSS
    part_ptr,  # per-program partials out, contiguous (programs, 2) in ACC; written only if STORE_PARTIALS
    C, S,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_a, stride_w,
    al_hi, al_lo,  # alpha of alpha_t (fp32 pair), used if HAS_ALPHA and not ALPHA_PER_CLASS
    ga_hi, ga_lo,  # focusing exponent gamma >= 0 (fp32 pair)
    ig_hi, ig_lo,  # ignore_index (fp32 pair), used if HAS_IGNORE
    sc_hi, sc_lo,  # uniform scale of the loss (a scalar class_weight; 1 otherwise)
    HAS_ALPHA: tl.constexpr, ALPHA_PER_CLASS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr, LABELS: tl.constexpr, FROM_PROBS: tl.constexpr,
    STORE_LOSS: tl.constexpr, STORE_PARTIALS: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """torchvision's sigmoid focal loss per element, with p = sigmoid(x), e = exp(-|x|):

        ce = log(1 + e^x) - x t = log(1 + e^-|x|) + (max(x, 0) - x t)
        q  = 1 - p_t = t (1 - p) + (1 - t) p      (1 - p = e / (1 + e) for x >= 0: exact, no 1 - p)
        l  = w_c * alpha_t * q^gamma * ce,   alpha_t = a_c t + (1 - a_c)(1 - t)  (1 without alpha)

    a_c = alpha[c] (ALPHA_PER_CLASS) or alpha; w_c = class_weight[c] * scale. FROM_PROBS: p = x and
    ce = -t max(log p, -100) - (1 - t) max(log(1 - p), -100) (torch's binary_cross_entropy clamp).
    LABELS: t = [y == c] for integer labels y (one-vs-rest on the virtual one-hot).
    Ignored pixels give l = 0. Partials per program: [sum l, #valid].
    """
    row, n, c, s = row_tile(tl.program_id(0), n_blocks_s, C, BLOCK)
    mask = s < S
    t, valid, _p, _pm, ce, q, _lp_ok, _lq_ok = _sigmoid_terms(
        x_ptr, t_ptr, n, c, C, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
        ig_hi, ig_lo, HAS_IGNORE, LABELS, FROM_PROBS, ACC)
    loss = _pow_q(q, scalar(ga_hi, ga_lo, ACC)) * ce
    loss = loss * _sigmoid_weight(t, c, a_ptr, stride_a, w_ptr, stride_w, al_hi, al_lo, sc_hi, sc_lo, HAS_ALPHA,
                                  ALPHA_PER_CLASS, HAS_CLASS_WEIGHT, ACC)
    loss = tl.where(valid, loss, 0.0)
    if STORE_LOSS:
        tl.store(loss_ptr + row * S + s, loss, mask=mask)
    if STORE_PARTIALS:
        pid = tl.program_id(0).to(tl.int64)
        tl.store(part_ptr + pid * 2 + 0, tl.sum(loss, axis=0))
        tl.store(part_ptr + pid * 2 + 1, tl.sum(valid.to(ACC), axis=0))


@triton.jit
def _focal_sigmoid_bwd_kernel(
    x_ptr,  # logits (probabilities if FROM_PROBS), (N, C, S) strided
    t_ptr,  # target, (N, C, S) strided (LABELS: labels, stride_tc 0)
    a_ptr,  # per-class alpha (C,) strided (if ALPHA_PER_CLASS)
    w_ptr,  # per-class weight (C,) strided (if HAS_CLASS_WEIGHT)
    g_ptr,  # upstream gradient: (N, C, S) strided map if G_IS_MAP, else the 0-d loss gradient
    coef_ptr,  # one ACC scale dLoss/dl (1 / #valid for "mean", 1 for "sum"); read only if HAS_COEF
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_a, stride_w,
    stride_gn, stride_gc, stride_gs,
    stride_dn, stride_dc, stride_ds,
    al_hi, al_lo, ga_hi, ga_lo, ig_hi, ig_lo, sc_hi, sc_lo,  # as in forward
    HAS_ALPHA: tl.constexpr, ALPHA_PER_CLASS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr, LABELS: tl.constexpr, FROM_PROBS: tl.constexpr,
    HAS_COEF: tl.constexpr, G_IS_MAP: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """Recomputes p, q, ce as in forward. Logits: with p' = p (1 - p), dq/dx = (1 - 2t) p', dce/dx = p - t:

        dl/dx = w alpha_t [ gamma q^(gamma-1) (1 - 2t) p' ce + q^gamma (p - t) ]
              = w alpha_t q^gamma [ gamma (1 - 2t) r ce + (p - t) ],   r = p (1 - p) / q

    r <= 1 always (q is a convex combination of p and 1 - p, both >= p (1 - p)), so the
    q^(gamma - 1) that blows up for gamma < 1 as q -> 0 never appears; at q == 0 (p rounded to
    0 or 1 with a hard target) r is set to 0, where q^gamma ce vanishes anyway.
    p - t is formed as (1 - t) p - t (1 - p), exact for hard targets.

    FROM_PROBS (the gradient with respect to p): dq/dp = 1 - 2t, dce/dp = (p - t) / (p (1 - p))
    (a clamped log contributes 0), so

        dl/dp = w alpha_t q^gamma [ gamma (1 - 2t) (ce / q) + dce/dp ]

    with ce / q -> 1 as q -> 0 (q = 0 only for a hard target at p = t, where ce = 0).
    dx = g * coef * dl/dx (g per pixel if G_IS_MAP), 0 on ignored pixels.
    """
    _row, n, c, s = row_tile(tl.program_id(0), n_blocks_s, C, BLOCK)
    mask = s < S
    t, valid, p, pm, ce, q, lp_ok, lq_ok = _sigmoid_terms(
        x_ptr, t_ptr, n, c, C, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
        ig_hi, ig_lo, HAS_IGNORE, LABELS, FROM_PROBS, ACC)
    gamma = scalar(ga_hi, ga_lo, ACC)
    qpos = q > 0
    if FROM_PROBS:
        ratio = tl.where(qpos, ce / tl.where(qpos, q, 1.0), 1.0)
        inner = (p > 0) & (pm > 0) & lp_ok & lq_ok
        safe_p = tl.where(p > 0, p, 1.0)
        safe_pm = tl.where(pm > 0, pm, 1.0)
        edge = tl.where(lq_ok & (t < 1), (1.0 - t) / safe_pm, 0.0) - tl.where(lp_ok & (t > 0), t / safe_p, 0.0)
        dce = tl.where(inner, (p - t) / safe_p / safe_pm, edge)
        dx = _pow_q(q, gamma) * (gamma * (1.0 - 2.0 * t) * ratio + dce)
    else:
        r = tl.where(qpos, p * pm / tl.where(qpos, q, 1.0), 0.0)
        dx = _pow_q(q, gamma) * (gamma * (1.0 - 2.0 * t) * r * ce + ((1.0 - t) * p - t * pm))
    dx = dx * _sigmoid_weight(t, c, a_ptr, stride_a, w_ptr, stride_w, al_hi, al_lo, sc_hi, sc_lo, HAS_ALPHA,
                              ALPHA_PER_CLASS, HAS_CLASS_WEIGHT, ACC)
    if HAS_COEF:
        dx = dx * tl.load(coef_ptr).to(ACC)
    if G_IS_MAP:
        dx = dx * load_ncs(g_ptr, n, c, s, stride_gn, stride_gc, stride_gs, mask, 0.0, ACC)
    else:
        dx = dx * tl.load(g_ptr).to(ACC)
    dx = tl.where(valid, dx, 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_stats(x_ptr, n, s, smask, y, C, stride_xn, stride_xc, stride_xs,
                   ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """One sweep over the classes (online max m): (m, se, ey, ce, q) per pixel, see the forward kernel."""
    m = tl.full([BLOCK_S], float("-inf"), ACC)
    se = tl.zeros([BLOCK_S], ACC)
    so = tl.zeros([BLOCK_S], ACC)
    xy = tl.zeros([BLOCK_S], ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)  # int64: c * stride_xc may pass 2^31
        cmask = c < C
        ptrs = x_ptr + n * stride_xn + c[:, None] * stride_xc + s[None, :] * stride_xs
        xt = tl.load(ptrs, mask=cmask[:, None] & smask[None, :], other=0.0).to(ACC)
        xt = tl.where(cmask[:, None], xt, float("-inf"))
        m_new = tl.maximum(m, tl.max(xt, axis=0))
        rescale = tl.exp(m - m_new)
        ex = tl.exp(xt - m_new[None, :])
        is_y = c[:, None] == y[None, :]
        se = se * rescale + tl.sum(ex, axis=0)
        so = so * rescale + tl.sum(tl.where(is_y, 0.0, ex), axis=0)
        xy = xy + tl.sum(tl.where(is_y, xt, 0.0), axis=0)
        m = m_new
    ey = tl.exp(xy - m)
    big = ey > 0.5
    ce = tl.where(big, _log1p(so / tl.where(big, ey, 1.0)), tl.log(se) + (m - xy))
    q = so / se
    return m, se, ey, ce, q


@triton.jit
def _softmax_stats_tile(xm, is_y):
    """(m, se, ey, ce, q) of a tile holding every class (masked classes at -inf): ``_softmax_stats``
    without the sweep, the same values."""
    m = tl.max(xm, axis=0)
    ex = tl.exp(xm - m[None, :])
    se = tl.sum(ex, axis=0)
    so = tl.sum(tl.where(is_y, 0.0, ex), axis=0)
    xy = tl.sum(tl.where(is_y, xm, 0.0), axis=0)
    ey = tl.exp(xy - m)
    big = ey > 0.5
    ce = tl.where(big, _log1p(so / tl.where(big, ey, 1.0)), tl.log(se) + (m - xy))
    return m, se, ey, ce, so / se


@triton.jit
def _softmax_pixels(y_ptr, a_ptr, w_ptr, pid, C, S, n_blocks_s, stride_yn, stride_ys, stride_a, stride_w, al_hi, al_lo,
                    sc_hi, sc_lo, ignore_index, ALPHA_PER_CLASS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr,
                    HAS_IGNORE: tl.constexpr, ACC: tl.constexpr, BLOCK_S: tl.constexpr):
    """(n, s, smask, y, valid, a_y) of program ``pid``, a_y = alpha[y] (or alpha) * class_weight[y] * scale;
    every index int64."""
    pid = pid.to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)
    smask = s < S
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    if ALPHA_PER_CLASS:
        a = tl.load(a_ptr + y * stride_a, mask=valid, other=0.0).to(ACC)
    else:
        a = tl.zeros([BLOCK_S], ACC) + scalar(al_hi, al_lo, ACC)
    if HAS_CLASS_WEIGHT:
        a = a * tl.load(w_ptr + y * stride_w, mask=valid, other=0.0).to(ACC)
    a = a * scalar(sc_hi, sc_lo, ACC)
    return n, s, smask, y, valid, a


@triton.jit
def _probs_terms(x_ptr, n, s, y, valid, stride_xn, stride_xc, stride_xs, ACC: tl.constexpr):
    """FROM_PROBS: (p_y, q = 1 - p_y, ce = min(-log p_y, 100), log p_y above the clamp) from one gathered read."""
    p = tl.load(x_ptr + n * stride_xn + y * stride_xc + s * stride_xs, mask=valid, other=1.0).to(ACC)
    lp = tl.log(p)
    return p, 1.0 - p, -tl.maximum(lp, -100.0), lp > -100.0


@triton.jit
def _softmax_factor(q, ce, ey, se, a, gamma):
    """f = a_y q^gamma (1 + gamma p_y ce / q), the factor of p_k - [k == y] in dl/dx_k (see the
    backward kernel), with ce / q set to 1 at q == 0."""
    qpos = q > 0
    ratio = tl.where(qpos, ce / tl.where(qpos, q, 1.0), 1.0)
    return _pow_q(q, gamma) * (1.0 + gamma * (ey / se) * ratio) * a


@triton.jit
def _focal_softmax_fwd_kernel(
    x_ptr,  # logits (softmax probabilities if FROM_PROBS), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    a_ptr,  # per-class alpha, (C,) strided, its own dtype; read only if ALPHA_PER_CLASS
    w_ptr,  # per-class weight, (C,) strided, its own dtype; read only if HAS_CLASS_WEIGHT
    loss_ptr,  # per-pixel loss out, contiguous (N, S) in ACC; written only if STORE_LOSS
    part_ptr,  # per-program partials out, contiguous (programs, 2) in ACC; written only if STORE_PARTIALS
    stat_ptr,  # per-pixel statistics out, contiguous (N, 3, S) in ACC: [m, f / se, so]; written if STORE_STATS
    C, S,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_a, stride_w,
    al_hi, al_lo,  # scalar class weight (fp32 pair; 1 when disabled), used unless ALPHA_PER_CLASS
    ga_hi, ga_lo,  # focusing exponent gamma >= 0 (fp32 pair)
    sc_hi, sc_lo,  # uniform scale of the loss (a scalar class_weight; 1 otherwise)
    ignore_index,  # label that marks a pixel ignored (if HAS_IGNORE)
    ALPHA_PER_CLASS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
    FROM_PROBS: tl.constexpr, STORE_LOSS: tl.constexpr,
    STORE_PARTIALS: tl.constexpr,
    STORE_STATS: tl.constexpr,  # C > BLOCK_C: what the backward would need a first sweep over the classes for
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Softmax focal loss per pixel with label y, over classes in chunks (online max m):

        se = sum_k e^(x_k - m),  so = sum_{k != y} e^(x_k - m),  ey = e^(x_y - m)
        q  = 1 - p_y = so / se                       (no 1 - p_y cancellation)
        ce = -log p_y = log1p(so / ey)   if ey > 1/2  (accurate as p_y -> 1)
                      = log(se) + m - x_y otherwise
        l  = a_y * q^gamma * ce,   a_y = alpha[y] (ALPHA_PER_CLASS) or alpha, times class_weight[y] * scale

    FROM_PROBS: x holds the probabilities; only p_y is read, q = 1 - p_y, ce = min(-log p_y, 100).
    Labels outside [0, C) and ignored pixels give l = 0 and do not count.
    Partials per program: [sum l, #valid]. STORE_STATS writes per pixel m, f / se (f the backward's
    factor, ``_softmax_factor``) and so = q se, so the backward sweeps the classes once:
    dl/dx_k = e^(x_k - m) f / se and dl/dx_y = -so f / se.
    """
    n, s, smask, y, valid, a = _softmax_pixels(
        y_ptr, a_ptr, w_ptr, tl.program_id(0), C, S, n_blocks_s, stride_yn, stride_ys, stride_a, stride_w, al_hi,
        al_lo, sc_hi, sc_lo, ignore_index, ALPHA_PER_CLASS, HAS_CLASS_WEIGHT, HAS_IGNORE, ACC, BLOCK_S)
    if FROM_PROBS:
        _p, q, ce, _ok = _probs_terms(x_ptr, n, s, y, valid, stride_xn, stride_xc, stride_xs, ACC)
    else:
        m, se, ey, ce, q = _softmax_stats(x_ptr, n, s, smask, y, C, stride_xn, stride_xc, stride_xs, ACC,
                                          BLOCK_C, BLOCK_S)
        if STORE_STATS:
            st = stat_ptr + n * 3 * S + s
            tl.store(st, m, mask=smask)
            tl.store(st + S, _softmax_factor(q, ce, ey, se, a, scalar(ga_hi, ga_lo, ACC)) / se, mask=smask)
            tl.store(st + 2 * S, q * se, mask=smask)
    loss = tl.where(valid, _pow_q(q, scalar(ga_hi, ga_lo, ACC)) * ce * a, 0.0)
    if STORE_LOSS:
        tl.store(loss_ptr + n * S + s, loss, mask=smask)
    if STORE_PARTIALS:
        pid = tl.program_id(0).to(tl.int64)
        tl.store(part_ptr + pid * 2 + 0, tl.sum(loss, axis=0))
        tl.store(part_ptr + pid * 2 + 1, tl.sum(valid.to(ACC), axis=0))


@triton.jit
def _focal_softmax_bwd_kernel(
    x_ptr,  # logits (softmax probabilities if FROM_PROBS), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    a_ptr,  # per-class alpha (C,) strided (if ALPHA_PER_CLASS)
    w_ptr,  # per-class weight (C,) strided (if HAS_CLASS_WEIGHT)
    g_ptr,  # upstream gradient: (N, S) strided map if G_IS_MAP, else the 0-d loss gradient
    coef_ptr,  # one ACC scale dLoss/dl (1 / #valid for "mean", 1 for "sum"); read only if HAS_COEF
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    stat_ptr,  # the forward's per-pixel [m, f / se, so], contiguous (N, 3, S) in ACC; read if HAS_STATS
    C, S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_a, stride_w,
    stride_gn, stride_gs,
    stride_dn, stride_dc, stride_ds,
    al_hi, al_lo, ga_hi, ga_lo, sc_hi, sc_lo, ignore_index,  # as in forward
    ALPHA_PER_CLASS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
    FROM_PROBS: tl.constexpr, HAS_COEF: tl.constexpr, G_IS_MAP: tl.constexpr,
    ONE_CHUNK: tl.constexpr,  # C <= BLOCK_C: the logits tile is read once and kept in registers
    HAS_STATS: tl.constexpr,  # else: m, f / se and so from the forward, and one sweep over the classes
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Takes m, se, q and f from the forward's statistics (HAS_STATS) or from the one tile in
    registers (ONE_CHUNK), or recomputes them in a first sweep over the classes, then writes dx.

    With dce/dx_k = p_k - [k == y] and dq/dx_k = p_y (p_k - [k == y]):

        dl/dx_k = a_y (p_k - [k == y]) [ q^gamma + gamma q^(gamma-1) p_y ce ]
                = a_y (p_k - [k == y]) q^gamma [ 1 + gamma p_y (ce / q) ]

    ce / q = -log(1 - q) / q -> 1 as q -> 0 (set to 1 at q == 0), so no q^(gamma - 1) is formed
    and the gradient stays finite for gamma < 1. p_y - 1 is written -q (no cancellation).

    FROM_PROBS (the gradient with respect to the probabilities; only p_y enters the loss):

        dl/dp_y = -a_y q^gamma [ 1 / p_y + gamma (ce / q) ],   dl/dp_k = 0 for k != y

    (1 / p_y dropped where log p_y is clamped). dx = g * coef * dl/dx (g per pixel if
    G_IS_MAP), 0 on ignored pixels.
    """
    n, s, smask, y, valid, a = _softmax_pixels(
        y_ptr, a_ptr, w_ptr, tl.program_id(0), C, S, n_blocks_s, stride_yn, stride_ys, stride_a, stride_w, al_hi,
        al_lo, sc_hi, sc_lo, ignore_index, ALPHA_PER_CLASS, HAS_CLASS_WEIGHT, HAS_IGNORE, ACC, BLOCK_S)
    gamma = scalar(ga_hi, ga_lo, ACC)
    if FROM_PROBS:
        p, q, ce, lp_ok = _probs_terms(x_ptr, n, s, y, valid, stride_xn, stride_xc, stride_xs, ACC)
        qpos = q > 0
        ratio = tl.where(qpos, ce / tl.where(qpos, q, 1.0), 1.0)
        f = -_pow_q(q, gamma) * (tl.where(lp_ok, 1.0 / tl.where(lp_ok, p, 1.0), 0.0) + gamma * ratio) * a
        m = tl.zeros([BLOCK_S], ACC)
        inv_se = tl.zeros([BLOCK_S], ACC)
    elif ONE_CHUNK:
        c1 = tl.arange(0, BLOCK_C).to(tl.int64)
        xm1 = tl.load(x_ptr + n * stride_xn + c1[:, None] * stride_xc + s[None, :] * stride_xs,
                      mask=(c1 < C)[:, None] & smask[None, :], other=0.0).to(ACC)
        xm1 = tl.where((c1 < C)[:, None], xm1, float("-inf"))
        m, se, ey, ce, q = _softmax_stats_tile(xm1, c1[:, None] == y[None, :])
        f = _softmax_factor(q, ce, ey, se, a, gamma)
        inv_se = 1.0 / se
    elif HAS_STATS:  # f' = f / se and q' = q se = so: the same products -q' f' and e^(x_k - m) f'
        st = stat_ptr + n * 3 * S + s
        m = tl.load(st, mask=smask, other=0.0)
        f = tl.load(st + S, mask=smask, other=0.0)
        q = tl.load(st + 2 * S, mask=smask, other=0.0)
        inv_se = tl.full([BLOCK_S], 1.0, ACC)
    else:
        m, se, ey, ce, q = _softmax_stats(x_ptr, n, s, smask, y, C, stride_xn, stride_xc, stride_xs, ACC, BLOCK_C,
                                          BLOCK_S)
        f = _softmax_factor(q, ce, ey, se, a, gamma)
        inv_se = 1.0 / se
    if HAS_COEF:
        f = f * tl.load(coef_ptr).to(ACC)
    if G_IS_MAP:
        f = f * tl.load(g_ptr + n * stride_gn + s * stride_gs, mask=smask, other=0.0).to(ACC)
    else:
        f = f * tl.load(g_ptr).to(ACC)
    f = tl.where(valid, f, 0.0)
    if ONE_CHUNK and not FROM_PROBS:
        c = tl.arange(0, BLOCK_C).to(tl.int64)
        pk = tl.exp(xm1 - m[None, :]) * inv_se[None, :]
        dx = tl.where(c[:, None] == y[None, :], -q[None, :], pk) * f[None, :]
        tl.store(dx_ptr + n * stride_dn + c[:, None] * stride_dc + s[None, :] * stride_ds,
                 dx.to(dx_ptr.dtype.element_ty), mask=(c < C)[:, None] & smask[None, :])
    else:
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)  # int64: c * stride may pass 2^31
            mask2 = (c < C)[:, None] & smask[None, :]
            is_y = c[:, None] == y[None, :]
            if FROM_PROBS:
                dx = tl.where(is_y, f[None, :], 0.0)
            else:
                xt = tl.load(x_ptr + n * stride_xn + c[:, None] * stride_xc + s[None, :] * stride_xs, mask=mask2,
                             other=0.0).to(ACC)
                pk = tl.exp(xt - m[None, :]) * inv_se[None, :]
                dx = tl.where(is_y, -q[None, :], pk) * f[None, :]
            tl.store(dx_ptr + n * stride_dn + c[:, None] * stride_dc + s[None, :] * stride_ds,
                     dx.to(dx_ptr.dtype.element_ty), mask=mask2)


@triton.jit
def _focal_finish_kernel(
    part_ptr,  # per-program partials, contiguous (n_part, 2) in ACC: [sum l, #valid]
    loss_ptr,  # the 0-d loss out, ACC
    coef_ptr,  # out: one ACC scale dLoss/dl per unit upstream gradient
    n_part,
    MEAN: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program. With [s, n] the fixed-order float64 sums of the partials:

        mean:  loss = s / max(n, 1),  coef = 1 / max(n, 1)
        sum:   loss = s,              coef = 1

    All pixels ignored: n = 0 and s = 0, so the loss is 0 (and the gradient too).
    """
    tot = sum_rows(part_ptr, n_part, 2, 2, BLOCK)
    s = pick(tot, 0, 2)
    if MEAN:
        cnt = tl.maximum(pick(tot, 1, 2), 1.0)
        coef = 1.0 / cnt
        loss = s / cnt
    else:
        coef = tl.full([], 1.0, tl.float64)
        loss = s
    tl.store(loss_ptr, loss.to(ACC))
    tl.store(coef_ptr, coef.to(ACC))


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _named(prefix, strides):
    return dict(zip((f"stride_{prefix}{d}" for d in "ncs"), strides))


def _sigmoid_grid(x):
    N, C, S = x.shape
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    return N * C * n_blocks_s, n_blocks_s, BLOCK, num_warps


def _softmax_grid(x):
    """(programs, n_blocks_s, BLOCK_C, BLOCK_S, num_warps): up to ONE_TILE_CLASSES classes per chunk, ~2048
    elements a tile."""
    N, C, S = x.shape
    block_c = min(triton.next_power_of_2(max(C, 1)), ONE_TILE_CLASSES)
    block_s = max(32, min(2048 // block_c, triton.next_power_of_2(max(S, 1))))
    n_blocks_s = triton.cdiv(S, block_s)
    return N * n_blocks_s, n_blocks_s, block_c, block_s, 4 if block_c * block_s <= 1024 else 8


def _buffers(x, loss_shape, programs, o):
    """(loss, part, coef): the loss (0-d, or the map for "none"), partials (None for "none"), coef."""
    acc = acc_dtype(x.dtype)
    none = o.reduction == "none"
    loss = torch.empty(loss_shape if none else (), device=x.device, dtype=acc)
    part = None if none else torch.empty((programs, NPART), device=x.device, dtype=acc)
    coef = torch.empty((0 if none else 1,), device=x.device, dtype=acc)
    return loss, part, coef


def _finish(x, part, loss, coef, o):
    _focal_finish_kernel[(1,)](part_ptr=part, loss_ptr=loss, coef_ptr=coef, n_part=part.shape[0],
                               MEAN=o.reduction == "mean", ACC=tl_acc(x.dtype), BLOCK=FINISH_BLOCK)


def _pair(prefix, v):
    hi, lo = split_f64(v)
    return {f"{prefix}_hi": hi, f"{prefix}_lo": lo}


def _per_class(prefix, w):
    """Pointer and stride of a per-class (C,) tensor (None: absent)."""
    return {f"{prefix}_ptr": w, f"stride_{prefix}": 0 if w is None else w.stride(0)}


def _sigmoid_scalars(alpha_w, class_w, o):
    return dict(**_pair("al", o.alpha), **_pair("ga", o.gamma), **_pair("ig", o.ignore_index), **_pair("sc", o.scale),
                **_per_class("a", alpha_w), **_per_class("w", class_w),
                HAS_ALPHA=o.alpha is not None, ALPHA_PER_CLASS=alpha_w is not None,
                HAS_CLASS_WEIGHT=class_w is not None, HAS_IGNORE=o.ignore_index is not None, LABELS=o.labels,
                FROM_PROBS=not o.from_logits)


def _softmax_scalars(alpha_w, class_w, o):
    return dict(**_pair("al", o.alpha), **_pair("ga", o.gamma), **_pair("sc", o.scale),
                ignore_index=0 if o.ignore_index is None else int(o.ignore_index),
                **_per_class("a", alpha_w), **_per_class("w", class_w),
                ALPHA_PER_CLASS=alpha_w is not None, HAS_CLASS_WEIGHT=class_w is not None,
                HAS_IGNORE=o.ignore_index is not None, FROM_PROBS=not o.from_logits)


def _target_strides(t, o):
    """The target's (n, c, s) strides; integer labels (o.labels) are read once per class: stride_tc = 0."""
    sn, sc, ss = t.stride()
    return _named("t", (sn, 0, ss) if o.labels else (sn, sc, ss))


def sigmoid_forward(x, t, alpha_w, class_w, o):
    """(loss, coef) of the sigmoid focal loss on (N, C, S) views ``x`` (logits) and ``t`` (target;
    for ``o.labels`` integer labels (N, 1, S)).

    ``alpha_w`` / ``class_w``: per-class alpha / weights (C,) or None. ``loss``: 0-d, or the
    (N, C, S) map in ACC for ``"none"``; ``coef``: the finisher's one gradient scale, ((0,) for
    ``"none"``). ``o``: ``SigmoidFocalOptions``.
    """
    N, C, S = x.shape
    programs, n_blocks_s, BLOCK, num_warps = _sigmoid_grid(x)
    loss, part, coef = _buffers(x, (N, C, S), programs, o)
    none = o.reduction == "none"
    with device_guard(x):
        _focal_sigmoid_fwd_kernel[(programs,)](
            x_ptr=x, t_ptr=t, loss_ptr=loss if none else None, part_ptr=part, C=C, S=S, n_blocks_s=n_blocks_s,
            **_named("x", x.stride()), **_target_strides(t, o), **_sigmoid_scalars(alpha_w, class_w, o),
            STORE_LOSS=none, STORE_PARTIALS=not none, ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps)
        if not none:
            _finish(x, part, loss, coef, o)
    return loss, coef


def sigmoid_backward(g, coef, x, t, alpha_w, class_w, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: 0-d, or the (N, C, S) map for ``"none"``."""
    dx = torch.empty_like(x)
    programs, n_blocks_s, BLOCK, num_warps = _sigmoid_grid(x)
    g_map = o.reduction == "none"
    with device_guard(x):
        _focal_sigmoid_bwd_kernel[(programs,)](
            x_ptr=x, t_ptr=t, g_ptr=g, coef_ptr=coef if coef.numel() else None, dx_ptr=dx, C=x.shape[1],
            S=x.shape[2], n_blocks_s=n_blocks_s, **_named("x", x.stride()), **_target_strides(t, o),
            **_named("g", g.stride() if g_map else (0, 0, 0)), **_named("d", dx.stride()),
            **_sigmoid_scalars(alpha_w, class_w, o),
            HAS_COEF=coef.numel() > 0, G_IS_MAP=g_map, ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps)
    return dx


def softmax_forward(x, y, alpha_w, class_w, o):
    """(loss, coef, stats) of the softmax focal loss on logits (N, C, S) and labels (N, S); ``stats``
    the per-pixel values the backward reads (``ops.softmax_stats_shape``).

    ``alpha_w``: per-class weights (C,) (any real dtype and stride) or None (then ``o.alpha``
    applies); ``class_w``: per-class multipliers (C,) or None. ``loss``: 0-d, or the (N, S) map
    in ACC for ``"none"``; ``coef`` as in :func:`sigmoid_forward`. ``o``: ``SoftmaxFocalOptions``.
    """
    N, C, S = x.shape
    programs, n_blocks_s, BLOCK_C, BLOCK_S, num_warps = _softmax_grid(x)
    loss, part, coef = _buffers(x, (N, S), programs, o)
    stats = torch.empty(softmax_stats_shape(N, C, S, o), device=x.device, dtype=acc_dtype(x.dtype))
    assert stats.numel() == 0 or BLOCK_C < C
    none = o.reduction == "none"
    with device_guard(x):
        _focal_softmax_fwd_kernel[(programs,)](
            x_ptr=x, y_ptr=y, loss_ptr=loss if none else None, part_ptr=part,
            stat_ptr=stats if stats.numel() else None, STORE_STATS=stats.numel() > 0, C=C, S=S,
            n_blocks_s=n_blocks_s, **_named("x", x.stride()), stride_yn=y.stride(0), stride_ys=y.stride(1),
            **_softmax_scalars(alpha_w, class_w, o), STORE_LOSS=none, STORE_PARTIALS=not none, ACC=tl_acc(x.dtype),
            BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, num_warps=num_warps)
        if not none:
            _finish(x, part, loss, coef, o)
    return loss, coef, stats


def softmax_backward(g, coef, stats, x, y, alpha_w, class_w, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: 0-d, or the (N, S) map for ``"none"``."""
    dx = torch.empty_like(x)
    programs, n_blocks_s, BLOCK_C, BLOCK_S, num_warps = _softmax_grid(x)
    g_map = o.reduction == "none"
    gs = g.stride() if g_map else (0, 0)
    with device_guard(x):
        _focal_softmax_bwd_kernel[(programs,)](
            x_ptr=x, y_ptr=y, g_ptr=g, coef_ptr=coef if coef.numel() else None, dx_ptr=dx,
            stat_ptr=stats if stats.numel() else None, HAS_STATS=stats.numel() > 0,
            C=x.shape[1], S=x.shape[2], n_blocks_s=n_blocks_s, **_named("x", x.stride()), stride_yn=y.stride(0),
            stride_ys=y.stride(1), stride_gn=gs[0], stride_gs=gs[1], **_named("d", dx.stride()),
            **_softmax_scalars(alpha_w, class_w, o), HAS_COEF=coef.numel() > 0, G_IS_MAP=g_map, ACC=tl_acc(x.dtype),
            ONE_CHUNK=x.shape[1] <= BLOCK_C, BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, num_warps=num_warps)
    return dx


def _aot_variants():
    specs = []
    sig_f = {k: "fp32" for k in ("al_hi", "al_lo", "ga_hi", "ga_lo", "ig_hi", "ig_lo", "sc_hi", "sc_lo")}
    soft_f = {k: "fp32" for k in ("al_hi", "al_lo", "ga_hi", "ga_lo", "sc_hi", "sc_lo")}
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        for probs in (False, True) if dt != "bf16" else (False,):
            flags = dict(HAS_ALPHA=True, ALPHA_PER_CLASS=True, HAS_CLASS_WEIGHT=True, HAS_IGNORE=True, LABELS=False,
                         FROM_PROBS=probs, ACC=acc, BLOCK=1024)
            specs.append(aot_spec(_focal_sigmoid_fwd_kernel, dict(flags, STORE_LOSS=True, STORE_PARTIALS=True),
                                  x_ptr=f"*{dt}", t_ptr="*u8", a_ptr=accty, w_ptr="*fp32", loss_ptr=accty,
                                  part_ptr=accty, **sig_f))
            specs.append(aot_spec(_focal_sigmoid_bwd_kernel, dict(flags, HAS_COEF=True, G_IS_MAP=True),
                                  x_ptr=f"*{dt}", t_ptr="*fp32", a_ptr="*fp32", w_ptr=accty, g_ptr=accty,
                                  coef_ptr=accty, dx_ptr=f"*{dt}", **sig_f))
            sflags = dict(ALPHA_PER_CLASS=True, HAS_CLASS_WEIGHT=True, HAS_IGNORE=True, FROM_PROBS=probs, ACC=acc,
                          BLOCK_C=16, BLOCK_S=128)
            for stats in (False, True) if not probs else (False,):
                specs.append(aot_spec(_focal_softmax_fwd_kernel, dict(sflags, STORE_LOSS=True, STORE_PARTIALS=True,
                                                                      STORE_STATS=stats),
                                      x_ptr=f"*{dt}", y_ptr="*i64", a_ptr=accty, w_ptr="*i64", loss_ptr=accty,
                                      part_ptr=accty, stat_ptr=accty, **soft_f))
            for one_chunk, stats in ((not probs, False), (False, True)) if not probs else ((False, False),):
                specs.append(aot_spec(_focal_softmax_bwd_kernel, dict(sflags, HAS_COEF=True, G_IS_MAP=True,
                                                                      ONE_CHUNK=one_chunk, HAS_STATS=stats),
                                      x_ptr=f"*{dt}", y_ptr="*u8", a_ptr="*fp32", w_ptr=accty, g_ptr=accty,
                                      coef_ptr=accty, dx_ptr=f"*{dt}", stat_ptr=accty, **soft_f))
        # one-vs-rest on integer labels (int64 and uint8)
        lflags = dict(HAS_ALPHA=True, ALPHA_PER_CLASS=False, HAS_CLASS_WEIGHT=True, HAS_IGNORE=True, LABELS=True,
                      FROM_PROBS=False, ACC=acc, BLOCK=1024)
        specs.append(aot_spec(_focal_sigmoid_fwd_kernel, dict(lflags, STORE_LOSS=False, STORE_PARTIALS=True),
                              x_ptr=f"*{dt}", t_ptr="*i64", w_ptr=accty, part_ptr=accty, **sig_f))
        specs.append(aot_spec(_focal_sigmoid_bwd_kernel, dict(lflags, HAS_COEF=True, G_IS_MAP=False),
                              x_ptr=f"*{dt}", t_ptr="*u8", w_ptr=accty, g_ptr=accty, coef_ptr=accty,
                              dx_ptr=f"*{dt}", **sig_f))
        for mean in (True, False) if dt == "fp32" else (True,):
            specs.append(aot_spec(_focal_finish_kernel, dict(MEAN=mean, ACC=acc, BLOCK=FINISH_BLOCK),
                                  part_ptr=accty, loss_ptr=accty, coef_ptr=accty))
    # the common fast path: no ignore, stride-1 pixels, int64 strides (tensors past 2^31 elements)
    big_sig = {f"stride_{a}{b}": "i64" for a in "xtgd" for b in "nc"}
    plain = dict(stride_xs=1, stride_ts=1, HAS_ALPHA=True, ALPHA_PER_CLASS=False, HAS_CLASS_WEIGHT=False,
                 HAS_IGNORE=False, LABELS=False, FROM_PROBS=False, ACC=tl.float32, BLOCK=2048)
    specs.append(aot_spec(_focal_sigmoid_fwd_kernel, dict(plain, STORE_LOSS=False, STORE_PARTIALS=True), S="i64",
                          n_blocks_s="i64", divisible=("S", "stride_xn", "stride_xc", "stride_tn", "stride_tc"),
                          **sig_f, **{k: v for k, v in big_sig.items() if k[7] in "xt"}))
    specs.append(aot_spec(_focal_sigmoid_bwd_kernel, dict(plain, HAS_COEF=True, G_IS_MAP=False, stride_ds=1),
                          S="i64", n_blocks_s="i64", t_ptr="*bf16", x_ptr="*bf16", dx_ptr="*bf16",
                          divisible=("S", "stride_xn", "stride_xc", "stride_dn", "stride_dc"), **sig_f, **big_sig))
    big_soft = {f"stride_{a}": "i64" for a in ("xn", "xc", "yn", "gn", "dn", "dc")}
    splain = dict(stride_xs=1, stride_ys=1, ALPHA_PER_CLASS=False, HAS_CLASS_WEIGHT=False, HAS_IGNORE=True,
                  FROM_PROBS=False, ACC=tl.float32, BLOCK_C=8, BLOCK_S=256)
    specs.append(aot_spec(_focal_softmax_fwd_kernel, dict(splain, STORE_LOSS=False, STORE_PARTIALS=True,
                                                          STORE_STATS=False),
                          y_ptr="*i64", S="i64", n_blocks_s="i64",
                          divisible=("S", "stride_xn", "stride_xc", "stride_yn"), **soft_f,
                          **{k: v for k, v in big_soft.items() if k[7] in "xy"}))
    specs.append(aot_spec(_focal_softmax_bwd_kernel, dict(splain, HAS_COEF=True, G_IS_MAP=False, ONE_CHUNK=True,
                                                          HAS_STATS=False, stride_ds=1),
                          y_ptr="*i64", S="i64", n_blocks_s="i64", x_ptr="*bf16", dx_ptr="*bf16",
                          divisible=("S", "stride_xn", "stride_xc", "stride_dn", "stride_dc"), **soft_f, **big_soft))
    return specs


AOT_SPECS = _aot_variants()
