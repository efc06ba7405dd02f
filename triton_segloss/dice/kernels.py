"""Triton kernels of the Dice family and their launchers (the family's only triton import).

Every loss of the family (Dice, Jaccard, Tversky, generalized Dice, the BCE / CE /
focal combos, the seeds' variants) is a function of five sums per (image n, class c)::

    k = 0  I = sum_s wi * q * u            intersection
    k = 1  P = sum_s wp * q^e              prediction sum (e = 2 when SQUARED)
    k = 2  T = sum_s wp * u^e              target sum
    k = 3  L = sum_s wl * l                the combos' pixel term l (BCE, CE or focal)
    k = 4  n = sum_s valid                 valid pixels (multiclass: valid pixels labelled c)

with p the sigmoid (per channel) or the softmax (over C, from integer labels, in
registers: no one-hot tensor) of the logits, t the target (or [label == c]),
q = p, u = t (SIGNED: q = 2p - 1, u = 2t - 1) and the weights
``om = valid * weight * (LABEL_WEIGHT ? lw0 + (lw1 - lw0) t : 1)``, ``wi = om^W_POW_I``,
``wp = om^W_POW_PT``, ``wl = valid * weight``.

A training step is three launches: the forward kernel writes per-program
partials (n_blocks, 5, N, C); the one-program finisher sums them in a fixed
order (float64), computes the loss and the coefficient table dLoss/d(I, P, L)
(N, C, 3) per unit upstream gradient; the backward kernel reads the table and
the upstream gradient from device memory and applies the chain rule in one
pass over the inputs. Nothing goes through the host.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.dist import all_reduce_sum
from triton_segloss._core.jit import block_for, device_guard, ratio_grad, row_tile, scalar, softplus, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype

from .ops import KINDS, NCOEF, NSUMS, TINY, WEIGHT_TYPES, class_positions, class_vector, grad_layout, kept, \
    out_shape, pixel_reduction, pixel_scale

PIXEL_CODES = {"none": 0, "xent": 1, "focal": 2, "sfocal": 3}
REDUCTION_CODES = {"mean": 0, "sum": 1, "none": 2}
NSUMS_ = tl.constexpr(NSUMS)
NCOEF_ = tl.constexpr(NCOEF)
TINY_ = tl.constexpr(TINY)


# ---- shared per-pixel prologues ------------------------------------------------------------------

@triton.jit
def _weights(om, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr):
    if W_POW_I == 2:
        wi = om * om
    else:
        wi = om
    if W_POW_PT == 2:
        wp = om * om
    else:
        wp = om
    return wi, wp


@triton.jit
def _sigmoid_pixel(x_ptr, t_ptr, w_ptr, n, c, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc,
                   stride_ts, stride_wn, stride_wc, stride_ws, ig_hi, ig_lo, lw0_hi, lw0_lo, lw1_hi, lw1_lo,
                   FROM_LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
                   LABEL_WEIGHT: tl.constexpr, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr, ACC: tl.constexpr):
    """(x, t, valid, wl, wi, wp, p, pn) of BLOCK pixels of one (n, c) row; pn = 1 - p without cancellation."""
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != scalar(ig_hi, ig_lo, ACC))
    t = tl.where(valid, t, 0.0)
    wl = valid.to(ACC)
    if HAS_WEIGHT:
        wl = wl * tl.load(w_ptr + n * stride_wn + c * stride_wc + s * stride_ws, mask=mask, other=0.0).to(ACC)
    om = wl
    if LABEL_WEIGHT:
        lw0 = scalar(lw0_hi, lw0_lo, ACC)
        om = om * (lw0 + (scalar(lw1_hi, lw1_lo, ACC) - lw0) * t)
    wi, wp = _weights(om, W_POW_I, W_POW_PT)
    if FROM_LOGITS:
        e = tl.exp(-tl.abs(x))
        p = tl.where(x >= 0, 1.0, e) / (1.0 + e)
        pn = tl.where(x >= 0, e, 1.0) / (1.0 + e)
    else:
        p = x
        pn = 1.0 - x
    return x, t, valid, wl, wi, wp, p, pn


@triton.jit
def _softmax_pixel(x_ptr, y_ptr, w_ptr, n, cls, s, cmask, smask, C, stride_xn, stride_xc, stride_xs, stride_yn,
                   stride_ys, stride_wn, stride_wc, stride_ws, ignore_index, lw0_hi, lw0_lo, lw1_hi, lw1_lo,
                   FROM_LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
                   LABEL_WEIGHT: tl.constexpr, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr, ACC: tl.constexpr):
    """A (C_PAD, BLOCK) tile of one image: (x, live, hit, t, wl, wi, wp, p, mx, e, z).

    Labels outside [0, C) (possible only with value checks off) are skipped like ignored
    pixels: in no sum, zero gradient. t[c, s] = [y_s == c] exists only as a register mask.
    """
    m2 = cmask[:, None] & smask[None, :]
    x = tl.load(x_ptr + n * stride_xn + cls[:, None] * stride_xc + s[None, :] * stride_xs, mask=m2,
                other=0.0).to(ACC)
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    live = cmask[:, None] & valid[None, :]
    hit = (cls[:, None] == y[None, :]) & live
    t = hit.to(ACC)
    wl = live.to(ACC)
    if HAS_WEIGHT:
        wl = wl * tl.load(w_ptr + n * stride_wn + cls[:, None] * stride_wc + s[None, :] * stride_ws, mask=m2,
                          other=0.0).to(ACC)
    om = wl
    if LABEL_WEIGHT:
        lw0 = scalar(lw0_hi, lw0_lo, ACC)
        om = om * (lw0 + (scalar(lw1_hi, lw1_lo, ACC) - lw0) * t)
    wi, wp = _weights(om, W_POW_I, W_POW_PT)
    xm = tl.where(cmask[:, None], x, float("-inf"))
    mx = tl.max(xm, axis=0)
    e = tl.exp(xm - mx[None, :])
    z = tl.sum(e, axis=0)
    if FROM_LOGITS:
        p = e / z[None, :]
    else:
        p = x
    return x, live, hit, t, wl, wi, wp, p, mx, e, z


@triton.jit
def _bce_target(t, c, pb_ptr, stride_pb, pb_hi, pb_lo, ls_hi, ls_lo, HAS_POS_W: tl.constexpr, ACC: tl.constexpr):
    """(s, pw): the smoothed BCE target t (1 - ls) + ls / 2 and the positive weight of channel c."""
    ls = scalar(ls_hi, ls_lo, ACC)
    if HAS_POS_W:
        pb = tl.load(pb_ptr + c * stride_pb).to(ACC)
    else:
        pb = scalar(pb_hi, pb_lo, ACC)
    return t * (1.0 - ls) + 0.5 * ls, pb


@triton.jit
def _sigmoid_focal(ce, t, p, pn, fa_hi, fa_lo, fg_hi, fg_lo, FOCAL_ALPHA: tl.constexpr, ACC: tl.constexpr):
    """torchvision's sigmoid focal term alpha_t ce d^gamma, d = 1 - p_t = t (1 - p) + (1 - t) p."""
    d = t * pn + (1.0 - t) * p
    l = ce * tl.exp(scalar(fg_hi, fg_lo, ACC) * tl.log(tl.maximum(d, 1e-30)))
    if FOCAL_ALPHA:
        a = scalar(fa_hi, fa_lo, ACC)
        l = l * ((1.0 - a) + (2.0 * a - 1.0) * t)
    return l


@triton.jit
def _sigmoid_focal_grad(x, t, p, pn, fa_hi, fa_lo, fg_hi, fg_lo, FOCAL_ALPHA: tl.constexpr, ACC: tl.constexpr):
    """d/dx of :func:`_sigmoid_focal`: alpha_t [(p - t) d^g + ce g d^g (1 - 2t) p (1 - p) / d]."""
    ce = softplus(x) - x * t
    d = t * pn + (1.0 - t) * p
    dc = tl.maximum(d, 1e-30)
    gamma = scalar(fg_hi, fg_lo, ACC)
    mod = tl.exp(gamma * tl.log(dc))
    term = (p - t) * mod + ce * gamma * mod * (1.0 - 2.0 * t) * (p * pn / dc)
    if FOCAL_ALPHA:
        al = scalar(fa_hi, fa_lo, ACC)
        term = term * ((1.0 - al) + (2.0 * al - 1.0) * t)
    return term


@triton.jit
def _signed(p, t, SIGNED: tl.constexpr):
    if SIGNED:
        return 2.0 * p - 1.0, 2.0 * t - 1.0
    else:
        return p, t


# ---- forward: per-program partial sums -----------------------------------------------------------

