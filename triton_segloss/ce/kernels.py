"""Triton kernels of the cross-entropy family and their launchers (the family's only triton import).

Logits are seen as (N, C, S) and labels as (N, 1, S), each with its own
strides, so channels_last and sliced inputs are read in place; the one-hot
target is never built (a label is compared with the class index). A tile is
BLOCK_S pixels of one image; the classes are swept in chunks of BLOCK_C with an
online log-sum-exp, so any C works.

A training step is three launches (four for ``reduction="none"`` with
``balance``, two for ``"none"`` without it), and nothing goes through the host:

* ``_ce_fwd_kernel`` writes per-program partials: ``[sum l, sum wt]``, or with
  ``balance`` the per-class sums ``[A_c, B_c, N_c, M_c]`` (the class histogram
  is folded into this pass: the inverse-frequency weights need no extra launch);
* ``_ce_finish_kernel`` (one program) sums them in a fixed order in float64 and
  writes the loss and the coefficients the backward reads: ``coef[0]`` the
  gradient scale, ``coef[1:]`` the class weights actually used (``balance``);
* ``_ce_bwd_kernel`` reads the coefficients and the upstream gradient from
  device memory and writes the gradient once.

Traffic: the forward reads the logits once and the backward once (label smoothing
included; only ``balance`` with label smoothing sweeps the forward's tile twice,
a re-read of the tile a program just read). Above ONE_TILE_CLASSES classes the
backward's statistics (lse's two parts and 1 - p_y) come from the forward, 12 B
per pixel written and read back, instead of a second sweep over the classes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import device_guard, scalar, split_f64, sum_rows, tl_acc
from triton_segloss._core.validate import acc_dtype

from .ops import ONE_TILE_CLASSES, stats_shape

NSTAT = 4  # per-class partials with balance: [A_c, B_c, N_c, M_c]
MAX_PARTIAL_ROWS = 2048  # a program sweeps several tiles when there are more (fewer rows for the finisher)
FINISH_ROWS = 64  # rows per step of the balance finisher (a [FINISH_ROWS, FINISH_CLASSES] fp64 tile)
FINISH_CLASSES = 64


@triton.jit
def _class_weight(w_ptr, stride_w, idx, mask, HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr):
    """w[idx] (1 without weights); ``idx`` int64, 0 where masked."""
    if HAS_WEIGHT:
        return tl.load(w_ptr + idx * stride_w, mask=mask, other=0.0).to(ACC)
    else:
        return tl.where(mask, 1.0, 0.0).to(ACC)


@triton.jit
def _ce_fwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # labels, (N, 1, S) strided, any integer dtype
    w_ptr,  # class weights, (C,) strided (stride_w), any float dtype; read if HAS_WEIGHT
    pw_ptr,  # per-pixel weights, (N, 1, S) strided; read if HAS_PIXEL_WEIGHT
    coef_ptr,  # the finisher's [scale, w_0 .. w_{C-1}] in ACC; w read instead of w_ptr if APPLY_COEF
    loss_ptr,  # per-pixel loss out, contiguous (N, S) in ACC; written if STORE_LOSS
    part_ptr,  # per-program partials out, contiguous (programs, K) in ACC; written if STORE_PARTIALS
    stat_ptr,  # per-pixel statistics out, contiguous (N, 3, S) in ACC: [mx, log d, 1 - p_y]; written if STORE_STATS
    C, S,
    progs_per_image,  # programs per image; each sweeps `iters` consecutive tiles of BLOCK_S pixels
    iters,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    stride_w,
    stride_pn, stride_ps,
    ignore_index,  # label of ignored pixels (if HAS_IGNORE)
    ls_hi, ls_lo,  # label smoothing eps (fp32 pair)
    HAS_WEIGHT: tl.constexpr, HAS_PIXEL_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, SMOOTH: tl.constexpr,
    BALANCE: tl.constexpr, STORE_LOSS: tl.constexpr, STORE_PARTIALS: tl.constexpr, APPLY_COEF: tl.constexpr,
    STORE_STATS: tl.constexpr,  # C > BLOCK_C: the backward reads the statistics instead of a second class sweep
    ONE_CHUNK: tl.constexpr,  # C <= BLOCK_C: per-class partials stay in registers across the tiles (else in part)
    ACC: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Per pixel with label y, class weights w (1 if none), pixel weight m (1 if none), eps the
    label smoothing and lse = log sum_c e^{x_c} = mx + log d (mx the running max):

        l  = m * [ (1 - eps) * w_y * (lse - x_y) + eps / C * sum_c w_c * (lse - x_c) ]
        wt = m * w_y

    and l = wt = 0 on pixels whose label is ignore_index or outside [0, C).
    Partials per program (K columns):
        not BALANCE:  [sum l, sum wt]                                                 (K = 2)
        BALANCE:      per class c, columns 4c .. 4c + 3, over the valid pixels:      (K = 4 C)
                      A_c = sum_{y=c} m (lse - x_c),  B_c = sum m (lse - x_c) (SMOOTH, else 0),
                      N_c = #{y = c},                 M_c = sum_{y=c} m
    so that with the balanced weights w_c = w'_c / N_c the finisher forms
    sum l = sum_c w_c [(1 - eps) A_c + eps / C B_c] and sum wt = sum_c w_c M_c.
    APPLY_COEF (``"none"`` with balance, after the finisher): the map uses w = coef[1:].

    One sweep over the class chunks per tile: besides mx and d it carries d_o, the sum over the
    classes other than y (so 1 - p_y = d_o / d without cancellation), and for label smoothing
    T = sum_c w_c (mx - x_c), rescaled as mx grows (T += W_seen (mx_new - mx)): every term >= 0, so
    sum_c w_c (lse - x_c) = T + W log d has no cancellation either. Only BALANCE with SMOOTH sweeps
    again (its per-class sums need lse first). STORE_STATS writes [mx, log d, d_o / d] per pixel.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // progs_per_image
    first = (pid % progs_per_image) * iters
    eps = scalar(ls_hi, ls_lo, ACC)
    K = 4 * C if BALANCE else 2
    sum_l = tl.zeros([], dtype=ACC)
    sum_wt = tl.zeros([], dtype=ACC)
    acc_a = tl.zeros([BLOCK_C], dtype=ACC)
    acc_b = tl.zeros([BLOCK_C], dtype=ACC)
    acc_n = tl.zeros([BLOCK_C], dtype=ACC)
    acc_m = tl.zeros([BLOCK_C], dtype=ACC)
    for it in range(iters):
        s = (first + it) * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)
        smask = s < S
        y = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
        valid = smask & (y >= 0) & (y < C)
        if HAS_IGNORE:
            valid = valid & (y != ignore_index)
        if HAS_PIXEL_WEIGHT:
            m = tl.load(pw_ptr + n * stride_pn + s * stride_ps, mask=smask, other=0.0).to(ACC)
        else:
            m = tl.full([BLOCK_S], 1.0, ACC)
        m = tl.where(valid, m, 0.0)
        x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs

        mx = tl.full([BLOCK_S], float("-inf"), ACC)
        d = tl.zeros([BLOCK_S], dtype=ACC)
        d_o = tl.zeros([BLOCK_S], dtype=ACC)  # the classes other than y
        xy = tl.zeros([BLOCK_S], dtype=ACC)
        t_sm = tl.zeros([BLOCK_S], dtype=ACC)  # T = sum_c w_c (mx - x_c) over the chunks so far
        w_seen = tl.zeros([], dtype=ACC)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)  # int64: c * stride_xc passes 2^31 in large volumes
            cmask = c < C
            x = tl.load(x_row + c[:, None] * stride_xc, mask=cmask[:, None] & smask[None, :], other=0.0).to(ACC)
            x = tl.where(cmask[:, None], x, float("-inf"))
            mx_new = tl.maximum(mx, tl.max(x, axis=0))
            alpha = tl.exp(mx - mx_new)
            e = tl.exp(x - mx_new[None, :])
            is_y = c[:, None] == y[None, :]
            d = d * alpha + tl.sum(e, axis=0)
            if STORE_STATS:
                d_o = d_o * alpha + tl.sum(tl.where(is_y, 0.0, e), axis=0)
            if SMOOTH and not (BALANCE and STORE_PARTIALS):
                if APPLY_COEF:
                    wc = tl.load(coef_ptr + 1 + c, mask=cmask, other=0.0).to(ACC)
                else:
                    wc = _class_weight(w_ptr, stride_w, c, cmask, HAS_WEIGHT, ACC)
                grow = w_seen * (mx_new - tl.where(w_seen > 0, mx, mx_new))  # 0, not 0 * inf, before any class
                t_sm = t_sm + grow + tl.sum(tl.where(cmask[:, None], wc[:, None] * (mx_new[None, :] - x), 0.0),
                                            axis=0)
                w_seen += tl.sum(wc, axis=0)
            mx = mx_new
            xy += tl.sum(tl.where(is_y, x, 0.0), axis=0)
        log_d = tl.log(d)
        nll = (mx - xy) + log_d  # lse - x_y without forming lse (no cancellation for large logits)
        if STORE_STATS:
            st = stat_ptr + n * 3 * S + s
            tl.store(st, mx, mask=smask)
            tl.store(st + S, log_d, mask=smask)
            tl.store(st + 2 * S, d_o / d, mask=smask)

        if BALANCE and STORE_PARTIALS:
            for c0 in range(0, C, BLOCK_C):
                c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
                cmask = c < C
                hit = (c[:, None] == y[None, :]) & valid[None, :]
                a = tl.sum(tl.where(hit, (m * nll)[None, :], 0.0), axis=1)
                cnt = tl.sum(hit.to(ACC), axis=1)
                mm = tl.sum(tl.where(hit, m[None, :], 0.0), axis=1)
                b = tl.zeros([BLOCK_C], dtype=ACC)
                if SMOOTH:
                    x = tl.load(x_row + c[:, None] * stride_xc, mask=cmask[:, None] & smask[None, :],
                                other=0.0).to(ACC)
                    b = tl.sum(tl.where(cmask[:, None], m[None, :] * ((mx[None, :] - x) + log_d[None, :]), 0.0),
                               axis=1)
                if ONE_CHUNK:
                    acc_a += a
                    acc_b += b
                    acc_n += cnt
                    acc_m += mm
                else:  # more classes than registers: the program adds each tile to its own partials row
                    row = part_ptr + pid * K + c * 4
                    keep = cmask & (it > 0)  # the first tile writes, the later ones add
                    tl.store(row + 0, a + tl.load(row + 0, mask=keep, other=0.0), mask=cmask)
                    tl.store(row + 1, b + tl.load(row + 1, mask=keep, other=0.0), mask=cmask)
                    tl.store(row + 2, cnt + tl.load(row + 2, mask=keep, other=0.0), mask=cmask)
                    tl.store(row + 3, mm + tl.load(row + 3, mask=keep, other=0.0), mask=cmask)
            if not ONE_CHUNK:
                tl.debug_barrier()  # the next tile's loads may run on other threads of the program
        else:
            yy = tl.where(valid, y, 0)
            if APPLY_COEF:
                wy = tl.load(coef_ptr + 1 + yy, mask=valid, other=0.0).to(ACC)
            else:
                wy = _class_weight(w_ptr, stride_w, yy, valid, HAS_WEIGHT, ACC)
            loss = (1.0 - eps) * wy * nll
            if SMOOTH:
                loss += eps / C * (t_sm + w_seen * log_d)  # sum_c w_c (lse - x_c)
            loss = tl.where(valid, loss * m, 0.0)
            if STORE_LOSS:
                tl.store(loss_ptr + n * S + s, loss, mask=smask)
            if STORE_PARTIALS:
                sum_l += tl.sum(loss, axis=0)
                sum_wt += tl.sum(wy * m, axis=0)
    if STORE_PARTIALS:
        if BALANCE:
            if ONE_CHUNK:
                c = tl.arange(0, BLOCK_C).to(tl.int64)
                cmask = c < C
                row = part_ptr + pid * K + c * 4
                tl.store(row + 0, acc_a, mask=cmask)
                tl.store(row + 1, acc_b, mask=cmask)
                tl.store(row + 2, acc_n, mask=cmask)
                tl.store(row + 3, acc_m, mask=cmask)
        else:
            tl.store(part_ptr + pid * 2 + 0, sum_l)
            tl.store(part_ptr + pid * 2 + 1, sum_wt)


@triton.jit
def _ce_finish_kernel(
    part_ptr,  # per-program partials, contiguous (n_part, K) in ACC (K = 4 C with BALANCE, else 2)
    w_ptr,  # class weights w', (C,) strided, any float dtype; read if BALANCE and HAS_WEIGHT
    loss_ptr,  # the 0-d loss out, ACC; written if STORE_LOSS
    coef_ptr,  # out, ACC: [scale] (+ [w_0 .. w_{C-1}] with BALANCE)
    n_part, C,
    stride_w,
    ls_hi, ls_lo,  # label smoothing eps (fp32 pair)
    HAS_WEIGHT: tl.constexpr, BALANCE: tl.constexpr, MEAN: tl.constexpr, STORE_LOSS: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """One program; every sum in float64 and in a fixed order. With [sl, swt] = [sum l, sum wt]:

        BALANCE:  w_c = w'_c / N_c (0 for a class absent from the batch: N_c = 0), written to coef[1:],
                  sl = sum_c w_c [(1 - eps) A_c + eps / C B_c],   swt = sum_c w_c M_c
        mean:     loss = sl / swt,  scale = 1 / swt     (both 0 when swt == 0: every pixel ignored)
        sum:      loss = sl,        scale = 1

    dLoss/dl_pixel = scale: the backward multiplies it by the upstream gradient.
    """
    if BALANCE:
        eps = scalar(ls_hi, ls_lo, tl.float64)
        K = 4 * C
        sl = tl.zeros([], dtype=tl.float64)
        swt = tl.zeros([], dtype=tl.float64)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
            cmask = c < C
            ta = tl.zeros([BLOCK, BLOCK_C], dtype=tl.float64)
            tb = tl.zeros([BLOCK, BLOCK_C], dtype=tl.float64)
            tn = tl.zeros([BLOCK, BLOCK_C], dtype=tl.float64)
            tm = tl.zeros([BLOCK, BLOCK_C], dtype=tl.float64)
            for r0 in range(0, n_part, BLOCK):
                rows = r0 + tl.arange(0, BLOCK).to(tl.int64)
                msk = (rows[:, None] < n_part) & cmask[None, :]
                p = part_ptr + rows[:, None] * K + c[None, :] * 4
                ta += tl.load(p + 0, mask=msk, other=0.0).to(tl.float64)
                tb += tl.load(p + 1, mask=msk, other=0.0).to(tl.float64)
                tn += tl.load(p + 2, mask=msk, other=0.0).to(tl.float64)
                tm += tl.load(p + 3, mask=msk, other=0.0).to(tl.float64)
            a = tl.sum(ta, axis=0)
            b = tl.sum(tb, axis=0)
            cnt = tl.sum(tn, axis=0)
            mm = tl.sum(tm, axis=0)
            if HAS_WEIGHT:
                wg = tl.load(w_ptr + c * stride_w, mask=cmask, other=0.0).to(tl.float64)
            else:
                wg = tl.where(cmask, 1.0, 0.0).to(tl.float64)
            w = tl.where(cnt > 0, wg / tl.where(cnt > 0, cnt, 1.0), 0.0)
            tl.store(coef_ptr + 1 + c, w.to(ACC), mask=cmask)
            sl += tl.sum(w * ((1.0 - eps) * a + eps / C * b), axis=0)
            swt += tl.sum(w * mm, axis=0)
    else:
        tot = sum_rows(part_ptr, n_part, 2, 2, BLOCK)
        sl = tl.sum(tl.where(tl.arange(0, 2) == 0, tot, 0.0), axis=0)
        swt = tl.sum(tl.where(tl.arange(0, 2) == 1, tot, 0.0), axis=0)
    if MEAN:
        nz = swt != 0.0
        den = tl.where(nz, swt, 1.0)
        loss = tl.where(nz, sl / den, 0.0)
        scale = tl.where(nz, 1.0 / den, 0.0)
    else:
        loss = sl
        scale = tl.full([], 1.0, tl.float64)
    if STORE_LOSS:
        tl.store(loss_ptr, loss.to(ACC))
    tl.store(coef_ptr, scale.to(ACC))


@triton.jit
def _ce_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # labels, (N, 1, S) strided
    w_ptr,  # class weights (C,) strided (stride_w), any float dtype; read if HAS_WEIGHT and not BALANCE
    pw_ptr,  # per-pixel weights, (N, 1, S) strided; read if HAS_PIXEL_WEIGHT
    g_ptr,  # upstream gradient: (N, S) strided map if G_IS_MAP, else the 0-d loss gradient
    coef_ptr,  # the finisher's [scale, w_0 .. w_{C-1}] in ACC; scale read if not G_IS_MAP, w if BALANCE
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    stat_ptr,  # the forward's per-pixel [mx, log d, 1 - p_y], contiguous (N, 3, S) in ACC; read if HAS_STATS
    C, S,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    stride_w,
    stride_pn, stride_ps,
    stride_gn, stride_gs,
    stride_dn, stride_dc, stride_ds,
    ignore_index,
    ls_hi, ls_lo,  # label smoothing eps (fp32 pair)
    HAS_WEIGHT: tl.constexpr, HAS_PIXEL_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, SMOOTH: tl.constexpr,
    BALANCE: tl.constexpr, G_IS_MAP: tl.constexpr,
    ONE_CHUNK: tl.constexpr,  # C <= BLOCK_C: one read of the logits (kept in registers)
    HAS_STATS: tl.constexpr,  # else: the forward's statistics, and one sweep over the class chunks
    ACC: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Takes lse = mx + log d and 1 - p_y from the one tile in registers (ONE_CHUNK) or from the
    forward's statistics (HAS_STATS; a first sweep over the class chunks recomputes them when
    neither), then with p_c = e^{x_c - lse} and W = sum_c w_c:

        dl/dx_c = m * [ (1 - eps) * w_y * (p_c - [c == y]) + eps / C * (W * p_c - w_c) ]
        dx_c    = g * scale * dl/dx_c       (g per pixel for "none", where scale = 1),  0 on ignored pixels

    with w = coef[1:] under BALANCE. For c == y, p_y - 1 = -sum_{c != y} p_c is taken from
    its own running sum (d_other / d) rather than by subtracting 1 from p_y ~ 1, which would cancel.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)
    smask = s < S
    y = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    yy = tl.where(valid, y, 0)
    eps = scalar(ls_hi, ls_lo, ACC)
    x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs

    c0 = tl.arange(0, BLOCK_C).to(tl.int64)
    if ONE_CHUNK:  # every class in one tile: the logits are read once, kept in registers for the gradient
        cmask0 = c0 < C
        x0 = tl.load(x_row + c0[:, None] * stride_xc, mask=cmask0[:, None] & smask[None, :], other=0.0).to(ACC)
        xm = tl.where(cmask0[:, None], x0, float("-inf"))
        mx = tl.max(xm, axis=0)
        e = tl.exp(xm - mx[None, :])
        d = tl.sum(e, axis=0)
        d_other = tl.sum(tl.where(c0[:, None] == y[None, :], 0.0, e), axis=0)
        w_total = tl.zeros([], dtype=ACC)
        if SMOOTH:
            w_total = tl.sum(_smooth_weights(w_ptr, stride_w, coef_ptr, c0, cmask0, HAS_WEIGHT, BALANCE, ACC), axis=0)
    elif HAS_STATS:
        st = stat_ptr + n * 3 * S + s
        mx = tl.load(st, mask=smask, other=0.0)
        log_d = tl.load(st + S, mask=smask, other=0.0)
        one_minus_py = tl.load(st + 2 * S, mask=smask, other=0.0)
        w_total = tl.zeros([], dtype=ACC)
        if SMOOTH:
            for cb in range(0, C, BLOCK_C):
                c = cb + c0
                w_total += tl.sum(_smooth_weights(w_ptr, stride_w, coef_ptr, c, c < C, HAS_WEIGHT, BALANCE, ACC),
                                  axis=0)
    else:
        mx = tl.full([BLOCK_S], float("-inf"), ACC)
        d = tl.zeros([BLOCK_S], dtype=ACC)
        d_other = tl.zeros([BLOCK_S], dtype=ACC)  # the classes other than y
        w_total = tl.zeros([], dtype=ACC)
        for cb in range(0, C, BLOCK_C):
            c = cb + c0
            cmask = c < C
            x = tl.load(x_row + c[:, None] * stride_xc, mask=cmask[:, None] & smask[None, :], other=0.0).to(ACC)
            x = tl.where(cmask[:, None], x, float("-inf"))
            mx_new = tl.maximum(mx, tl.max(x, axis=0))
            alpha = tl.exp(mx - mx_new)
            e = tl.exp(x - mx_new[None, :])
            d = d * alpha + tl.sum(e, axis=0)
            d_other = d_other * alpha + tl.sum(tl.where(c[:, None] == y[None, :], 0.0, e), axis=0)
            mx = mx_new
            if SMOOTH:
                w_total += tl.sum(_smooth_weights(w_ptr, stride_w, coef_ptr, c, cmask, HAS_WEIGHT, BALANCE, ACC),
                                  axis=0)
    if not HAS_STATS:
        log_d = tl.log(d)
        one_minus_py = d_other / d

    if BALANCE:
        wy = tl.load(coef_ptr + 1 + yy, mask=valid, other=0.0).to(ACC)
    else:
        wy = _class_weight(w_ptr, stride_w, yy, valid, HAS_WEIGHT, ACC)
    if G_IS_MAP:
        scale = tl.load(g_ptr + n * stride_gn + s * stride_gs, mask=smask, other=0.0).to(ACC)
    else:
        scale = tl.full([BLOCK_S], 1.0, ACC) * (tl.load(coef_ptr).to(ACC) * tl.load(g_ptr).to(ACC))
    if HAS_PIXEL_WEIGHT:
        scale = scale * tl.load(pw_ptr + n * stride_pn + s * stride_ps, mask=smask, other=0.0).to(ACC)
    scale = tl.where(valid, scale, 0.0)
    a = (1.0 - eps) * wy  # weight of the label term
    dx_row = dx_ptr + n * stride_dn + s[None, :] * stride_ds
    if ONE_CHUNK:
        dx = _ce_grad_tile(x0, c0, cmask0, y, mx, log_d, one_minus_py, a, scale, eps, w_total, w_ptr, stride_w,
                           coef_ptr, C, HAS_WEIGHT, SMOOTH, BALANCE, ACC)
        tl.store(dx_row + c0[:, None] * stride_dc, dx.to(dx_ptr.dtype.element_ty),
                 mask=cmask0[:, None] & smask[None, :])
    else:
        for cb in range(0, C, BLOCK_C):
            c = cb + c0
            cmask = c < C
            mask2 = cmask[:, None] & smask[None, :]
            x = tl.load(x_row + c[:, None] * stride_xc, mask=mask2, other=0.0).to(ACC)
            dx = _ce_grad_tile(x, c, cmask, y, mx, log_d, one_minus_py, a, scale, eps, w_total, w_ptr, stride_w,
                               coef_ptr, C, HAS_WEIGHT, SMOOTH, BALANCE, ACC)
            tl.store(dx_row + c[:, None] * stride_dc, dx.to(dx_ptr.dtype.element_ty), mask=mask2)


@triton.jit
def _smooth_weights(w_ptr, stride_w, coef_ptr, c, cmask, HAS_WEIGHT: tl.constexpr, BALANCE: tl.constexpr,
                    ACC: tl.constexpr):
    """The class weights w_c of classes ``c`` (the finisher's balanced ones under BALANCE), 0 past C."""
    if BALANCE:
        return tl.load(coef_ptr + 1 + c, mask=cmask, other=0.0).to(ACC)
    return _class_weight(w_ptr, stride_w, c, cmask, HAS_WEIGHT, ACC)


@triton.jit
def _ce_grad_tile(x, c, cmask, y, mx, log_d, one_minus_py, a, scale, eps, w_total, w_ptr, stride_w, coef_ptr, C,
                  HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, BALANCE: tl.constexpr, ACC: tl.constexpr):
    """dx of a (classes, pixels) tile from the pixel statistics (see ``_ce_bwd_kernel``)."""
    p = tl.exp((x - mx[None, :]) - log_d[None, :])
    g = a[None, :] * tl.where(c[:, None] == y[None, :], -one_minus_py[None, :], p)
    if SMOOTH:
        wc = _smooth_weights(w_ptr, stride_w, coef_ptr, c, cmask, HAS_WEIGHT, BALANCE, ACC)
        g += eps / C * (w_total * p - wc[:, None])
    return g * scale[None, :]


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _blocks(C: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_S, num_warps): classes in chunks of <= ONE_TILE_CLASSES, a tile of <= 4096 elements."""
    block_c = max(2, min(triton.next_power_of_2(C), ONE_TILE_CLASSES))
    block_s = max(32, min(1024, 4096 // block_c, triton.next_power_of_2(max(S, 1))))
    return block_c, block_s, 4


def _pixel_strides(t):
    """(stride over n, stride over s) of an (N, 1, S) map, or (0, 0) when absent."""
    return (0, 0) if t is None else (t.stride(0), t.stride(2))


def _common(x, t, w, pw, o):
    """Keyword arguments every kernel shares: the inputs, their strides, the options, the switches."""
    ls = split_f64(o.label_smoothing)
    return dict(
        x_ptr=x, t_ptr=t, w_ptr=w, pw_ptr=pw, C=x.shape[1], S=x.shape[2],
        stride_xn=x.stride(0), stride_xc=x.stride(1), stride_xs=x.stride(2),
        stride_tn=t.stride(0), stride_ts=t.stride(2), stride_w=0 if w is None else w.stride(0),
        **dict(zip(("stride_pn", "stride_ps"), _pixel_strides(pw))),
        ignore_index=0 if o.ignore_index is None else int(o.ignore_index), ls_hi=ls[0], ls_lo=ls[1],
        HAS_WEIGHT=w is not None, HAS_PIXEL_WEIGHT=pw is not None, HAS_IGNORE=o.ignore_index is not None,
        SMOOTH=o.label_smoothing > 0, BALANCE=o.balance, ACC=tl_acc(x.dtype),
    )


def _coef_size(C: int, o) -> int:
    """Length of the coefficient vector the forward returns: [scale] (+ C class weights with balance)."""
    if o.balance:
        return 1 + C
    return 0 if o.reduction == "none" else 1


def forward(x, t, w, pw, o):
    """(loss, coef, stats): the 0-d loss (or the (N, S) map for ``"none"``), the finisher's
    coefficients (``ops.coef_size`` of them) and the per-pixel statistics the backward reads
    (``ops.stats_shape``). ``x``: (N, C, S) logits, ``t``: (N, 1, S) labels, ``w``: (C,) class
    weights or None, ``pw``: (N, 1, S) pixel weights or None. See ``ops.py``."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    BLOCK_C, BLOCK_S, num_warps = _blocks(C, S)
    stats = torch.empty(stats_shape(N, C, S), device=x.device, dtype=acc)
    has_stats = stats.numel() > 0  # exactly when C > BLOCK_C
    n_tiles = triton.cdiv(S, BLOCK_S)
    iters = max(1, min(n_tiles, triton.cdiv(N * n_tiles, MAX_PARTIAL_ROWS)))
    progs = triton.cdiv(n_tiles, iters)
    none = o.reduction == "none"
    need_sums = not none or o.balance
    K = NSTAT * C if o.balance else 2
    part = torch.empty((N * progs, K), device=x.device, dtype=acc) if need_sums else None
    coef = torch.empty((_coef_size(C, o),), device=x.device, dtype=acc)
    loss = torch.empty((N, S) if none else (), device=x.device, dtype=acc)
    common = dict(_common(x, t, w, pw, o), coef_ptr=coef if coef.numel() else None, loss_ptr=loss, part_ptr=part,
                  stat_ptr=stats if has_stats else None, ONE_CHUNK=C <= BLOCK_C, BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C,
                  num_warps=num_warps)
    with device_guard(x):
        if need_sums:  # this pass writes the statistics (the first of the two with "none" and balance)
            _ce_fwd_kernel[(N * progs,)](**common, progs_per_image=progs, iters=iters, STORE_LOSS=False,
                                         STORE_PARTIALS=True, APPLY_COEF=False, STORE_STATS=has_stats)
            _ce_finish_kernel[(1,)](
                part_ptr=part, w_ptr=w, loss_ptr=loss, coef_ptr=coef, n_part=N * progs, C=C,
                stride_w=common["stride_w"], ls_hi=common["ls_hi"], ls_lo=common["ls_lo"],
                HAS_WEIGHT=w is not None, BALANCE=o.balance, MEAN=o.reduction == "mean", STORE_LOSS=not none,
                ACC=common["ACC"], BLOCK=FINISH_ROWS if o.balance else 1024, BLOCK_C=FINISH_CLASSES)
        if none:
            # the map: one pass without balance; with balance a second pass with the finisher's weights
            _ce_fwd_kernel[(N * n_tiles,)](**common, progs_per_image=n_tiles, iters=1, STORE_LOSS=True,
                                           STORE_PARTIALS=False, APPLY_COEF=o.balance,
                                           STORE_STATS=has_stats and not need_sums)
    return loss, coef, stats


def backward(g, coef, stats, x, t, w, pw, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: 0-d, or the (N, S) map for ``"none"``;
    ``stats`` the forward's (read when the classes take more than one chunk)."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    BLOCK_C, BLOCK_S, num_warps = _blocks(C, S)
    has_stats = stats.numel() > 0
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    g_map = o.reduction == "none"
    with device_guard(x):
        _ce_bwd_kernel[(N * n_blocks_s,)](
            **_common(x, t, w, pw, o), g_ptr=g, coef_ptr=coef if coef.numel() else None, dx_ptr=dx,
            stat_ptr=stats if has_stats else None,
            n_blocks_s=n_blocks_s, stride_gn=g.stride(0) if g_map else 0, stride_gs=g.stride(1) if g_map else 0,
            stride_dn=dx.stride(0), stride_dc=dx.stride(1), stride_ds=dx.stride(2), G_IS_MAP=g_map,
            ONE_CHUNK=C <= BLOCK_C, HAS_STATS=has_stats, BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C, num_warps=num_warps)
    return dx


def _aot_variants():
    specs = []
    floats = dict(ls_hi="fp32", ls_lo="fp32")
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        flags = dict(HAS_WEIGHT=True, HAS_PIXEL_WEIGHT=True, HAS_IGNORE=True, SMOOTH=True, ACC=acc,
                     BLOCK_S=128, BLOCK_C=32)
        ptrs = dict(x_ptr=f"*{dt}", w_ptr="*fp32", pw_ptr="*fp32", coef_ptr=accty, **floats)
        combos = ((True, True), (True, False), (False, True)) if dt == "fp32" else ((True, False),)
        for balance, one_chunk in combos:
            specs.append(aot_spec(_ce_fwd_kernel, dict(flags, BALANCE=balance, ONE_CHUNK=one_chunk, STORE_LOSS=False,
                                                       STORE_PARTIALS=True, APPLY_COEF=False,
                                                       STORE_STATS=not one_chunk),
                                  t_ptr="*i64", loss_ptr=accty, part_ptr=accty, stat_ptr=accty, **ptrs))
        for one_chunk in (True, False):
            specs.append(aot_spec(_ce_fwd_kernel, dict(flags, BALANCE=True, ONE_CHUNK=one_chunk, STORE_LOSS=True,
                                                       STORE_PARTIALS=False, APPLY_COEF=True, STORE_STATS=False),
                                  t_ptr="*u8", loss_ptr=accty, part_ptr=accty, stat_ptr=accty, **ptrs))
        specs.append(aot_spec(_ce_fwd_kernel, dict(flags, BALANCE=False, ONE_CHUNK=False, STORE_LOSS=True,
                                                   STORE_PARTIALS=False, APPLY_COEF=False, STORE_STATS=True),
                              t_ptr="*i32", loss_ptr=accty, part_ptr=accty, stat_ptr=accty, **ptrs))
        for balance, one_chunk, stats in ((True, True, False), (False, False, False), (False, True, False),
                                          (True, False, True), (False, False, True)):
            specs.append(aot_spec(_ce_bwd_kernel, dict(flags, BALANCE=balance, G_IS_MAP=not balance,
                                                       ONE_CHUNK=one_chunk, HAS_STATS=stats),
                                  t_ptr="*u8", g_ptr=accty, dx_ptr=f"*{dt}", stat_ptr=accty, **ptrs))
        if dt in ("fp32", "fp64"):  # the finisher sees only the accumulation dtype
            modes = ((True, True), (True, False), (False, True), (False, False)) if dt == "fp32" else ((True, True),)
            for balance, mean in modes:
                specs.append(aot_spec(_ce_finish_kernel, dict(HAS_WEIGHT=True, BALANCE=balance, MEAN=mean,
                                                              STORE_LOSS=True, ACC=acc,
                                                              BLOCK=FINISH_ROWS if balance else 1024,
                                                              BLOCK_C=FINISH_CLASSES),
                                      part_ptr=accty, w_ptr="*fp32", loss_ptr=accty, coef_ptr=accty, **floats))
    # the common fast path: contiguous NCHW, no options, int64 strides (tensors past 2^31 elements)
    plain = dict(stride_xs=1, stride_ts=1, HAS_WEIGHT=False, HAS_PIXEL_WEIGHT=False, HAS_IGNORE=True,
                 SMOOTH=False, BALANCE=False, ACC=tl.float32, BLOCK_S=128, BLOCK_C=32)
    big = dict(S="i64", stride_xn="i64", stride_xc="i64", stride_tn="i64", stride_pn="i64", stride_ps="i64",
               **floats)
    specs.append(aot_spec(_ce_fwd_kernel, dict(plain, ONE_CHUNK=True, STORE_LOSS=False, STORE_PARTIALS=True,
                                               APPLY_COEF=False, STORE_STATS=False),
                          divisible=("S", "stride_xn", "stride_xc", "stride_tn"), t_ptr="*i64",
                          progs_per_image="i64", **big))
    specs.append(aot_spec(_ce_bwd_kernel, dict(plain, G_IS_MAP=False, ONE_CHUNK=True, HAS_STATS=False, stride_ds=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_tn", "stride_dn", "stride_dc"),
                          t_ptr="*i64", n_blocks_s="i64", stride_gn="i64", stride_gs="i64", stride_dn="i64",
                          stride_dc="i64", **big))
    return specs


AOT_SPECS = _aot_variants()
