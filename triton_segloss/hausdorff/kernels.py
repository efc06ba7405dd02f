"""Triton kernels of the distance-map losses and their launchers (the family's only triton import).

Every tensor is seen as (N, C, S). Per pixel, with p the sigmoid (per channel) or the
softmax (over C, from integer labels held in registers: t[c, s] = [y_s == c], no one-hot
tensor) of the logits and constant distance maps f_a, f_b:

    HAUSDORFF (KIND 0):  l = (p - t)^2 * D,   D = f_a^alpha + f_b^alpha   (inf read as 0)
    BOUNDARY  (KIND 1):  l = p * phi,         phi = f_a outside the target, 1 - f_b inside

The loss op is three launches: the forward kernel writes per-program partial sums
``(n_blocks_s, N * C)``, the one-program finisher sums them in a fixed order (float64)
into the loss, and the backward kernel reads the upstream gradient by pointer and the
host-side row scale (``ops.row_scale``). No float atomics, nothing goes through the host.

The fields (``fields``) are the distance family's exact EDT, one launch per spatial axis,
whose first pass is this module's ``_fields_first_pass_kernel``: it reads the logits and the
target themselves and thresholds them in registers (the prediction's ``p > 0.5``, the
target's ``t > 0.5`` or ``y == c``), so no mask, one-hot, complement or stack is ever stored;
it writes the squared 1D distances of every mask and of its complement side by side. The
later passes are ``triton_segloss.distance.kernels._launch``'s (the last one adds the two
halves for the Hausdorff fields). A training step: 2 (2D) or 3 (3D) EDT passes + 3.

``dice_boundary_forward`` / ``dice_boundary_backward`` (the region + boundary combination): the
boundary pixel pass with ``DICE`` also writes the region sums ``I = sum p t``, ``P = sum p``,
``T = sum t`` per (image, class) as three more partials; ``_dice_boundary_finish_kernel`` turns
them into the generalized (or soft) Dice per image, the combined loss and the region term's
``dLoss/dI``, ``dLoss/dP`` (``coef``, read by pointer), and the backward kernel with ``DICE``
adds ``g (c_I t + c_P)`` to the boundary term's ``dLoss/dp`` before the sigmoid / softmax chain
rule. Still 3 launches after the EDT.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, device_guard, ratio_grad, row_tile, scalar, sigmoid, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype
from triton_segloss.distance import kernels as _edt

from .ops import boundary_options, first_class, out_shape, row_scale


@triton.jit
def _fields_first_pass_kernel(
    x_ptr,  # logits (probabilities if PMODE 1), (N, C, D0, D1, D2) strided; read only with PRED
    t_ptr,  # target: a mask (N, C, D0, D1, D2) or LABELS (N, D0, D1, D2), strided
    out_ptr,  # not LAST: squared distances, G slots of (N C, D0, D1, D2); LAST: the fields, 2 slots
    n, K, O2,  # length of the pass axis, of the inner line axis, of the second outer axis
    C,  # classes: row b = n C + c
    stride_xn, stride_xc, stride_xo, stride_xa, stride_xk,  # logits strides (image, class, outer, pass, inner)
    stride_tn, stride_tc, stride_to, stride_ta, stride_tk,  # target strides (stride_tc unused with LABELS)
    stride_ob, stride_oo, stride_oa, stride_ok,  # strides of one output slot (row, outer, pass, inner)
    slot,  # element offset from one output slot to the next
    sp_hi, sp_lo,  # spacing of the pass axis, split_f64
    PRED: tl.constexpr, PMODE: tl.constexpr, LABELS: tl.constexpr, LAST: tl.constexpr,
    ACC: tl.constexpr, BI: tl.constexpr, BK: tl.constexpr,
):
    """The first EDT pass of the loss fields on a [BI, BK] tile of row b = (n, c):
    q_m(i) = min_j f_m(j) + (s (i - j))^2, f_m = 0 on mask m and inf elsewhere, for
    m_t = [t > 0.5] (LABELS: [y == c]) and its complement, and with PRED also for the
    prediction's m_p (PMODE 0: x > 0, the sigmoid's p > 0.5; 1: x > 0.5; 2: softmax_c(x) > 0.5,
    over the C logits of the pixel) and its complement. Slots: PRED [m_p, m_t, ~m_p, ~m_t],
    else [m_t, ~m_t]. LAST (one spatial axis): the fields themselves, PRED
    [sqrt q_mp + sqrt q_~mp, sqrt q_mt + sqrt q_~mt], else [sqrt q_mt, sqrt q_~mt].
    No gradient: the masks are thresholds."""
    pid0 = tl.program_id(0).to(tl.int64)
    b = pid0 // O2
    o2 = pid0 % O2
    img = b // C
    c = b % C
    k = tl.program_id(1).to(tl.int64) * BK + tl.arange(0, BK).to(tl.int64)
    i = tl.program_id(2).to(tl.int64) * BI + tl.arange(0, BI).to(tl.int64)
    kmask = k < K
    sp = scalar(sp_hi, sp_lo, ACC)
    fi = i.to(ACC)
    inf = float("inf")
    t0 = tl.full([BI, BK], inf, ACC)
    t1 = tl.full([BI, BK], inf, ACC)
    p0 = tl.full([BI, BK], inf, ACC)
    p1 = tl.full([BI, BK], inf, ACC)
    if LABELS:
        tptr = t_ptr + img * stride_tn + o2 * stride_to + k * stride_tk
    else:
        tptr = t_ptr + img * stride_tn + c * stride_tc + o2 * stride_to + k * stride_tk
    xptr = x_ptr + img * stride_xn + o2 * stride_xo + k * stride_xk  # class 0 of the pixel
    for j in range(0, n):
        d = (fi - j) * sp
        d2 = (d * d)[:, None]
        if LABELS:
            mt = tl.load(tptr, mask=kmask, other=0).to(tl.int64) == c
        else:
            mt = tl.load(tptr, mask=kmask, other=0) > 0.5
        t0 = tl.minimum(t0, tl.where(mt, 0.0, inf).to(ACC)[None, :] + d2)
        t1 = tl.minimum(t1, tl.where(mt, inf, 0.0).to(ACC)[None, :] + d2)
        if PRED:
            xc = tl.load(xptr + c * stride_xc, mask=kmask, other=0.0).to(ACC)
            if PMODE == 0:
                mp = xc > 0
            elif PMODE == 1:
                mp = xc > 0.5
            else:
                mx = tl.full([BK], float("-inf"), ACC)
                for cc in range(0, C):
                    mx = tl.maximum(mx, tl.load(xptr + cc * stride_xc, mask=kmask, other=0.0).to(ACC))
                se = tl.zeros([BK], ACC)
                for cc in range(0, C):
                    se += tl.exp(tl.load(xptr + cc * stride_xc, mask=kmask, other=0.0).to(ACC) - mx)
                mp = tl.exp(xc - mx) / se > 0.5
            p0 = tl.minimum(p0, tl.where(mp, 0.0, inf).to(ACC)[None, :] + d2)
            p1 = tl.minimum(p1, tl.where(mp, inf, 0.0).to(ACC)[None, :] + d2)
        tptr += stride_ta
        xptr += stride_xa
    optr = out_ptr + b * stride_ob + o2 * stride_oo + i[:, None] * stride_oa + k[None, :] * stride_ok
    omask = (i[:, None] < n) & kmask[None, :]
    ty = out_ptr.dtype.element_ty
    if LAST:
        if ACC == tl.float64:
            rt0, rt1 = tl.sqrt(t0), tl.sqrt(t1)
            rp0, rp1 = tl.sqrt(p0), tl.sqrt(p1)
        else:
            rt0, rt1 = tl.sqrt_rn(t0), tl.sqrt_rn(t1)
            rp0, rp1 = tl.sqrt_rn(p0), tl.sqrt_rn(p1)
        if PRED:
            tl.store(optr, (rp0 + rp1).to(ty), mask=omask)
            tl.store(optr + slot, (rt0 + rt1).to(ty), mask=omask)
        else:
            tl.store(optr, rt0.to(ty), mask=omask)
            tl.store(optr + slot, rt1.to(ty), mask=omask)
    elif PRED:
        tl.store(optr, p0.to(ty), mask=omask)
        tl.store(optr + slot, t0.to(ty), mask=omask)
        tl.store(optr + 2 * slot, p1.to(ty), mask=omask)
        tl.store(optr + 3 * slot, t1.to(ty), mask=omask)
    else:
        tl.store(optr, t0.to(ty), mask=omask)
        tl.store(optr + slot, t1.to(ty), mask=omask)


@triton.jit
def _field_pow(f, a, ALPHA_CODE: tl.constexpr):
    """f^alpha with inf read as 0 (the field of an empty or full mask): ALPHA_CODE 0: alpha == 0
    (f^0 = 1 everywhere, as torch's 0 ** 0), 2: alpha == 2 (f * f), 1: any alpha > 0."""
    f = tl.where(f == float("inf"), 0.0, f)
    if ALPHA_CODE == 0:
        return f * 0.0 + 1.0
    elif ALPHA_CODE == 2:
        return f * f
    else:
        pos = f > 0
        return tl.where(pos, tl.exp(a * tl.log(tl.where(pos, f, 1.0))), 0.0)


@triton.jit
def _pixel_weight(fa, fb, t, a, KIND: tl.constexpr, ALPHA_CODE: tl.constexpr):
    """HAUSDORFF: D = f_a^alpha + f_b^alpha. BOUNDARY: f_a = distance to the target, f_b = distance
    to its complement; phi = f_a outside (t <= 0.5), 1 - f_b inside (the paper's code:
    edt(neg) neg - (edt(pos) - 1) pos), and 0 for a class empty or full in the row (an inf field)."""
    if KIND == 0:
        return _field_pow(fa, a, ALPHA_CODE) + _field_pow(fb, a, ALPHA_CODE)
    else:
        phi = tl.where(t > 0.5, 1.0 - fb, fa)
        return tl.where((phi == float("inf")) | (phi == float("-inf")), 0.0, phi)


@triton.jit
def _sigmoid_fwd_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    t_ptr,  # target mask, (N, C, S) strided, its own dtype
    fa_ptr,  # field a: the prediction's field (hausdorff) or the distance to the target (boundary), (N, C, S)
    fb_ptr,  # field b: the target's field (hausdorff) or the distance to its complement (boundary), (N, C, S)
    part_ptr,  # partials out, contiguous (Q, n_blocks_s, N * C) in ACC: Q = 1, or 4 with DICE
    C, S, NC,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    a_hi, a_lo,  # alpha (fp32 pair)
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, ACC: tl.constexpr,
    DICE: tl.constexpr, BLOCK: tl.constexpr,
):
    """p = 1 / (1 + e^-x); partial = sum over BLOCK pixels of one (n, c) row of l (module docstring);
    DICE: also the region sums I = sum p t, P = sum p, T = sum t (partials 1, 2, 3)."""
    pid = tl.program_id(0).to(tl.int64)
    row, n, c, s = row_tile(pid, n_blocks_s, C, BLOCK)
    mask = s < S
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    fa = tl.load(fa_ptr + n * stride_an + c * stride_ac + s * stride_as, mask=mask, other=0.0).to(ACC)
    fb = tl.load(fb_ptr + n * stride_bn + c * stride_bc + s * stride_bs, mask=mask, other=0.0).to(ACC)
    if FROM_LOGITS:
        p = sigmoid(x)
    else:
        p = x
    w = _pixel_weight(fa, fb, t, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE)
    if KIND == 0:
        l = (p - t) * (p - t) * w
    else:
        l = p * w
    blk = pid % n_blocks_s
    tl.store(part_ptr + blk * NC + row, tl.sum(tl.where(mask, l, 0.0), axis=0))
    if DICE:
        q = n_blocks_s * NC
        tl.store(part_ptr + q + blk * NC + row, tl.sum(tl.where(mask, p * t, 0.0), axis=0))
        tl.store(part_ptr + 2 * q + blk * NC + row, tl.sum(tl.where(mask, p, 0.0), axis=0))
        tl.store(part_ptr + 3 * q + blk * NC + row, tl.sum(tl.where(mask, t, 0.0), axis=0))


