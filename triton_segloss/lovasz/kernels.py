"""Triton kernels of the Lovász family and their launchers (the family's only triton import).

A *segment* is the set of pixels whose errors are sorted together: one image
(``per_image``) or the whole batch, times one class column for Lovász-Softmax.
Segment ``seg = g * K + k`` (image group g, column k) is row ``seg`` of one
(SEG, P) tensor, sorted by a single ``torch.sort(..., descending=True,
stable=True)`` (stable: ties keep pixel order, so every run breaks them alike),
or, for segments of at most REG_SORT_MAX pixels with 32-bit errors, in the
registers of one program per segment (the register-sort path, at the end).
Ignored pixels get the error -inf: they sort last, count neither as foreground
nor background, and cost nothing.

Per segment, with sorted errors e_1 >= ... >= e_P and foreground flags f_i
(Alg. 1 of Berman et al.), gts = sum f, cf_i = f_1 + ... + f_i and cb_i the
same count of valid background pixels (cb_i = i - cf_i: valid pixels come first):

    J_i = 1 - (gts - cf_i) / (gts + cb_i),  g_i = J_i - J_{i-1}  (J_0 = 0)
    value = sum_i relu(e_i) g_i

computed without the cancellation of J_i - J_{i-1}: with U_i = gts + cb_i and I_i = gts - cf_i,

    g_i = 1 / U_i                  foreground
    g_i = I_i / (U_{i-1} U_i)      valid background (U_{i-1} = U_i - 1)
    g_i = 1                        ... and U_{i-1} = 0 (no foreground: the first background)
    g_i = 0                        ignored.

The walk also stores d_i = g_i [e_i > 0] s_i at the pixel the sorted element came
from (s_i = de_i/dz_i: -1 on foreground, +1 on background; hinge e = m - x (2f - 1),
z = x; softmax e = |f - p|, z = p), over the key buffer, which the sort has freed.

One training step, on the device only (no host sync):

    forward   1 errors kernel: the keys, a foreground flag byte per key (so the later passes
                gather one byte through the permutation, not the target), per-program
                foreground counts; zeroes the ticket
              - torch.sort (the sort allowance)
              2 count kernel (only when a segment is walked in several chunks): the
                foreground count of each chunk, the carries of the scan
              3 walk kernel: each chunk's share of its segment's value and d; the last
                program to finish (an int32 ticket, no float atomics) sums the shares in
                a fixed order and writes the loss and each segment's gradient scale coef
    backward  4 backward kernel: dz = coef[seg] * upstream * d per pixel and column, then
                (softmax from logits) the softmax Jacobian over the classes of the pixel.

Only d (4 B per pixel and column) is kept between forward and backward.

The register-sort path. A segment of at most REG_SORT_MAX pixels with 32-bit errors (fp32,
bf16 or fp16 logits) is sorted and walked by one program, with no torch.sort, no count kernel
and no int64 permutation. Each pixel's error and flag become one int64 key: the high word is
the error's float bits mapped to a signed int32 m that increases with the error (sign bit
clear: the bits; set: the bits with the 31 value bits flipped; NaN: the int32 maximum, since
torch.sort puts NaN first), complemented so that larger errors give smaller keys; the low word
is 2 p + f, p the pixel's position in its segment and f its flag. One ascending tl.sort of the
keys (signed int64 compares) orders the errors decreasingly with ties in increasing p: the
order of the stable descending sort. Lanes past P get the error -inf and positions past P, so
they sort after every pixel (after the ignored ones too). The program then undoes the packing
(error, flag, p), forms cf_i by an inclusive tl.cumsum, gts as the flags' sum, and the terms
relu(e_i) g_i and d_i with the same helper and formulas as the walk kernel, so d is the sort
path's bit for bit and only the value's summation order differs. d is scattered to position p,
the segment's value and gts go to per-segment scratch, and the last program by the ticket runs
the finisher with one chunk per segment. fp64 keeps the sort path: its 64 error bits leave no
room for an index. Only the ties among positive errors affect d (an element with e <= 0 has
d = 0, and every element before a positive one is positive), so -0 sorting below +0 is harmless.

    hinge     1 register-sort kernel: reads x and t of its segment, writes d (no key buffer);
                the ticket is zeroed by one fill before it
    softmax   1 errors kernel (as above: the keys and flag bytes; zeroes the ticket)
              2 register-sort kernel: reads the errors and flags of its segment, writes d over them
    backward  the backward kernel, unchanged.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.cache import device_values
from triton_segloss._core.jit import block_for, device_guard, load_ncs, row_tile, scalar, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype

# The walk splits each sorted segment into chunks so that about PROGRAMS programs run;
# the count kernel gives each chunk its carry (the foreground count before it).
PROGRAMS = 264
MAX_BLOCK = 1024
BLOCK_K = 32  # columns per tile in the finisher and the backward's listed-class sums
BLOCK_CH = 32  # chunk partials per tile in the walk's carry and the finisher's sums
REDUCTION_CODE = {"mean": 0, "sum": 1, "none": 2}
# Segments of at most REG_SORT_MAX pixels with 32-bit errors are sorted and walked inside one
# program each (_lovasz_reg_sort_kernel); longer ones, and fp64, take torch.sort and the walk.
# (SHIPPED_REG_SORT_MAX keeps the value for tests that patch REG_SORT_MAX.)
SHIPPED_REG_SORT_MAX = REG_SORT_MAX = 4096


@triton.jit
def _hinge_errors(x_ptr, t_ptr, n, s, mask, stride_xn, stride_xs, stride_tn, stride_ts,
                  ig_hi, ig_lo, mn_hi, mn_lo, mp_hi, mp_lo, HAS_IGNORE: tl.constexpr, ACC: tl.constexpr):
    """(e, fg) of pixels (n, s): the hinge errors (-inf where ignored or ``mask`` is off) and the
    foreground flags f = [t > 0.5] of the valid pixels."""
    x = load_ncs(x_ptr, n, 0, s, stride_xn, 0, stride_xs, mask, 0.0, ACC)
    t = load_ncs(t_ptr, n, 0, s, stride_tn, 0, stride_ts, mask, 0, ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != scalar(ig_hi, ig_lo, ACC))
    fg = valid & (t > 0.5)
    e = tl.where(fg, scalar(mp_hi, mp_lo, ACC) - x, scalar(mn_hi, mn_lo, ACC) + x)
    return tl.where(valid, e, float("-inf")), fg


@triton.jit
def _lovasz_hinge_err_kernel(
    x_ptr,  # logits, (N, 1, S) strided
    t_ptr,  # {0, 1} target (or ignore_index), (N, 1, S) strided, its own dtype
    key_ptr,  # errors out, contiguous (N, S) in ACC; -inf on ignored pixels
    fg_ptr,  # foreground flags out, uint8, indexed as the keys (the count and walk read them, not the target)
    cnt_ptr,  # foreground count per program out, (programs,) int32
    ticket_ptr,  # the walk's int32 ticket counter, zeroed here
    S,
    n_blocks_s,  # programs per image
    stride_xn, stride_xs,
    stride_tn, stride_ts,
    ig_hi, ig_lo,  # ignore_index (fp32 pair)
    mn_hi, mn_lo,  # hinge margin of background pixels (fp32 pair)
    mp_hi, mp_lo,  # hinge margin of foreground pixels (fp32 pair)
    HAS_IGNORE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """e = m - x (2f - 1) with f = [t > 0.5]: e = m_pos - x on foreground, m_neg + x on background."""
    _, n, _, s = row_tile(tl.program_id(0), n_blocks_s, 1, BLOCK)
    mask = s < S
    e, fg = _hinge_errors(x_ptr, t_ptr, n, s, mask, stride_xn, stride_xs, stride_tn, stride_ts,
                          ig_hi, ig_lo, mn_hi, mn_lo, mp_hi, mp_lo, HAS_IGNORE, ACC)
    tl.store(key_ptr + n * S + s, e, mask=mask)
    tl.store(fg_ptr + n * S + s, fg.to(tl.uint8), mask=mask)
    pid = tl.program_id(0).to(tl.int64)
    tl.store(cnt_ptr + pid, tl.sum(fg.to(tl.int32), axis=0))
    if pid == 0:
        tl.store(ticket_ptr, 0)


@triton.jit
def _softmax_stats(x_row, stride_xc, C, smask, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """(m, 1 / z) per pixel of the softmax over C classes, in one sweep of class chunks (online max
    and sum): p_c = exp(x_c - m) / z. ``x_row``: [1, BLOCK_S] pointers of class 0."""
    m = tl.full([BLOCK_S], float("-inf"), ACC)
    z = tl.zeros([BLOCK_S], ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
        cm = c < C
        xt = tl.load(x_row + c[:, None] * stride_xc, mask=cm[:, None] & smask[None, :], other=0.0).to(ACC)
        xt = tl.where(cm[:, None], xt, float("-inf"))
        m_new = tl.maximum(m, tl.max(xt, axis=0))
        z = z * tl.exp(m - m_new) + tl.sum(tl.exp(xt - m_new[None, :]), axis=0)
        m = m_new
    return m, 1.0 / z


@triton.jit
def _tile_softmax(xt, cm):
    """The softmax over axis 0 of a [BLOCK_C, BLOCK_S] tile holding every class (rows ``cm``): the
    values ``_softmax_stats`` and exp(x - m) / z give for one chunk."""
    m = tl.max(tl.where(cm[:, None], xt, float("-inf")), axis=0)
    ex = tl.where(cm[:, None], tl.exp(xt - m[None, :]), 0.0)
    return ex * (1.0 / tl.sum(ex, axis=0))[None, :]


@triton.jit
def _lovasz_softmax_err_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    t_ptr,  # integer labels, (N, S) strided
    tab_ptr,  # int32 class table (see _class_table); read only if not ALL_CLASSES
    key_ptr,  # errors out, ACC: column k of image n at n * stride_kn + k * stride_kk + s
    fg_ptr,  # foreground flags out, uint8, indexed as the keys
    cnt_ptr,  # foreground count per (program, column) out, (programs, K) int32
    ticket_ptr,  # the walk's int32 ticket counter, zeroed here
    C, K, S,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    stride_kn, stride_kk,
    ignore_index,  # label of ignored pixels (if HAS_IGNORE)
    HAS_IGNORE: tl.constexpr, ALL_CLASSES: tl.constexpr, FROM_LOGITS: tl.constexpr,
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    ONE_CHUNK: tl.constexpr,  # every class a column (ALL_CLASSES) and C <= BLOCK_C: the logits read once
):
    """p = softmax(x) over C (online max and sum in a first sweep over C; p = x if not
    FROM_LOGITS), then for column k of class c = cls[k]: e = |[label == c] - p_c|,
    -inf on ignored pixels. ONE_CHUNK: the same values from one load of the pixel's logits."""
    _, n, _, s = row_tile(tl.program_id(0), n_blocks_s, 1, BLOCK_S)
    smask = s < S
    lab = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
    valid = smask & (lab >= 0) & (lab < C)  # a label outside [0, C) (checks off) is skipped like an ignored one
    if HAS_IGNORE:
        valid = valid & (lab != ignore_index)
    x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs
    pid = tl.program_id(0).to(tl.int64)
    if ONE_CHUNK:
        k = tl.arange(0, BLOCK_C).to(tl.int64)
        km = k < K
        tmask = km[:, None] & smask[None, :]
        p = tl.load(x_row + k[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
        if FROM_LOGITS:
            p = _tile_softmax(p, km)
        _softmax_errors(p, lab, valid, k, k, km, tmask, pid, key_ptr, fg_ptr, cnt_ptr, n, s, K, stride_kn,
                        stride_kk, ACC)
    else:
        if FROM_LOGITS:
            m, inv_z = _softmax_stats(x_row, stride_xc, C, smask, ACC, BLOCK_C, BLOCK_S)
        for k0 in range(0, K, BLOCK_C):
            k = k0 + tl.arange(0, BLOCK_C).to(tl.int64)
            km = k < K
            if ALL_CLASSES:
                cls = k
            else:
                cls = tl.load(tab_ptr + k, mask=km, other=0).to(tl.int64)
            tmask = km[:, None] & smask[None, :]
            p = tl.load(x_row + cls[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
            if FROM_LOGITS:
                p = tl.exp(p - m[None, :]) * inv_z[None, :]
            _softmax_errors(p, lab, valid, cls, k, km, tmask, pid, key_ptr, fg_ptr, cnt_ptr, n, s, K, stride_kn,
                            stride_kk, ACC)
    if pid == 0:
        tl.store(ticket_ptr, 0)


@triton.jit
def _softmax_errors(p, lab, valid, cls, k, km, tmask, pid, key_ptr, fg_ptr, cnt_ptr, n, s, K, stride_kn, stride_kk,
                    ACC: tl.constexpr):
    """Store the errors |[label == cls] - p| (-inf where not valid), the foreground flags and the
    per-column foreground counts of a [columns k, pixels] tile."""
    fg = (lab[None, :] == cls[:, None]) & valid[None, :]
    e = tl.abs(fg.to(ACC) - p)
    e = tl.where(valid[None, :], e, float("-inf"))
    kofs = n * stride_kn + k[:, None] * stride_kk + s[None, :]
    tl.store(key_ptr + kofs, e, mask=tmask)
    tl.store(fg_ptr + kofs, fg.to(tl.uint8), mask=tmask)
    tl.store(cnt_ptr + pid * K + k, tl.sum(fg.to(tl.int32), axis=1), mask=km)


@triton.jit
def _segment_of(pid, n_chunks, K, tab_ptr, ALL_CLASSES: tl.constexpr):
    """(seg, chunk, g, k, cls) of walk/count program ``pid``; every index int64."""
    pid = pid.to(tl.int64)
    seg = pid // n_chunks
    ch = pid % n_chunks
    g = seg // K
    k = seg % K
    if ALL_CLASSES:
        cls = k
    else:
        cls = tl.load(tab_ptr + k).to(tl.int64)
    return seg, ch, g, k, cls


@triton.jit
def _lovasz_count_kernel(
    perm_ptr,  # (SEG, P) int64: position within its segment (n' * S + s) of each sorted element
    fg_ptr,  # (SEG, P) uint8 foreground flags at each pixel's own position (the errors kernel's)
    cnt_ptr,  # (SEG, n_chunks) int32 out: foreground count of each chunk
    P,
    n_chunks,
    chunk,  # elements per chunk, a multiple of BLOCK
    BLOCK: tl.constexpr,
):
    """The first pass of the chunked scan: how many foreground pixels each chunk holds."""
    pid = tl.program_id(0).to(tl.int64)
    seg = pid // n_chunks
    ch = pid % n_chunks
    nf = tl.zeros([BLOCK], tl.int32)
    for off in range(0, chunk, BLOCK):
        i = ch * chunk + off + tl.arange(0, BLOCK).to(tl.int64)
        mask = i < P
        src = tl.load(perm_ptr + seg * P + i, mask=mask, other=0)
        nf += tl.load(fg_ptr + seg * P + src, mask=mask, other=0).to(tl.int32)
    tl.store(cnt_ptr + pid, tl.sum(nf, axis=0))


@triton.jit
def _chunk_sums(part_ptr, seg, km, n_chunks, BLOCK_K: tl.constexpr, BLOCK_CH: tl.constexpr):
    """[BLOCK_K] float64: the sum over chunks (in chunk order) of part[seg, :] for each seg of the tile."""
    tot = tl.zeros([BLOCK_K], tl.float64)
    for c0 in range(0, n_chunks, BLOCK_CH):
        ch = c0 + tl.arange(0, BLOCK_CH).to(tl.int64)
        m = km[:, None] & (ch[None, :] < n_chunks)
        v = tl.load(part_ptr + seg[:, None] * n_chunks + ch[None, :], mask=m, other=0.0, volatile=True)
        tot += tl.sum(v.to(tl.float64), axis=1)
    return tot


@triton.jit
def _lovasz_finish(
    part_ptr, gts_ptr, tab_ptr, cw_ptr, loss_ptr, coef_ptr, G, K, KL, n_chunks,
    ALL_CLASSES: tl.constexpr, PRESENT: tl.constexpr, HAS_CW: tl.constexpr, REDUCTION: tl.constexpr,
    ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CH: tl.constexpr,
):
    """The finisher (run by the walk's last program). With v[g, k] the fixed-order float64 sum of
    segment (g, k)'s chunk shares, w = [gts > 0] under PRESENT (else 1) times the class weight
    cw[k] of column k (HAS_CW, else 1), mult[k] how often column k is listed,
    D_g = sum_k w mult (0 -> 1; without weights: the present classes, or KL):

        mean:  loss = sum_{g,k} coef v,  coef = w mult / D_g / G
        sum:   loss = sum_{g,k} coef v,  coef = w mult
        none:  loss[g, j] = w v[g, pos[j]] (pos: the column of listed class j),  coef = w

    coef = dLoss/dv per unit upstream gradient (per unit upstream gradient of loss[g, j], summed
    over the j listing the column, for "none"); the backward kernel reads it.
    """
    total = tl.zeros([BLOCK_K], tl.float64)
    for g in range(0, G):
        if PRESENT or HAS_CW:
            dsum = tl.zeros([BLOCK_K], tl.float64)
            for k0 in range(0, K, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
                km = k < K
                wd = tl.where(km, 1.0, 0.0).to(tl.float64)
                if PRESENT:
                    gts = tl.load(gts_ptr + g * K + k, mask=km, other=0, volatile=True)
                    wd = wd * (gts > 0).to(tl.float64)
                if HAS_CW:
                    wd = wd * tl.load(cw_ptr + k, mask=km, other=0.0).to(tl.float64)
                if not ALL_CLASSES:
                    wd = wd * tl.load(tab_ptr + K + k, mask=km, other=0).to(tl.float64)
                dsum += wd
            denom = tl.sum(dsum, axis=0)
            denom = tl.where(denom > 0.0, denom, 1.0)
        else:
            denom = tl.full([], 1.0, tl.float64) * KL
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
            km = k < K
            seg = g * K + k
            if PRESENT:
                w = (tl.load(gts_ptr + seg, mask=km, other=0, volatile=True) > 0).to(tl.float64)
            else:
                w = tl.full([BLOCK_K], 1.0, tl.float64)
            if HAS_CW:
                w = w * tl.load(cw_ptr + k, mask=km, other=0.0).to(tl.float64)
            if REDUCTION == 2:
                c = w
            else:
                if ALL_CLASSES:
                    c = w
                else:
                    c = w * tl.load(tab_ptr + K + k, mask=km, other=0).to(tl.float64)
                if REDUCTION == 0:
                    c = c / (denom * G)
                v = _chunk_sums(part_ptr, seg, km, n_chunks, BLOCK_K, BLOCK_CH)
                total += tl.where(km, c * v, 0.0)
            tl.store(coef_ptr + seg, c.to(ACC), mask=km)
        if REDUCTION == 2:
            for j0 in range(0, KL, BLOCK_K):
                j = j0 + tl.arange(0, BLOCK_K).to(tl.int64)
                jm = j < KL
                if ALL_CLASSES:
                    col = j
                else:
                    col = tl.load(tab_ptr + 2 * K + j, mask=jm, other=0).to(tl.int64)
                seg = g * K + col
                v = _chunk_sums(part_ptr, seg, jm, n_chunks, BLOCK_K, BLOCK_CH)
                if PRESENT:
                    v = tl.where(tl.load(gts_ptr + seg, mask=jm, other=0, volatile=True) > 0, v, 0.0)
                if HAS_CW:
                    v = v * tl.load(cw_ptr + col, mask=jm, other=0.0).to(tl.float64)
                tl.store(loss_ptr + g * KL + j, v.to(ACC), mask=jm)
    if REDUCTION != 2:
        tl.store(loss_ptr, tl.sum(total, axis=0).to(ACC))


@triton.jit
def _walk_terms(e, fg, valid, i, cfi, gts, ACC: tl.constexpr):
    """(relu(e_i) g_i, d_i) of sorted elements at 0-based positions ``i`` of their segment, from
    the inclusive foreground count cf_i (``cfi``) and the segment's count ``gts`` (the closed form
    of g_i in the module docstring). Both walks call it: their d is the same, bit for bit."""
    u = (gts + (i + 1 - cfi)).to(ACC)  # U_i = gts + cb_i
    inter = (gts - cfi).to(ACC)
    u_safe = tl.maximum(u, 1.0)
    g_bg = tl.where(u > 1.0, inter / tl.maximum(u - 1.0, 1.0) / u_safe, 1.0)
    lg = tl.where(fg, 1.0 / u_safe, tl.where(valid, g_bg, 0.0))
    nan = e != e  # a NaN logit: relu(NaN) is NaN, so the loss and its gradient must be NaN too
    pos = (e > 0.0) | nan
    d = tl.where(nan, e, tl.where(pos, tl.where(fg, -lg, lg), 0.0))
    return tl.where(pos, e, 0.0) * lg, d


@triton.jit
def _lovasz_walk_kernel(
    err_ptr,  # (SEG, P) sorted errors in ACC
    perm_ptr,  # (SEG, P) int64: position within its segment (n' * S + s) of each sorted element
    fg_ptr,  # (SEG, P) uint8 foreground flags at each pixel's own position (the errors kernel's)
    tab_ptr,  # int32 class table (softmax, read if not ALL_CLASSES)
    cw_ptr,  # (K,) float64 class weight of each column (read if HAS_CW)
    cnt_ptr,  # HAS_CARRY: (SEG, n_chunks) int32 chunk counts; else the errors kernel's (programs, K) counts
    d_ptr,  # out (SEG, P) ACC: d at each pixel's own position (the key buffer, free after the sort)
    part_ptr,  # scratch (SEG, n_chunks) ACC: each chunk's share of its segment's value
    gts_ptr,  # scratch (SEG,) int32: the foreground count of each segment (written by its chunk 0)
    ticket_ptr,  # int32 counter, zeroed by the errors kernel: the last program runs the finisher
    loss_ptr,  # out: the loss, 0-d, or the (G, KL) values for "none", ACC
    coef_ptr,  # out (SEG,) ACC: each segment's gradient scale (see _lovasz_finish)
    G, K, KL, P,
    n_chunks,
    chunk,  # elements per chunk, a multiple of BLOCK
    rows_per_g,  # errors-kernel programs per image group (without HAS_CARRY)
    ALL_CLASSES: tl.constexpr, HAS_CARRY: tl.constexpr,
    PRESENT: tl.constexpr, HAS_CW: tl.constexpr, REDUCTION: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CH: tl.constexpr,
):
    """cf_i: a block scan (tl.cumsum) from the chunk's carry; cb_i = i - cf_i; g_i in closed form
    (module docstring); the chunk's share sum_i relu(e_i) g_i, and d_i = g_i [e_i > 0] (f_i ? -1 : +1)
    stored at the element's pixel. Then the last program to take a ticket finishes (_lovasz_finish)."""
    pid = tl.program_id(0).to(tl.int64)
    seg, ch, g, k, _cls = _segment_of(pid, n_chunks, K, tab_ptr, ALL_CLASSES)
    if HAS_CARRY:
        gts = tl.zeros([BLOCK_CH], tl.int32)
        cf = tl.zeros([BLOCK_CH], tl.int32)
        for c0 in range(0, n_chunks, BLOCK_CH):
            j = c0 + tl.arange(0, BLOCK_CH).to(tl.int64)
            nc = tl.load(cnt_ptr + seg * n_chunks + j, mask=j < n_chunks, other=0)
            gts += nc
            cf += tl.where(j < ch, nc, 0)
        gts = tl.sum(gts, axis=0)
        cf = tl.sum(cf, axis=0)
    else:
        acc_n = tl.zeros([BLOCK], tl.int32)
        for r0 in range(0, rows_per_g, BLOCK):
            r = r0 + tl.arange(0, BLOCK).to(tl.int64)
            acc_n += tl.load(cnt_ptr + (g * rows_per_g + r) * K + k, mask=r < rows_per_g, other=0)
        gts = tl.sum(acc_n, axis=0)
        cf = tl.sum(tl.zeros([BLOCK], tl.int32), axis=0)
    acc = tl.zeros([BLOCK], ACC)
    for off in range(0, chunk, BLOCK):
        i = ch * chunk + off + tl.arange(0, BLOCK).to(tl.int64)
        mask = i < P
        e = tl.load(err_ptr + seg * P + i, mask=mask, other=0.0)
        src = tl.load(perm_ptr + seg * P + i, mask=mask, other=0)
        # the errors kernel gave -inf to every pixel it left out (ignored, or a label outside [0, C)
        # while value checks are off): they sorted last and count as neither class (flag 0)
        valid = mask & (e != float("-inf"))
        fg = (tl.load(fg_ptr + seg * P + src, mask=mask, other=0) != 0) & valid
        f = fg.to(tl.int32)
        cfi = cf + tl.cumsum(f, axis=0)
        cf += tl.sum(f, axis=0)
        term, d = _walk_terms(e, fg, valid, i, cfi, gts, ACC)
        acc += term
        tl.store(d_ptr + seg * P + src, d, mask=mask)
    tl.store(part_ptr + pid, tl.sum(acc, axis=0))
    if ch == 0:
        tl.store(gts_ptr + seg, gts)
    # publish this program's stores, then take a ticket: the last one sees every share
    tl.debug_barrier()
    ticket = tl.atomic_add(ticket_ptr, 1, sem="acq_rel")
    if ticket == tl.num_programs(0) - 1:
        tl.debug_barrier()
        _lovasz_finish(part_ptr, gts_ptr, tab_ptr, cw_ptr, loss_ptr, coef_ptr, G, K, KL, n_chunks, ALL_CLASSES,
                       PRESENT, HAS_CW, REDUCTION, ACC, BLOCK_K, BLOCK_CH)


@triton.jit
def _packed_keys(e, fg, i):
    """int64 sort keys of errors ``e`` (fp32) at positions ``i`` with foreground flags ``fg``:
    ascending keys give the errors in decreasing order, ties in increasing ``i``, with the flag
    riding below the index (it never decides an order: the indices differ).

        m   = bits(e) if e >= 0 (sign bit clear) else bits(e) ^ 0x7fffffff   (int32: m increases with e)
        m   = 2^31 - 1 for NaN (first, whatever its sign bit, as torch.sort puts NaN first)
        key = (~m) * 2^32 + 2 i + f                                          (~m = -m - 1: decreasing)
    """
    bits = e.to(tl.int32, bitcast=True)
    m = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    m = tl.where(e != e, 0x7FFFFFFF, m)
    return ((~m).to(tl.int64) << 32) | (i * 2 + fg.to(tl.int64))


@triton.jit
def _unpack_keys(key):
    """(e, fg, src) of sorted keys: the inverse of ``_packed_keys`` (NaN comes back as one NaN)."""
    m = ~((key >> 32).to(tl.int32))
    e = tl.where(m < 0, m ^ 0x7FFFFFFF, m).to(tl.float32, bitcast=True)
    return e, (key & 1) != 0, (key >> 1) & 0x7FFFFFFF


@triton.jit
def _lovasz_reg_sort_kernel(
    x_ptr,  # HINGE: logits, (N, 1, S) strided
    t_ptr,  # HINGE: {0, 1} target (or ignore_index), (N, 1, S) strided, its own dtype
    err_ptr,  # softmax: (SEG, P) fp32 errors at each pixel's own position (the errors kernel's keys)
    fg_ptr,  # softmax: (SEG, P) uint8 foreground flags, indexed as the errors
    tab_ptr,  # int32 class table (softmax, read if not ALL_CLASSES)
    cw_ptr,  # (K,) float64 class weight of each column (read if HAS_CW)
    d_ptr,  # out (SEG, P) fp32: d at each pixel's own position (softmax: over the errors)
    part_ptr,  # scratch (SEG,) fp32: each segment's value
    gts_ptr,  # scratch (SEG,) int32: the foreground count of each segment
    ticket_ptr,  # int32 counter, zeroed before the launch: the last program runs the finisher
    loss_ptr,  # out: the loss, 0-d, or the (G, KL) values for "none"
    coef_ptr,  # out (SEG,): each segment's gradient scale (see _lovasz_finish)
    G, K, KL,
    P,  # pixels per segment, <= BLOCK
    S,  # HINGE: pixels per image (position p of a batch segment is pixel p % S of image p // S)
    stride_xn, stride_xs,
    stride_tn, stride_ts,
    ig_hi, ig_lo,  # HINGE: ignore_index (fp32 pair)
    mn_hi, mn_lo,  # HINGE: hinge margin of background pixels (fp32 pair)
    mp_hi, mp_lo,  # HINGE: hinge margin of foreground pixels (fp32 pair)
    HINGE: tl.constexpr,  # errors from the logits and target here; else read the errors kernel's
    PER_IMAGE: tl.constexpr,  # HINGE: segment g is image g (else one segment: the batch)
    HAS_IGNORE: tl.constexpr, ALL_CLASSES: tl.constexpr, PRESENT: tl.constexpr, HAS_CW: tl.constexpr,
    REDUCTION: tl.constexpr, ACC: tl.constexpr,  # ACC: fp32 (32-bit errors: error bits and index fit a key)
    BLOCK: tl.constexpr,  # power of two >= P: the keys one program sorts
    BLOCK_K: tl.constexpr, BLOCK_CH: tl.constexpr,
):
    """One program per segment, the whole walk in registers: the P errors (and flags) of segment
    ``seg``, packed into int64 keys (``_packed_keys``; lanes past P get the error -inf and sort
    after every pixel), one tl.sort, then the walk of the sorted keys: cf_i an inclusive
    tl.cumsum of the flags, gts their sum, relu(e_i) g_i and d_i by ``_walk_terms``, d stored at
    the pixel each key names. The segment's value goes to part[seg]; the last program to take a
    ticket finishes (_lovasz_finish, one chunk per segment)."""
    seg = tl.program_id(0).to(tl.int64)
    p = tl.arange(0, BLOCK).to(tl.int64)
    inseg = p < P
    if HINGE:
        if PER_IMAGE:
            n = seg
            s = p
        else:
            n = p // S
            s = p % S
        e, fgp = _hinge_errors(x_ptr, t_ptr, n, s, inseg, stride_xn, stride_xs, stride_tn, stride_ts,
                               ig_hi, ig_lo, mn_hi, mn_lo, mp_hi, mp_lo, HAS_IGNORE, ACC)
    else:
        e = tl.load(err_ptr + seg * P + p, mask=inseg, other=float("-inf"))
        fgp = tl.load(fg_ptr + seg * P + p, mask=inseg, other=0) != 0
    gts = tl.sum(fgp.to(tl.int32), axis=0)  # as the errors kernel counts: pixels with e = -inf too
    key = tl.sort(_packed_keys(e, fgp, p))
    e, fg, src = _unpack_keys(key)
    # p: now the sorted position. The first P keys are the segment's pixels; an error of -inf
    # (ignored, or an infinite logit) counts as neither class, as on the sort path
    valid = inseg & (e != float("-inf"))
    fg = fg & valid
    cfi = tl.cumsum(fg.to(tl.int32), axis=0)
    term, d = _walk_terms(e, fg, valid, p, cfi, gts, ACC)
    tl.store(d_ptr + seg * P + src, d, mask=inseg)
    tl.store(part_ptr + seg, tl.sum(term, axis=0))
    tl.store(gts_ptr + seg, gts)
    # publish this program's stores, then take a ticket: the last one sees every value
    tl.debug_barrier()
    ticket = tl.atomic_add(ticket_ptr, 1, sem="acq_rel")
    if ticket == tl.num_programs(0) - 1:
        tl.debug_barrier()
        _lovasz_finish(part_ptr, gts_ptr, tab_ptr, cw_ptr, loss_ptr, coef_ptr, G, K, KL, 1, ALL_CLASSES,
                       PRESENT, HAS_CW, REDUCTION, ACC, BLOCK_K, BLOCK_CH)


@triton.jit
def _grad_p(d_ptr, coef_ptr, g_ptr, tab_ptr, c, cm, n, gi, s, smask, K, KL,
            stride_dn, stride_dk, stride_gg, stride_gj,
            ALL_CLASSES: tl.constexpr, G_IS_MAP: tl.constexpr, ACC: tl.constexpr, BLOCK_J: tl.constexpr):
    """[BLOCK_C, BLOCK_S] dLoss/dz of classes c at pixels s of image n (0 for classes not listed):
    coef[seg] * upstream * d, with seg the segment of (image group gi, the column of c)."""
    if ALL_CLASSES:
        col = c
        listed = cm
    else:
        col = tl.load(tab_ptr + 2 * K + 2 * KL + c, mask=cm, other=-1).to(tl.int64)
        listed = cm & (col >= 0)
        col = tl.maximum(col, 0)
    coef = tl.load(coef_ptr + gi * K + col, mask=listed, other=0.0).to(ACC)
    if G_IS_MAP:
        if ALL_CLASSES:
            up = tl.load(g_ptr + gi * stride_gg + col * stride_gj, mask=listed, other=0.0).to(ACC)
        else:
            # the upstream gradient of every listed entry j of class c (a class may be listed twice)
            up = tl.zeros_like(coef)
            for j0 in range(0, KL, BLOCK_J):
                j = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
                jm = j < KL
                lj = tl.load(tab_ptr + 2 * K + KL + j, mask=jm, other=-1).to(tl.int64)
                gj = tl.load(g_ptr + gi * stride_gg + j * stride_gj, mask=jm, other=0.0).to(ACC)
                up += tl.sum(tl.where(lj[None, :] == c[:, None], gj[None, :], 0.0), axis=1)
    else:
        up = tl.load(g_ptr).to(ACC)
    dm = listed[:, None] & smask[None, :]
    d = tl.load(d_ptr + n * stride_dn + col[:, None] * stride_dk + s[None, :], mask=dm, other=0.0).to(ACC)
    return (coef * up)[:, None] * d


@triton.jit
def _lovasz_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided; read only if FROM_LOGITS
    d_ptr,  # the walk's d, ACC: column k of image n at n * stride_dn + k * stride_dk + s
    coef_ptr,  # (SEG,) ACC: each segment's gradient scale from the finisher
    g_ptr,  # upstream gradient: (G, KL) strided if G_IS_MAP ("none"), else 0-d
    tab_ptr,  # int32 class table (read if not ALL_CLASSES)
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, K, KL, S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_dn, stride_dk,
    stride_gg, stride_gj,
    stride_on, stride_oc, stride_os,
    PER_IMAGE: tl.constexpr, ALL_CLASSES: tl.constexpr, FROM_LOGITS: tl.constexpr, G_IS_MAP: tl.constexpr,
    ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_J: tl.constexpr,
    ONE_CHUNK: tl.constexpr,  # C <= BLOCK_C: the logits and d read once (the same values)
):
    """With dz_c = coef[seg] * upstream * d (z = x for the hinge and for probabilities, z = p for
    softmax from logits; 0 for classes not listed):

        hinge, probabilities:  dx_c = dz_c
        from logits:           dx_j = p_j (dz_j - sum_c p_c dz_c)   (the softmax Jacobian, p from x)
    """
    _, n, _, s = row_tile(tl.program_id(0), n_blocks_s, 1, BLOCK_S)
    smask = s < S
    if PER_IMAGE:
        gi = n
    else:
        gi = n * 0
    o_row = dx_ptr + n * stride_on + s[None, :] * stride_os
    if ONE_CHUNK:
        c = tl.arange(0, BLOCK_C).to(tl.int64)
        cm = c < C
        tmask = cm[:, None] & smask[None, :]
        gp = _grad_p(d_ptr, coef_ptr, g_ptr, tab_ptr, c, cm, n, gi, s, smask, K, KL, stride_dn, stride_dk,
                     stride_gg, stride_gj, ALL_CLASSES, G_IS_MAP, ACC, BLOCK_J)
        if FROM_LOGITS:
            xt = tl.load(x_ptr + n * stride_xn + s[None, :] * stride_xs + c[:, None] * stride_xc, mask=tmask,
                         other=0.0).to(ACC)
            p = _tile_softmax(xt, cm)
            dot = tl.sum(tl.where(tmask, p * gp, 0.0), axis=0)
            gp = p * (gp - dot[None, :])
        tl.store(o_row + c[:, None] * stride_oc, gp.to(dx_ptr.dtype.element_ty), mask=tmask)
    else:
        if FROM_LOGITS:
            x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs
            m, inv_z = _softmax_stats(x_row, stride_xc, C, smask, ACC, BLOCK_C, BLOCK_S)
            dot = tl.zeros([BLOCK_S], ACC)
            for c0 in range(0, C, BLOCK_C):
                c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
                cm = c < C
                tmask = cm[:, None] & smask[None, :]
                xt = tl.load(x_row + c[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
                gp = _grad_p(d_ptr, coef_ptr, g_ptr, tab_ptr, c, cm, n, gi, s, smask, K, KL, stride_dn, stride_dk,
                             stride_gg, stride_gj, ALL_CLASSES, G_IS_MAP, ACC, BLOCK_J)
                dot += tl.sum(tl.where(tmask, tl.exp(xt - m[None, :]) * inv_z[None, :] * gp, 0.0), axis=0)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
            cm = c < C
            tmask = cm[:, None] & smask[None, :]
            gp = _grad_p(d_ptr, coef_ptr, g_ptr, tab_ptr, c, cm, n, gi, s, smask, K, KL, stride_dn, stride_dk,
                         stride_gg, stride_gj, ALL_CLASSES, G_IS_MAP, ACC, BLOCK_J)
            if FROM_LOGITS:
                xt = tl.load(x_row + c[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
                gp = tl.exp(xt - m[None, :]) * inv_z[None, :] * (gp - dot[None, :])
            tl.store(o_row + c[:, None] * stride_oc, gp.to(dx_ptr.dtype.element_ty), mask=tmask)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------


def _class_table(device, classes: tuple, c: int) -> torch.Tensor:
    """The int32 table of a class list, made once per (device, list, C) and cached:
    ``[cls (K) | mult (K) | pos (KL) | listed (KL) | col (C)]`` with cls the K distinct
    classes in increasing order (the columns), mult how often each is listed, pos the
    column of each listed entry, listed the list itself and col the column of each
    class (-1: not listed)."""
    uniq = sorted(set(classes))
    col = {k: i for i, k in enumerate(uniq)}
    values = uniq + [classes.count(k) for k in uniq] + [col[k] for k in classes] + list(classes) \
        + [col.get(k, -1) for k in range(c)]
    return device_values(tuple(values), device, torch.int32)  # built once per (device, table)


def _column_weights(device, o, classes, c: int):
    """The (K,) float64 class weight of each column (cached per device and value), or None."""
    if o.class_weight is None:
        return None
    cols = range(c) if classes is None else sorted(set(classes))
    return device_values(tuple(float(o.class_weight[k]) for k in cols), device, torch.float64)


def _class_blocks(c: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_S) for the per-pixel class sweeps: a tile of about 4096 elements."""
    block_c = min(32, triton.next_power_of_2(c))
    return block_c, min(2048, max(32, 4096 // block_c))


def _walk_plan(seg: int, p: int) -> tuple[int, int, int]:
    """(BLOCK, chunk, n_chunks): split each of ``seg`` sorted rows of length ``p`` into
    chunks of whole blocks, so that about PROGRAMS programs walk in parallel."""
    block = min(MAX_BLOCK, max(128, triton.next_power_of_2(triton.cdiv(seg * p, PROGRAMS))))
    n_chunks = max(1, min(triton.cdiv(p, block), triton.cdiv(PROGRAMS, seg)))
    chunk = triton.cdiv(triton.cdiv(p, n_chunks), block) * block
    return block, chunk, triton.cdiv(p, chunk)


def _reg_sort_block(seg: int, p: int, acc) -> int:
    """BLOCK of the register sort (a power of two >= p), or 0: the torch.sort path (fp64 errors,
    whose bits and index do not fit one int64 key; segments over REG_SORT_MAX; nothing to sort)."""
    if acc == torch.float64 or p > REG_SORT_MAX or p < 1 or seg < 1:
        return 0
    return max(16, triton.next_power_of_2(p))


def _reg_sort_warps(block: int) -> int:
    """num_warps of the register sort of ``block`` keys: 8 keys per thread from 1024 keys on (4096:
    16 warps, 100-110 registers, no spill on sm_80 / sm_90; 8 warps spill 8-16 B, 4 warps need
    235-254 registers; ``python -m bench.lovasz_sort --spills``). The AOT variants compile the same."""
    return max(4, min(16, block // 256))


def _reg_sort(block, d, ticket, loss, *, G, K, KL, P, present, reduction, tab=None, cw=None, hinge=None,
              err=None, flags=None):
    """Launch _lovasz_reg_sort_kernel over the G * K segments of length P: d into ``d``, the loss
    into ``loss``. ``hinge``: the hinge's (x, t, o) (errors from the logits); else ``err`` and
    ``flags`` from the errors kernel. Returns the gradient scales (SEG,)."""
    seg = G * K
    dev = d.device
    coef = torch.empty((seg,), device=dev, dtype=d.dtype)
    part = torch.empty((seg,), device=dev, dtype=d.dtype)
    gts = torch.empty((seg,), device=dev, dtype=torch.int32)
    if hinge is not None:
        x, t, o = hinge
        m_neg, m_pos = (1.0, 1.0) if o.margin is None else o.margin
        ig, mn, mp = split_f64(o.ignore_index), split_f64(m_neg), split_f64(m_pos)
        hk = dict(x_ptr=x, t_ptr=t, S=x.shape[2], stride_xn=x.stride(0), stride_xs=x.stride(2),
                  stride_tn=t.stride(0), stride_ts=t.stride(2), ig_hi=ig[0], ig_lo=ig[1], mn_hi=mn[0], mn_lo=mn[1],
                  mp_hi=mp[0], mp_lo=mp[1], PER_IMAGE=o.per_image, HAS_IGNORE=o.ignore_index is not None)
    else:
        hk = dict(x_ptr=None, t_ptr=None, S=1, stride_xn=0, stride_xs=0, stride_tn=0, stride_ts=0, ig_hi=0.0,
                  ig_lo=0.0, mn_hi=0.0, mn_lo=0.0, mp_hi=0.0, mp_lo=0.0, PER_IMAGE=True, HAS_IGNORE=False)
    _lovasz_reg_sort_kernel[(seg,)](
        err_ptr=err, fg_ptr=flags, tab_ptr=tab, cw_ptr=cw, d_ptr=d, part_ptr=part, gts_ptr=gts, ticket_ptr=ticket,
        loss_ptr=loss, coef_ptr=coef, G=G, K=K, KL=KL, P=P, HINGE=hinge is not None, ALL_CLASSES=tab is None,
        PRESENT=present, HAS_CW=cw is not None, REDUCTION=REDUCTION_CODE[reduction], ACC=tl.float32, BLOCK=block,
        BLOCK_K=BLOCK_K, BLOCK_CH=BLOCK_CH, num_warps=_reg_sort_warps(block), **hk)
    return coef


def _walk(keys, flags, tab, err_cnt, ticket, loss, *, G, K, KL, rows_per_g, present, reduction, cw=None):
    """Sort the keys, count (when a segment has several chunks), walk and finish.
    Returns the gradient scales (SEG,); the loss is written into ``loss``, d over ``keys``."""
    seg, p = keys.shape
    acc = keys.dtype
    err, perm = torch.sort(keys, dim=1, descending=True, stable=True)
    block, chunk, n_chunks = _walk_plan(seg, p)
    common = dict(perm_ptr=perm, fg_ptr=flags, P=p, n_chunks=n_chunks, chunk=chunk, BLOCK=block)
    coef = torch.empty((seg,), device=keys.device, dtype=acc)
    part = torch.empty((seg * n_chunks,), device=keys.device, dtype=acc)
    gts = torch.empty((seg,), device=keys.device, dtype=torch.int32)
    cnt = err_cnt
    if n_chunks > 1:
        cnt = torch.empty((seg * n_chunks,), device=keys.device, dtype=torch.int32)
        _lovasz_count_kernel[(seg * n_chunks,)](cnt_ptr=cnt, **common)
    _lovasz_walk_kernel[(seg * n_chunks,)](
        err_ptr=err, tab_ptr=tab, cw_ptr=cw, cnt_ptr=cnt, d_ptr=keys, part_ptr=part, gts_ptr=gts, ticket_ptr=ticket,
        loss_ptr=loss, coef_ptr=coef, G=G, K=K, KL=KL, rows_per_g=rows_per_g, ALL_CLASSES=tab is None,
        HAS_CARRY=n_chunks > 1, PRESENT=present, HAS_CW=cw is not None, ACC=tl_acc(acc),
        REDUCTION=REDUCTION_CODE[reduction], BLOCK_K=BLOCK_K, BLOCK_CH=BLOCK_CH, **common)
    return coef


def _loss_out(x, acc, reduction, none_shape):
    return torch.empty(none_shape if reduction == "none" else (), device=x.device, dtype=acc)


def hinge_forward(x, t, o):
    """x, t: (N, 1, S). Returns (loss, coef (G,), d (G, P)) with G, P = N, S if ``per_image`` else
    1, N * S: the loss (0-d; "none": (N,) per image, else 0-d), each segment's gradient scale and
    the walk's d at each pixel (row g, position n' * S + s within the segment). See ``ops.py``."""
    N, _, S = x.shape
    acc = acc_dtype(x.dtype)
    G, P = (N, S) if o.per_image else (1, N * S)
    loss = _loss_out(x, acc, o.reduction, (N,) if o.per_image else ())
    block = _reg_sort_block(G, P, acc)
    if block:  # one program per segment reads its logits and target, sorts, walks: no key buffer
        d = torch.empty((G, P), device=x.device, dtype=acc)
        ticket = torch.zeros((1,), device=x.device, dtype=torch.int32)
        with device_guard(x):
            coef = _reg_sort(block, d, ticket, loss, G=G, K=1, KL=1, P=P, present=False, reduction=o.reduction,
                             hinge=(x, t, o))
        return loss, coef, d
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    keys = torch.empty((G, P), device=x.device, dtype=acc)
    flags = torch.empty((G, P), device=x.device, dtype=torch.uint8)
    cnt = torch.empty((N * n_blocks_s,), device=x.device, dtype=torch.int32)
    ticket = torch.empty((1,), device=x.device, dtype=torch.int32)
    m_neg, m_pos = (1.0, 1.0) if o.margin is None else o.margin
    ig, mn, mp = split_f64(o.ignore_index), split_f64(m_neg), split_f64(m_pos)
    with device_guard(x):
        _lovasz_hinge_err_kernel[(N * n_blocks_s,)](
            x_ptr=x, t_ptr=t, key_ptr=keys, fg_ptr=flags, cnt_ptr=cnt, ticket_ptr=ticket, S=S, n_blocks_s=n_blocks_s,
            stride_xn=x.stride(0), stride_xs=x.stride(2), stride_tn=t.stride(0), stride_ts=t.stride(2),
            ig_hi=ig[0], ig_lo=ig[1], mn_hi=mn[0], mn_lo=mn[1], mp_hi=mp[0], mp_lo=mp[1],
            HAS_IGNORE=o.ignore_index is not None, ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps)
        coef = _walk(keys, flags, None, cnt, ticket, loss, G=G, K=1, KL=1,
                     rows_per_g=n_blocks_s if o.per_image else N * n_blocks_s, present=False, reduction=o.reduction)
    return loss, coef, keys


def _columns(o, c):
    """(K, KL, classes tuple or None): the distinct class columns, the listed entries."""
    if o.classes is None:
        return c, c, None
    classes = tuple(int(k) for k in o.classes)
    return len(set(classes)), len(classes), classes


def softmax_forward(x, t, o):
    """x: (N, C, S) logits (probabilities if not ``from_logits``), t: (N, 1, S) labels. Returns
    (loss, coef (G * K,), d (G * K, P)): the loss (0-d; "none": (N, KL) per image, else (KL,)),
    each segment's gradient scale and the walk's d at each pixel; segment (g, k) is row g * K + k,
    K the distinct listed classes (C without a list), KL the listed entries."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    K, KL, classes = _columns(o, C)
    tab = None if classes is None else _class_table(x.device, classes, C)
    BLOCK_C, BLOCK_S = _class_blocks(C)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    G, P = (N, S) if o.per_image else (1, N * S)
    keys = torch.empty((G * K, P), device=x.device, dtype=acc)
    flags = torch.empty((G * K, P), device=x.device, dtype=torch.uint8)
    stride_kn, stride_kk = (K * S, S) if o.per_image else (S, N * S)
    cnt = torch.empty((N * n_blocks_s, K), device=x.device, dtype=torch.int32)
    ticket = torch.empty((1,), device=x.device, dtype=torch.int32)
    loss = _loss_out(x, acc, o.reduction, (N, KL) if o.per_image else (KL,))
    t2 = t.select(1, 0)
    has_ignore = o.ignore_index is not None
    with device_guard(x):
        _lovasz_softmax_err_kernel[(N * n_blocks_s,)](
            x_ptr=x, t_ptr=t2, tab_ptr=tab, key_ptr=keys, fg_ptr=flags, cnt_ptr=cnt, ticket_ptr=ticket, C=C, K=K, S=S,
            n_blocks_s=n_blocks_s, stride_xn=x.stride(0), stride_xc=x.stride(1), stride_xs=x.stride(2),
            stride_tn=t2.stride(0), stride_ts=t2.stride(1), stride_kn=stride_kn, stride_kk=stride_kk,
            ignore_index=int(o.ignore_index) if has_ignore else 0, HAS_IGNORE=has_ignore,
            ALL_CLASSES=classes is None, FROM_LOGITS=o.from_logits, ACC=tl_acc(x.dtype), BLOCK_C=BLOCK_C,
            BLOCK_S=BLOCK_S, ONE_CHUNK=classes is None and C <= BLOCK_C)
        present = o.classes is None and o.only_present
        cw = _column_weights(x.device, o, classes, C)
        block = _reg_sort_block(G * K, P, acc)
        if block:  # each segment sorted and walked in one program; d over its errors
            coef = _reg_sort(block, keys, ticket, loss, G=G, K=K, KL=KL, P=P, present=present,
                             reduction=o.reduction, tab=tab, cw=cw, err=keys, flags=flags)
        else:
            coef = _walk(keys, flags, tab, cnt, ticket, loss, G=G, K=K, KL=KL,
                         rows_per_g=n_blocks_s if o.per_image else N * n_blocks_s, present=present,
                         reduction=o.reduction, cw=cw)
    return loss, coef, keys


def _backward(g, coef, d, x, tab, o, *, K, KL, from_logits, d_strides):
    N, C, S = x.shape
    dx = torch.empty_like(x)
    BLOCK_C, BLOCK_S = _class_blocks(C)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    g_map = o.reduction == "none" and g.dim() > 0
    # "none": (N, KL) per image, (KL,) for the batch, (N,) for the hinge per image
    stride_gg, stride_gj = (tuple(g.stride()) * 2)[:2] if g_map else (0, 0)
    with device_guard(x):
        _lovasz_bwd_kernel[(N * n_blocks_s,)](
            x_ptr=x if from_logits else None, d_ptr=d, coef_ptr=coef, g_ptr=g, tab_ptr=tab, dx_ptr=dx, C=C, K=K,
            KL=KL, S=S, n_blocks_s=n_blocks_s, stride_xn=x.stride(0), stride_xc=x.stride(1), stride_xs=x.stride(2),
            stride_dn=d_strides[0], stride_dk=d_strides[1], stride_gg=stride_gg, stride_gj=stride_gj,
            stride_on=dx.stride(0), stride_oc=dx.stride(1), stride_os=dx.stride(2), PER_IMAGE=o.per_image,
            ALL_CLASSES=tab is None, FROM_LOGITS=from_logits, G_IS_MAP=g_map, ACC=tl_acc(x.dtype),
            BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, BLOCK_J=BLOCK_K, ONE_CHUNK=C <= BLOCK_C)
    return dx


def hinge_backward(g, coef, d, x, t, o):
    """dLoss/dx (N, 1, S) with the logits' dtype and layout; ``g``: the upstream gradient of the loss."""
    S = x.shape[2]
    return _backward(g, coef, d, x, None, o, K=1, KL=1, from_logits=False, d_strides=(S, S))


def softmax_backward(g, coef, d, x, t, o):
    """dLoss/dx (N, C, S) with the logits' dtype and layout; ``g``: the upstream gradient of the loss."""
    N, C, S = x.shape
    K, KL, classes = _columns(o, C)
    tab = None if classes is None else _class_table(x.device, classes, C)
    d_strides = (K * S, S) if o.per_image else (S, N * S)
    return _backward(g, coef, d, x, tab, o, K=K, KL=KL, from_logits=o.from_logits, d_strides=d_strides)


# ---- ahead-of-time compile variants --------------------------------------------------------------

def _aot_variants():
    specs = []
    floats = dict(ig_hi="fp32", ig_lo="fp32")
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        specs.append(aot_spec(_lovasz_hinge_err_kernel, dict(HAS_IGNORE=True, ACC=acc, BLOCK=1024),
                              x_ptr=f"*{dt}", t_ptr="*u8", key_ptr=accty, fg_ptr="*u8", cnt_ptr="*i32",
                              ticket_ptr="*i32",
                              mn_hi="fp32", mn_lo="fp32", mp_hi="fp32", mp_lo="fp32", **floats))
        specs.append(aot_spec(_lovasz_softmax_err_kernel,
                              dict(HAS_IGNORE=True, ALL_CLASSES=False, FROM_LOGITS=True, ACC=acc,
                                   BLOCK_C=32, BLOCK_S=128, ONE_CHUNK=False),
                              x_ptr=f"*{dt}", t_ptr="*i64", tab_ptr="*i32", key_ptr=accty, fg_ptr="*u8",
                              cnt_ptr="*i32", ticket_ptr="*i32"))
        specs.append(aot_spec(_lovasz_softmax_err_kernel,
                              dict(HAS_IGNORE=True, ALL_CLASSES=True, FROM_LOGITS=True, ACC=acc,
                                   BLOCK_C=4, BLOCK_S=1024, ONE_CHUNK=True),
                              x_ptr=f"*{dt}", t_ptr="*i64", tab_ptr="*i32", key_ptr=accty, fg_ptr="*u8",
                              cnt_ptr="*i32", ticket_ptr="*i32"))
        for hinge, all_classes, carry, present, red in ((False, False, True, False, 0), (False, True, False, True, 2),
                                                        (True, True, True, False, 1), (False, True, True, True, 0)):
            specs.append(aot_spec(_lovasz_walk_kernel,
                                  dict(ALL_CLASSES=all_classes, HAS_CARRY=carry, PRESENT=present, HAS_CW=not hinge,
                                       REDUCTION=red, ACC=acc, BLOCK=1024, BLOCK_K=BLOCK_K, BLOCK_CH=BLOCK_CH),
                                  err_ptr=accty, perm_ptr="*i64", fg_ptr="*u8", tab_ptr="*i32", cw_ptr="*fp64",
                                  cnt_ptr="*i32", d_ptr=accty, part_ptr=accty, gts_ptr="*i32", ticket_ptr="*i32",
                                  loss_ptr=accty, coef_ptr=accty))
        for from_logits, all_classes, g_map, one in ((True, False, True, False), (True, True, False, True),
                                                     (False, False, False, False)):
            specs.append(aot_spec(_lovasz_bwd_kernel,
                                  dict(PER_IMAGE=True, ALL_CLASSES=all_classes, FROM_LOGITS=from_logits,
                                       G_IS_MAP=g_map, ACC=acc, BLOCK_C=32, BLOCK_S=128, BLOCK_J=BLOCK_K,
                                       ONE_CHUNK=one),
                                  x_ptr=f"*{dt}", d_ptr=accty, coef_ptr=accty, g_ptr=accty, tab_ptr="*i32",
                                  dx_ptr=f"*{dt}"))
    # the register sort (32-bit errors only): BLOCK = REG_SORT_MAX for the hinge and for softmax
    # errors, then smaller blocks from bf16 / fp16 logits, and int64 sizes and strides
    hinge_f = dict(ig_hi="fp32", ig_lo="fp32", mn_hi="fp32", mn_lo="fp32", mp_hi="fp32", mp_lo="fp32")
    reg = dict(BLOCK_K=BLOCK_K, BLOCK_CH=BLOCK_CH, ACC=tl.float32)
    for hinge, per_image, dt, tt, block, flags in (
            (True, True, "fp32", "*fp32", REG_SORT_MAX, dict(HAS_IGNORE=True, ALL_CLASSES=True, PRESENT=False,
                                                              HAS_CW=False, REDUCTION=0)),
            (False, True, "fp32", "*fp32", REG_SORT_MAX, dict(HAS_IGNORE=False, ALL_CLASSES=False, PRESENT=False,
                                                               HAS_CW=True, REDUCTION=2)),
            (True, False, "bf16", "*u8", 256, dict(HAS_IGNORE=False, ALL_CLASSES=True, PRESENT=False, HAS_CW=False,
                                                   REDUCTION=1)),
            (True, True, "fp16", "*i64", 1024, dict(HAS_IGNORE=True, ALL_CLASSES=True, PRESENT=False, HAS_CW=False,
                                                    REDUCTION=2)),
            (False, True, "fp32", "*fp32", 2048, dict(HAS_IGNORE=False, ALL_CLASSES=True, PRESENT=True,
                                                      HAS_CW=False, REDUCTION=0))):
        specs.append(aot_spec(_lovasz_reg_sort_kernel, dict(HINGE=hinge, PER_IMAGE=per_image, BLOCK=block, **flags,
                                                            **reg),
                              num_warps=_reg_sort_warps(block), x_ptr=f"*{dt}", t_ptr=tt, fg_ptr="*u8",
                              tab_ptr="*i32", cw_ptr="*fp64", gts_ptr="*i32", ticket_ptr="*i32", **hinge_f))
    specs.append(aot_spec(_lovasz_reg_sort_kernel, dict(HINGE=True, PER_IMAGE=False, BLOCK=1024, HAS_IGNORE=True,
                                                        ALL_CLASSES=True, PRESENT=False, HAS_CW=False, REDUCTION=0,
                                                        **reg),
                          num_warps=_reg_sort_warps(1024), x_ptr="*bf16", t_ptr="*fp32", fg_ptr="*u8",
                          tab_ptr="*i32", cw_ptr="*fp64", gts_ptr="*i32", ticket_ptr="*i32", G="i64", K="i64",
                          KL="i64", P="i64", S="i64", stride_xn="i64", stride_xs="i64", stride_tn="i64",
                          stride_ts="i64", **hinge_f))
    # the hinge backward (one channel), the counts, probabilities in
    specs.append(aot_spec(_lovasz_bwd_kernel,
                          dict(PER_IMAGE=False, ALL_CLASSES=True, FROM_LOGITS=False, G_IS_MAP=False, ACC=tl.float32,
                               BLOCK_C=1, BLOCK_S=2048, BLOCK_J=BLOCK_K, ONE_CHUNK=True),
                          x_ptr="*fp32", g_ptr="*fp32", tab_ptr="*i32", dx_ptr="*bf16"))
    specs.append(aot_spec(_lovasz_count_kernel, dict(BLOCK=1024), perm_ptr="*i64", fg_ptr="*u8", cnt_ptr="*i32"))
    specs.append(aot_spec(_lovasz_softmax_err_kernel,
                          dict(HAS_IGNORE=False, ALL_CLASSES=True, FROM_LOGITS=False, ACC=tl.float32,
                               BLOCK_C=2, BLOCK_S=2048, ONE_CHUNK=True),
                          x_ptr="*bf16", t_ptr="*u8", tab_ptr="*i32", fg_ptr="*u8", cnt_ptr="*i32",
                          ticket_ptr="*i32"))
    # int64 sizes and strides (tensors past 2^31 elements)
    big = dict(P="i64", n_chunks="i64", chunk="i64")
    specs.append(aot_spec(_lovasz_walk_kernel,
                          dict(ALL_CLASSES=True, HAS_CARRY=True, PRESENT=True, HAS_CW=False, REDUCTION=0,
                               ACC=tl.float32, BLOCK=1024, BLOCK_K=BLOCK_K, BLOCK_CH=BLOCK_CH),
                          perm_ptr="*i64", fg_ptr="*u8", tab_ptr="*i32", cw_ptr="*fp64", cnt_ptr="*i32",
                          gts_ptr="*i32", ticket_ptr="*i32", G="i64", K="i64", KL="i64", rows_per_g="i64", **big))
    specs.append(aot_spec(_lovasz_count_kernel, dict(BLOCK=1024), perm_ptr="*i64", fg_ptr="*u8", cnt_ptr="*i32",
                          **big))
    specs.append(aot_spec(_lovasz_hinge_err_kernel,
                          dict(HAS_IGNORE=False, ACC=tl.float32, BLOCK=2048, stride_xs=1, stride_ts=1),
                          divisible=("S", "stride_xn", "stride_tn"), x_ptr="*bf16", t_ptr="*fp32",
                          fg_ptr="*u8", cnt_ptr="*i32", ticket_ptr="*i32", S="i64", n_blocks_s="i64", stride_xn="i64",
                          stride_tn="i64", mn_hi="fp32", mn_lo="fp32", mp_hi="fp32", mp_lo="fp32", **floats))
    specs.append(aot_spec(_lovasz_softmax_err_kernel,
                          dict(HAS_IGNORE=True, ALL_CLASSES=True, FROM_LOGITS=True, ACC=tl.float32,
                               BLOCK_C=32, BLOCK_S=128, ONE_CHUNK=False),
                          x_ptr="*fp32", t_ptr="*i64", tab_ptr="*i32", fg_ptr="*u8", cnt_ptr="*i32",
                          ticket_ptr="*i32", S="i64",
                          n_blocks_s="i64", stride_xn="i64", stride_xc="i64", stride_xs="i64",
                          stride_tn="i64", stride_ts="i64", stride_kn="i64", stride_kk="i64"))
    specs.append(aot_spec(_lovasz_bwd_kernel,
                          dict(PER_IMAGE=False, ALL_CLASSES=True, FROM_LOGITS=True, G_IS_MAP=True, ACC=tl.float32,
                               BLOCK_C=32, BLOCK_S=128, BLOCK_J=BLOCK_K, ONE_CHUNK=False),
                          x_ptr="*fp32", d_ptr="*fp32", coef_ptr="*fp32", g_ptr="*fp32", tab_ptr="*i32",
                          dx_ptr="*fp32", S="i64", n_blocks_s="i64", stride_xn="i64", stride_xc="i64",
                          stride_xs="i64", stride_dn="i64", stride_dk="i64", stride_on="i64", stride_oc="i64",
                          stride_os="i64"))
    return specs


AOT_SPECS = _aot_variants()