@triton.jit
def _dice_sigmoid_fwd_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    t_ptr,  # target mask in [0, 1] (or ignore_index), (N, C, S) strided, its own dtype
    w_ptr,  # per-pixel weight, (N, C, S) strided (often stride 0); read only if HAS_WEIGHT
    pb_ptr,  # BCE pos_weight per channel (C,), strided; read only if HAS_POS_W
    part_ptr,  # partials out, contiguous (n_blocks_s, 5, N * C) in ACC
    C, S, NC,
    stride_pb,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    ig_hi, ig_lo,  # ignore_index (fp32 pair)
    lw0_hi, lw0_lo, lw1_hi, lw1_lo,  # label weight at t = 0 and at t = 1 (fp32 pairs)
    fa_hi, fa_lo,  # focal alpha (fp32 pair), if FOCAL_ALPHA
    fg_hi, fg_lo,  # focal gamma (fp32 pair)
    th_hi, th_lo,  # HARD threshold (fp32 pair)
    pb_hi, pb_lo,  # BCE pos_weight, one for every channel (if not HAS_POS_W)
    ls_hi, ls_lo,  # BCE label smoothing
    FROM_LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr, SQUARED: tl.constexpr, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr, FOCAL_ALPHA: tl.constexpr, HARD: tl.constexpr, HAS_POS_W: tl.constexpr,
    SOFT_LABEL: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """Sigmoid per channel; one program sums BLOCK pixels of one (n, c) row into the five sums.

    SOFT_LABEL: I = sum w min(p, t) = sum w (p + t - |p - t|) / 2 (MONAI's soft_label, smp's
    intersection), equal to sum w p t for 0/1 targets.

    p = 1 / (1 + e^-x); with sp(x) = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|) (no overflow,
    no cancellation) the pixel terms are
        PIXEL 1 (BCE):    l = pw s sp(-x) + (1 - s) sp(x) = (1 + (pw - 1) s) sp(x) - pw s x,
                          s = t (1 - ls) + ls / 2 (label smoothing), pw the positive weight
        PIXEL 2 (focal):  l = alpha_t (sp(x) - x t) d^gamma,  d = 1 - p_t = t (1 - p) + (1 - t) p,
                          alpha_t = alpha t + (1 - alpha)(1 - t) (1 if not FOCAL_ALPHA; torchvision's)
    HARD (a metric): p -> [p > threshold].
    """
    pid = tl.program_id(0).to(tl.int64)
    row, n, c, s = row_tile(pid, n_blocks_s, C, BLOCK)
    mask = s < S
    x, t, valid, wl, wi, wp, p, pn = _sigmoid_pixel(
        x_ptr, t_ptr, w_ptr, n, c, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
        stride_wn, stride_wc, stride_ws, ig_hi, ig_lo, lw0_hi, lw0_lo, lw1_hi, lw1_lo,
        FROM_LOGITS, HAS_WEIGHT, HAS_IGNORE, LABEL_WEIGHT, W_POW_I, W_POW_PT, ACC)
    if HARD:
        p = (p > scalar(th_hi, th_lo, ACC)).to(ACC)
    q, u = _signed(p, t, SIGNED)
    if SOFT_LABEL:
        i_sum = tl.sum(wi * tl.minimum(q, u), axis=0)
    else:
        i_sum = tl.sum(wi * q * u, axis=0)
    if SQUARED:
        p_sum = tl.sum(wp * q * q, axis=0)
        t_sum = tl.sum(wp * u * u, axis=0)
    else:
        p_sum = tl.sum(wp * q, axis=0)
        t_sum = tl.sum(wp * u, axis=0)
    if PIXEL == 0:
        l_sum = tl.full([], 0.0, ACC)
    else:
        if PIXEL == 1:
            sm, pb = _bce_target(t, c, pb_ptr, stride_pb, pb_hi, pb_lo, ls_hi, ls_lo, HAS_POS_W, ACC)
            l_sum = tl.sum(wl * ((1.0 + (pb - 1.0) * sm) * softplus(x) - pb * sm * x), axis=0)
        else:
            ce = softplus(x) - x * t
            l_sum = tl.sum(wl * _sigmoid_focal(ce, t, p, pn, fa_hi, fa_lo, fg_hi, fg_lo, FOCAL_ALPHA, ACC), axis=0)
    out = part_ptr + (pid % n_blocks_s) * NSUMS_ * NC + row
    tl.store(out, i_sum)
    tl.store(out + NC, p_sum)
    tl.store(out + 2 * NC, t_sum)
    tl.store(out + 3 * NC, l_sum)
    tl.store(out + 4 * NC, tl.sum(valid.to(ACC), axis=0))