@triton.jit
def _softmax_tile(x_ptr, y_ptr, fa_ptr, fb_ptr, n, cls, s, cmask, smask, stride_xn, stride_xc, stride_xs,
                  stride_yn, stride_ys, stride_an, stride_ac, stride_as, stride_bn, stride_bc, stride_bs, a,
                  KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, ACC: tl.constexpr):
    """(live, p, t, w) of a (C_PAD, BLOCK) tile of image n."""
    m2 = cmask[:, None] & smask[None, :]
    x = tl.load(x_ptr + n * stride_xn + cls[:, None] * stride_xc + s[None, :] * stride_xs, mask=m2,
                other=0.0).to(ACC)
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int64)
    t = ((cls[:, None] == y[None, :]) & m2).to(ACC)
    fa = tl.load(fa_ptr + n * stride_an + cls[:, None] * stride_ac + s[None, :] * stride_as, mask=m2,
                 other=0.0).to(ACC)
    fb = tl.load(fb_ptr + n * stride_bn + cls[:, None] * stride_bc + s[None, :] * stride_bs, mask=m2,
                 other=0.0).to(ACC)
    if FROM_LOGITS:
        xm = tl.where(cmask[:, None], x, float("-inf"))
        mx = tl.max(xm, axis=0)
        e = tl.exp(xm - mx[None, :])
        p = e / tl.sum(e, axis=0)[None, :]
    else:
        p = x
    w = _pixel_weight(fa, fb, t, a, KIND, ALPHA_CODE)
    return m2, p, t, w


