"""Soft-overlap (Dice) family: per-(image, class) partial sums in one read, and a recomputing backward.

Every loss of the family (Dice, Jaccard, Tversky, generalized Dice, seed 000's
signed Dice) is a small function of five sums per (image n, class c)::

    K = 0  I = sum_s wi * q * u            intersection
    K = 1  P = sum_s wp * q^k              prediction sum (k = 2 when SQUARED)
    K = 2  T = sum_s wp * u^k              target sum
    K = 3  L = sum_s wl * l                an optional pixel term l (BCE, CE or focal)
    K = 4  n = sum_s valid                 valid pixels (multiclass: valid pixels labelled c)

with p the sigmoid (per channel) or softmax (over C, from integer labels, in
registers: no one-hot tensor) of the logits, t the target (or [label == c]),
q = p, u = t (SIGNED: q = 2p - 1, u = 2t - 1), and the weights
``om = valid * weight * (LABEL_WEIGHT ? lw_neg + (lw_pos - lw_neg) t : 1)``,
``wi = om ** W_POW_I``, ``wp = om ** W_POW_PT``, ``wl = valid * weight``.

The forward writes one (C, 5) block of partials per program; the launcher's
caller sums them in a fixed order (``_dispatch.sum_partials``). The backward
reads g = dLoss/d(sums), (N, C, 5), and applies the chain rule in one pass
over the inputs; nothing input-sized is kept in between.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.validate import acc_dtype
from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, tl_acc

NSUMS = 5


@triton.jit
def _dice_fwd_kernel(
    x_ptr,  # logits (or probabilities when not FROM_LOGITS), (N, C, S) strided
    t_ptr,  # target mask in [0, 1] (or ignore_index), (N, C, S) strided
    w_ptr,  # per-pixel weight, (N, C, S) strided; read only if HAS_WEIGHT
    part_ptr,  # partials out, (n_blocks_s, N, C, 5) contiguous in ACC
    C,
    S,
    NC,  # N * C: rows per block column
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    ignore_index,  # target value marking an ignored pixel (if HAS_IGNORE)
    lw_neg,  # label weight at t = 0 (if LABEL_WEIGHT)
    lw_pos,  # label weight at t = 1 (if LABEL_WEIGHT)
    alpha_pos,  # focal alpha_t at t = 1 (1 when alpha is off)
    alpha_neg,  # focal alpha_t at t = 0 (1 when alpha is off)
    gamma,  # focal exponent
    threshold,  # HARD: p becomes [p > threshold]
    FROM_LOGITS: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr,
    SQUARED: tl.constexpr,
    W_POW_I: tl.constexpr,
    W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr,
    HARD: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Sigmoid per channel; one program sums BLOCK pixels of one (n, c) row.

    p = 1 / (1 + e^-x), pn = 1 - p computed as e^-x / (1 + e^-x) (no cancellation).
    Pixel terms, sp(x) = max(x, 0) + log(1 + e^-|x|):
        PIXEL 1 (BCE):    l = sp(x) - x t
        PIXEL 2 (focal):  l = alpha_t (sp(x) - x t) d^gamma,  d = 1 - p_t = t pn + (1 - t) p,
                          alpha_t = alpha_neg + (alpha_pos - alpha_neg) t   (torchvision's)
    """
    pid = tl.program_id(0).to(tl.int64)
    row = pid % NC
    n = row // C
    c = row % C
    s = (pid // NC) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S

    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    t = tl.where(valid, t, 0.0)
    wl = valid.to(ACC)
    if HAS_WEIGHT:
        wl = wl * tl.load(w_ptr + n * stride_wn + c * stride_wc + s * stride_ws, mask=mask, other=0.0).to(ACC)
    om = wl
    if LABEL_WEIGHT:
        om = om * (lw_neg + (lw_pos - lw_neg) * t)
    if W_POW_I == 2:
        wi = om * om
    else:
        wi = om
    if W_POW_PT == 2:
        wp = om * om
    else:
        wp = om

    e = tl.exp(-tl.abs(x))
    if FROM_LOGITS:
        p = tl.where(x >= 0, 1.0, e) / (1.0 + e)
        pn = tl.where(x >= 0, e, 1.0) / (1.0 + e)
    else:
        p = x
        pn = 1.0 - x
    if HARD:
        p = (p > threshold).to(ACC)
    if SIGNED:
        q = 2.0 * p - 1.0
        u = 2.0 * t - 1.0
    else:
        q = p
        u = t
    i_sum = tl.sum(wi * q * u, axis=0)
    if SQUARED:
        p_sum = tl.sum(wp * q * q, axis=0)
        t_sum = tl.sum(wp * u * u, axis=0)
    else:
        p_sum = tl.sum(wp * q, axis=0)
        t_sum = tl.sum(wp * u, axis=0)

    if PIXEL == 0:
        l_sum = tl.sum(tl.zeros([BLOCK], dtype=ACC), axis=0)
    else:
        ce = tl.maximum(x, 0.0) + tl.log(1.0 + e) - x * t
        if PIXEL == 1:
            l_sum = tl.sum(wl * ce, axis=0)
        else:
            d = t * pn + (1.0 - t) * p
            mod = tl.exp(gamma * tl.log(tl.maximum(d, 1e-30)))
            at = alpha_neg + (alpha_pos - alpha_neg) * t
            l_sum = tl.sum(wl * at * ce * mod, axis=0)

    base = pid * 5
    tl.store(part_ptr + base + 0, i_sum)
    tl.store(part_ptr + base + 1, p_sum)
    tl.store(part_ptr + base + 2, t_sum)
    tl.store(part_ptr + base + 3, l_sum)
    tl.store(part_ptr + base + 4, tl.sum(valid.to(ACC), axis=0))


@triton.jit
def _dice_bwd_kernel(
    x_ptr,  # logits (or probabilities), (N, C, S) strided
    t_ptr,  # target, (N, C, S) strided
    w_ptr,  # per-pixel weight (if HAS_WEIGHT)
    g_ptr,  # dLoss/d(sums), (N, C, 5) contiguous in ACC
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C,
    S,
    NC,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    stride_dn, stride_dc, stride_ds,
    ignore_index,
    lw_neg,
    lw_pos,
    alpha_pos,
    alpha_neg,
    gamma,
    FROM_LOGITS: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr,
    SQUARED: tl.constexpr,
    W_POW_I: tl.constexpr,
    W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """With gI, gP, gL = g[n, c, 0], g[n, c, 1], g[n, c, 3] and m = dq/dp (2 if SIGNED else 1):

        a     = dLoss/dp = m * (gI * wi * u + gP * wp * (SQUARED ? 2 q : 1))
        dx    = a * p * pn                                   (FROM_LOGITS; else dx = a)
              + gL * wl * (p - t)                            (PIXEL 1: dBCE/dx)
              + gL * wl * alpha_t * [(p - t) d^g + ce g d^g (1 - 2t) p pn / d]   (PIXEL 2)
    where p pn / d <= 1 (d is a convex combination of p and pn), so nothing overflows.
    T does not depend on x; gT is never read. Ignored pixels get dx = 0.
    """
    pid = tl.program_id(0).to(tl.int64)
    row = pid % NC
    n = row // C
    c = row % C
    s = (pid // NC) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S

    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    t = tl.where(valid, t, 0.0)
    wl = valid.to(ACC)
    if HAS_WEIGHT:
        wl = wl * tl.load(w_ptr + n * stride_wn + c * stride_wc + s * stride_ws, mask=mask, other=0.0).to(ACC)
    om = wl
    if LABEL_WEIGHT:
        om = om * (lw_neg + (lw_pos - lw_neg) * t)
    if W_POW_I == 2:
        wi = om * om
    else:
        wi = om
    if W_POW_PT == 2:
        wp = om * om
    else:
        wp = om

    e = tl.exp(-tl.abs(x))
    if FROM_LOGITS:
        p = tl.where(x >= 0, 1.0, e) / (1.0 + e)
        pn = tl.where(x >= 0, e, 1.0) / (1.0 + e)
    else:
        p = x
        pn = 1.0 - x
    if SIGNED:
        q = 2.0 * p - 1.0
        u = 2.0 * t - 1.0
    else:
        q = p
        u = t
    g_i = tl.load(g_ptr + row * 5 + 0).to(ACC)
    g_p = tl.load(g_ptr + row * 5 + 1).to(ACC)
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
        g_l = tl.load(g_ptr + row * 5 + 3).to(ACC)
        if PIXEL == 1:
            dx += g_l * wl * (p - t)
        else:
            ce = tl.maximum(x, 0.0) + tl.log(1.0 + e) - x * t
            d = t * pn + (1.0 - t) * p
            dc = tl.maximum(d, 1e-30)
            mod = tl.exp(gamma * tl.log(dc))
            at = alpha_neg + (alpha_pos - alpha_neg) * t
            dx += g_l * wl * at * ((p - t) * mod + ce * gamma * mod * (1.0 - 2.0 * t) * (p * pn / dc))
    dx = tl.where(valid, dx, 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dice_softmax_fwd_kernel(
    x_ptr,  # logits (or probabilities when not FROM_LOGITS), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    w_ptr,  # per-pixel weight, (N, C, S) strided; read only if HAS_WEIGHT
    part_ptr,  # partials out, (n_blocks_s, N, C, 5) contiguous in ACC
    N,
    C,
    S,
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_wn, stride_wc, stride_ws,
    ignore_index,  # label marking an ignored pixel (if HAS_IGNORE)
    lw_neg,
    lw_pos,
    gamma,  # focal exponent (PIXEL 2)
    FROM_LOGITS: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr,
    SQUARED: tl.constexpr,
    W_POW_I: tl.constexpr,
    W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr,
    ACC: tl.constexpr,
    C_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Softmax over C in registers; one program sums a (C_PAD, BLOCK) tile of one image.

    t[c, s] = [y_s == c] exists only as a register mask. With lse = log sum_c e^x_c,
    log p_y = x_y - lse and v = 1 - p_y = sum_{c != y} p_c (no cancellation):
        PIXEL 1 (CE):     l = -log p_y
        PIXEL 2 (focal):  l = -v^gamma log p_y
    and the pixel term lands in the label's class: L[c] = sum_{y_s = c} w[y_s, s] l_s,
    so class weights (CE ``weight``, focal ``alpha``) apply afterwards on (N, C).
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid % N
    cls = tl.arange(0, C_PAD)
    cmask = cls < C
    s = (pid // N) * BLOCK + tl.arange(0, BLOCK)
    smask = s < S
    m2 = cmask[:, None] & smask[None, :]

    x = tl.load(x_ptr + n * stride_xn + cls[:, None] * stride_xc + s[None, :] * stride_xs,
                mask=m2, other=0.0).to(ACC)
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int32)
    valid = smask
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    live = cmask[:, None] & valid[None, :]
    hit = (cls[:, None] == y[None, :]) & live
    t = hit.to(ACC)
    wl = live.to(ACC)
    if HAS_WEIGHT:
        wl = wl * tl.load(w_ptr + n * stride_wn + cls[:, None] * stride_wc + s[None, :] * stride_ws,
                          mask=m2, other=0.0).to(ACC)
    om = wl
    if LABEL_WEIGHT:
        om = om * (lw_neg + (lw_pos - lw_neg) * t)
    if W_POW_I == 2:
        wi = om * om
    else:
        wi = om
    if W_POW_PT == 2:
        wp = om * om
    else:
        wp = om

    if FROM_LOGITS:
        xm = tl.where(cmask[:, None], x, float("-inf"))
        mx = tl.max(xm, axis=0)
        e = tl.exp(xm - mx[None, :])
        z = tl.sum(e, axis=0)
        p = e / z[None, :]
    else:
        p = x
    if SIGNED:
        q = 2.0 * p - 1.0
        u = 2.0 * t - 1.0
    else:
        q = p
        u = t
    i_sum = tl.sum(wi * q * u, axis=1)
    if SQUARED:
        p_sum = tl.sum(wp * q * q, axis=1)
        t_sum = tl.sum(wp * u * u, axis=1)
    else:
        p_sum = tl.sum(wp * q, axis=1)
        t_sum = tl.sum(wp * u, axis=1)

    if PIXEL == 0:
        l_sum = tl.sum(tl.zeros([C_PAD, BLOCK], dtype=ACC), axis=1)
    else:
        w_y = tl.sum(tl.where(hit, wl, 0.0), axis=0)
        logp = tl.sum(tl.where(hit, x, 0.0), axis=0) - mx - tl.log(z)
        if PIXEL == 1:
            l = -logp
        else:
            v = tl.sum(tl.where(hit, 0.0, e), axis=0) / z
            l = -tl.exp(gamma * tl.log(tl.maximum(v, 1e-30))) * logp
        l_sum = tl.sum(tl.where(hit, (w_y * l)[None, :], 0.0), axis=1)

    off = (pid * C + cls) * 5
    tl.store(part_ptr + off + 0, i_sum, mask=cmask)
    tl.store(part_ptr + off + 1, p_sum, mask=cmask)
    tl.store(part_ptr + off + 2, t_sum, mask=cmask)
    tl.store(part_ptr + off + 3, l_sum, mask=cmask)
    tl.store(part_ptr + off + 4, tl.sum(t, axis=1), mask=cmask)


@triton.jit
def _dice_softmax_bwd_kernel(
    x_ptr,  # logits (or probabilities), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    w_ptr,  # per-pixel weight (if HAS_WEIGHT)
    g_ptr,  # dLoss/d(sums), (N, C, 5) contiguous in ACC
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    N,
    C,
    S,
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_wn, stride_wc, stride_ws,
    stride_dn, stride_dc, stride_ds,
    ignore_index,
    lw_neg,
    lw_pos,
    gamma,
    FROM_LOGITS: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    LABEL_WEIGHT: tl.constexpr,
    SIGNED: tl.constexpr,
    SQUARED: tl.constexpr,
    W_POW_I: tl.constexpr,
    W_POW_PT: tl.constexpr,
    PIXEL: tl.constexpr,
    ACC: tl.constexpr,
    C_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Per pixel, with a_c = dLoss/dp_c = m (gI_c wi_c u_c + gP_c wp_c (SQUARED ? 2 q_c : 1)):

        dx_j = p_j (a_j - sum_c p_c a_c)                      (softmax chain rule; a_j if not FROM_LOGITS)
             + gL_y w_y (p_j - [j = y])                       (PIXEL 1: dCE/dx_j)
             + gL_y w_y v^g (1 - g p_y r) (p_j - [j = y])     (PIXEL 2)
    with v = 1 - p_y and r = log(p_y) / v, taken from its series -1 - v/2 - v^2/3 when
    v < 1e-4 (r -> -1 as v -> 0: finite for every gamma >= 0).
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid % N
    cls = tl.arange(0, C_PAD)
    cmask = cls < C
    s = (pid // N) * BLOCK + tl.arange(0, BLOCK)
    smask = s < S
    m2 = cmask[:, None] & smask[None, :]

    x = tl.load(x_ptr + n * stride_xn + cls[:, None] * stride_xc + s[None, :] * stride_xs,
                mask=m2, other=0.0).to(ACC)
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int32)
    valid = smask
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    live = cmask[:, None] & valid[None, :]
    hit = (cls[:, None] == y[None, :]) & live
    t = hit.to(ACC)
    wl = live.to(ACC)
    if HAS_WEIGHT:
        wl = wl * tl.load(w_ptr + n * stride_wn + cls[:, None] * stride_wc + s[None, :] * stride_ws,
                          mask=m2, other=0.0).to(ACC)
    om = wl
    if LABEL_WEIGHT:
        om = om * (lw_neg + (lw_pos - lw_neg) * t)
    if W_POW_I == 2:
        wi = om * om
    else:
        wi = om
    if W_POW_PT == 2:
        wp = om * om
    else:
        wp = om

    if FROM_LOGITS:
        xm = tl.where(cmask[:, None], x, float("-inf"))
        mx = tl.max(xm, axis=0)
        e = tl.exp(xm - mx[None, :])
        z = tl.sum(e, axis=0)
        p = e / z[None, :]
    else:
        p = x
    if SIGNED:
        q = 2.0 * p - 1.0
        u = 2.0 * t - 1.0
    else:
        q = p
        u = t
    g_off = (n * C + cls) * 5
    g_i = tl.load(g_ptr + g_off + 0, mask=cmask, other=0.0).to(ACC)
    g_p = tl.load(g_ptr + g_off + 1, mask=cmask, other=0.0).to(ACC)
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
    if PIXEL != 0:
        g_l = tl.load(g_ptr + g_off + 3, mask=cmask, other=0.0).to(ACC)
        coef = tl.sum(tl.where(hit, g_l[:, None] * wl, 0.0), axis=0)  # gL_y * w_y
        if PIXEL == 2:
            v = tl.sum(tl.where(hit, 0.0, e), axis=0) / z
            logp = tl.sum(tl.where(hit, x, 0.0), axis=0) - mx - tl.log(z)
            r = tl.where(v < 1e-4, -1.0 - v * (0.5 + v / 3.0), logp / tl.maximum(v, 1e-4))
            mod = tl.exp(gamma * tl.log(tl.maximum(v, 1e-30)))
            coef = coef * mod * (1.0 - gamma * (1.0 - v) * r)
        dx += coef[None, :] * (p - t)
    dx = tl.where(live, dx, 0.0)
    tl.store(dx_ptr + n * stride_dn + cls[:, None] * stride_dc + s[None, :] * stride_ds,
             dx.to(dx_ptr.dtype.element_ty), mask=m2)


# ---- launchers -------------------------------------------------------------------

def _opt_strides(t):
    return (0, 0, 0) if t is None else tuple(t.stride())


def _tile_for(c: int, s: int) -> tuple[int, int, int]:
    """(C_PAD, BLOCK, num_warps) for the softmax kernels: about 4096 elements per tile."""
    c_pad = triton.next_power_of_2(c)
    block = max(16, min(1024, 4096 // c_pad, triton.next_power_of_2(max(s, 1))))
    return c_pad, block, (4 if c_pad * block <= 4096 else 8)


def _scalars(ignore_index, label_weight, alpha):
    lw_neg, lw_pos = (1.0, 1.0) if label_weight is None else (float(label_weight[0]), float(label_weight[1]))
    if alpha is None or alpha < 0:
        a_pos, a_neg = 1.0, 1.0
    else:
        a_pos, a_neg = float(alpha), 1.0 - float(alpha)
    return (0.0 if ignore_index is None else ignore_index), lw_neg, lw_pos, a_pos, a_neg


def dice_forward(x, t, w, multiclass, from_logits, ignore_index, squared, signed, label_weight,
                 w_pow_i, w_pow_pt, pixel, alpha, gamma, hard, threshold):
    """Partial sums, (n_blocks, N, C, 5) in the accumulation dtype (sum over dim 0 to finish).

    x: (N, C, S) logits; t: (N, C, S) mask (binary/multilabel) or (N, 1, S) labels (multiclass);
    w: (N, C, S) weight or None; label_weight: None or (neg, pos); pixel: 0 none, 1 BCE/CE, 2 focal.
    """
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    ig, lw_neg, lw_pos, a_pos, a_neg = _scalars(ignore_index, label_weight, alpha)
    flags = dict(FROM_LOGITS=from_logits, HAS_WEIGHT=w is not None, HAS_IGNORE=ignore_index is not None,
                 LABEL_WEIGHT=label_weight is not None, SIGNED=signed, SQUARED=squared,
                 W_POW_I=w_pow_i, W_POW_PT=w_pow_pt, PIXEL=pixel, ACC=tl_acc(x.dtype))
    w_arg = x if w is None else w
    if multiclass:
        c_pad, block, num_warps = _tile_for(C, S)
        n_blocks = triton.cdiv(S, block)
        part = torch.empty((n_blocks, N, C, NSUMS), device=x.device, dtype=acc)
        _dice_softmax_fwd_kernel[(N * n_blocks,)](
            x, t, w_arg, part, N, C, S,
            *x.stride(), t.stride(0), t.stride(2), *_opt_strides(w),
            int(ig), lw_neg, lw_pos, float(gamma),
            **flags, C_PAD=c_pad, BLOCK=block, num_warps=num_warps,
        )
        return part
    block, num_warps = block_for(S)
    n_blocks = triton.cdiv(S, block)
    part = torch.empty((n_blocks, N, C, NSUMS), device=x.device, dtype=acc)
    _dice_fwd_kernel[(N * C * n_blocks,)](
        x, t, w_arg, part, C, S, N * C,
        *x.stride(), *t.stride(), *_opt_strides(w),
        float(ig), lw_neg, lw_pos, a_pos, a_neg, float(gamma), float(threshold),
        **flags, HARD=hard, BLOCK=block, num_warps=num_warps,
    )
    return part


def dice_backward(x, t, w, g, multiclass, from_logits, ignore_index, squared, signed, label_weight,
                  w_pow_i, w_pow_pt, pixel, alpha, gamma):
    """dLoss/dx from g = dLoss/d(sums), (N, C, 5); the logits' dtype and layout."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    g = g.contiguous()
    ig, lw_neg, lw_pos, a_pos, a_neg = _scalars(ignore_index, label_weight, alpha)
    flags = dict(FROM_LOGITS=from_logits, HAS_WEIGHT=w is not None, HAS_IGNORE=ignore_index is not None,
                 LABEL_WEIGHT=label_weight is not None, SIGNED=signed, SQUARED=squared,
                 W_POW_I=w_pow_i, W_POW_PT=w_pow_pt, PIXEL=pixel, ACC=tl_acc(x.dtype))
    w_arg = x if w is None else w
    if multiclass:
        c_pad, block, num_warps = _tile_for(C, S)
        n_blocks = triton.cdiv(S, block)
        _dice_softmax_bwd_kernel[(N * n_blocks,)](
            x, t, w_arg, g, dx, N, C, S,
            *x.stride(), t.stride(0), t.stride(2), *_opt_strides(w), *dx.stride(),
            int(ig), lw_neg, lw_pos, float(gamma),
            **flags, C_PAD=c_pad, BLOCK=block, num_warps=num_warps,
        )
        return dx
    block, num_warps = block_for(S)
    n_blocks = triton.cdiv(S, block)
    _dice_bwd_kernel[(N * C * n_blocks,)](
        x, t, w_arg, g, dx, C, S, N * C,
        *x.stride(), *t.stride(), *_opt_strides(w), *dx.stride(),
        float(ig), lw_neg, lw_pos, a_pos, a_neg, float(gamma),
        **flags, BLOCK=block, num_warps=num_warps,
    )
    return dx


# ---- ahead-of-time compile specs --------------------------------------------------

def _aot_variants():
    specs = []
    floats = ("ignore_index", "lw_neg", "lw_pos", "alpha_pos", "alpha_neg", "gamma", "threshold")
    mc_floats = ("lw_neg", "lw_pos", "gamma")
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        flags = dict(FROM_LOGITS=True, HAS_WEIGHT=True, HAS_IGNORE=True, LABEL_WEIGHT=True, SIGNED=True,
                     SQUARED=True, W_POW_I=2, W_POW_PT=1, PIXEL=2, ACC=acc)
        f32 = {k: "fp32" for k in floats}
        specs.append(aot_spec(_dice_fwd_kernel, dict(flags, HARD=True, BLOCK=1024), x_ptr=f"*{dt}", t_ptr="*u8",
                              part_ptr=accty, **f32))
        specs.append(aot_spec(_dice_bwd_kernel, dict(flags, BLOCK=1024), x_ptr=f"*{dt}", t_ptr="*fp32",
                              g_ptr=accty, dx_ptr=f"*{dt}", **{k: v for k, v in f32.items() if k != "threshold"}))
        mf = {k: "fp32" for k in mc_floats}
        specs.append(aot_spec(_dice_softmax_fwd_kernel, dict(flags, C_PAD=32, BLOCK=128), x_ptr=f"*{dt}",
                              y_ptr="*i64", part_ptr=accty, **mf))
        specs.append(aot_spec(_dice_softmax_bwd_kernel, dict(flags, PIXEL=1, C_PAD=32, BLOCK=128),
                              x_ptr=f"*{dt}", y_ptr="*u8", g_ptr=accty, dx_ptr=f"*{dt}", **mf))
    # the common fast paths: plain Dice (+ BCE / CE), stride-1 pixels, int64 strides (past 2^31 elements)
    plain = dict(FROM_LOGITS=True, HAS_WEIGHT=False, HAS_IGNORE=False, LABEL_WEIGHT=False, SIGNED=False,
                 SQUARED=False, W_POW_I=1, W_POW_PT=1, PIXEL=1, ACC=tl.float32)
    big = {f"stride_{a}{b}": "i64" for a in "xtwd" for b in "nc"}
    div = ("S", "stride_xn", "stride_xc", "stride_tn", "stride_tc", "stride_dn", "stride_dc")
    f32 = {k: "fp32" for k in floats}
    specs.append(aot_spec(_dice_fwd_kernel, dict(plain, HARD=False, BLOCK=2048, stride_xs=1, stride_ts=1),
                          divisible=div[:5], S="i64", NC="i64", **f32,
                          **{k: v for k, v in big.items() if k[7] in "xtw"}))
    specs.append(aot_spec(_dice_bwd_kernel, dict(plain, BLOCK=2048, stride_xs=1, stride_ts=1, stride_ds=1),
                          divisible=div, S="i64", NC="i64", **{k: v for k, v in f32.items() if k != "threshold"},
                          **big))
    bigm = {"stride_xn": "i64", "stride_xc": "i64", "stride_yn": "i64", "stride_wn": "i64", "stride_wc": "i64"}
    mf = {k: "fp32" for k in mc_floats}
    specs.append(aot_spec(_dice_softmax_fwd_kernel, dict(plain, C_PAD=32, BLOCK=128, stride_xs=1, stride_ys=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_yn"), S="i64", y_ptr="*i64",
                          **mf, **bigm))
    specs.append(aot_spec(_dice_softmax_bwd_kernel,
                          dict(plain, C_PAD=32, BLOCK=128, stride_xs=1, stride_ys=1, stride_ds=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_yn", "stride_dn", "stride_dc"),
                          S="i64", y_ptr="*i64", stride_dn="i64", stride_dc="i64", **mf, **bigm))
    return specs


AOT_SPECS = _aot_variants()