@triton.jit
def _dice_softmax_fwd_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    w_ptr,  # per-pixel weight, (N, C, S) strided; read only if HAS_WEIGHT
    part_ptr,  # partials out, contiguous (n_blocks_s, 5, N, C) in ACC
    N, C, S,
    n_blocks_s,  # programs per image
    blocks_per_prog,  # pixel blocks of BLOCK that one program sums (consecutive)
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_wn, stride_wc, stride_ws,
    ignore_index,  # the ignored label (if HAS_IGNORE)
    lw0_hi, lw0_lo, lw1_hi, lw1_lo,  # label weight at t = 0 and at t = 1 (fp32 pairs)
    fg_hi, fg_lo,  # focal gamma (fp32 pair)
    fa_hi, fa_lo,  # sigmoid focal alpha (PIXEL 3, if FOCAL_ALPHA)
    ls_hi, ls_lo,  # CE label smoothing eps (PIXEL 1, if LABEL_SMOOTH)
    FROM_LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr, SQUARED: tl.constexpr, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr, FOCAL_ALPHA: tl.constexpr, LABEL_SMOOTH: tl.constexpr, ACC: tl.constexpr,
    C_PAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Softmax over C in registers; one program sums ``blocks_per_prog`` consecutive (C_PAD, BLOCK)
    tiles of one image into one row of partials (the five [C_PAD] sums stay in registers across the
    tiles, added in a fixed order), so the 5 C partials it writes amortise over blocks_per_prog
    BLOCK pixels (see ``_tile_for`` for the choice of the tile and of the count).

    With lse = log sum_c e^x_c, log p_y = x_y - lse and v = 1 - p_y = sum_{c != y} p_c
    (no cancellation):
        PIXEL 1 (CE):     l = -log p_y
                          LABEL_SMOOTH: (1 - eps) (-log p_y) in the label's class, plus
                          eps / C (lse - x_c) in every class c (torch's label smoothing)
        PIXEL 2 (focal):  l = -v^gamma log p_y
        PIXEL 3 (sigmoid focal per channel, t_c = [y = c]): l_c = alpha_t ce(x_c, t_c) d_c^gamma, in class c
    The pixel term (PIXEL 1, 2) lands in the label's class, L[c] = sum_{y_s = c} w[y_s, s] l_s, so the
    per-class weights (CE ``weight``, focal ``alpha``) apply in the finisher.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    blk = pid % n_blocks_s
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    i_acc = tl.zeros([C_PAD], dtype=ACC)
    p_acc = tl.zeros([C_PAD], dtype=ACC)
    t_acc = tl.zeros([C_PAD], dtype=ACC)
    l_acc = tl.zeros([C_PAD], dtype=ACC)
    k_acc = tl.zeros([C_PAD], dtype=ACC)
    for j in range(blocks_per_prog):
        s = (blk * blocks_per_prog + j) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        smask = s < S
        x, live, hit, t, wl, wi, wp, p, mx, e, z = _softmax_pixel(
            x_ptr, y_ptr, w_ptr, n, cls, s, cmask, smask, C, stride_xn, stride_xc, stride_xs, stride_yn,
            stride_ys, stride_wn, stride_wc, stride_ws, ignore_index, lw0_hi, lw0_lo, lw1_hi, lw1_lo,
            FROM_LOGITS, HAS_WEIGHT, HAS_IGNORE, LABEL_WEIGHT, W_POW_I, W_POW_PT, ACC)
        q, u = _signed(p, t, SIGNED)
        i_acc += tl.sum(wi * q * u, axis=1)
        if SQUARED:
            p_acc += tl.sum(wp * q * q, axis=1)
            t_acc += tl.sum(wp * u * u, axis=1)
        else:
            p_acc += tl.sum(wp * q, axis=1)
            t_acc += tl.sum(wp * u, axis=1)
        k_acc += tl.sum(t, axis=1)
        if PIXEL == 3:
            e1 = tl.exp(-tl.abs(x))
            sp = tl.where(x >= 0, 1.0, e1) / (1.0 + e1)
            sn = tl.where(x >= 0, e1, 1.0) / (1.0 + e1)
            lf = _sigmoid_focal(softplus(x) - x * t, t, sp, sn, fa_hi, fa_lo, fg_hi, fg_lo, FOCAL_ALPHA, ACC)
            l_acc += tl.sum(wl * lf, axis=1)
        elif PIXEL != 0:
            w_y = tl.sum(tl.where(hit, wl, 0.0), axis=0)
            logp = tl.sum(tl.where(hit, x, 0.0), axis=0) - mx - tl.log(z)
            if PIXEL == 1:
                l = -logp
            else:
                v = tl.sum(tl.where(hit, 0.0, e), axis=0) / z
                l = -tl.exp(scalar(fg_hi, fg_lo, ACC) * tl.log(tl.maximum(v, 1e-30))) * logp
            l_sum = tl.sum(tl.where(hit, (w_y * l)[None, :], 0.0), axis=1)
            if PIXEL == 1 and LABEL_SMOOTH:
                eps = scalar(ls_hi, ls_lo, ACC)
                lse = mx + tl.log(z)
                l_sum = (1.0 - eps) * l_sum + (eps / C) * tl.sum(
                    tl.where(live, w_y[None, :] * (lse[None, :] - x), 0.0), axis=1)
            l_acc += l_sum
    nc = N.to(tl.int64) * C
    out = part_ptr + blk * (NSUMS_ * nc) + n * C + cls
    tl.store(out, i_acc, mask=cmask)
    tl.store(out + nc, p_acc, mask=cmask)
    tl.store(out + 2 * nc, t_acc, mask=cmask)
    tl.store(out + 3 * nc, l_acc, mask=cmask)
    tl.store(out + 4 * nc, k_acc, mask=cmask)


# ---- the finisher: one program, every loss of the family ------------------------------------------

@triton.jit
def _row_sums(part_ptr, n0, n1, nc, C, n_blocks, cls, cmask, C_PAD: tl.constexpr):
    """I, P, T, L, n of classes ``cls`` summed over images [n0, n1) and every block, in float64,
    in a fixed order (image-major, then block)."""
    i_s = tl.zeros([C_PAD], dtype=tl.float64)
    p_s = tl.zeros([C_PAD], dtype=tl.float64)
    t_s = tl.zeros([C_PAD], dtype=tl.float64)
    l_s = tl.zeros([C_PAD], dtype=tl.float64)
    k_s = tl.zeros([C_PAD], dtype=tl.float64)
    for n in range(n0, n1):
        for b in range(n_blocks):
            ptr = part_ptr + b * (NSUMS_ * nc) + n * C + cls
            i_s += tl.load(ptr, mask=cmask, other=0.0).to(tl.float64)
            p_s += tl.load(ptr + nc, mask=cmask, other=0.0).to(tl.float64)
            t_s += tl.load(ptr + 2 * nc, mask=cmask, other=0.0).to(tl.float64)
            l_s += tl.load(ptr + 3 * nc, mask=cmask, other=0.0).to(tl.float64)
            k_s += tl.load(ptr + 4 * nc, mask=cmask, other=0.0).to(tl.float64)
    return i_s, p_s, t_s, l_s, k_s


@triton.jit
def _loss_of(s, eps, gamma, LOSS: tl.constexpr):
    """(loss, d loss / d score): 0: 1 - s; 1: (1 - s)^gamma (0 with zero gradient at s >= 1);
    2: -log(max(s, max(eps, 1e-30))); 3: the score itself."""
    zero = s * 0.0
    if LOSS == 0:
        l = 1.0 - s
        dl = zero - 1.0
    elif LOSS == 1:
        d = 1.0 - s
        pos = d > 0
        ds = tl.where(pos, d, 1.0)
        pw = tl.exp(gamma * tl.log(ds))
        l = tl.where(pos, pw, 0.0)
        dl = tl.where(pos, -gamma * pw / ds, 0.0)
    elif LOSS == 2:
        cl = tl.maximum(eps, 1e-30)
        sc = tl.maximum(s, cl)
        l = -tl.log(sc)
        dl = tl.where(s >= cl, -1.0 / sc, 0.0)
    else:
        l = s
        dl = zero + 1.0
    nan = s != s  # NaN in, NaN out (the clamps and masks above would hide it)
    return tl.where(nan, s, l), tl.where(nan, s, dl)


@triton.jit
def _score(i, p, t, nv, sn, sd, eps, ta, tb, KIND: tl.constexpr):
    """(score, d score / d I, d score / d P) of KIND 0-2 (ratios, see the finisher) or 4 (MCC):

        TP = I + eps, FP = P - I + eps, FN = T - I + eps, TN = n - P - T + I + eps   (smp's MCCLoss)
        mcc = (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))
        d mcc / dI = (TP + TN + FP + FN) / D,
        d mcc / dP = -(TP + FN) / D - mcc / 2 (1 / (TP + FP) - 1 / (TN + FN))
    (the product under the root depends on P only: TP + FP = P + 2 eps, TN + FN = n - P + 2 eps);
    mcc = 0 with zero gradient where the product is 0."""
    if KIND == 4:
        tp = i + eps
        fp = p - i + eps
        fn = t - i + eps
        tn = nv - p - t + i + eps
        a = tp + fp
        dd = tn + fn
        prod = a * (tp + fn) * (tn + fp) * dd
        ok = prod > 0
        den = tl.sqrt(tl.where(ok, prod, 1.0))
        sc = tl.where(ok, (tp * tn - fp * fn) / den, 0.0)
        ds_i = tl.where(ok, (tp + tn + fp + fn) / den, 0.0)
        ds_p = tl.where(ok, -(tp + fn) / den - 0.5 * sc * (1.0 / tl.where(ok, a, 1.0) - 1.0 / tl.where(ok, dd, 1.0)),
                        0.0)
        bad = i + p + t
        nan = bad != bad
        return tl.where(nan, bad, sc), tl.where(nan, bad, ds_i), tl.where(nan, bad, ds_p)
    else:
        if KIND == 0:
            num = 2.0 * i + sn
            den = p + t + sd
            a_i = 2.0
            b_i = 0.0
            b_p = 1.0
        elif KIND == 1:
            num = i + sn
            den = p + t - i + sd
            a_i = 1.0
            b_i = -1.0
            b_p = 1.0
        else:
            num = i + sn
            den = i + ta * (p - i) + tb * (t - i) + sd
            a_i = 1.0
            b_i = 1.0 - ta - tb
            b_p = ta
        sc, ds_num, ds_den = ratio_grad(num, den, p + t, eps)
        return sc, ds_num * a_i + ds_den * b_i, ds_den * b_p


@triton.jit
def _dice_finish_kernel(
    part_ptr,  # per-program partials, contiguous (n_blocks, 5, N, C) in ACC
    cw_ptr,  # class weights (C,), any real dtype, strided; read only if HAS_CW
    pw_ptr,  # pixel-term class weights (C,): CE weight or softmax focal alpha; read only if HAS_PW
    pos_ptr,  # int32 (C,): place of class c among the kept classes, -1 if left out; read only if HAS_CLASSES
    out_ptr,  # loss out, ACC: 0-d, the "none" table, or [pixel, region...] if SPLIT
    coef_ptr,  # out: (N, C, 3) ACC: dOut/dI, dOut/dP, dOut/dL per unit upstream gradient
    N, C, n_blocks,
    KC,  # number of kept classes
    stride_cw, stride_pw,
    sn_hi, sn_lo, sd_hi, sd_lo,  # smooth of the numerator and of the denominator (fp32 pairs)
    eps_hi, eps_lo,  # the denominator's lower clamp
    ta_hi, ta_lo, tb_hi, tb_lo,  # Tversky alpha (false positives), beta (false negatives)
    tg_hi, tg_lo,  # focal Tversky gamma
    lr_hi, lr_lo, lp_hi, lp_lo,  # lambda of the region term and of the pixel term
    ps_hi, ps_lo,  # a scale of the pixel term (softmax focal with one alpha for every class)
    KIND: tl.constexpr, LOSS: tl.constexpr, WEIGHT_TYPE: tl.constexpr, PER_IMAGE: tl.constexpr,
    REDUCTION: tl.constexpr, PIXEL: tl.constexpr, PIX_REDUCTION: tl.constexpr, PW_COUNT: tl.constexpr,
    SPLIT: tl.constexpr, HAS_CW: tl.constexpr, HAS_PW: tl.constexpr, HAS_CLASSES: tl.constexpr,
    ZERO_ABSENT: tl.constexpr, MICRO: tl.constexpr, NORM_CW: tl.constexpr, MC_COUNT: tl.constexpr,
    ACC: tl.constexpr, C_PAD: tl.constexpr,
):
    """One program. Rows r are images (PER_IMAGE) or the batch pooled; I, P, T, L, n of a row are the
    fixed-order float64 sums of its partials. Per (r, c), with sn, sd the smooths:

        KIND 0 dice:     score = (2 I + sn) / max(P + T + sd, eps)
        KIND 1 jaccard:  score = (I + sn) / max(P + T - I + sd, eps)
        KIND 2 tversky:  score = (I + sn) / max(I + a (P - I) + b (T - I) + sd, eps)
        KIND 4 mcc:      Matthews correlation of the soft counts (see _score); n = valid pixels
                         (MC_COUNT: every class's count, the row's valid pixels)
        score = 1 where P + T == 0 (an empty class: loss 0, zero gradient), 0 where the clamped den is 0
        ZERO_ABSENT: loss 0 and zero gradient where T == 0.
        MICRO: I, P, T, n are first pooled over the kept classes, sum_c cw_c X_c: one score per row.
        loss = 1 - score | (1 - score)^gamma | -log(max(score, eps)) | score         (LOSS 0..3)
    KIND 3 (generalized, one score per row): g_c = cw_c / T_c^2 (1 / T_c, 1), an absent class taking
    the row's largest finite weight (MONAI); score = (2 sum g I + sn) / max(sum g (P + T) + sd, eps).
    Region reduction over rows x kept classes with class weights cw: none: cw l; sum: sum cw l;
    mean: sum cw l / (R sum cw) (NORM_CW; else / (R KC)). Pixel term (PIXEL): sum pw L over (n, c) divided by sum pwc n
    (mean; pwc = pw if PW_COUNT else 1), summed, or per image (none). Output:
    lambda_p pixel + lambda_r region, per image for none; SPLIT: [pixel, region...].

    Gradient: d score / d num = 1 / den, d score / d den = -score / den (ratio rule), through
    num and den linear in I and P (T and n do not depend on the logits); times d loss / d score
    and the reduction's weight. Each (n, c) feeds one output element, so coef[n, c] is the
    derivative of that element; pooled rows give every image of the batch the row's coefficient.
    """
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    nc = N.to(tl.int64) * C
    if HAS_CLASSES:
        pos = tl.load(pos_ptr + cls, mask=cmask, other=-1).to(tl.int64)
        sel = pos >= 0
    else:
        pos = cls
        sel = cmask
    if HAS_CW:
        cw = tl.load(cw_ptr + cls * stride_cw, mask=sel, other=0).to(tl.float64)
    else:
        cw = sel.to(tl.float64)
    cw_sum = tl.sum(cw, axis=0)
    pscale = scalar(ps_hi, ps_lo, tl.float64)
    if HAS_PW:
        pw = tl.load(pw_ptr + cls * stride_pw, mask=cmask, other=0).to(tl.float64) * pscale
    else:
        pw = tl.where(cmask, pscale, 0.0)
    if PW_COUNT:
        pwc = pw
    else:
        pwc = cmask.to(tl.float64)
    sn = scalar(sn_hi, sn_lo, tl.float64)
    sd = scalar(sd_hi, sd_lo, tl.float64)
    eps = scalar(eps_hi, eps_lo, tl.float64)
    lam_r = scalar(lr_hi, lr_lo, tl.float64)
    lam_p = scalar(lp_hi, lp_lo, tl.float64)
    if PER_IMAGE:
        R = N
    else:
        R = N * 0 + 1
    rows_f = R.to(tl.float64)
    if SPLIT:
        OFF = 1
    else:
        OFF = 0

    # the pixel term's denominator over the whole batch ("mean")
    den_p = tl.full([], 1.0, tl.float64)
    if PIXEL:
        if PIX_REDUCTION == 0:
            k_all = tl.zeros([C_PAD], dtype=tl.float64)
            for n in range(N):
                for b in range(n_blocks):
                    k_all += tl.load(part_ptr + b * (NSUMS_ * nc) + 4 * nc + n * C + cls, mask=cmask,
                                     other=0.0).to(tl.float64)
            den_p = tl.maximum(tl.sum(pwc * k_all, axis=0), TINY_)

    reg_acc = tl.full([], 0.0, tl.float64)
    pix_acc = tl.full([], 0.0, tl.float64)
    for r in range(R):
        if PER_IMAGE:
            n0 = r
            n1 = r + 1
        else:
            n0 = r * 0
            n1 = N
        i_s, p_s, t_s, l_s, k_s = _row_sums(part_ptr, n0, n1, nc, C, n_blocks, cls, cmask, C_PAD)

        # ---- region term: values and coefficients per unit of the row's (class's) loss
        if KIND == 3:
            if WEIGHT_TYPE == 2:  # uniform weights are finite everywhere
                finite = sel
                absent = cls < 0
            else:  # 1 / T^2, 1 / T: infinite for a class absent from the row's target
                finite = sel & (t_s != 0)
                absent = sel & (t_s == 0)
            safe = tl.where(finite, t_s, 1.0)
            if WEIGHT_TYPE == 0:
                gw = 1.0 / (safe * safe)
            elif WEIGHT_TYPE == 1:
                gw = 1.0 / safe
            else:
                gw = safe * 0.0 + 1.0
            gw = tl.where(finite, gw, 0.0)
            gw = tl.where(absent, tl.max(gw, axis=0), gw) * cw
            den0 = tl.sum(gw * (p_s + t_s), axis=0)
            s, ds_num, ds_den = ratio_grad(2.0 * tl.sum(gw * i_s, axis=0) + sn, den0 + sd, den0, eps)
            l, dl = _loss_of(s, eps, scalar(tg_hi, tg_lo, tl.float64), LOSS)
            if REDUCTION == 0:
                mult = 1.0 / rows_f
            else:
                mult = rows_f * 0.0 + 1.0
            reg_row = l  # the row's region value ("none")
            reg_acc += mult * l
            c_i = (lam_r * mult * dl * ds_num * 2.0) * gw
            c_p = (lam_r * mult * dl * ds_den) * gw
            if REDUCTION == 2:
                if SPLIT or not PIXEL:
                    tl.store(out_ptr + OFF + r, l.to(ACC))
        else:
            ta = scalar(ta_hi, ta_lo, tl.float64)
            tb = scalar(tb_hi, tb_lo, tl.float64)
            if MC_COUNT:
                nv = tl.sum(k_s, axis=0) + k_s * 0.0
            else:
                nv = k_s
            if MICRO:
                s, ds_i, ds_p = _score(tl.sum(cw * i_s, axis=0), tl.sum(cw * p_s, axis=0), tl.sum(cw * t_s, axis=0),
                                       tl.sum(cw * nv, axis=0), sn, sd, eps, ta, tb, KIND)
                l, dl = _loss_of(s, eps, scalar(tg_hi, tg_lo, tl.float64), LOSS)
                if ZERO_ABSENT:
                    absent = tl.sum(cw * t_s, axis=0) == 0
                    l = tl.where(absent, 0.0, l)
                    dl = tl.where(absent, 0.0, dl)
                if REDUCTION == 0:
                    mult = 1.0 / rows_f
                else:
                    mult = rows_f * 0.0 + 1.0
                reg_row = l
                reg_acc += mult * l
                c_i = (lam_r * mult * dl * ds_i) * cw
                c_p = (lam_r * mult * dl * ds_p) * cw
                if REDUCTION == 2:
                    if SPLIT or not PIXEL:
                        tl.store(out_ptr + OFF + r, l.to(ACC))
            else:
                s, ds_i, ds_p = _score(i_s, p_s, t_s, nv, sn, sd, eps, ta, tb, KIND)
                l, dl = _loss_of(s, eps, scalar(tg_hi, tg_lo, tl.float64), LOSS)
                if ZERO_ABSENT:
                    absent = t_s == 0
                    l = tl.where(absent, 0.0, l)
                    dl = tl.where(absent, 0.0, dl)
                l = tl.where(sel, l, 0.0)
                if NORM_CW:
                    cdiv = cw_sum
                else:
                    cdiv = tl.full([], 0.0, tl.float64) + KC
                if REDUCTION == 0:
                    mult = cw / tl.maximum(rows_f * cdiv, TINY_)
                elif REDUCTION == 1:
                    mult = cw
                else:
                    if SPLIT or not PIXEL:
                        mult = cw
                        tl.store(out_ptr + OFF + r * KC + pos, (cw * l).to(ACC), mask=sel)
                    else:  # a combo per image: the row's class average
                        mult = cw / tl.maximum(cdiv, TINY_)
                reg_row = tl.sum(mult * l, axis=0)
                reg_acc += reg_row
                c_i = lam_r * mult * dl * ds_i
                c_p = lam_r * mult * dl * ds_p

        # ---- pixel term
        if PIXEL:
            lw = pw * l_s
            if PIX_REDUCTION == 2:
                den_row = tl.maximum(tl.sum(pwc * k_s, axis=0), TINY_)
                pix_row = tl.sum(lw, axis=0) / den_row
                c_l = (lam_p / den_row) * pw
                tl.store(out_ptr + r, (lam_p * pix_row + lam_r * reg_row).to(ACC))
            else:
                pix_acc += tl.sum(lw, axis=0)
                c_l = (lam_p / den_p) * pw
        else:
            c_l = tl.zeros([C_PAD], dtype=tl.float64)

        for n in range(n0, n1):
            ptr = coef_ptr + (n * C + cls) * NCOEF_
            tl.store(ptr, c_i.to(ACC), mask=cmask)
            tl.store(ptr + 1, c_p.to(ACC), mask=cmask)
            tl.store(ptr + 2, c_l.to(ACC), mask=cmask)

    pix = pix_acc
    if PIXEL:
        if PIX_REDUCTION == 0:
            pix = pix_acc / den_p
    if SPLIT:
        tl.store(out_ptr, pix.to(ACC))
        if REDUCTION != 2:
            tl.store(out_ptr + 1, reg_acc.to(ACC))
    elif REDUCTION != 2:
        tl.store(out_ptr, (lam_p * pix + lam_r * reg_acc).to(ACC))



# ---- backward: the chain rule in one pass ------------------------------------------------------

@triton.jit
def _dice_sigmoid_bwd_kernel(
    x_ptr,  # logits (or probabilities), (N, C, S) strided
    t_ptr,  # target, (N, C, S) strided
    w_ptr,  # per-pixel weight (if HAS_WEIGHT)
    coef_ptr,  # (N or 1, C, 3) ACC from the finisher: dLoss/dI, dLoss/dP, dLoss/dL per unit upstream gradient
    g_ptr,  # upstream gradient of the loss, any layout (read at grad_layout's offsets)
    pos_ptr,  # int32 (C,) class places (if HAS_CLASSES)
    pb_ptr,  # BCE pos_weight per channel (C,), strided (if HAS_POS_W)
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    stride_pb,
    stride_coefn,  # 3 C; 0 when one row of coefficients serves every image (sums pooled across ranks)
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    stride_dn, stride_dc, stride_ds,
    g_off_r, g_stride_r, g_stride_c,  # region element of (n, c): g[g_off_r + r g_stride_r + pos(c) g_stride_c]
    g_off_p, g_stride_p,  # pixel element of (n, c): g[g_off_p + n g_stride_p]
    ig_hi, ig_lo, lw0_hi, lw0_lo, lw1_hi, lw1_lo, fa_hi, fa_lo, fg_hi, fg_lo,  # as in forward
    pb_hi, pb_lo, ls_hi, ls_lo,  # as in forward
    FROM_LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr, SQUARED: tl.constexpr, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr, FOCAL_ALPHA: tl.constexpr, PER_IMAGE: tl.constexpr, HAS_CLASSES: tl.constexpr,
    HAS_POS_W: tl.constexpr, SOFT_LABEL: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """With gI, gP, gL = coef[n, c] times the upstream gradient they feed, and m = dq/dp (2 if SIGNED):

        a   = dLoss/dp = m (gI wi u + gP wp (SQUARED ? 2 q : 1))
              (SOFT_LABEL: u -> d min(q, u) / dq = (1 - sign(q - u)) / 2: 1 below t, 1/2 at p = t)
        dx  = a p (1 - p)                                               (FROM_LOGITS; else dx = a)
            + gL wl ((1 + (pw - 1) s) p - pw s)                          (PIXEL 1: dBCE/dx, s smoothed)
            + gL wl alpha_t [(p - t) d^g + ce g d^g (1 - 2t) p (1 - p) / d]   (PIXEL 2)
    where p (1 - p) / d <= 1 (d is a convex combination of p and 1 - p): nothing overflows.
    Ignored pixels get dx = 0.
    """
    pid = tl.program_id(0).to(tl.int64)
    row, n, c, s = row_tile(pid, n_blocks_s, C, BLOCK)
    mask = s < S
    x, t, valid, wl, wi, wp, p, pn = _sigmoid_pixel(
        x_ptr, t_ptr, w_ptr, n, c, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
        stride_wn, stride_wc, stride_ws, ig_hi, ig_lo, lw0_hi, lw0_lo, lw1_hi, lw1_lo,
        FROM_LOGITS, HAS_WEIGHT, HAS_IGNORE, LABEL_WEIGHT, W_POW_I, W_POW_PT, ACC)
    if PER_IMAGE:
        r = n
    else:
        r = n * 0
    if HAS_CLASSES:
        pos = tl.load(pos_ptr + c).to(tl.int64)
    else:
        pos = c
    g_r = tl.load(g_ptr + g_off_r + r * g_stride_r + pos * g_stride_c, mask=pos >= 0, other=0.0).to(ACC)
    c_ptr = coef_ptr + n * stride_coefn + c * NCOEF_
    g_i = tl.load(c_ptr).to(ACC) * g_r
    g_p = tl.load(c_ptr + 1).to(ACC) * g_r
    q, u = _signed(p, t, SIGNED)
    if SOFT_LABEL:
        u = tl.where(q < u, 1.0, tl.where(q == u, 0.5, 0.0))  # d min(q, u) / dq
    if SQUARED:
        a = g_i * wi * u + g_p * wp * 2.0 * q
    else:
        a = g_i * wi * u + g_p * wp
    if SIGNED:
        a = 2.0 * a
    if FROM_LOGITS:
        dx = a * p * pn
    else:
        dx = a
    if PIXEL != 0:
        g_l = tl.load(c_ptr + 2).to(ACC) * tl.load(g_ptr + g_off_p + n * g_stride_p).to(ACC)
        if PIXEL == 1:
            sm, pb = _bce_target(t, c, pb_ptr, stride_pb, pb_hi, pb_lo, ls_hi, ls_lo, HAS_POS_W, ACC)
            dx += g_l * wl * ((1.0 + (pb - 1.0) * sm) * p - pb * sm)
        else:
            dx += g_l * wl * _sigmoid_focal_grad(x, t, p, pn, fa_hi, fa_lo, fg_hi, fg_lo, FOCAL_ALPHA, ACC)
    dx = tl.where(valid, dx, 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dice_softmax_bwd_kernel(
    x_ptr,  # logits (or probabilities), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    w_ptr,  # per-pixel weight (if HAS_WEIGHT)
    coef_ptr,  # (N or 1, C, 3) ACC from the finisher: dLoss/dI, dLoss/dP, dLoss/dL per unit upstream gradient
    g_ptr,  # upstream gradient of the loss, any layout (read at grad_layout's offsets)
    pos_ptr,  # int32 (C,) class places (if HAS_CLASSES)
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    N, C, S,
    n_blocks_s,
    blocks_per_prog,  # pixel blocks of BLOCK that one program walks (consecutive), as in the forward
    stride_coefn,  # 3 C; 0 when one row of coefficients serves every image (sums pooled across ranks)
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_wn, stride_wc, stride_ws,
    stride_dn, stride_dc, stride_ds,
    g_off_r, g_stride_r, g_stride_c,  # as in the sigmoid backward
    g_off_p, g_stride_p,
    ignore_index, lw0_hi, lw0_lo, lw1_hi, lw1_lo, fg_hi, fg_lo, fa_hi, fa_lo, ls_hi, ls_lo,  # as in forward
    FROM_LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr, SQUARED: tl.constexpr, W_POW_I: tl.constexpr, W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr, FOCAL_ALPHA: tl.constexpr, LABEL_SMOOTH: tl.constexpr, PER_IMAGE: tl.constexpr,
    HAS_CLASSES: tl.constexpr, ACC: tl.constexpr, C_PAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Per pixel, with a_c = dLoss/dp_c = m (gI_c wi_c u_c + gP_c wp_c (SQUARED ? 2 q_c : 1)):

        dx_j = p_j (a_j - sum_c p_c a_c)                      (softmax chain rule; a_j if not FROM_LOGITS)
             + gL_y w_y (p_j - [j = y])                       (PIXEL 1: dCE/dx_j)
               LABEL_SMOOTH: (1 - eps) gL_y w_y (p_j - [j = y]) + eps / C w_y (p_j sum_c gL_c - gL_j)
             + gL_y w_y v^g (1 - g p_y r) (p_j - [j = y])     (PIXEL 2)
             + gL_j w_j d(sigmoid focal)(x_j, [j = y]) / dx_j (PIXEL 3)
    with gI, gP, gL = coef[n, c] times the upstream gradient they feed, v = 1 - p_y and
    r = log(p_y) / v, taken from its series -1 - v/2 - v^2/3 when v < 1e-4 (r -> -1 as
    v -> 0: finite for every gamma >= 0). Ignored (and out-of-range) pixels get dx = 0.
    The coefficients of image n and the upstream gradient are read once per program, which then
    walks ``blocks_per_prog`` consecutive tiles.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    blk = pid % n_blocks_s
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    if PER_IMAGE:
        r = n
    else:
        r = n * 0
    if HAS_CLASSES:
        pos = tl.load(pos_ptr + cls, mask=cmask, other=-1).to(tl.int64)
    else:
        pos = cls
    g_r = tl.load(g_ptr + g_off_r + r * g_stride_r + pos * g_stride_c, mask=cmask & (pos >= 0),
                  other=0.0).to(ACC)
    c_ptr = coef_ptr + n * stride_coefn + cls * NCOEF_
    g_i = tl.load(c_ptr, mask=cmask, other=0.0).to(ACC) * g_r
    g_p = tl.load(c_ptr + 1, mask=cmask, other=0.0).to(ACC) * g_r
    if PIXEL != 0:
        g_l = tl.load(c_ptr + 2, mask=cmask, other=0.0).to(ACC) * tl.load(g_ptr + g_off_p + n * g_stride_p).to(ACC)
    else:
        g_l = g_i * 0.0
    for j in range(blocks_per_prog):
        s = (blk * blocks_per_prog + j) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        smask = s < S
        x, live, hit, t, wl, wi, wp, p, mx, e, z = _softmax_pixel(
            x_ptr, y_ptr, w_ptr, n, cls, s, cmask, smask, C, stride_xn, stride_xc, stride_xs, stride_yn,
            stride_ys, stride_wn, stride_wc, stride_ws, ignore_index, lw0_hi, lw0_lo, lw1_hi, lw1_lo,
            FROM_LOGITS, HAS_WEIGHT, HAS_IGNORE, LABEL_WEIGHT, W_POW_I, W_POW_PT, ACC)
        q, u = _signed(p, t, SIGNED)
        if SQUARED:
            a = g_i[:, None] * wi * u + g_p[:, None] * wp * 2.0 * q
        else:
            a = g_i[:, None] * wi * u + g_p[:, None] * wp
        if SIGNED:
            a = 2.0 * a
        if FROM_LOGITS:
            dx = p * (a - tl.sum(p * a, axis=0)[None, :])
        else:
            dx = a
        if PIXEL == 3:
            e1 = tl.exp(-tl.abs(x))
            sp = tl.where(x >= 0, 1.0, e1) / (1.0 + e1)
            sn = tl.where(x >= 0, e1, 1.0) / (1.0 + e1)
            dx += g_l[:, None] * wl * _sigmoid_focal_grad(x, t, sp, sn, fa_hi, fa_lo, fg_hi, fg_lo, FOCAL_ALPHA,
                                                          ACC)
        elif PIXEL != 0:
            coef = tl.sum(tl.where(hit, g_l[:, None] * wl, 0.0), axis=0)  # gL_y * w_y
            if PIXEL == 2:
                gamma = scalar(fg_hi, fg_lo, ACC)
                v = tl.sum(tl.where(hit, 0.0, e), axis=0) / z
                logp = tl.sum(tl.where(hit, x, 0.0), axis=0) - mx - tl.log(z)
                rr = tl.where(v < 1e-4, -1.0 - v * (0.5 + v / 3.0), logp / tl.maximum(v, 1e-4))
                mod = tl.exp(gamma * tl.log(tl.maximum(v, 1e-30)))
                coef = coef * mod * (1.0 - gamma * (1.0 - v) * rr)
            if PIXEL == 1 and LABEL_SMOOTH:
                eps = scalar(ls_hi, ls_lo, ACC)
                w_y = tl.sum(tl.where(hit, wl, 0.0), axis=0)
                dx += (1.0 - eps) * coef[None, :] * (p - t) + (eps / C) * w_y[None, :] * (
                    tl.sum(g_l, axis=0) * p - g_l[:, None])
            else:
                dx += coef[None, :] * (p - t)
        dx = tl.where(live, dx, 0.0)
        tl.store(dx_ptr + n * stride_dn + cls[:, None] * stride_dc + s[None, :] * stride_ds,
                 dx.to(dx_ptr.dtype.element_ty), mask=cmask[:, None] & smask[None, :])


# ---- launchers (same names and contract as torch_impl.py) --------------------------------------

def _strides(t, k=3):
    return (0,) * k if t is None else tuple(t.stride())


TILE = 2048  # elements of one softmax tile (C_PAD, BLOCK) with fp32 accumulation; fp64 halves it
REGS_PER_THREAD = 8  # 32-bit registers per thread that one tile-sized value takes: sets num_warps
PIX_PER_PROGRAM = 128  # pixels a program walks before it writes its 5 C partials (at most)
PIX_MIN = 64  # ... and at least (as far as the image goes), whatever the program count
MIN_PROGRAMS = 128  # between the two: walk fewer pixels rather than launch fewer programs than this


def _tile_for(c: int, s: int, fp64: bool = False) -> tuple[int, int, int]:
    """(C_PAD, BLOCK, num_warps) for the softmax kernels.

    One pass over the logits: a (C_PAD, BLOCK) tile holds every class of BLOCK pixels, so the
    softmax (max, sum, p) is exact in registers and the logits are read once per kernel. The tile
    has at most TILE elements (TILE / 2 in fp64), and BLOCK shrinks as C grows, down to one pixel
    (C_PAD >= 2048): at C_PAD 256 a tile is 256 x 8, at C_PAD 1024 it is 1024 x 2.
    num_warps = tile * (2 if fp64 else 1) / (32 * REGS_PER_THREAD) (4 to 16), so each tile-sized
    value the kernels keep live (x, e, p, the weights, the chain-rule term, their int64 addresses)
    costs the same few registers a thread whatever C is. With 4096-element tiles (16 per thread)
    the heaviest variants still spilled (backward with every switch on sm_90 at C 150, the
    sigmoid-focal backward at C 1024); at 8 per thread ptxas reports none up to C_PAD 1024 in fp32
    on sm_80 and sm_90 (``python -m bench.dice_large_c --spills``).

    Why not a loop over class chunks with an online max / sum softmax (a fixed BLOCK of 16+ pixels):
    the probabilities need the full sum first, so the chunks of x would be read twice (or held in
    registers: the same pressure), for a gain only in sector use. With BLOCK fp32 pixels per class
    row a warp fetches 4 BLOCK-byte pieces of 32-byte sectors; the rest of each sector is the next
    tiles of the same program's walk (``_softmax_grid``: consecutive blocks), served from L1 / L2,
    not read from DRAM again.
    """
    c_pad = triton.next_power_of_2(c)
    tile = TILE // 2 if fp64 else TILE
    block = max(1, min(1024, tile // c_pad, triton.next_power_of_2(max(s, 1))))
    regs = c_pad * block * (2 if fp64 else 1)
    return c_pad, block, max(4, min(16, regs // (32 * REGS_PER_THREAD)))


def _blocks_per_program(n: int, s: int, block: int) -> int:
    """Pixel blocks one softmax program walks: enough for PIX_PER_PROGRAM pixels, so its 5 C
    partials (and, in the backward, its reads of the 3 C coefficients) cost at most 5 / 128 of the
    (fp32) logit bytes it reads; fewer where that would leave under MIN_PROGRAMS programs (a small
    image is latency-bound: programs in flight count more than bytes), but never under PIX_MIN
    pixels (partials <= 5 / 64 of the logits: at C 150 a program still reads 64 x 150 logits) and
    never more blocks than the image has."""
    nb = triton.cdiv(s, block)
    most = triton.cdiv(PIX_PER_PROGRAM, block)
    least = triton.cdiv(PIX_MIN, block)
    return max(1, min(max(least, min(most, (n * nb) // MIN_PROGRAMS)), nb))


def _pairs(**values):
    out = {}
    for k, v in values.items():
        out[f"{k}_hi"], out[f"{k}_lo"] = split_f64(v)
    return out


def _pixel_args(o):
    """Scalars and switches of the pass over the pixels (forward and backward)."""
    lw0, lw1 = (1.0, 1.0) if o.label_weight is None else o.label_weight
    alpha_on = o.focal_alpha is not None and o.focal_alpha >= 0
    scal = _pairs(lw0=lw0, lw1=lw1, fg=o.focal_gamma)
    flags = dict(FROM_LOGITS=o.from_logits, HAS_IGNORE=o.ignore_index is not None,
                 LABEL_WEIGHT=o.label_weight is not None, SIGNED=o.signed, SQUARED=o.squared, W_POW_I=o.w_pow_i,
                 W_POW_PT=o.w_pow_pt, PIXEL=PIXEL_CODES[o.pixel])
    if o.multiclass:
        alpha_on = alpha_on and o.pixel == "sfocal"  # softmax focal: alpha is a scale, in the finisher
        scal["ignore_index"] = 0 if o.ignore_index is None else int(o.ignore_index)
        scal.update(_pairs(fa=o.focal_alpha if alpha_on else 0.0, ls=o.label_smoothing))
        flags["LABEL_SMOOTH"] = o.pixel == "xent" and o.label_smoothing > 0
    else:
        scal.update(_pairs(ig=o.ignore_index, fa=o.focal_alpha if alpha_on else 0.0, pb=o.pos_weight_value,
                           ls=o.label_smoothing))
        flags["SOFT_LABEL"] = o.soft_label and not o.squared  # squared: (P + T - |p - t|^2) / 2 is sum p t
    flags["FOCAL_ALPHA"] = alpha_on
    return scal, flags


def _sigmoid_grid(x):
    N, C, S = x.shape
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    return N * C * n_blocks_s, n_blocks_s, BLOCK, num_warps


def _softmax_grid(x):
    """(programs, n_blocks_s, C_PAD, BLOCK, blocks_per_prog, num_warps) of the softmax kernels."""
    N, C, S = x.shape
    c_pad, BLOCK, num_warps = _tile_for(C, S, x.dtype == torch.float64)
    bpp = _blocks_per_program(N, S, BLOCK)
    n_blocks_s = triton.cdiv(S, BLOCK * bpp)
    return N * n_blocks_s, n_blocks_s, c_pad, BLOCK, bpp, num_warps


def _xs(x, w):
    d = dict(zip(("stride_xn", "stride_xc", "stride_xs"), x.stride()))
    d.update(zip(("stride_wn", "stride_wc", "stride_ws"), _strides(w)))
    return d


def forward(x, t, w, cw, pw, pb, o):
    """(loss, coef): the loss in its layout (``ops.out_shape``) and the finisher's (N, C, 3)
    coefficient table, both in the accumulation dtype. x: (N, C, S) logits; t: (N, C, S) mask
    or (N, 1, S) labels (multiclass); w: (N, C, S) weight or None; cw, pw, pb (BCE pos_weight):
    (C,) tensors or None."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    scal, flags = _pixel_args(o)
    strides = _xs(x, w)
    with device_guard(x):
        if o.multiclass:
            programs, n_blocks_s, c_pad, BLOCK, bpp, num_warps = _softmax_grid(x)
            part = torch.empty((n_blocks_s, NSUMS, N, C), device=x.device, dtype=acc)
            _dice_softmax_fwd_kernel[(programs,)](
                x_ptr=x, y_ptr=t, w_ptr=w, part_ptr=part, N=N, C=C, S=S, n_blocks_s=n_blocks_s, blocks_per_prog=bpp,
                stride_yn=t.stride(0), stride_ys=t.stride(2), **strides, **scal, **flags,
                HAS_WEIGHT=w is not None, ACC=tl_acc(x.dtype), C_PAD=c_pad, BLOCK=BLOCK, num_warps=num_warps)
        else:
            programs, n_blocks_s, BLOCK, num_warps = _sigmoid_grid(x)
            part = torch.empty((n_blocks_s, NSUMS, N, C), device=x.device, dtype=acc)
            th = split_f64(o.threshold)  # (0, 0) when soft
            _dice_sigmoid_fwd_kernel[(programs,)](
                x_ptr=x, t_ptr=t, w_ptr=w, pb_ptr=pb, part_ptr=part, C=C, S=S, NC=N * C, n_blocks_s=n_blocks_s,
                stride_pb=0 if pb is None else pb.stride(0), HAS_POS_W=pb is not None,
                **dict(zip(("stride_tn", "stride_tc", "stride_ts"), t.stride())), **strides, **scal,
                th_hi=th[0], th_lo=th[1], **flags, HAS_WEIGHT=w is not None, HARD=o.threshold is not None, ACC=tl_acc(x.dtype),
                BLOCK=BLOCK, num_warps=num_warps)
        if o.process_group is not None:  # the batch pooled across ranks: every rank finishes the global sums
            part = all_reduce_sum(part.sum(dim=(0, 2), keepdim=True, dtype=torch.float64), o.process_group)
            loss, coef = _finish(part, 1, C, 1, cw, pw, o, x.device, acc)
        else:
            loss, coef = _finish(part, N, C, n_blocks_s, cw, pw, o, x.device, acc)
    return loss, coef


def _finish(part, N, C, n_blocks, cw, pw, o, device, acc):
    loss = torch.empty(out_shape(o, N, C), device=device, dtype=acc)
    coef = torch.empty((N, C, NCOEF), device=device, dtype=acc)
    cw = class_vector(cw, o.class_weight_list, device)
    pw = class_vector(pw, o.pixel_class_weight_list, device)
    pos = class_positions(o, C, device)
    red = REDUCTION_CODES[o.reduction]
    loss_fn = 3 if o.score else 2 if o.log_loss else 1 if o.gamma != 1.0 else 0
    _dice_finish_kernel[(1,)](
        part_ptr=part, cw_ptr=cw, pw_ptr=pw, pos_ptr=pos, out_ptr=loss, coef_ptr=coef, N=N, C=C,
        n_blocks=n_blocks, KC=kept(o, C), stride_cw=0 if cw is None else cw.stride(0),
        stride_pw=0 if pw is None else pw.stride(0),
        **_pairs(sn=o.smooth_num, sd=o.smooth_den, eps=o.eps, ta=o.alpha, tb=o.beta, tg=o.gamma, lr=o.lambda_region,
                 lp=o.lambda_pixel, ps=pixel_scale(o, C)),
        KIND=KINDS.index(o.kind), LOSS=loss_fn, WEIGHT_TYPE=WEIGHT_TYPES.index(o.weight_type),
        PER_IMAGE=o.per_image, REDUCTION=red, PIXEL=o.pixel != "none",
        PIX_REDUCTION=REDUCTION_CODES[pixel_reduction(o)], PW_COUNT=o.pixel_weighs_count, SPLIT=o.split,
        HAS_CW=cw is not None, HAS_PW=pw is not None, HAS_CLASSES=pos is not None, ZERO_ABSENT=o.zero_absent,
        MICRO=o.micro, NORM_CW=o.normalize_class_weight, MC_COUNT=o.multiclass, ACC=tl_acc(acc),
        C_PAD=triton.next_power_of_2(C))
    return loss, coef


def backward(g, coef, x, t, w, cw, pw, pb, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: the upstream gradient of the loss."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    if o.threshold is not None:  # a thresholded prediction is piecewise constant
        return dx.zero_()
    scal, flags = _pixel_args(o)
    strides = _xs(x, w)
    off_r, sr, sc, off_p, sp = grad_layout(g, o, N, C)
    pos = class_positions(o, C, x.device)
    stride_coefn = coef.stride(0) if coef.shape[0] == N else 0  # one row: the sums pooled across ranks
    common = dict(coef_ptr=coef, g_ptr=g, pos_ptr=pos, dx_ptr=dx, stride_coefn=stride_coefn, g_off_r=off_r, g_stride_r=sr, g_stride_c=sc,
                  g_off_p=off_p, g_stride_p=sp, **dict(zip(("stride_dn", "stride_dc", "stride_ds"), dx.stride())),
                  **strides, **scal, **flags, HAS_WEIGHT=w is not None, PER_IMAGE=o.per_image,
                  HAS_CLASSES=pos is not None, ACC=tl_acc(x.dtype))
    with device_guard(x):
        if o.multiclass:
            programs, n_blocks_s, c_pad, BLOCK, bpp, num_warps = _softmax_grid(x)
            _dice_softmax_bwd_kernel[(programs,)](
                x_ptr=x, y_ptr=t, w_ptr=w, N=N, C=C, S=S, n_blocks_s=n_blocks_s, blocks_per_prog=bpp,
                stride_yn=t.stride(0),
                stride_ys=t.stride(2), **common, C_PAD=c_pad, BLOCK=BLOCK, num_warps=num_warps)
        else:
            programs, n_blocks_s, BLOCK, num_warps = _sigmoid_grid(x)
            _dice_sigmoid_bwd_kernel[(programs,)](
                x_ptr=x, t_ptr=t, w_ptr=w, pb_ptr=pb, C=C, S=S, n_blocks_s=n_blocks_s,
                stride_pb=0 if pb is None else pb.stride(0), HAS_POS_W=pb is not None, **dict(zip(("stride_tn", "stride_tc", "stride_ts"), t.stride())), **common, BLOCK=BLOCK,
                num_warps=num_warps)
    return dx


# ---- ahead-of-time compile specs --------------------------------------------------------------

def _softmax_spec(fn, constexprs, **kw):
    """An AOT spec of a softmax kernel compiled with the warps its launcher gives the tile (``_tile_for``)."""
    fp64 = constexprs.get("ACC") == tl.float64
    regs = constexprs["C_PAD"] * constexprs["BLOCK"] * (2 if fp64 else 1)
    return aot_spec(fn, constexprs, num_warps=max(4, min(16, regs // (32 * REGS_PER_THREAD))), **kw)


def _aot_variants():
    specs = []
    pix_pairs = ("lw0_hi", "lw0_lo", "lw1_hi", "lw1_lo", "fg_hi", "fg_lo", "fa_hi", "fa_lo", "ls_hi", "ls_lo")
    sig_pairs = pix_pairs + ("ig_hi", "ig_lo", "pb_hi", "pb_lo")
    fin_pairs = tuple(f"{k}_{h}" for k in ("sn", "sd", "eps", "ta", "tb", "tg", "lr", "lp", "ps") for h in ("hi", "lo"))
    f32 = lambda names: {k: "fp32" for k in names}  # noqa: E731
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        flags = dict(FROM_LOGITS=True, HAS_WEIGHT=True, HAS_IGNORE=True, LABEL_WEIGHT=True, SIGNED=True,
                     SQUARED=True, W_POW_I=2, W_POW_PT=1, ACC=acc)
        specs.append(aot_spec(_dice_sigmoid_fwd_kernel, dict(flags, PIXEL=2, FOCAL_ALPHA=True, HARD=True, SOFT_LABEL=True,
                                                             HAS_POS_W=False, BLOCK=1024),
                              x_ptr=f"*{dt}", t_ptr="*u8", part_ptr=accty, **f32(sig_pairs + ("th_hi", "th_lo"))))
        specs.append(aot_spec(_dice_sigmoid_bwd_kernel,
                              dict(flags, PIXEL=2, FOCAL_ALPHA=True, PER_IMAGE=True, HAS_CLASSES=True, SOFT_LABEL=True,
                                   HAS_POS_W=False, BLOCK=1024),
                              x_ptr=f"*{dt}", t_ptr="*fp32", coef_ptr=accty, g_ptr=accty, pos_ptr="*i32",
                              dx_ptr=f"*{dt}", **f32(sig_pairs)))
        blk = 32 if acc == tl.float64 else 64  # _tile_for(21, S): a 32 x 64 tile (fp64: 32 x 32)
        specs.append(_softmax_spec(_dice_softmax_fwd_kernel, dict(flags, PIXEL=2, LABEL_SMOOTH=False, FOCAL_ALPHA=False, C_PAD=32, BLOCK=blk),
                              x_ptr=f"*{dt}",
                              y_ptr="*i64", part_ptr=accty, **f32(pix_pairs)))
        specs.append(_softmax_spec(_dice_softmax_bwd_kernel,
                              dict(flags, PIXEL=2, LABEL_SMOOTH=False, FOCAL_ALPHA=False, PER_IMAGE=False, HAS_CLASSES=True, C_PAD=32,
                                   BLOCK=blk),
                              x_ptr=f"*{dt}", y_ptr="*u8", coef_ptr=accty, g_ptr=accty, pos_ptr="*i32",
                              dx_ptr=f"*{dt}", **f32(pix_pairs)))
        fin = dict(WEIGHT_TYPE=0, PW_COUNT=True, HAS_CW=True, HAS_PW=True, HAS_CLASSES=True, ACC=acc, C_PAD=32)
        for kind, loss, per_image, red, pixel, pix_red, split, za, micro, norm, mc in (
                (0, 0, False, 0, True, 0, False, False, False, True, True),  # bce / ce + dice, mean
                (1, 2, True, 2, False, 0, False, True, False, False, False),  # jaccard, log, per image, "none"
                (2, 1, True, 1, False, 0, False, True, True, True, False),  # focal tversky, sum, micro
                (3, 0, True, 2, True, 2, False, False, False, True, True),  # generalized, a combo per image
                (4, 0, False, 2, True, 0, False, True, True, True, True),  # mcc, micro, "none"
                (0, 3, True, 0, True, 1, True, False, False, True, False)):  # split terms (bce_dice_terms, recipes)
            specs.append(aot_spec(_dice_finish_kernel, dict(fin, KIND=kind, LOSS=loss, PER_IMAGE=per_image,
                                                            REDUCTION=red, PIXEL=pixel, PIX_REDUCTION=pix_red,
                                                            SPLIT=split, ZERO_ABSENT=za, MICRO=micro, NORM_CW=norm,
                                                            MC_COUNT=mc),
                                  part_ptr=accty, cw_ptr="*fp32", pw_ptr="*fp64", pos_ptr="*i32", out_ptr=accty,
                                  coef_ptr=accty, **f32(fin_pairs)))
    # process_group: the finisher reads the all-reduced float64 sums whatever the logits' dtype
    specs.append(aot_spec(_dice_finish_kernel, dict(WEIGHT_TYPE=0, PW_COUNT=False, HAS_CW=False, HAS_PW=True,
                                                    HAS_CLASSES=False, ACC=tl.float32, C_PAD=32, KIND=0, LOSS=0,
                                                    PER_IMAGE=False, REDUCTION=0, PIXEL=True, PIX_REDUCTION=0,
                                                    SPLIT=False, ZERO_ABSENT=False, MICRO=False, NORM_CW=True,
                                                    MC_COUNT=True),
                          part_ptr="*fp64", pw_ptr="*fp64", out_ptr="*fp32", coef_ptr="*fp32", **f32(fin_pairs)))
    # the common fast paths: plain Dice (+ BCE / CE), stride-1 pixels, int64 strides (past 2^31 elements)
    plain = dict(FROM_LOGITS=True, HAS_WEIGHT=False, HAS_IGNORE=False, LABEL_WEIGHT=False, SIGNED=False,
                 SQUARED=False, W_POW_I=1, W_POW_PT=1, PIXEL=1, ACC=tl.float32)
    big = {f"stride_{a}{b}": "i64" for a in "xtwd" for b in "nc"}
    div = ("S", "stride_xn", "stride_xc", "stride_tn", "stride_tc", "stride_dn", "stride_dc")
    specs.append(aot_spec(_dice_sigmoid_fwd_kernel,
                          dict(plain, FOCAL_ALPHA=False, HARD=False, HAS_POS_W=True, SOFT_LABEL=False, BLOCK=2048, stride_xs=1,
                               stride_ts=1),
                          divisible=div[:5], S="i64", NC="i64", n_blocks_s="i64",
                          **f32(sig_pairs + ("th_hi", "th_lo")), **{k: v for k, v in big.items() if k[7] in "xtw"}))
    specs.append(aot_spec(_dice_sigmoid_bwd_kernel,
                          dict(plain, FOCAL_ALPHA=False, PER_IMAGE=False, HAS_CLASSES=False, HAS_POS_W=True, SOFT_LABEL=False, BLOCK=2048,
                               stride_xs=1, stride_ts=1, stride_ds=1),
                          divisible=div, S="i64", n_blocks_s="i64", **f32(sig_pairs), **big))
    bigm = {"stride_xn": "i64", "stride_xc": "i64", "stride_yn": "i64", "stride_wn": "i64", "stride_wc": "i64"}
    specs.append(_softmax_spec(_dice_softmax_fwd_kernel, dict(plain, LABEL_SMOOTH=False, FOCAL_ALPHA=False, C_PAD=32, BLOCK=64, stride_xs=1,
                                                         stride_ys=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_yn"), S="i64", y_ptr="*i64",
                          **f32(pix_pairs), **bigm))
    specs.append(_softmax_spec(_dice_softmax_bwd_kernel,
                          dict(plain, LABEL_SMOOTH=False, FOCAL_ALPHA=False, PER_IMAGE=False, HAS_CLASSES=False, C_PAD=32, BLOCK=64,
                               stride_xs=1, stride_ys=1, stride_ds=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_yn", "stride_dn", "stride_dc"),
                          S="i64", y_ptr="*i64", stride_dn="i64", stride_dc="i64", **f32(pix_pairs), **bigm))
    # CE + Dice with label smoothing
    specs.append(_softmax_spec(_dice_softmax_fwd_kernel, dict(plain, LABEL_SMOOTH=True, FOCAL_ALPHA=False, C_PAD=32,
                                                         BLOCK=64), y_ptr="*i64", **f32(pix_pairs)))
    specs.append(_softmax_spec(_dice_softmax_bwd_kernel, dict(plain, LABEL_SMOOTH=True, FOCAL_ALPHA=False, PER_IMAGE=False,
                                                         HAS_CLASSES=False, C_PAD=32, BLOCK=64),
                          y_ptr="*i64", **f32(pix_pairs)))
    # the per-channel sigmoid focal of integer labels (dice_focal_loss, focal_use_softmax=False)
    specs.append(_softmax_spec(_dice_softmax_fwd_kernel, dict(plain, PIXEL=3, LABEL_SMOOTH=False, FOCAL_ALPHA=True, C_PAD=32, BLOCK=64),
                          y_ptr="*i64", **f32(pix_pairs)))
    specs.append(_softmax_spec(_dice_softmax_bwd_kernel, dict(plain, PIXEL=3, LABEL_SMOOTH=False, FOCAL_ALPHA=True, PER_IMAGE=False,
                                                         HAS_CLASSES=False, C_PAD=32, BLOCK=64),
                          y_ptr="*i64", **f32(pix_pairs)))
    # large C (150 -> C_PAD 256, 1024): the tiles _tile_for picks, every switch on, fp32 and bf16
    for c_pad, block in ((256, 8), (1024, 2)):
        for dt in ("fp32", "bf16"):
            flags = dict(FROM_LOGITS=True, HAS_WEIGHT=True, HAS_IGNORE=True, LABEL_WEIGHT=True, SIGNED=True,
                         SQUARED=True, W_POW_I=2, W_POW_PT=1, ACC=tl.float32, C_PAD=c_pad, BLOCK=block)
            for pixel, smooth, alpha in ((1, True, False), (3, False, True)):
                specs.append(_softmax_spec(_dice_softmax_fwd_kernel,
                                      dict(flags, PIXEL=pixel, LABEL_SMOOTH=smooth, FOCAL_ALPHA=alpha),
                                      x_ptr=f"*{dt}", y_ptr="*i64", **f32(pix_pairs)))
                specs.append(_softmax_spec(_dice_softmax_bwd_kernel,
                                      dict(flags, PIXEL=pixel, LABEL_SMOOTH=smooth, FOCAL_ALPHA=alpha, PER_IMAGE=True,
                                           HAS_CLASSES=True),
                                      x_ptr=f"*{dt}", y_ptr="*i64", pos_ptr="*i32", dx_ptr=f"*{dt}",
                                      **f32(pix_pairs)))
    return specs


AOT_SPECS = _aot_variants()