@triton.jit
def _softmax_fwd_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    fa_ptr,  # field a, (N, C, S) strided
    fb_ptr,  # field b, (N, C, S) strided
    part_ptr,  # partials out, contiguous (Q, n_blocks_s, N * C) in ACC: Q = 1, or 4 with DICE
    C, S, NC,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    a_hi, a_lo,  # alpha (fp32 pair)
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, ACC: tl.constexpr,
    DICE: tl.constexpr, C_PAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Softmax over C in registers, t[c, s] = [y_s == c]; partial[c] = sum over BLOCK pixels of l[c, s];
    DICE: also I[c] = sum p t, P[c] = sum p, T[c] = sum t (partials 1, 2, 3)."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    blk = pid % n_blocks_s
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    s = blk * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    smask = s < S
    m2, p, t, w = _softmax_tile(x_ptr, y_ptr, fa_ptr, fb_ptr, n, cls, s, cmask, smask, stride_xn, stride_xc,
                                stride_xs, stride_yn, stride_ys, stride_an, stride_ac, stride_as, stride_bn,
                                stride_bc, stride_bs, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE, FROM_LOGITS, ACC)
    if KIND == 0:
        l = (p - t) * (p - t) * w
    else:
        l = p * w
    tl.store(part_ptr + blk * NC + n * C + cls, tl.sum(tl.where(m2, l, 0.0), axis=1), mask=cmask)
    if DICE:
        q = n_blocks_s * NC
        tl.store(part_ptr + q + blk * NC + n * C + cls, tl.sum(tl.where(m2, p * t, 0.0), axis=1), mask=cmask)
        tl.store(part_ptr + 2 * q + blk * NC + n * C + cls, tl.sum(tl.where(m2, p, 0.0), axis=1), mask=cmask)
        tl.store(part_ptr + 3 * q + blk * NC + n * C + cls, tl.sum(tl.where(m2, t, 0.0), axis=1), mask=cmask)


