"""Triton kernels of the boundary family and their launchers (the family's only triton import).

Seed 001's boundary weights are ``avg_pool(target, k, stride=1, padding=k // 2)`` (zero padding
counted: a window *sum* over a k^d box divided by k^d) tested against a band, then normalised.
The window sum is separable. Every tensor is seen as (M, D, H, W) (D == 1 in 2D) with its own
strides; a pixel row is r = d * H + h, so an image is D * H rows of W pixels.

* ``_window_dh_kernel`` writes the window sums along D and H, compactly (contiguous, ACC).
  Along H each program forms them from two loads and two prefix sums (cost per pixel
  independent of k); along D (3D only) it slides a running sum down the volume.
* The W direction is summed on the fly by the kernel that reads those sums (the same prefix
  trick along W), tested against two thresholds on the *sum* that reproduce avg_pool's rounded
  mean compared with ``low``/``high`` bit for bit (``ops.band_thresholds``), so the mean is
  never formed.

A training step of ``boundary_bce_dice_loss`` is three launches and no host sync: the fused
forward (band, BCE and soft-Dice partials split by band), the one-program finisher
(normalisation, loss, gradient coefficients) and the backward, which reads the one-byte band the
forward wrote and the coefficients and upstream gradients from device memory. The forward finds
the band from the target itself, so no window sums cross memory:

* 2D (``_bce_dice_fwd_strip_kernel``, windows up to 2 STRIP_MAX_R + 1 wide): a program walks
  down a column strip, carrying each column's vertical window sum and taking the horizontal one
  from prefix sums; the rows its sums drop come back from a ring in its scratch.
* 3D (``_bce_dice_fwd3d_kernel``, windows up to 2 FUSED3_MAX_R + 1 wide): a program walks along D
  with an (H, W) tile, forming each slice's box sum from prefix sums and carrying the sum along D.

Wider windows take the window-sum pass (four launches): ``_window_dh_kernel``, then
``_bce_dice_fwd_kernel``, which sums along W on the fly.
``boundary_weight_map`` is four as well (window sums, band + raw weights, finisher, rescale).

On a 0/1 mask every partial sum is an integer; the launchers bound the tiles so that the
prefix sums stay below 2^24 and are exact in fp32, as avg_pool's own sums are.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import device_guard, pick, scalar, sigmoid, softplus, split_f64, sum_rows, tl_acc
from triton_segloss._core.validate import acc_dtype

NPART = 9  # loss partials per program: [l, pt, p, t] outside the band, the same inside, then #band
_EXACT = 2 ** 24  # integers below this are exact in fp32
_TILE = 2048  # pixels per program
# 2D boundary BCE+Dice: one forward kernel finds the band from column strips of the target (2R halo
# columns in BLOCK_W = 256, or 512 past R = STRIP_WIDE_R; segments of max(STRIP_SEG_PER_R * R,
# STRIP_SEG_MIN) rows, 2R halo rows) for windows up to 2 STRIP_MAX_R + 1 wide; wider windows (a
# strip would be mostly halo, its ring of rows large) and 3D take the window-sum pass.
# 3D: one forward kernel walks along D with (H, W) tiles of up to FUSED3_BLOCK^2 (their inner
# (FUSED3_BLOCK - 2R)^2 pixels owned; half as wide and tall in fp64) for windows up to
# 2 FUSED3_MAX_R + 1 wide (FUSED3_MAX_R // 2 in fp64). 8 warps: 16 would cap the registers at 128.
# FUSED_2D / FUSED_3D: tests compare each with the window-sum pass.
FUSED_2D = True
FUSED_3D = True
FUSED3_BLOCK = 64
FUSED3_MAX_R = 15
STRIP_MAX_R = 63
STRIP_WIDE_R = 32
STRIP_SEG_PER_R = 16  # halo rows are at most 2R / seg_h = 1/8 of the owned ones
STRIP_SEG_MIN = 64


# ---- device helpers -------------------------------------------------------------------------------

@triton.jit
def _window_sum(base, stride_l, l0, L, R, cmask, ACC: tl.constexpr, BLOCK_L: tl.constexpr):
    """[BLOCK_L, B] tile of win(l0 + i) = sum_{|u - l0 - i| <= R, 0 <= u < L} x[u] along axis 0.

    ``base``: [1, B] pointers of element u = 0 of each column; ``cmask``: [1, B] valid columns.
    From two loads and two prefix sums (one more load per BLOCK_L of window past the tile):
        win(l0 + i) = K0 + sum_{j <= i} x[l0 + R + j] - sum_{j < i} x[l0 - R + j],
        K0 = sum_{l0 - R <= u < l0 + R} x[u]
    """
    i = tl.arange(0, BLOCK_L).to(tl.int64)
    pa = l0 - R + i
    a = tl.load(base + pa[:, None] * stride_l, mask=((pa >= 0) & (pa < L))[:, None] & cmask, other=0).to(ACC)
    pb = l0 + R + i
    b = tl.load(base + pb[:, None] * stride_l, mask=((pb >= 0) & (pb < L))[:, None] & cmask, other=0).to(ACC)
    k0 = tl.sum(tl.where((i < 2 * R)[:, None], a, 0.0), axis=0)
    for j0 in range(BLOCK_L, 2 * R, BLOCK_L):  # only for windows wider than the tile
        pj = l0 - R + j0 + i
        mj = (j0 + i < 2 * R) & (pj >= 0) & (pj < L)
        k0 += tl.sum(tl.load(base + pj[:, None] * stride_l, mask=mj[:, None] & cmask, other=0).to(ACC), axis=0)
    return k0[None, :] + tl.cumsum(b, axis=0) - (tl.cumsum(a, axis=0) - a)


@triton.jit
def _threshold(a, b, c, ACC: tl.constexpr):
    """A threshold passed as three fp32 parts (a + b + c is the fp64 value exactly)."""
    if ACC == tl.float64:
        return tl.cast(a, tl.float64) + tl.cast(b, tl.float64) + tl.cast(c, tl.float64)
    else:
        return tl.cast(a, tl.float32)


@triton.jit
def _tile(pid, n_blocks_r, n_blocks_w, BLOCK_W: tl.constexpr, BLOCK_R: tl.constexpr):
    """(m, w0, w [BLOCK_W, 1], r [1, BLOCK_R]) of program ``pid``; image-major, every index int64."""
    pid = pid.to(tl.int64)
    per_m = n_blocks_r * n_blocks_w
    m = pid // per_m
    w0 = (pid % n_blocks_w) * BLOCK_W
    r0 = (pid % per_m) // n_blocks_w * BLOCK_R
    w = w0 + tl.arange(0, BLOCK_W).to(tl.int64)
    r = r0 + tl.arange(0, BLOCK_R).to(tl.int64)
    return m, w0, w[:, None], r[None, :]


@triton.jit
def _band(y_ptr, m, w0, r, RWS, W, R, lo_a, lo_b, lo_c, hi_a, hi_b, hi_c, ACC: tl.constexpr, BLOCK_W: tl.constexpr):
    """[BLOCK_W, BLOCK_R] band test of a tile: the W window sum of the D/H window sums ``y``
    (contiguous (M, D * H, W)) lies in [s_lo, s_hi]."""
    rmask = r < RWS
    win = _window_sum(y_ptr + m * RWS * W + r * W, 1, w0, W, R, rmask, ACC, BLOCK_W)
    return (win >= _threshold(lo_a, lo_b, lo_c, ACC)) & (win <= _threshold(hi_a, hi_b, hi_c, ACC))


@triton.jit
def _partial_sums(x, t, valid, band, ACC: tl.constexpr):
    """The 9 partials of a tile: with l = softplus(x) - x t (BCE with logits) and p = sigmoid(x),
    [sum l, sum p t, sum p, sum t] over the valid pixels outside the band, the same inside it,
    then #band (``band`` is already restricted to valid pixels)."""
    out = valid & ~band
    l = softplus(x) - x * t
    p = sigmoid(x)
    return (tl.sum(tl.sum(tl.where(out, l, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(out, p * t, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(out, p, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(out, t, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(band, l, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(band, p * t, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(band, p, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(tl.where(band, t, 0.0), axis=1), axis=0),
            tl.sum(tl.sum(band.to(ACC), axis=1), axis=0))


@triton.jit
def _store_partials(dst, x, t, valid, band, ACC: tl.constexpr):
    """The 9 partials of a tile (``_partial_sums``) at ``dst``."""
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = _partial_sums(x, t, valid, band, ACC)
    _store9(dst, a0, a1, a2, a3, a4, a5, a6, a7, a8)


@triton.jit
def _store9(dst, a0, a1, a2, a3, a4, a5, a6, a7, a8):
    """The 9 partials at dst[0..8]."""
    tl.store(dst + 0, a0)
    tl.store(dst + 1, a1)
    tl.store(dst + 2, a2)
    tl.store(dst + 3, a3)
    tl.store(dst + 4, a4)
    tl.store(dst + 5, a5)
    tl.store(dst + 6, a6)
    tl.store(dst + 7, a7)
    tl.store(dst + 8, a8)


@triton.jit
def _pixel_offsets(m, w, r, H, stride_m, stride_d, stride_h, stride_w):
    """Offsets of pixels (m, r = d * H + h, w) of an (M, D, H, W) strided view (int64)."""
    return m * stride_m + (r // H) * stride_d + (r % H) * stride_h + w * stride_w


# ---- kernels --------------------------------------------------------------------------------------

@triton.jit
def _window_dh_kernel(
    t_ptr,  # target, (M, D, H, W) strided, its own dtype
    y_ptr,  # out: window sums along D and H, contiguous (M, D, H, W): ACC, or uint8 / int16 (``_sums_dtype``)
    D, H, W,
    R,  # window radius: width 2R + 1 along every spatial axis
    n_blocks_h, n_blocks_w,
    stride_tm, stride_td, stride_th, stride_tw,
    IS_3D: tl.constexpr, ACC: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    """y[m, d, h, w] = sum_{|d' - d| <= R (3D only), |h' - h| <= R} t[m, d', h', w], zero outside
    (avg_pool's padding, counted). Along D a running sum slides down the volume:
        y(d) = y(d - 1) + Hsum(d + R) - Hsum(d - 1 - R).
    Not differentiable (the target only)."""
    pid = tl.program_id(0).to(tl.int64)
    per_m = n_blocks_h * n_blocks_w
    m = pid // per_m
    h0 = (pid % per_m) // n_blocks_w * BLOCK_H
    w = (pid % n_blocks_w) * BLOCK_W + tl.arange(0, BLOCK_W).to(tl.int64)
    h = h0 + tl.arange(0, BLOCK_H).to(tl.int64)
    wmask = (w < W)[None, :]
    omask = (h < H)[:, None] & wmask
    base = t_ptr + m * stride_tm + w[None, :] * stride_tw
    y_ptrs = y_ptr + m * D * H * W + h[:, None] * W + w[None, :]
    if IS_3D:
        run = tl.zeros([BLOCK_H, BLOCK_W], dtype=ACC)
        d_of = (w * 0)[None, :]  # slice indices as [1, BLOCK_W] tensors (masks of the slice's validity)
        for j in range(0, R):  # the window of d = 0 before its last slice: slices 0 .. R - 1
            j64 = tl.cast(j, tl.int64)
            run += _window_sum(base + j64 * stride_td, stride_th, h0, H, R, wmask & (d_of + j64 < D), ACC, BLOCK_H)
        for d in range(0, D):
            d64 = tl.cast(d, tl.int64)
            dn = d64 + R
            run += _window_sum(base + dn * stride_td, stride_th, h0, H, R, wmask & (d_of + dn < D), ACC, BLOCK_H)
            tl.store(y_ptrs + d64 * H * W, run.to(y_ptr.dtype.element_ty), mask=omask)
            do = d64 - R
            run -= _window_sum(base + do * stride_td, stride_th, h0, H, R, wmask & (d_of + do >= 0), ACC, BLOCK_H)
    else:
        win = _window_sum(base, stride_th, h0, H, R, wmask, ACC, BLOCK_H)
        tl.store(y_ptrs, win.to(y_ptr.dtype.element_ty), mask=omask)


@triton.jit
def _weight_band_kernel(
    y_ptr,  # window sums along D and H, contiguous (M, D * H, W) in ACC
    out_ptr,  # out: raw weights (1 or boundary_weight), contiguous (M, D * H, W) in ACC
    part_ptr,  # out: band pixels per program, (programs,) in ACC
    RWS, W,  # rows (D * H) and columns of an image
    R,
    n_blocks_r, n_blocks_w,
    lo_a, lo_b, lo_c, hi_a, hi_b, hi_c,  # the band [s_lo, s_hi] on window sums (three fp32 parts each)
    bw_hi, bw_lo,  # boundary_weight (fp32 pair)
    ACC: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """band = s_lo <= sum_{k^d box} t <= s_hi;  out = 1 + (boundary_weight - 1) * band;
    part = #band pixels of the tile. Not differentiable."""
    m, w0, w, r = _tile(tl.program_id(0), n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R)
    valid = (w < W) & (r < RWS)
    band = _band(y_ptr, m, w0, r, RWS, W, R, lo_a, lo_b, lo_c, hi_a, hi_b, hi_c, ACC, BLOCK_W) & valid
    u = tl.where(band, scalar(bw_hi, bw_lo, ACC), 1.0)
    tl.store(out_ptr + m * RWS * W + r * W + w, u, mask=valid)
    tl.store(part_ptr + tl.program_id(0).to(tl.int64), tl.sum(tl.sum(band.to(ACC), axis=1), axis=0))


@triton.jit
def _weight_finish_kernel(
    part_ptr,  # band pixels per program, (n_part,) in ACC
    scale_ptr,  # out: the two normalised weights [outside, inside the band] in ACC
    n_part,
    numel,  # pixels of the whole target
    bw_hi, bw_lo,  # boundary_weight (fp32 pair)
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program. With n_b the band pixels (a fixed-order float64 sum) and n the pixel count,
    seed 001's sum(w) = n + (bw - 1) n_b, and w = u / sum(w) * n rounded as the seed rounds it:
        w1 = fl(n + (bw - 1) n_b),  lo = fl(fl(1 / w1) * n),  hi = fl(fl(bw / w1) * n)   (in ACC)."""
    n_b = pick(sum_rows(part_ptr, n_part, 1, 1, BLOCK), 0, 1)
    n = tl.cast(numel, tl.float64)
    w1 = (n + (scalar(bw_hi, bw_lo, tl.float64) - 1.0) * n_b).to(ACC)
    na = n.to(ACC)
    tl.store(scale_ptr, (1.0 / w1) * na)
    tl.store(scale_ptr + 1, (scalar(bw_hi, bw_lo, ACC) / w1) * na)


@triton.jit
def _weight_scale_kernel(
    out_ptr,  # raw weights in, normalised weights out (in place), contiguous, ACC
    scale_ptr,  # [outside, inside the band] normalised weights from the finisher
    numel,
    BLOCK: tl.constexpr,
):
    """w = lo where the raw weight is 1, hi elsewhere (the band)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = i < numel
    u = tl.load(out_ptr + i, mask=mask, other=1.0)
    tl.store(out_ptr + i, tl.where(u != 1.0, tl.load(scale_ptr + 1), tl.load(scale_ptr)), mask=mask)


@triton.jit
def _bce_dice_fwd_kernel(
    x_ptr,  # logits, (M, D, H, W) strided
    t_ptr,  # target in [0, 1], (M, D, H, W) strided, its own dtype
    y_ptr,  # window sums of the target along D and H, contiguous (M, D * H, W) in WACC; if WEIGHTED
    band_ptr,  # out: band indicator, contiguous (M, D * H, W) uint8; written only if WEIGHTED
    part_ptr,  # out: per-program partials, contiguous (programs, 9) in ACC
    RWS, H, W,
    R,
    n_blocks_r, n_blocks_w,
    stride_xm, stride_xd, stride_xh, stride_xw,
    stride_tm, stride_td, stride_th, stride_tw,
    lo_a, lo_b, lo_c, hi_a, hi_b, hi_c,  # the band on window sums (three fp32 parts each)
    WEIGHTED: tl.constexpr, ACC: tl.constexpr, WACC: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """Per pixel, with p = sigmoid(x) and b the band (seed 001's avg-pool test; none if not WEIGHTED):

        l = softplus(x) - x t = max(x, 0) - x t + log(1 + e^-|x|)       (BCE with logits)

    Partials per program (one image per program), outside / inside the band:
        [sum l, sum p t, sum p, sum t]_{not b},  [sum l, sum p t, sum p, sum t]_{b},  #b
    The finisher weighs them with the normalised weights (w^2 for the Dice sums).
    """
    m, w0, w, r = _tile(tl.program_id(0), n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R)
    valid = (w < W) & (r < RWS)
    x = tl.load(x_ptr + _pixel_offsets(m, w, r, H, stride_xm, stride_xd, stride_xh, stride_xw), mask=valid,
                other=0.0).to(ACC)
    t = tl.load(t_ptr + _pixel_offsets(m, w, r, H, stride_tm, stride_td, stride_th, stride_tw), mask=valid,
                other=0).to(ACC)
    if WEIGHTED:
        band = _band(y_ptr, m, w0, r, RWS, W, R, lo_a, lo_b, lo_c, hi_a, hi_b, hi_c, WACC, BLOCK_W) & valid
        tl.store(band_ptr + m * RWS * W + r * W + w, band.to(tl.uint8), mask=valid)
    else:
        band = (w < 0) & valid  # no band: every pixel weighs 1
    _store_partials(part_ptr + tl.program_id(0).to(tl.int64) * 9, x, t, valid, band, ACC)


@triton.jit
def _shifted(scr_ptr, l, rows, cols, dr, dc, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """The scratch slot's values at (row + dr, col + dc) of every tile position, 0 outside the tile."""
    rr = rows + dr
    cc = cols + dc
    ok = (rr >= 0) & (rr < BLOCK_H) & (cc >= 0) & (cc < BLOCK_W)
    return tl.load(scr_ptr + l + dr * BLOCK_W + dc, mask=ok, other=0.0)


@triton.jit
def _bce_dice_fwd_strip_kernel(
    x_ptr,  # logits, (M, 1, H, W) strided
    t_ptr,  # target in [0, 1], (M, 1, H, W) strided, its own dtype
    band_ptr,  # out: band indicator, contiguous (M, H, W) uint8
    part_ptr,  # out: per-program partials, contiguous (programs, 9) in ACC
    scr_ring_ptr,  # per-program ring of the last ``ring`` target rows, (programs, ring, BLOCK_W): uint8 or WACC
    scr_slot_ptr,  # per-program slot for the W prefix sums, (programs, CHUNK, BLOCK_W) in WACC
    H, W,
    R,
    seg_h,  # owned rows per segment
    n_segs, n_strips,
    ring,  # rows of the ring: 2R + 1 + CHUNK
    stride_xm, stride_xh, stride_xw,
    stride_tm, stride_th, stride_tw,
    lo_a, lo_b, lo_c, hi_a, hi_b, hi_c,  # the band on window sums (three fp32 parts each)
    ACC: tl.constexpr, WACC: tl.constexpr,
    VACC: tl.constexpr,  # the vertical running sums: float64 for float masks (no drift down the strip), else WACC
    CHUNK: tl.constexpr, BLOCK_W: tl.constexpr,
):
    """``_bce_dice_fwd_kernel`` for 2D with the band found from the target itself: no window sums
    cross memory. A program owns BLOCK_W - 2R columns (its strip; the R columns each side are
    their windows' halo, zero outside the image as avg_pool's padding) of ``seg_h`` rows (its
    segment; R halo rows above and below), and walks down them CHUNK rows at a time, reading each
    target row of the strip once. With q the row index within the loaded rows and t(q) = 0
    outside the image, the vertical window sum of output row q - R is carried down the strip,

        V(q) = sum_{q - 2R <= u <= q} t(u) = V(q - 1) + t(q) - t(q - 2R - 1),

    t(q - 2R - 1) (and the output row's own t(q - R)) coming back from a ring of the last
    2R + 1 + CHUNK rows in the program's scratch. The box sum is then a prefix sum along W,
    box(q - R, j) = P_w(j + R) - P_w(j - R - 1), read shifted through a scratch slot. On a 0/1
    mask every value is an integer below 2^24, exact in fp32; for float masks V runs in float64.
    Partials as ``_bce_dice_fwd_kernel`` over the owned pixels."""
    pid = tl.program_id(0).to(tl.int64)
    per_m = n_segs * n_strips
    m = pid // per_m
    g = (pid % per_m) // n_strips
    R64 = tl.cast(R, tl.int64)
    rows = tl.arange(0, CHUNK).to(tl.int64)[:, None]
    cols = tl.arange(0, BLOCK_W).to(tl.int64)[None, :]
    w = (pid % n_strips) * (BLOCK_W - 2 * R64) - R64 + cols
    col_in = (w >= 0) & (w < W)
    own_col = col_in & (cols >= R64) & (cols < BLOCK_W - R64)
    hs = g * seg_h - R64  # image row of loaded row q = 0
    n_q = tl.minimum(seg_h, H - g * seg_h) + 2 * R64  # loaded rows: the owned ones and both halos
    ring_base = scr_ring_ptr + pid * ring * BLOCK_W + cols
    slot = scr_slot_ptr + pid * (CHUNK * BLOCK_W)
    l = rows * BLOCK_W + cols
    lo = _threshold(lo_a, lo_b, lo_c, WACC)
    hi = _threshold(hi_a, hi_b, hi_c, WACC)
    v_last = tl.zeros([BLOCK_W], dtype=VACC)
    s0 = tl.zeros([], dtype=ACC)
    s1 = tl.zeros([], dtype=ACC)
    s2 = tl.zeros([], dtype=ACC)
    s3 = tl.zeros([], dtype=ACC)
    s4 = tl.zeros([], dtype=ACC)
    s5 = tl.zeros([], dtype=ACC)
    s6 = tl.zeros([], dtype=ACC)
    s7 = tl.zeros([], dtype=ACC)
    s8 = tl.zeros([], dtype=ACC)
    for q0 in range(0, n_q, CHUNK):
        q = q0 + rows
        h = hs + q
        tl.debug_barrier()  # the last chunk's reads of the ring and the slot are done
        t_new = tl.load(t_ptr + m * stride_tm + h * stride_th + w * stride_tw,
                        mask=(h >= 0) & (h < H) & (q < n_q) & col_in, other=0)
        tl.store(ring_base + (q % ring) * BLOCK_W, t_new.to(scr_ring_ptr.dtype.element_ty))
        tl.debug_barrier()
        qo = q - 2 * R64 - 1
        t_old = tl.load(ring_base + (qo % ring) * BLOCK_W, mask=(qo >= 0) & (cols >= 0), other=0)
        diff = t_new.to(VACC) - t_old.to(VACC)
        v = v_last[None, :] + tl.cumsum(diff, axis=0)
        v_last += tl.sum(diff, axis=0)
        tl.store(slot + l, tl.cumsum(v.to(WACC), axis=1))
        tl.debug_barrier()
        box = _shifted(slot, l, rows, cols, 0, R64, CHUNK, BLOCK_W) - _shifted(slot, l, rows, cols, 0, -R64 - 1,
                                                                              CHUNK, BLOCK_W)
        own = own_col & (q >= 2 * R64) & (q < n_q)
        band = (box >= lo) & (box <= hi) & own
        ho = h - R64
        tl.store(band_ptr + m * H * W + ho * W + w, band.to(tl.uint8), mask=own)
        x = tl.load(x_ptr + m * stride_xm + ho * stride_xh + w * stride_xw, mask=own, other=0.0).to(ACC)
        t = tl.load(ring_base + ((q - R64) % ring) * BLOCK_W, mask=own, other=0).to(ACC)
        a0, a1, a2, a3, a4, a5, a6, a7, a8 = _partial_sums(x, t, own, band, ACC)
        s0 += a0
        s1 += a1
        s2 += a2
        s3 += a3
        s4 += a4
        s5 += a5
        s6 += a6
        s7 += a7
        s8 += a8
    _store9(part_ptr + pid * 9, s0, s1, s2, s3, s4, s5, s6, s7, s8)


@triton.jit
def _bce_dice_fwd3d_kernel(
    x_ptr,  # logits, (M, D, H, W) strided
    t_ptr,  # target in [0, 1], (M, D, H, W) strided, its own dtype
    band_ptr,  # out: band indicator, contiguous (M, D, H, W) uint8
    part_ptr,  # out: per-program partials, contiguous (programs, 9) in ACC
    scr_ring_ptr,  # per-program ring of the last ``ring`` target slices, (programs, ring, BLOCK_H * BLOCK_W)
    scr_box_ptr,  # per-program ring of their (H, W) box sums, (programs, ring, BLOCK_H * BLOCK_W) in WACC
    scr_slot_ptr,  # per-program slot for the prefix sums, (programs, BLOCK_H * BLOCK_W) in WACC
    D, H, W,
    R,
    seg_d,  # owned slices per segment
    n_segs, n_tiles_h, n_tiles_w,
    ring,  # slices of both rings: 2R + 2
    stride_xm, stride_xd, stride_xh, stride_xw,
    stride_tm, stride_td, stride_th, stride_tw,
    lo_a, lo_b, lo_c, hi_a, hi_b, hi_c,  # the band on window sums (three fp32 parts each)
    ACC: tl.constexpr, WACC: tl.constexpr,
    VACC: tl.constexpr,  # the running sums along D (WACC: float64 would spill at 64 x 64)
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    """``_bce_dice_fwd_kernel`` for 3D with the band found from the target itself. A program owns
    the inner (BLOCK_H - 2R) x (BLOCK_W - 2R) pixels of an (H, W) tile (the rim is their windows'
    halo, zero outside the volume) in ``seg_d`` slices (R halo slices before and after), and walks
    along D one slice at a time, reading each target slice of the tile once:

        B(q)  = the (2R + 1)^2 box sum of loaded slice q: prefix sums along H, then along W, each
                read shifted through the scratch slot, P(i + R) - P(i - R - 1),
        V(q)  = V(q - 1) + B(q) - B(q - 2R - 1)   (the (2R + 1)^3 box of output slice q - R),

    B(q - 2R - 1) and the output slice's own t(q - R) coming back from rings of the last 2R + 2
    slices in the program's scratch. Exact integers on 0/1 masks (below 2^24 in fp32); on soft
    masks V carries the rounding of its 2 seg_d additions, as avg_pool3d's k^3-term sums carry
    theirs. Partials as ``_bce_dice_fwd_kernel`` over the owned pixels."""
    pid = tl.program_id(0).to(tl.int64)
    per_m = n_segs * n_tiles_h * n_tiles_w
    m = pid // per_m
    rest = pid % per_m
    g = rest // (n_tiles_h * n_tiles_w)
    rest = rest % (n_tiles_h * n_tiles_w)
    R64 = tl.cast(R, tl.int64)
    rows = tl.arange(0, BLOCK_H).to(tl.int64)[:, None]
    cols = tl.arange(0, BLOCK_W).to(tl.int64)[None, :]
    h = rest // n_tiles_w * (BLOCK_H - 2 * R64) - R64 + rows
    w = rest % n_tiles_w * (BLOCK_W - 2 * R64) - R64 + cols
    hw_in = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    own_hw = hw_in & (rows >= R64) & (rows < BLOCK_H - R64) & (cols >= R64) & (cols < BLOCK_W - R64)
    ds = g * seg_d - R64  # volume slice of loaded slice q = 0
    n_q = tl.minimum(seg_d, D - g * seg_d) + 2 * R64
    l = (rows * BLOCK_W + cols).to(tl.int32)  # offsets within a tile (<= 4096): int32 keeps registers free
    tile = BLOCK_H * BLOCK_W
    ring_t = scr_ring_ptr + pid * ring * tile
    ring_b = scr_box_ptr + pid * ring * tile
    slot = scr_slot_ptr + pid * tile
    lo = _threshold(lo_a, lo_b, lo_c, WACC)
    hi = _threshold(hi_a, hi_b, hi_c, WACC)
    v = tl.zeros([BLOCK_H, BLOCK_W], dtype=VACC)
    s0 = tl.zeros([], dtype=ACC)
    s1 = tl.zeros([], dtype=ACC)
    s2 = tl.zeros([], dtype=ACC)
    s3 = tl.zeros([], dtype=ACC)
    s4 = tl.zeros([], dtype=ACC)
    s5 = tl.zeros([], dtype=ACC)
    s6 = tl.zeros([], dtype=ACC)
    s7 = tl.zeros([], dtype=ACC)
    s8 = tl.zeros([], dtype=ACC)
    for q in range(0, n_q):
        q64 = tl.cast(q, tl.int64)
        d = ds + q64 + rows * 0  # as a [BLOCK_H, 1] tensor: the slice's validity is a tensor mask
        tl.debug_barrier()  # the last slice's reads of the slot are done
        t_new = tl.load(t_ptr + m * stride_tm + d * stride_td + h * stride_th + w * stride_tw,
                        mask=hw_in & (d >= 0) & (d < D), other=0)
        tl.store(ring_t + (q64 % ring) * tile + l, t_new.to(scr_ring_ptr.dtype.element_ty))
        tl.store(slot + l, tl.cumsum(t_new.to(WACC), axis=0))
        tl.debug_barrier()
        col = _shifted(slot, l, rows, cols, R64, 0, BLOCK_H, BLOCK_W) - _shifted(slot, l, rows, cols, -R64 - 1, 0,
                                                                                BLOCK_H, BLOCK_W)
        tl.debug_barrier()
        tl.store(slot + l, tl.cumsum(col, axis=1))
        tl.debug_barrier()
        box = _shifted(slot, l, rows, cols, 0, R64, BLOCK_H, BLOCK_W) - _shifted(slot, l, rows, cols, 0, -R64 - 1,
                                                                                BLOCK_H, BLOCK_W)
        tl.store(ring_b + (q64 % ring) * tile + l, box)
        qo = q64 - 2 * R64 - 1
        old = tl.load(ring_b + (qo % ring) * tile + l, mask=(qo + l * 0) >= 0, other=0.0)
        v += box.to(VACC) - old.to(VACC)
        own = own_hw & ((q64 + rows * 0) >= 2 * R64)
        band = (v.to(WACC) >= lo) & (v.to(WACC) <= hi) & own
        do = d - R64
        tl.store(band_ptr + ((m * D + do) * H + h) * W + w, band.to(tl.uint8), mask=own)
        x = tl.load(x_ptr + m * stride_xm + do * stride_xd + h * stride_xh + w * stride_xw, mask=own,
                    other=0.0).to(ACC)
        t = tl.load(ring_t + ((q64 - R64) % ring) * tile + l, mask=own, other=0).to(ACC)
        a0, a1, a2, a3, a4, a5, a6, a7, a8 = _partial_sums(x, t, own, band, ACC)
        s0 += a0
        s1 += a1
        s2 += a2
        s3 += a3
        s4 += a4
        s5 += a5
        s6 += a6
        s7 += a7
        s8 += a8
    _store9(part_ptr + pid * 9, s0, s1, s2, s3, s4, s5, s6, s7, s8)


@triton.jit
def _bce_dice_finish_kernel(
    part_ptr,  # per-program partials, contiguous (N * per_image, 9) in ACC, image-major
    loss_ptr,  # out: 0-d loss in ACC
    bce_ptr,  # out: 0-d weighted BCE in ACC
    dice_ptr,  # out: 0-d soft-Dice loss in ACC
    coef_ptr,  # out: (5 + 2N,) gradient coefficients in ACC (see below)
    N, per_image,
    numel,  # pixels of the whole batch
    bw_hi, bw_lo,  # boundary_weight (fp32 pair)
    WEIGHTED: tl.constexpr, LOG_DICE: tl.constexpr, ACC: tl.constexpr, WACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program, in float64 on fixed-order sums of the partials. Weights (as the weight map):
    w1 = fl(n + (bw - 1) #b), w = lo = fl(fl(1 / w1) n) outside the band, hi = fl(fl(bw / w1) n)
    inside (in WACC; lo = hi = 1 if not WEIGHTED). Then, per image i,

        bce   = sum(w l) / n,       dice = 1 - (1 / N) sum_i s_i,
        s_i   = (2 I_i + 2) / den_i,  den_i = P_i + T_i + 1,  (I, P, T) = sum w^2 (p t, p, t)
        loss  = bce + dice,   or  bce - log(1 - dice)  (LOG_DICE)

    Gradients (per unit upstream gradient of the loss; the backward adds those of bce and dice):
        d bce / d x = (w / n) (p - t),
        d dice / d x = w^2 (c_i t + e_i) p (1 - p),  c_i = -2 / (N den_i),  e_i = s_i / (N den_i),
        d loss / d dice = 1  (or 1 / (1 - dice)).
    coef = [lo / n, hi / n, d loss / d dice, lo^2, hi^2, c_0, e_0, c_1, e_1, ...].
    """
    n = tl.cast(numel, tl.float64)
    tot = sum_rows(part_ptr, N * per_image, 9, 16, BLOCK)
    if WEIGHTED:
        w1 = (n + (scalar(bw_hi, bw_lo, tl.float64) - 1.0) * pick(tot, 8, 16)).to(WACC)
        nw = n.to(WACC)
        lo = ((1.0 / w1) * nw).to(tl.float64)
        hi = ((scalar(bw_hi, bw_lo, WACC) / w1) * nw).to(tl.float64)
    else:
        lo = tl.full([], 1.0, tl.float64)
        hi = lo
    bce = (lo * pick(tot, 0, 16) + hi * pick(tot, 4, 16)) / n
    lo2 = lo * lo
    hi2 = hi * hi
    score_sum = tl.zeros([], dtype=tl.float64)
    for i in range(0, N):
        i64 = tl.cast(i, tl.int64)
        s = sum_rows(part_ptr + i64 * per_image * 9, per_image, 9, 16, BLOCK)
        inter = lo2 * pick(s, 1, 16) + hi2 * pick(s, 5, 16)
        den = lo2 * (pick(s, 2, 16) + pick(s, 3, 16)) + hi2 * (pick(s, 6, 16) + pick(s, 7, 16)) + 1.0
        score = (2.0 * inter + 2.0) / den
        score_sum += score
        tl.store(coef_ptr + 5 + 2 * i64, (-2.0 / (N * den)).to(ACC))
        tl.store(coef_ptr + 6 + 2 * i64, (score / (N * den)).to(ACC))
    mean = score_sum / N
    dice = 1.0 - mean
    if LOG_DICE:
        loss = bce - tl.log(mean)
        d_dice = 1.0 / mean
    else:
        loss = bce + dice
        d_dice = tl.full([], 1.0, tl.float64)
    tl.store(loss_ptr, loss.to(ACC))
    tl.store(bce_ptr, bce.to(ACC))
    tl.store(dice_ptr, dice.to(ACC))
    tl.store(coef_ptr, (lo / n).to(ACC))
    tl.store(coef_ptr + 1, (hi / n).to(ACC))
    tl.store(coef_ptr + 2, d_dice.to(ACC))
    tl.store(coef_ptr + 3, lo2.to(ACC))
    tl.store(coef_ptr + 4, hi2.to(ACC))


@triton.jit
def _bce_dice_bwd_kernel(
    x_ptr,  # logits, (M, D, H, W) strided
    t_ptr,  # target, (M, D, H, W) strided
    band_ptr,  # band indicator from the forward, contiguous (M, D * H, W) uint8; read only if WEIGHTED
    coef_ptr,  # (5 + 2N,) coefficients from the finisher
    gl_ptr,  # 0-d upstream gradient of the loss; read only if HAS_G_LOSS
    gb_ptr,  # 0-d upstream gradient of the bce term; read only if HAS_G_BCE
    gd_ptr,  # 0-d upstream gradient of the dice term; read only if HAS_G_DICE
    dx_ptr,  # out: gradient, (M, D, H, W) strided, logits' dtype
    RWS, H, W,
    n_blocks_r, n_blocks_w,
    stride_xm, stride_xd, stride_xh, stride_xw,
    stride_tm, stride_td, stride_th, stride_tw,
    stride_dm, stride_dd, stride_dh, stride_dw,
    WEIGHTED: tl.constexpr, HAS_G_LOSS: tl.constexpr, HAS_G_BCE: tl.constexpr, HAS_G_DICE: tl.constexpr,
    ACC: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """With p = sigmoid(x), w / w^2 the coefficients of the pixel's side of the band (finisher):

        dx = G_bce (w / n) (p - t) + G_dice w^2 (c_m t + e_m) p (1 - p)
        G_bce = g_loss + g_bce,   G_dice = g_loss * d loss / d dice + g_dice
    with p (1 - p) = e^-|x| / (1 + e^-|x|)^2 (no cancellation for large |x|).
    """
    m, w0, w, r = _tile(tl.program_id(0), n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R)
    valid = (w < W) & (r < RWS)
    x = tl.load(x_ptr + _pixel_offsets(m, w, r, H, stride_xm, stride_xd, stride_xh, stride_xw), mask=valid,
                other=0.0).to(ACC)
    t = tl.load(t_ptr + _pixel_offsets(m, w, r, H, stride_tm, stride_td, stride_th, stride_tw), mask=valid,
                other=0).to(ACC)
    g_bce = tl.zeros([], dtype=ACC)
    g_dice = tl.zeros([], dtype=ACC)
    if HAS_G_LOSS:
        gl = tl.load(gl_ptr).to(ACC)
        g_bce += gl
        g_dice += gl * tl.load(coef_ptr + 2).to(ACC)
    if HAS_G_BCE:
        g_bce += tl.load(gb_ptr).to(ACC)
    if HAS_G_DICE:
        g_dice += tl.load(gd_ptr).to(ACC)
    if WEIGHTED:
        band = tl.load(band_ptr + m * RWS * W + r * W + w, mask=valid, other=0) != 0
        wb = tl.where(band, tl.load(coef_ptr + 1).to(ACC), tl.load(coef_ptr).to(ACC))
        w2 = tl.where(band, tl.load(coef_ptr + 4).to(ACC), tl.load(coef_ptr + 3).to(ACC))
    else:
        wb = tl.load(coef_ptr).to(ACC)
        w2 = tl.load(coef_ptr + 3).to(ACC)
    c = tl.load(coef_ptr + 5 + 2 * m).to(ACC)
    e_ = tl.load(coef_ptr + 6 + 2 * m).to(ACC)
    p = sigmoid(x)
    ex = tl.exp(-tl.abs(x))
    q = 1.0 / (1.0 + ex)
    dp = ex * q * q
    dx = g_bce * wb * (p - t) + g_dice * w2 * (c * t + e_) * dp
    tl.store(dx_ptr + _pixel_offsets(m, w, r, H, stride_dm, stride_dd, stride_dh, stride_dw),
             dx.to(dx_ptr.dtype.element_ty), mask=valid)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _split3(v: float) -> tuple[float, float, float]:
    """``v`` as three fp32 parts whose fp64 sum is ``v`` exactly (a threshold must be exact)."""
    a, rest = split_f64(v)
    b, c = split_f64(rest)
    return a, b, c


def _thresholds(box) -> dict:
    _, s_lo, s_hi = box
    lo, hi = _split3(s_lo), _split3(s_hi)
    return dict(lo_a=lo[0], lo_b=lo[1], lo_c=lo[2], hi_a=hi[0], hi_b=hi[1], hi_c=hi[2])


def _mdhw(t: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """(N, 1, H, W) stays; (N, 1, D, H, W) -> its (N, D, H, W) view."""
    return t if spatial_dims == 2 else t[:, 0]


def _exact_block(block: int, R: int, vmax: int, acc) -> int:
    """Halve ``block`` until the prefix sums of a 0/1 mask stay exact in fp32."""
    if acc == torch.float32:
        while block > 16 and (block + 2 * R) * vmax >= _EXACT:
            block //= 2
    return block


def _sums_dtype(t, R, spatial_dims, acc):
    """Storage of the D/H window sums: for bool and integer (0/1) masks they are integers of at most
    (2R + 1)^(dims - 1), exact in one byte (2D, k <= 255) or two (3D, k <= 181), so they cross memory
    as uint8 / int16 instead of ``acc`` (the readers convert to ``acc`` on load); float masks keep
    ``acc``."""
    if t.dtype.is_floating_point:
        return acc
    top = (2 * R + 1) ** (spatial_dims - 1)
    return torch.uint8 if top <= 255 else (torch.int16 if top <= 32767 else acc)


def _window_dh(t4, R, spatial_dims, acc):
    """Window sums of t4 (M, D, H, W) along D (3D) and H, contiguous, in ``_sums_dtype``."""
    M, D, H, W = t4.shape
    y = torch.empty((M, D, H, W), device=t4.device, dtype=_sums_dtype(t4, R, spatial_dims, acc))
    BLOCK_W = min(triton.next_power_of_2(W), 32)
    BLOCK_H = _exact_block(min(triton.next_power_of_2(H), _TILE // BLOCK_W), R, 1, acc)
    n_blocks_h, n_blocks_w = triton.cdiv(H, BLOCK_H), triton.cdiv(W, BLOCK_W)
    st = t4.stride()
    _window_dh_kernel[(M * n_blocks_h * n_blocks_w,)](
        t_ptr=t4, y_ptr=y, D=D, H=H, W=W, R=R, n_blocks_h=n_blocks_h, n_blocks_w=n_blocks_w,
        stride_tm=st[0], stride_td=st[1], stride_th=st[2], stride_tw=st[3],
        IS_3D=spatial_dims == 3, ACC=tl_acc(acc), BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W,
        num_warps=4 if BLOCK_H * BLOCK_W <= 1024 else 8)
    return y


def _strip_plan(H, W, R):
    """(BLOCK_W, CHUNK, seg_h, n_segs, n_strips, ring) of the 2D strip forward. The strip reads
    BLOCK_W / (BLOCK_W - 2R) of the target's columns and each segment (seg_h + 2R) / seg_h of its
    rows, <= 1.45 x 1.125 up to R = 63 (BLOCK_W narrower when the image is); CHUNK rows of BLOCK_W
    make a 2048-element tile."""
    block_w = max(64, min(256 if R <= STRIP_WIDE_R else 512, triton.next_power_of_2(W + 2 * R)))  # narrow images
    chunk = 2048 // block_w
    seg_h = max(STRIP_SEG_PER_R * R, STRIP_SEG_MIN)
    seg_h = min(triton.cdiv(seg_h, chunk) * chunk, triton.cdiv(H, chunk) * chunk)
    return block_w, chunk, seg_h, triton.cdiv(H, seg_h), triton.cdiv(W, block_w - 2 * R), 2 * R + 1 + chunk


def _tile3d_plan(D, H, W, R, f64=False):
    """(BLOCK_H, BLOCK_W, seg_d, n_segs, n_tiles_h, n_tiles_w, ring) of the 3D fused forward: tiles of
    up to FUSED3_BLOCK^2 (a quarter of that in fp64, whose registers would spill; narrower for
    small slices), segments of D as the 2D strips' of H."""
    top = FUSED3_BLOCK // (2 if f64 else 1)
    bh = max(16, min(top, triton.next_power_of_2(H + 2 * R)))
    bw = max(16, min(top, triton.next_power_of_2(W + 2 * R)))
    seg_d = min(max(STRIP_SEG_PER_R * R, STRIP_SEG_MIN), D)
    return bh, bw, seg_d, triton.cdiv(D, seg_d), triton.cdiv(H, bh - 2 * R), triton.cdiv(W, bw - 2 * R), 2 * R + 2


def _pixel_grid(shape, R, vmax, acc):
    """(programs, n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R, num_warps) of the per-pixel kernels."""
    M, D, H, W = shape
    BLOCK_W = _exact_block(min(triton.next_power_of_2(W), 256), R, vmax, acc)
    BLOCK_R = max(1, min(triton.next_power_of_2(D * H), _TILE // BLOCK_W))
    n_blocks_r, n_blocks_w = triton.cdiv(D * H, BLOCK_R), triton.cdiv(W, BLOCK_W)
    return M * n_blocks_r * n_blocks_w, n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R, \
        (4 if BLOCK_W * BLOCK_R <= 1024 else 8)


def _strides(prefix, t):
    return dict(zip((f"stride_{prefix}m", f"stride_{prefix}d", f"stride_{prefix}h", f"stride_{prefix}w"), t.stride()))


def weight_map(t, box, o):
    """Seed 001's weights of ``t`` seen as (M, D, H, W) (D == 1 in 2D): contiguous, float32
    (float64 for float64 targets). ``box`` = (k, s_lo, s_hi): the kernel size and the band on
    window sums, finite (see ``ops.py``)."""
    k = box[0]
    R = k // 2
    wacc = acc_dtype(t.dtype)  # bool/integer targets: float32
    M, D, H, W = t.shape
    out = torch.empty(t.shape, device=t.device, dtype=wacc)
    programs, n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R, num_warps = _pixel_grid(
        t.shape, R, k ** (o.spatial_dims - 1), wacc)
    part = torch.empty((programs,), device=t.device, dtype=wacc)
    bw = split_f64(o.boundary_weight)
    with device_guard(t):
        y = _window_dh(t, R, o.spatial_dims, wacc)
        _weight_band_kernel[(programs,)](
            y_ptr=y, out_ptr=out, part_ptr=part, RWS=D * H, W=W, R=R, n_blocks_r=n_blocks_r,
            n_blocks_w=n_blocks_w, **_thresholds(box), bw_hi=bw[0], bw_lo=bw[1], ACC=tl_acc(wacc),
            BLOCK_W=BLOCK_W, BLOCK_R=BLOCK_R, num_warps=num_warps)
        if o.normalize:
            scale = torch.empty((2,), device=t.device, dtype=wacc)
            _weight_finish_kernel[(1,)](part_ptr=part, scale_ptr=scale, n_part=programs, numel=out.numel(),
                                        bw_hi=bw[0], bw_lo=bw[1], ACC=tl_acc(wacc), BLOCK=256)
            _weight_scale_kernel[(triton.cdiv(out.numel(), _TILE),)](out_ptr=out, scale_ptr=scale,
                                                                     numel=out.numel(), BLOCK=_TILE)
    return out


def forward(x, t, box, o):
    """(loss, bce, dice, coef, band): three 0-d values, the finisher's (5 + 2N,) coefficients and
    the uint8 band indicator (shaped like ``x``, contiguous; (0,) without weights). ``box`` is
    None without weights. See ``ops.py``."""
    sd = x.dim() - 2
    x4, t4 = _mdhw(x, sd), _mdhw(t, sd)
    M, D, H, W = x4.shape
    acc = acc_dtype(x.dtype)
    wacc = acc_dtype(t.dtype)
    k = 1 if box is None else box[0]
    R = k // 2
    programs, n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R, num_warps = _pixel_grid(x4.shape, R, k ** (sd - 1), wacc)
    part = torch.empty((programs, NPART), device=x.device, dtype=acc)
    band = torch.empty(x.shape if o.weighted else (0,), device=x.device, dtype=torch.uint8)
    loss, bce, dice = (torch.empty((), device=x.device, dtype=acc) for _ in range(3))
    coef = torch.empty((5 + 2 * M,), device=x.device, dtype=acc)
    bw = split_f64(o.boundary_weight)
    thr = _thresholds(box if box is not None else (1, 0.0, 0.0))
    fused = FUSED_2D and o.weighted and sd == 2 and R <= STRIP_MAX_R
    f64 = torch.float64 in (x.dtype, wacc)
    fused3 = FUSED_3D and o.weighted and sd == 3 and R <= (FUSED3_MAX_R if not f64 else FUSED3_MAX_R // 2)
    if fused3:  # one pass along D: the band from the target's own tiles
        tile_h, tile_w, seg_d, n_segs, n_th, n_tw, ring = _tile3d_plan(D, H, W, R, f64)
        programs = M * n_segs * n_th * n_tw
        n_blocks_r, n_blocks_w = n_segs * n_th, n_tw  # per image: n_blocks_r * n_blocks_w programs
        part = torch.empty((programs, NPART), device=x.device, dtype=acc)
    if fused:  # one pass: the band from the target's own strips (no window sums in memory)
        block_w, chunk, seg_h, n_blocks_r, n_blocks_w, ring = _strip_plan(H, W, R)
        programs = M * n_blocks_r * n_blocks_w
        part = torch.empty((programs, NPART), device=x.device, dtype=acc)
    with device_guard(x):
        if fused:
            narrow = t.dtype in (torch.bool, torch.uint8)
            scr_ring = torch.empty((programs, ring, block_w), device=x.device, dtype=torch.uint8 if narrow else wacc)
            scr_slot = torch.empty((programs, chunk, block_w), device=x.device, dtype=wacc)
            _bce_dice_fwd_strip_kernel[(programs,)](
                x_ptr=x4, t_ptr=t4, band_ptr=band, part_ptr=part, scr_ring_ptr=scr_ring, scr_slot_ptr=scr_slot,
                H=H, W=W, R=R, seg_h=seg_h, n_segs=n_blocks_r, n_strips=n_blocks_w, ring=ring,
                stride_xm=x4.stride(0), stride_xh=x4.stride(2), stride_xw=x4.stride(3), stride_tm=t4.stride(0),
                stride_th=t4.stride(2), stride_tw=t4.stride(3), **thr, ACC=tl_acc(x.dtype), WACC=tl_acc(wacc),
                VACC=tl.float64 if t.dtype.is_floating_point else tl_acc(wacc), CHUNK=chunk, BLOCK_W=block_w,
                num_warps=8)
        elif fused3:
            narrow = t.dtype in (torch.bool, torch.uint8)
            scr_ring = torch.empty((programs, ring, tile_h * tile_w), device=x.device, dtype=torch.uint8 if narrow else wacc)
            scr_box = torch.empty((programs, ring, tile_h * tile_w), device=x.device, dtype=wacc)
            scr_slot = torch.empty((programs, tile_h * tile_w), device=x.device, dtype=wacc)
            _bce_dice_fwd3d_kernel[(programs,)](
                x_ptr=x4, t_ptr=t4, band_ptr=band, part_ptr=part, scr_ring_ptr=scr_ring, scr_box_ptr=scr_box,
                scr_slot_ptr=scr_slot, D=D, H=H, W=W, R=R, seg_d=seg_d, n_segs=n_segs, n_tiles_h=n_th,
                n_tiles_w=n_tw, ring=ring, **_strides("x", x4), **_strides("t", t4), **thr, ACC=tl_acc(x.dtype),
                WACC=tl_acc(wacc), VACC=tl_acc(wacc), BLOCK_H=tile_h,
                BLOCK_W=tile_w, num_warps=8)
        else:
            y = _window_dh(t4, R, sd, wacc) if o.weighted else None
            _bce_dice_fwd_kernel[(programs,)](
                x_ptr=x4, t_ptr=t4, y_ptr=y, band_ptr=band, part_ptr=part, RWS=D * H, H=H, W=W, R=R,
                n_blocks_r=n_blocks_r, n_blocks_w=n_blocks_w, **_strides("x", x4), **_strides("t", t4), **thr,
                WEIGHTED=o.weighted, ACC=tl_acc(x.dtype), WACC=tl_acc(wacc), BLOCK_W=BLOCK_W, BLOCK_R=BLOCK_R,
                num_warps=num_warps)
        _bce_dice_finish_kernel[(1,)](
            part_ptr=part, loss_ptr=loss, bce_ptr=bce, dice_ptr=dice, coef_ptr=coef, N=M,
            per_image=n_blocks_r * n_blocks_w, numel=x.numel(), bw_hi=bw[0], bw_lo=bw[1], WEIGHTED=o.weighted,
            LOG_DICE=o.log_dice, ACC=tl_acc(x.dtype), WACC=tl_acc(wacc), BLOCK=64)
    return loss, bce, dice, coef, band


def backward(g_loss, g_bce, g_dice, coef, band, x, t, o):
    """dLoss/dx with the logits' dtype and layout; the upstream gradients are 0-d (None: none)."""
    sd = x.dim() - 2
    dx = torch.empty_like(x)
    x4, t4, d4 = _mdhw(x, sd), _mdhw(t, sd), _mdhw(dx, sd)
    M, D, H, W = x4.shape
    programs, n_blocks_r, n_blocks_w, BLOCK_W, BLOCK_R, num_warps = _pixel_grid(x4.shape, 0, 1, torch.float64)
    with device_guard(x):
        _bce_dice_bwd_kernel[(programs,)](
            x_ptr=x4, t_ptr=t4, band_ptr=band if o.weighted else None, coef_ptr=coef, gl_ptr=g_loss, gb_ptr=g_bce,
            gd_ptr=g_dice, dx_ptr=d4, RWS=D * H, H=H, W=W, n_blocks_r=n_blocks_r, n_blocks_w=n_blocks_w,
            **_strides("x", x4), **_strides("t", t4), **_strides("d", d4), WEIGHTED=o.weighted,
            HAS_G_LOSS=g_loss is not None, HAS_G_BCE=g_bce is not None, HAS_G_DICE=g_dice is not None,
            ACC=tl_acc(x.dtype), BLOCK_W=BLOCK_W, BLOCK_R=BLOCK_R, num_warps=num_warps)
    return dx


def _aot_variants():
    specs = []
    thr = {k: "fp32" for k in ("lo_a", "lo_b", "lo_c", "hi_a", "hi_b", "hi_c")}
    bw = dict(bw_hi="fp32", bw_lo="fp32")
    big = {f"stride_{a}{b}": "i64" for a in "xtd" for b in "mdhw"}
    # one variant per logits dtype for the kernels that read logits; the others differ only by ACC
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        for tdt in ("u8", dt) if dt == "fp32" else (dt,):
            for is_3d in (False, True) if dt == "fp32" else (False,):
                specs.append(aot_spec(_window_dh_kernel, dict(IS_3D=is_3d, ACC=acc, BLOCK_H=64, BLOCK_W=32),
                                      t_ptr=f"*{tdt}", y_ptr=accty))
        specs.append(aot_spec(_weight_band_kernel, dict(ACC=acc, BLOCK_W=256, BLOCK_R=8), y_ptr=accty,
                              out_ptr=accty, part_ptr=accty, **thr, **bw))
        specs.append(aot_spec(_weight_finish_kernel, dict(ACC=acc, BLOCK=256), part_ptr=accty, scale_ptr=accty,
                              numel="i64", **bw))
        specs.append(aot_spec(_weight_scale_kernel, dict(BLOCK=2048), out_ptr=accty, scale_ptr=accty, numel="i64"))
        for weighted in (True, False):
            specs.append(aot_spec(_bce_dice_fwd_kernel, dict(WEIGHTED=weighted, ACC=acc, WACC=acc, BLOCK_W=256,
                                                             BLOCK_R=8),
                                  x_ptr=f"*{dt}", t_ptr="*fp32", y_ptr=accty, band_ptr="*u8", part_ptr=accty, **thr))
            for log_dice in (False, True) if dt == "fp32" else (True,):
                specs.append(aot_spec(_bce_dice_finish_kernel, dict(WEIGHTED=weighted, LOG_DICE=log_dice, ACC=acc,
                                                                    WACC=acc, BLOCK=64),
                                      part_ptr=accty, loss_ptr=accty, bce_ptr=accty, dice_ptr=accty, coef_ptr=accty,
                                      numel="i64", **bw))
            specs.append(aot_spec(_bce_dice_bwd_kernel, dict(WEIGHTED=weighted, HAS_G_LOSS=True, HAS_G_BCE=True,
                                                             HAS_G_DICE=True, ACC=acc, BLOCK_W=256, BLOCK_R=8),
                                  x_ptr=f"*{dt}", t_ptr="*fp32", band_ptr="*u8", coef_ptr=accty, gl_ptr=accty,
                                  gb_ptr=accty, gd_ptr=accty, dx_ptr=f"*{dt}"))
        for tdt in ("u8", dt) if dt == "fp32" else (dt,):  # the fused 2D forward (uint8 and float masks)
            vacc = acc if tdt == "u8" else tl.float64
            for block_w in (64, 128, 256, 512) if dt == "fp32" else (64, 256):
                specs.append(aot_spec(_bce_dice_fwd_strip_kernel, dict(ACC=acc, WACC=acc, VACC=vacc,
                                                                       CHUNK=2048 // block_w, BLOCK_W=block_w),
                                      num_warps=8, x_ptr=f"*{dt}", t_ptr=f"*{tdt}", band_ptr="*u8", part_ptr=accty,
                                      scr_ring_ptr="*u8" if tdt == "u8" else accty, scr_slot_ptr=accty, **thr))
    for dt, tdt in (("fp32", "u8"), ("fp32", "fp32"), ("bf16", "bf16"), ("fp64", "fp64")):  # the fused 3D forward
        acc = tl.float64 if dt == "fp64" else tl.float32
        accty = "*fp64" if dt == "fp64" else "*fp32"
        for block in (16, 32, 64) if tdt == "u8" else (64,):
            specs.append(aot_spec(_bce_dice_fwd3d_kernel, dict(ACC=acc, WACC=acc, VACC=acc,
                                                               BLOCK_H=block // (2 if dt == "fp64" else 1),
                                                               BLOCK_W=block // (2 if dt == "fp64" else 1)),
                                  num_warps=8, x_ptr=f"*{dt}",
                                  t_ptr=f"*{tdt}", band_ptr="*u8", part_ptr=accty,
                                  scr_ring_ptr="*u8" if tdt == "u8" else accty,
                                  scr_box_ptr=accty, scr_slot_ptr=accty, **thr))
    # the common fast path: contiguous rows, int64 strides and sizes (tensors past 2^31 elements), a
    # fp32 logit with a uint8 / fp32 mask and fp32 window sums
    # uint8 / bool masks: uint8 window sums in 2D, int16 in 3D (_sums_dtype)
    specs.append(aot_spec(_window_dh_kernel, dict(IS_3D=True, ACC=tl.float32, BLOCK_H=64, BLOCK_W=32),
                          t_ptr="*i1", y_ptr="*i16"))
    specs.append(aot_spec(_bce_dice_fwd_kernel, dict(WEIGHTED=True, ACC=tl.float32, WACC=tl.float32, BLOCK_W=256,
                                                     BLOCK_R=8),
                          x_ptr="*fp32", t_ptr="*u8", y_ptr="*u8", band_ptr="*u8", part_ptr="*fp32", **thr))
    specs.append(aot_spec(_window_dh_kernel, dict(IS_3D=False, ACC=tl.float32, BLOCK_H=64, BLOCK_W=32, stride_tw=1),
                          t_ptr="*u8", y_ptr="*u8", D="i64", H="i64", W="i64", stride_tm="i64", stride_td="i64", stride_th="i64",
                          divisible=("W", "stride_tm", "stride_th")))
    specs.append(aot_spec(_bce_dice_fwd_kernel, dict(WEIGHTED=True, ACC=tl.float32, WACC=tl.float32, BLOCK_W=256,
                                                     BLOCK_R=8, stride_xw=1, stride_tw=1),
                          RWS="i64", H="i64", W="i64", divisible=("W", "stride_xm", "stride_xh", "stride_tm",
                                                                  "stride_th"),
                          **{k: v for k, v in big.items() if k[7] in "xt" and k[-1] != "w"}, **thr))
    specs.append(aot_spec(_bce_dice_bwd_kernel, dict(WEIGHTED=True, HAS_G_LOSS=True, HAS_G_BCE=False,
                                                     HAS_G_DICE=False, ACC=tl.float32, BLOCK_W=256, BLOCK_R=8,
                                                     stride_xw=1, stride_tw=1, stride_dw=1),
                          RWS="i64", H="i64", W="i64",
                          divisible=("W", "stride_xm", "stride_xh", "stride_tm", "stride_th", "stride_dm", "stride_dh"),
                          **{k: v for k, v in big.items() if k[-1] != "w"}))
    return specs


AOT_SPECS = _aot_variants()