@triton.jit
def _finish_kernel(
    part_ptr,  # partials, contiguous (n_blocks, N * C) in ACC
    out_ptr,  # the loss out: 0-d, or contiguous (R, K) for "none"; ACC
    N, C, n_blocks,
    C0,  # first kept class (1 without the background)
    sc_hi, sc_lo,  # ops.row_scale (fp32 pair)
    NONE: tl.constexpr, PER_IMAGE: tl.constexpr, C_PAD: tl.constexpr,
):
    """One program. Row sums r[n, c] = sum_b part[b, n C + c] in float64 in a fixed order; with the
    row scale k: "none" per image: out[n, c - C0] = k r[n, c]; pooled: out[0, c - C0] = k sum_n r[n, c];
    "mean"/"sum": out = k sum_{n, c >= C0} r[n, c]."""
    cls = tl.arange(0, C_PAD)
    keep = (cls < C) & (cls >= C0)
    k = scalar(sc_hi, sc_lo, tl.float64)
    nc = N.to(tl.int64) * C
    tot = tl.zeros([C_PAD], dtype=tl.float64)
    for n in range(N):
        r = tl.zeros([C_PAD], dtype=tl.float64)
        for b in range(n_blocks):
            r += tl.load(part_ptr + b * nc + n * C + cls, mask=keep, other=0.0).to(tl.float64)
        if NONE and PER_IMAGE:
            tl.store(out_ptr + n * (C - C0) + cls - C0, (r * k).to(out_ptr.dtype.element_ty), mask=keep)
        tot += r
    if NONE:
        if not PER_IMAGE:
            tl.store(out_ptr + cls - C0, (tot * k).to(out_ptr.dtype.element_ty), mask=keep)
    else:
        tl.store(out_ptr, (tl.sum(tot, axis=0) * k).to(out_ptr.dtype.element_ty))


@triton.jit
def _dice_boundary_finish_kernel(
    part_ptr,  # partials, contiguous (4, n_blocks, N * C) in ACC: [boundary l, I, P, T]
    out_ptr,  # the loss out, 0-d, ACC
    coef_ptr,  # out: (1 - w) dRegion/dI and (1 - w) dRegion/dP, contiguous (N, C, 2) in ACC
    N, C, n_blocks,
    C0,  # first class of the boundary term
    k_hi, k_lo,  # w * the boundary term's row scale (fp32 pair)
    wr_hi, wr_lo,  # 1 - w, the region term's weight
    eps_hi, eps_lo,  # the region score's denominator clamp
    GENERALIZED: tl.constexpr, C_PAD: tl.constexpr,
):
    """One program, float64, a fixed order. Per image n the sums I_c, P_c, T_c over its pixels;
    GENERALIZED: g_c = 1 / T_c^2 (an absent class: the image's largest finite g), score
    s_n = 2 sum g I / max(sum g (P + T), eps), region = mean_n (1 - s_n), dRegion/dI_c = -2 g_c s'_num / N,
    dRegion/dP_c = -g_c s'_den / N; else soft Dice per class s_nc = 2 I / max(P + T, eps),
    region = mean_{n,c} (1 - s_nc), dRegion/dI = -2 s'_num / (N C), dRegion/dP = -s'_den / (N C)
    (an empty class or image scores 1: zero gradient). loss = (1 - w) region + w k sum_{n, c >= C0} l."""
    cls = tl.arange(0, C_PAD)
    cmask = cls < C
    keep = cmask & (cls >= C0)
    nc = N.to(tl.int64) * C
    q = n_blocks * nc
    k = scalar(k_hi, k_lo, tl.float64)
    wr = scalar(wr_hi, wr_lo, tl.float64)
    eps = scalar(eps_hi, eps_lo, tl.float64)
    if GENERALIZED:
        mult = 1.0 / N.to(tl.float64)
    else:
        mult = 1.0 / (N.to(tl.float64) * C)
    bnd = tl.zeros([C_PAD], dtype=tl.float64)
    reg = tl.zeros([C_PAD], dtype=tl.float64)
    ty = coef_ptr.dtype.element_ty
    for n in range(N):
        i_s = tl.zeros([C_PAD], dtype=tl.float64)
        p_s = tl.zeros([C_PAD], dtype=tl.float64)
        t_s = tl.zeros([C_PAD], dtype=tl.float64)
        for b in range(n_blocks):
            ptr = part_ptr + b * nc + n * C + cls
            bnd += tl.load(ptr, mask=keep, other=0.0).to(tl.float64)
            i_s += tl.load(ptr + q, mask=cmask, other=0.0).to(tl.float64)
            p_s += tl.load(ptr + 2 * q, mask=cmask, other=0.0).to(tl.float64)
            t_s += tl.load(ptr + 3 * q, mask=cmask, other=0.0).to(tl.float64)
        if GENERALIZED:
            finite = cmask & (t_s != 0)
            absent = cmask & (t_s == 0)
            safe = tl.where(finite, t_s, 1.0)
            gw = tl.where(finite, 1.0 / (safe * safe), 0.0)
            gw = tl.where(absent, tl.max(gw, axis=0), gw)
            den = tl.sum(gw * (p_s + t_s), axis=0)
            s, ds_num, ds_den = ratio_grad(2.0 * tl.sum(gw * i_s, axis=0), den, den, eps)
            reg += tl.where(cls == 0, 1.0 - s, 0.0)
            ci = -mult * 2.0 * ds_num * gw
            cp = -mult * ds_den * gw
        else:
            s, ds_num, ds_den = ratio_grad(2.0 * i_s, p_s + t_s, p_s + t_s, eps)
            reg += tl.where(cmask, 1.0 - s, 0.0)
            ci = -mult * 2.0 * ds_num
            cp = -mult * ds_den
        tl.store(coef_ptr + (n * C + cls) * 2, (ci * wr).to(ty), mask=cmask)
        tl.store(coef_ptr + (n * C + cls) * 2 + 1, (cp * wr).to(ty), mask=cmask)
    loss = wr * (tl.sum(reg, axis=0) * mult) + k * tl.sum(bnd, axis=0)
    tl.store(out_ptr, loss.to(out_ptr.dtype.element_ty))


@triton.jit
def _sigmoid_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target mask, (N, C, S) strided
    fa_ptr,  # field a, (N, C, S) strided
    fb_ptr,  # field b, (N, C, S) strided
    g_ptr,  # upstream gradient: 0-d, or (R, K) strided for "none"
    coef_ptr,  # DICE: the region term's dLoss/dI, dLoss/dP, contiguous (N, C, 2) in ACC; else None
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    C0,  # first kept class
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    stride_gr, stride_gk,  # of g (0 for a 0-d g); row r = n per image, else 0
    stride_dn, stride_dc, stride_ds,
    a_hi, a_lo, sc_hi, sc_lo,  # alpha, the row scale (fp32 pairs)
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, PER_IMAGE: tl.constexpr,
    ACC: tl.constexpr, DICE: tl.constexpr, BLOCK: tl.constexpr,
):
    """dl/dp = 2 (p - t) D (hausdorff) or phi (boundary); dx = g[row] * k * dl/dp * p (1 - p)
    (FROM_LOGITS; else dx = g k dl/dp), 0 for the skipped background row. DICE (k includes the
    boundary weight): plus g (c_I t + c_P) p (1 - p) from the region term's coefficients."""
    row, n, c, s = row_tile(tl.program_id(0), n_blocks_s, C, BLOCK)
    mask = s < S
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    fa = tl.load(fa_ptr + n * stride_an + c * stride_ac + s * stride_as, mask=mask, other=0.0).to(ACC)
    fb = tl.load(fb_ptr + n * stride_bn + c * stride_bc + s * stride_bs, mask=mask, other=0.0).to(ACC)
    w = _pixel_weight(fa, fb, t, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE)
    if FROM_LOGITS:
        p = sigmoid(x)
    else:
        p = x
    if KIND == 0:
        gp = 2.0 * (p - t) * w
    else:
        gp = w
    if FROM_LOGITS:
        gp = gp * p * (1.0 - p)
    kept = c >= C0
    if PER_IMAGE:
        r = n
    else:
        r = n * 0
    g = tl.load(g_ptr + r * stride_gr + tl.maximum(c - C0, 0) * stride_gk).to(ACC)
    dx = tl.where(kept, gp * (g * scalar(sc_hi, sc_lo, ACC)), 0.0)
    if DICE:
        ci = tl.load(coef_ptr + (n * C + c) * 2).to(ACC)
        cp = tl.load(coef_ptr + (n * C + c) * 2 + 1).to(ACC)
        gr = g * (ci * t + cp)
        if FROM_LOGITS:
            gr = gr * p * (1.0 - p)
        dx += gr
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    fa_ptr,  # field a, (N, C, S) strided
    fb_ptr,  # field b, (N, C, S) strided
    g_ptr,  # upstream gradient: 0-d, or (R, K) strided for "none"
    coef_ptr,  # DICE: the region term's dLoss/dI, dLoss/dP, contiguous (N, C, 2) in ACC; else None
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    C0,  # first kept class
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    stride_gr, stride_gk,
    stride_dn, stride_dc, stride_ds,
    a_hi, a_lo, sc_hi, sc_lo,
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, PER_IMAGE: tl.constexpr,
    ACC: tl.constexpr, DICE: tl.constexpr, C_PAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """gp[c] = g[row, c - C0] * k * dl/dp_c (0 for c < C0), DICE: plus g (c_I[c] t_c + c_P[c]) for
    every class; softmax chain rule over the classes: dx_j = p_j (gp_j - sum_c p_c gp_c)
    (FROM_LOGITS; else dx = gp)."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    blk = pid % n_blocks_s
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    s = blk * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    smask = s < S
    m2, p, t, w = _softmax_tile(x_ptr, y_ptr, fa_ptr, fb_ptr, n, cls, s, cmask, smask, stride_xn, stride_xc,
                                stride_xs, stride_yn, stride_ys, stride_an, stride_ac, stride_as, stride_bn,
                                stride_bc, stride_bs, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE, FROM_LOGITS, ACC)
    if KIND == 0:
        gp = 2.0 * (p - t) * w
    else:
        gp = w
    keep = cmask & (cls >= C0)
    if PER_IMAGE:
        r = n
    else:
        r = n * 0
    g = tl.load(g_ptr + r * stride_gr + tl.maximum(cls - C0, 0) * stride_gk, mask=keep, other=0.0).to(ACC)
    gp = tl.where(m2 & keep[:, None], gp * (g * scalar(sc_hi, sc_lo, ACC))[:, None], 0.0)
    if DICE:
        g0 = tl.load(g_ptr).to(ACC)
        ci = tl.load(coef_ptr + (n * C + cls) * 2, mask=cmask, other=0.0).to(ACC)
        cp = tl.load(coef_ptr + (n * C + cls) * 2 + 1, mask=cmask, other=0.0).to(ACC)
        gp += tl.where(m2, g0 * (ci[:, None] * t + cp[:, None]), 0.0)
    if FROM_LOGITS:
        dot = tl.sum(p * gp, axis=0)
        dx = p * (gp - dot[None, :])
    else:
        dx = gp
    tl.store(dx_ptr + n * stride_dn + cls[:, None] * stride_dc + s[None, :] * stride_ds,
             dx.to(dx_ptr.dtype.element_ty), mask=m2)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _alpha_code(o):
    if o.kind != "hausdorff" or o.alpha == 2.0:
        return 2
    return 0 if o.alpha == 0.0 else 1


def _common(x, t, fa, fb, o):
    fb_ = fb
    a = split_f64(o.alpha)
    d = dict(x_ptr=x, fa_ptr=fa, fb_ptr=fb_,
             **dict(zip(("stride_xn", "stride_xc", "stride_xs"), x.stride())),
             **dict(zip(("stride_an", "stride_ac", "stride_as"), fa.stride())),
             **dict(zip(("stride_bn", "stride_bc", "stride_bs"), fb_.stride())),
             a_hi=a[0], a_lo=a[1], KIND=0 if o.kind == "hausdorff" else 1, ALPHA_CODE=_alpha_code(o),
             FROM_LOGITS=bool(o.from_logits), ACC=tl_acc(x.dtype))
    if o.multiclass:
        d.update(y_ptr=t, stride_yn=t.stride(0), stride_ys=t.stride(2))
    else:
        d.update(t_ptr=t, **dict(zip(("stride_tn", "stride_tc", "stride_ts"), t.stride())))
    return d


def _grid(x, o):
    N, C, S = x.shape
    if o.multiclass:
        c_pad = triton.next_power_of_2(C)
        BLOCK, num_warps = block_for(S, max(128, 4096 // c_pad))
        nb = triton.cdiv(S, BLOCK)
        return N * nb, nb, BLOCK, num_warps, c_pad
    BLOCK, num_warps = block_for(S)
    nb = triton.cdiv(S, BLOCK)
    return N * C * nb, nb, BLOCK, num_warps, None


def _pixel_pass(x, t, fa, fb, o, part, dice):
    N, C, S = x.shape
    programs, nb, BLOCK, num_warps, c_pad = _grid(x, o)
    common = _common(x, t, fa, fb, o)
    if o.multiclass:
        _softmax_fwd_kernel[(programs,)](**common, part_ptr=part, C=C, S=S, NC=N * C, n_blocks_s=nb, DICE=dice,
                                         C_PAD=c_pad, BLOCK=BLOCK, num_warps=num_warps)
    else:
        _sigmoid_fwd_kernel[(programs,)](**common, part_ptr=part, C=C, S=S, NC=N * C, n_blocks_s=nb, DICE=dice,
                                         BLOCK=BLOCK, num_warps=num_warps)


def forward(x, t, fa, fb, o):
    """The loss (see ``ops.py``)."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    nb = _grid(x, o)[1]
    part = torch.empty((nb, N * C), device=x.device, dtype=acc)
    out = torch.empty(out_shape(o, N, C), device=x.device, dtype=acc)
    sc = split_f64(row_scale(o, N, C, S))
    with device_guard(x):
        _pixel_pass(x, t, fa, fb, o, part, False)
        _finish_kernel[(1,)](part_ptr=part, out_ptr=out, N=N, C=C, n_blocks=nb, C0=first_class(o, C),
                             sc_hi=sc[0], sc_lo=sc[1], NONE=o.reduction == "none", PER_IMAGE=bool(o.per_image),
                             C_PAD=triton.next_power_of_2(C))
    return out


def _backward(g, x, t, fa, fb, o, scale, coef):
    N, C, S = x.shape
    dx = torch.empty_like(x)
    programs, nb, BLOCK, num_warps, c_pad = _grid(x, o)
    sc = split_f64(scale)
    gs = tuple(g.stride()) if g.dim() == 2 else (0, 0)
    args = dict(_common(x, t, fa, fb, o), g_ptr=g, coef_ptr=coef, dx_ptr=dx, C=C, S=S, n_blocks_s=nb,
                C0=first_class(o, C), stride_gr=gs[0], stride_gk=gs[1],
                **dict(zip(("stride_dn", "stride_dc", "stride_ds"), dx.stride())),
                sc_hi=sc[0], sc_lo=sc[1], PER_IMAGE=bool(o.per_image), DICE=coef is not None, BLOCK=BLOCK,
                num_warps=num_warps)
    with device_guard(x):
        if o.multiclass:
            _softmax_bwd_kernel[(programs,)](**args, C_PAD=c_pad)
        else:
            _sigmoid_bwd_kernel[(programs,)](**args)
    return dx


def backward(g, x, t, fa, fb, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: 0-d, or (R, K) for "none"."""
    N, C, S = x.shape
    return _backward(g, x, t, fa, fb, o, row_scale(o, N, C, S), None)


def dice_boundary_forward(x, t, fa, fb, o):
    """``(1 - w) region + w boundary`` (0-d) and the region's coefficients (N, C, 2) times (1 - w):
    the pixel pass with the region sums, then ``_dice_boundary_finish_kernel``."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    bo = boundary_options(o)
    nb = _grid(x, bo)[1]
    part = torch.empty((4, nb, N * C), device=x.device, dtype=acc)
    out = torch.empty((), device=x.device, dtype=acc)
    coef = torch.empty((N, C, 2), device=x.device, dtype=acc)
    k = split_f64(o.weight * row_scale(bo, N, C, S))
    wr = split_f64(1.0 - o.weight)
    eps = split_f64(o.eps)
    with device_guard(x):
        _pixel_pass(x, t, fa, fb, bo, part, True)
        _dice_boundary_finish_kernel[(1,)](part_ptr=part, out_ptr=out, coef_ptr=coef, N=N, C=C, n_blocks=nb,
                                           C0=first_class(bo, C), k_hi=k[0], k_lo=k[1], wr_hi=wr[0], wr_lo=wr[1],
                                           eps_hi=eps[0], eps_lo=eps[1], GENERALIZED=o.region == "generalized_dice",
                                           C_PAD=triton.next_power_of_2(C))
    return out, coef


def dice_boundary_backward(g, coef, x, t, fa, fb, o):
    """dLoss/dx: one backward kernel, the boundary term (scaled by w) plus the region's coefficients."""
    N, C, S = x.shape
    bo = boundary_options(o)
    return _backward(g, x, t, fa, fb, bo, o.weight * row_scale(bo, N, C, S), coef)


def _spatial3(t, skip):
    """The three padded spatial strides (D0, D1, D2) of ``t``, after its first ``skip`` dims."""
    st = tuple(t.stride())[skip:]
    return (0,) * (3 - len(st)) + st


def fields(x, t, o):
    """``(2, N, C, *spatial)`` constant maps (see ``ops.py``): one launch per spatial axis, the
    first one reading the logits and the target (``_fields_first_pass_kernel``)."""
    N, C, *sp = x.shape
    B = N * C
    acc = acc_dtype(x.dtype)
    pad = (1,) * (3 - o.ndim) + tuple(sp)
    out = torch.empty((2, N, C, *sp), device=x.device, dtype=acc)
    out4 = out.view(2 * B, *pad)
    pred = o.kind == "hausdorff"
    axes = list(range(4 - o.ndim, 4))
    a = axes[0]
    last = len(axes) == 1
    dst = out4 if last else torch.empty(((4 if pred else 2) * B, *pad), device=x.device, dtype=acc)
    kx, ox = _edt._axes(a)
    n, K, O2 = pad[a - 1], pad[kx - 1], pad[ox - 1]
    BI = max(2, min(64, triton.next_power_of_2(n)))
    BK = max(2, min(32, triton.next_power_of_2(K)))
    xs = (x.stride(0), x.stride(1)) + _spatial3(x, 2)
    if o.multiclass:
        ts = (t.stride(0), 0) + _spatial3(t, 1)
    else:
        ts = (t.stride(0), t.stride(1)) + _spatial3(t, 2)
    ds = dst.stride()
    hi, lo = split_f64(o.spacing[a - 1])
    with device_guard(x):
        _fields_first_pass_kernel[(B * O2, triton.cdiv(K, BK), triton.cdiv(n, BI))](
            x_ptr=x, t_ptr=t, out_ptr=dst, n=n, K=K, O2=O2, C=C,
            stride_xn=xs[0], stride_xc=xs[1], stride_xo=xs[ox + 1], stride_xa=xs[a + 1], stride_xk=xs[kx + 1],
            stride_tn=ts[0], stride_tc=ts[1], stride_to=ts[ox + 1], stride_ta=ts[a + 1], stride_tk=ts[kx + 1],
            stride_ob=ds[0], stride_oo=ds[ox], stride_oa=ds[a], stride_ok=ds[kx], slot=B * ds[0],
            sp_hi=hi, sp_lo=lo, PRED=pred,
            PMODE=(2 if o.multiclass else 0) if o.from_logits else 1, LABELS=bool(o.multiclass), LAST=last,
            ACC=tl_acc(acc), BI=BI, BK=BK, num_warps=4)
        if last:
            return out
        buf = dst
        for a in axes[1:-1]:  # a middle pass (3D): ping-pong (other programs read the line)
            nxt = torch.empty_like(buf)
            _edt._launch(buf, nxt, a, o.spacing[a - 1], False, False, False, 0, 0, acc)
            buf = nxt
        a = axes[-1]
        _edt._launch(buf, out4, a, o.spacing[a - 1], False, True, pred, 2 * B * buf.stride(0) if pred else 0, 0,
                     acc, add=pred)
    return out


def _aot_variants():
    specs = []
    for dt, accty in (("fp32", "*fp32"), ("bf16", "*fp32"), ("fp64", "*fp64")):  # every switch on
        acc = tl.float64 if dt == "fp64" else tl.float32
        specs.append(aot_spec(_fields_first_pass_kernel, dict(PRED=True, PMODE=2, LABELS=True, LAST=False, ACC=acc,
                                                              BI=64, BK=32),
                              x_ptr=f"*{dt}", t_ptr="*i64", out_ptr=accty, sp_hi="fp32", sp_lo="fp32",
                              stride_xn="i64", stride_tn="i64", stride_ob="i64", slot="i64"))
    for pred, pmode, last in ((True, 0, True), (False, 0, False)):  # sigmoid masks, 1D, the boundary maps
        specs.append(aot_spec(_fields_first_pass_kernel, dict(PRED=pred, PMODE=pmode, LABELS=False, LAST=last,
                                                              ACC=tl.float32, BI=64, BK=32),
                              x_ptr="*fp32", t_ptr="*u8", out_ptr="*fp32", sp_hi="fp32", sp_lo="fp32",
                              stride_xn="i64", stride_tn="i64", stride_ob="i64", slot="i64"))
    fl = {"a_hi": "fp32", "a_lo": "fp32"}
    fl2 = dict(fl, sc_hi="fp32", sc_lo="fp32")
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        for kind, code in ((0, 1), (1, 2)):  # the boundary kind with the combination's region sums
            flags = dict(KIND=kind, ALPHA_CODE=code, FROM_LOGITS=True, ACC=acc, DICE=kind == 1)
            specs.append(aot_spec(_sigmoid_fwd_kernel, dict(flags, BLOCK=1024), x_ptr=f"*{dt}", t_ptr="*u8",
                                  part_ptr=accty, **fl))
            specs.append(aot_spec(_softmax_fwd_kernel, dict(flags, C_PAD=4, BLOCK=1024), x_ptr=f"*{dt}",
                                  y_ptr="*i64", part_ptr=accty, **fl))
            specs.append(aot_spec(_sigmoid_bwd_kernel, dict(flags, PER_IMAGE=True, BLOCK=1024), x_ptr=f"*{dt}",
                                  t_ptr="*u8", g_ptr=accty, coef_ptr=accty, dx_ptr=f"*{dt}", **fl2))
            specs.append(aot_spec(_softmax_bwd_kernel, dict(flags, PER_IMAGE=False, C_PAD=4, BLOCK=1024),
                                  x_ptr=f"*{dt}", y_ptr="*i64", g_ptr=accty, coef_ptr=accty, dx_ptr=f"*{dt}",
                                  **fl2))
        for none, per in ((False, False), (True, True), (True, False)) if dt == "fp32" else ((True, True),):
            specs.append(aot_spec(_finish_kernel, dict(NONE=none, PER_IMAGE=per, C_PAD=4), part_ptr=accty,
                                  out_ptr=accty, sc_hi="fp32", sc_lo="fp32"))
        for gen in (True, False) if dt == "fp32" else ((True,) if dt == "fp64" else ()):
            specs.append(aot_spec(_dice_boundary_finish_kernel, dict(GENERALIZED=gen, C_PAD=4), part_ptr=accty,
                                  out_ptr=accty, coef_ptr=accty, k_hi="fp32", k_lo="fp32", wr_hi="fp32",
                                  wr_lo="fp32", eps_hi="fp32", eps_lo="fp32"))
    return specs


AOT_SPECS = _aot_variants()
