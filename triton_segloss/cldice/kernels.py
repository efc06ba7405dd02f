"""Triton kernels of the clDice family and their launchers (the family's only triton import).

A training step is three launches: ``_skel_fwd_kernel`` (tile partial sums),
``_cldice_finish_kernel`` (the loss and the gradient coefficients, one program) and
``_skel_bwd_kernel`` (dLoss/dlogits, recomputing the skeletons tile by tile), plus the zero fill of
the gradient buffer where the backward takes its scatter form (3D volumes with an axis over 16).

Tiles and halos. The kernels are persistent: P programs walk the tiles in a fixed order. A
tile is a box of output pixels; the program works on its (BD, BH, BW) power-of-two block, the
tile plus a halo on each side along every axis that the image does not fit in one block
(an axis the block covers whole needs no halo: the block's edge is the image's, and the
pools pad there exactly as at the image border). 2D inputs run as 3D with D = 1. Block
values live in registers; neighbour reads go through a per-program scratch slot (store,
``tl.debug_barrier()``, shifted masked loads), reused by every stage, level and tile of the
program: nothing full-size is ever written besides the gradient.

Forward halo: erode and dilate each read one neighbour per axis, so with K = iterations the
skeleton S (levels E_0 .. E_{K+1}, the last opening dilate(E_{K+1})) reads Z within K + 2 of a
pixel: halo h_f = K + 2 makes the tile exact.

Backward, gather form: halo h_b = 2 (K + 2). dLoss/dP(q) = sum_p G(p) dS(p)/dP(q): S(p) depends
on P only within K + 2 of p, so only p within K + 2 of q contribute, and each such S(p), its argmin /
argmax choices and relu switches included, is computed exactly by the block if p is K + 2 inside
the block: q must be 2 (K + 2) inside. That bound is reached: the dilation of the last opening at p
chooses among E_{K+1}(p - 1 .. p + 1), which reads P out to p - K - 2, while the gradient of that
choice reaches q = p + K + 2. Block pixels nearer the edge are computed wrongly but finitely
(out-of-block neighbours read as the pool's padding), and no chain of K + 2 hops joins them to the
tile: the tile's gradient is exact. The upstream G is zero outside the image, so nothing is routed
from there.

Backward, scatter form: halo K + 2, as the forward. The upstream G is seeded on the tile's pixels
only, so the reverse pass routes exactly sum_{p in tile} G(p) dS(p)/dP(q) to every q: each such
S(p) is exact (p is K + 2 inside the block), the gradient flows only along the dependency paths of
those S(p), which stay within K + 2 of the tile (inside the block) and through values and choices
the forward computes exactly. The tiles partition the image, so adding every block's share (an
atomic add per nonzero block pixel into a zeroed buffer in the accumulation dtype, then one cast
for half inputs) gives dLoss/dP; dx is linear in dP at fixed probabilities (sigmoid:
dP p (1 - p); softmax: p (dP - sum_c p_c dP_c)), so the shares are added as dx. The halo is half
the gather form's: 3D volumes at K = 3 fit 16^3 blocks (6^3 tiles) instead of 32^3. The price: a
zero fill (one launch), atomics on the (R_b - 1) overlapping halo pixels, and an order of those
float adds that varies between runs on a GPU (the halo pixels' gradients may differ in the last
bits). The launcher takes the gather form where its block fits and needs less than twice the
scatter form's tiles (2D at the default K: 64^2 blocks with 44^2 tiles), else the scatter form.

Bytes per pixel (fp32 logits, fp32 mask, K = 3): the forward reads 8 x R_f bytes per pixel,
R_f = block / tile = (32 / 22)^2 = 2.1 in 2D, (16 / 6)^3 = 19 in 3D (L2 catches most of the
overlap); the 2D backward reads 8 x R_b and writes 4, R_b = (64 / 44)^2 = 2.1; the 3D backward
(scatter form) reads 8 x R_b and adds R_b - 1 halo shares to a pixel (at most; only nonzero shares
are added) on top of the fill and the final write, R_b = 19 as the forward. The per-iteration
path (MONAI's, our ``torch_impl``) writes and reads each pool's output at full size: ~ (K + 1) x
~8 tensors x 12 bytes ~ 400 bytes per pixel forward, about as much again backward plus the
autograd graph's ~ 30 saved tensors. Scratch per backward program: (2 K + 5, + C with softmax)
blocks of values, 11 x 4096 x 4 bytes = 180 kB at K = 3, L2-sized.

Limit: a backward block holds at most 4096 values (``MAX_BWD_BLOCK``: 64^2, 16^3). In 3D the
scatter form's halo K + 2 fits a 16-wide axis up to K = 5; 3D volumes with an axis over 16 at
K >= 6 (unless the other axes are short enough for the block to stay within 4096 values), and 2D
inputs with an axis over 64 at K >= 30, take the PyTorch reverse pass, over the launch budget.
(32^3 blocks would be exact as well, but a 32768-wide program did not finish ptxas in 5 minutes.)

Tie rule (the gradient where a pool's inputs are equal), as MONAI's autograd graph and
``torch_impl``: erosion = min of the per-axis min pools (D, H, W order); within an axis the
gradient goes to the first of (-1, 0, +1) holding the minimum (torch's max pool: first index);
between axes MONAI's ``torch.min(torch.min(p1, p2), p3)`` splits a tie in halves
(``torch.minimum``'s gradient), so equal axis minima get 1/2, 1/2 (2D) or 1/4, 1/4, 1/2 (3D, all
three equal). Dilation = the 3^ND max pool: first index in raster order (d, h, w), computed
as separable W, H, D passes that each keep the first maximum (the composite choice is the
raster-first one). relu passes no gradient at 0.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import device_guard, scalar, sigmoid, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype

from . import torch_impl
from .ops import NCOEF, coef_shape, first_channel

NPART = 8  # per tile: [A, B, A2, B2, I, sum P, sum T, 0]


@triton.jit
def _nb_masks(ld, lh, lw, gd, gh, gw, D, H, W, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """Which neighbours of each block pixel exist (inside the block and the image): a tuple of six
    masks, index 2 axis for -1 along the axis, 2 axis + 1 for +1 (axis 0: D, 1: H, 2: W). Built
    once per tile from the block coordinates, so the compiler sees that the D and H masks are
    constant along W (vector loads)."""
    return ((ld > 0) & (gd > 0), (ld + 1 < BD) & (gd + 1 < D), (lh > 0) & (gh > 0), (lh + 1 < BH) & (gh + 1 < H),
            (lw > 0) & (gw > 0), (lw + 1 < BW) & (gw + 1 < W))


@triton.jit
def _shift(scr_ptr, l, nb, BH: tl.constexpr, BW: tl.constexpr, AXIS: tl.constexpr, STEP: tl.constexpr, other):
    """Value of the block's neighbour at STEP = -1 or +1 along AXIS (0: D, 1: H, 2: W), read from
    scratch; ``other`` where the neighbour is outside the block or the image (``nb``: _nb_masks)."""
    if AXIS == 0:
        off: tl.constexpr = STEP * BH * BW
    elif AXIS == 1:
        off: tl.constexpr = STEP * BW
    else:
        off: tl.constexpr = STEP
    if STEP < 0:
        k: tl.constexpr = 2 * AXIS
    else:
        k: tl.constexpr = 2 * AXIS + 1
    return tl.load(scr_ptr + l + off, mask=nb[k], other=other)


@triton.jit
def _put(scr_ptr, l, v):
    """Store the block's values in a scratch slot, between barriers (the slot may still be read)."""
    tl.debug_barrier()
    tl.store(scr_ptr + l, v)
    tl.debug_barrier()


@triton.jit
def _erode_from(src_ptr, v, l, nb, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """min of ``v`` (the values stored at ``src_ptr``) over the 2 x ND cross neighbours."""
    inf = float("inf")
    m = v
    if BD > 1:
        m = tl.minimum(m, _shift(src_ptr, l, nb, BH, BW, 0, -1, inf))
        m = tl.minimum(m, _shift(src_ptr, l, nb, BH, BW, 0, 1, inf))
    m = tl.minimum(m, _shift(src_ptr, l, nb, BH, BW, 1, -1, inf))
    m = tl.minimum(m, _shift(src_ptr, l, nb, BH, BW, 1, 1, inf))
    m = tl.minimum(m, _shift(src_ptr, l, nb, BH, BW, 2, -1, inf))
    m = tl.minimum(m, _shift(src_ptr, l, nb, BH, BW, 2, 1, inf))
    return m


@triton.jit
def _pick_axis(src_ptr, v, l, nb, BH: tl.constexpr, BW: tl.constexpr, AXIS: tl.constexpr, MAX: tl.constexpr):
    """The 3-pool along AXIS of ``v`` (stored at ``src_ptr``): (value, offset of the chosen input in
    -1, 0, +1), the first in that order holding the max (MAX) or min, as torch's max pool
    (padding -inf for the max, +inf for the min, never chosen over a finite value)."""
    if MAX:
        pad = float("-inf")
    else:
        pad = float("inf")
    lo = _shift(src_ptr, l, nb, BH, BW, AXIS, -1, pad)
    hi = _shift(src_ptr, l, nb, BH, BW, AXIS, 1, pad)
    if MAX:
        t0 = v > lo
        m = tl.where(t0, v, lo)
        t1 = hi > m
    else:
        t0 = v < lo
        m = tl.where(t0, v, lo)
        t1 = hi < m
    code = tl.where(t1, 1.0, tl.where(t0, 0.0, -1.0))
    return tl.where(t1, hi, m), code


@triton.jit
def _dilate_from(src_ptr, xch_ptr, v, l, nb, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """The 3^ND max pool of ``v`` (stored at ``src_ptr``) as W, H, D passes (``xch_ptr``: exchange
    slot); returns the value and each pass's choice (-1, 0, +1; cd = 0 in 2D)."""
    vw, cw = _pick_axis(src_ptr, v, l, nb, BH, BW, 2, True)
    _put(xch_ptr, l, vw)
    vh, ch = _pick_axis(xch_ptr, vw, l, nb, BH, BW, 1, True)
    cd = ch * 0.0
    if BD > 1:
        _put(xch_ptr, l, vh)
        vh, cd = _pick_axis(xch_ptr, vh, l, nb, BH, BW, 0, True)
    return vh, cw, ch, cd


@triton.jit
def _route_back(val_ptr, code_ptr, g, code, l, nb, BH: tl.constexpr, BW: tl.constexpr, AXIS: tl.constexpr):
    """Reverse of a 3-pool along AXIS in gather form: the sum of ``g`` over the outputs y in
    {q - e, q, q + e} whose choice ``code(y)`` is q."""
    tl.debug_barrier()
    tl.store(val_ptr + l, g)
    tl.store(code_ptr + l, code)
    tl.debug_barrier()
    return _gather(val_ptr, code_ptr, g, code, l, nb, BH, BW, AXIS)


@triton.jit
def _gather(val_ptr, code_ptr, g, code, l, nb, BH: tl.constexpr, BW: tl.constexpr, AXIS: tl.constexpr):
    """``_route_back`` with ``g`` and ``code`` already in their scratch slots (``g``, ``code``: the
    values at ``l``)."""
    out = tl.where(code == 0.0, g, 0.0)
    c_up = _shift(code_ptr, l, nb, BH, BW, AXIS, 1, 0.0)
    g_up = _shift(val_ptr, l, nb, BH, BW, AXIS, 1, 0.0)
    out += tl.where(c_up == -1.0, g_up, 0.0)
    c_dn = _shift(code_ptr, l, nb, BH, BW, AXIS, -1, 0.0)
    g_dn = _shift(val_ptr, l, nb, BH, BW, AXIS, -1, 0.0)
    out += tl.where(c_dn == 1.0, g_dn, 0.0)
    return out


@triton.jit
def _erode_back(src_ptr, val_ptr, code_ptr, v, g, l, nb, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """Reverse of E' = erode(E) (E = ``v``, stored at ``src_ptr``) for the adjoint ``g`` of E': each axis
    pool routes its share to its first minimum; equal axis minima share as torch.minimum's
    gradient does (1/2 each, nested as MONAI's ``torch.min(torch.min(p1, p2), p3)`` in 3D)."""
    mh, ch = _pick_axis(src_ptr, v, l, nb, BH, BW, 1, False)
    mw, cw = _pick_axis(src_ptr, v, l, nb, BH, BW, 2, False)
    if BD > 1:
        md, cd = _pick_axis(src_ptr, v, l, nb, BH, BW, 0, False)
        mdh = tl.minimum(md, mh)
        w12 = tl.where(mdh < mw, 1.0, tl.where(mdh == mw, 0.5, 0.0))
        wd = w12 * tl.where(md < mh, 1.0, tl.where(md == mh, 0.5, 0.0))
        wh = w12 - wd
        ww = 1.0 - w12
        out = _route_back(val_ptr, code_ptr, wd * g, cd, l, nb, BH, BW, 0)
    else:
        wh = tl.where(mh < mw, 1.0, tl.where(mh == mw, 0.5, 0.0))
        ww = 1.0 - wh
        out = g * 0.0
    out += _route_back(val_ptr, code_ptr, wh * g, ch, l, nb, BH, BW, 1)
    out += _route_back(val_ptr, code_ptr, ww * g, cw, l, nb, BH, BW, 2)
    return out


@triton.jit
def _stage(scr_ptr, v, l, nb, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr, ERODE: tl.constexpr,
           AXIS: tl.constexpr):
    """One neighbour stage through scratch: ERODE: min over the 2 x ND cross neighbours (all axes),
    else: max over the 3 neighbours along AXIS (one separable pass of the square dilation)."""
    _put(scr_ptr, l, v)
    if ERODE:
        m = _erode_from(scr_ptr, v, l, nb, BD, BH, BW)
    else:
        ninf = float("-inf")
        m = tl.maximum(v, _shift(scr_ptr, l, nb, BH, BW, AXIS, -1, ninf))
        m = tl.maximum(m, _shift(scr_ptr, l, nb, BH, BW, AXIS, 1, ninf))
    return m


@triton.jit
def _skel(scr_ptr, z, iterations, l, nb, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr, ACC: tl.constexpr):
    """The soft skeleton of the block's values ``z`` (one scratch slot), values only."""
    e = z
    s = tl.zeros([BD * BH * BW], ACC)
    for _k in range(0, iterations + 1):
        e1 = _stage(scr_ptr, e, l, nb, BD, BH, BW, True, 0)
        o = e1
        if BD > 1:
            o = _stage(scr_ptr, o, l, nb, BD, BH, BW, False, 0)
        o = _stage(scr_ptr, o, l, nb, BD, BH, BW, False, 1)
        o = _stage(scr_ptr, o, l, nb, BD, BH, BW, False, 2)
        d = tl.maximum(e - o, 0.0)
        s = s + tl.maximum(d - s * d, 0.0)
        e = e1
    return s


@triton.jit
def _block_coords(tile, n_tiles_d, n_tiles_h, n_tiles_w, D, H, W, ld, lh, lw, HALO_D, HALO_H, HALO_W,
                  BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """(row, gd, gh, gw, in-image mask, tile-centre mask, neighbour masks) of a tile index (w fastest,
    then h, d, row)."""
    tw_i = tile % n_tiles_w
    r = tile // n_tiles_w
    th_i = r % n_tiles_h
    r = r // n_tiles_h
    td_i = r % n_tiles_d
    row = r // n_tiles_d
    TD = BD - 2 * HALO_D
    TH = BH - 2 * HALO_H
    TW = BW - 2 * HALO_W
    gd = td_i * TD - HALO_D + ld
    gh = th_i * TH - HALO_H + lh
    gw = tw_i * TW - HALO_W + lw
    inimg = (gd >= 0) & (gd < D) & (gh >= 0) & (gh < H) & (gw >= 0) & (gw < W)
    centre = inimg & (ld >= HALO_D) & (ld < HALO_D + TD) & (lh >= HALO_H) & (lh < HALO_H + TH) \
        & (lw >= HALO_W) & (lw < HALO_W + TW)
    nb = _nb_masks(ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW)
    return row, gd, gh, gw, inimg, centre, nb


@triton.jit
def _skel_fwd_kernel(
    x_ptr,  # logits (or probabilities), (N, C, D, H, W) strided
    t_ptr,  # target: (N, C, D, H, W) mask, or (N, D, H, W) integer labels if MULTICLASS, strided
    scr_ptr,  # scratch, (programs, 2, BLOCK) in ACC: one slot per program, reused for every tile
    part_ptr,  # per-tile partials out, (tiles, 8) in ACC
    N, C, C0, D, H, W,  # C0: first used channel (1 drops the background)
    iterations,
    n_tiles_d, n_tiles_h, n_tiles_w, n_tiles,  # tiles per axis, tiles in all
    stride_xn, stride_xc, stride_xd, stride_xh, stride_xw,
    stride_tn, stride_tc, stride_td, stride_th, stride_tw,
    HALO_D, HALO_H, HALO_W,  # halo of the block per axis (0 where the block holds the whole axis)
    MULTICLASS: tl.constexpr, SOFTMAX: tl.constexpr, SIGMOID: tl.constexpr,
    ACC: tl.constexpr, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """Per (n, c) and pixel, P = softmax / sigmoid / identity of x, T = one-hot label or mask;
    for Z in (P, T), with erode = min over the cross, dilate = max over the 3^ND square
    (both over in-image neighbours only, as max pools with -inf padding):

        E_0 = Z, S = 0;  for k = 0..iterations:  E_{k+1} = erode(E_k),
        delta = relu(E_k - dilate(E_{k+1})),  S = S + relu(delta - S delta)

    (k = 0 gives S = delta exactly: MONAI's soft_skel). Tile partials:
    [sum S_P T, sum S_P, sum S_T P, sum S_T, sum P T, sum P, sum T, 0] over the tile's pixels.
    """
    BLOCK: tl.constexpr = BD * BH * BW
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    l = tl.arange(0, BLOCK)
    ld = l // (BH * BW)
    lh = (l // BW) % BH
    lw = l % BW
    scr_p = scr_ptr + pid.to(tl.int64) * (2 * BLOCK)
    scr_t = scr_p + BLOCK
    Cu = C - C0
    for tile in range(pid, n_tiles, n_prog):
        row, gd, gh, gw, inimg, centre, nb = _block_coords(tile, n_tiles_d, n_tiles_h, n_tiles_w, D, H, W, ld, lh,
                                                           lw, HALO_D, HALO_H, HALO_W, BD, BH, BW)
        n = tl.cast(row // Cu, tl.int64)
        c = tl.cast(row % Cu + C0, tl.int64)
        pix = gd.to(tl.int64) * stride_xd + gh.to(tl.int64) * stride_xh + gw.to(tl.int64) * stride_xw
        xb = x_ptr + n * stride_xn
        x = tl.load(xb + c * stride_xc + pix, mask=inimg, other=0.0).to(ACC)
        if SOFTMAX:
            m = tl.full([BLOCK], float("-inf"), ACC)
            for cc in range(0, C):
                m = tl.maximum(m, tl.load(xb + cc * stride_xc + pix, mask=inimg, other=0.0).to(ACC))
            z = tl.zeros([BLOCK], ACC)
            for cc in range(0, C):
                z += tl.exp(tl.load(xb + cc * stride_xc + pix, mask=inimg, other=0.0).to(ACC) - m)
            p = tl.exp(x - m) / z
        elif SIGMOID:
            p = sigmoid(x)
        else:
            p = x
        tpix = gd.to(tl.int64) * stride_td + gh.to(tl.int64) * stride_th + gw.to(tl.int64) * stride_tw
        if MULTICLASS:
            lab = tl.load(t_ptr + n * stride_tn + tpix, mask=inimg, other=-1).to(tl.int64)
            t = (lab == c).to(ACC)
        else:
            t = tl.load(t_ptr + n * stride_tn + c * stride_tc + tpix, mask=inimg, other=0).to(ACC)
        sp = _skel(scr_p, p, iterations, l, nb, BD, BH, BW, ACC)
        st = _skel(scr_t, t, iterations, l, nb, BD, BH, BW, ACC)
        pc = tl.where(centre, p, 0.0)
        tc = tl.where(centre, t, 0.0)
        spc = tl.where(centre, sp, 0.0)
        stc = tl.where(centre, st, 0.0)
        base = part_ptr + tl.cast(tile, tl.int64) * 8
        tl.store(base + 0, tl.sum(spc * tc, axis=0))
        tl.store(base + 1, tl.sum(spc, axis=0))
        tl.store(base + 2, tl.sum(stc * pc, axis=0))
        tl.store(base + 3, tl.sum(stc, axis=0))
        tl.store(base + 4, tl.sum(pc * tc, axis=0))
        tl.store(base + 5, tl.sum(pc, axis=0))
        tl.store(base + 6, tl.sum(tc, axis=0))
        tl.store(base + 7, tl.sum(tc * 0.0, axis=0))


@triton.jit
def _cldice_finish_kernel(
    part_ptr,  # per-tile partials, contiguous (N * Cu * tiles_per_channel, 8) in ACC
    loss_ptr,  # out: the 0-d loss, or (N,) per image if NONE, ACC
    coef_ptr,  # out: (N, Cu, 5) gradient coefficients per unit upstream gradient, ACC
    N, Cu, tiles_per_channel,
    sm_hi, sm_lo, eps_hi, eps_lo, al_hi, al_lo,  # smooth, eps, alpha (fp32 pairs)
    DICE: tl.constexpr, MEAN: tl.constexpr, NONE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program, fixed order. Per image n, from the sums over its channels' tiles:
    tprec = (A + s) / (B + s), tsens = (A2 + s) / (B2 + s), cl_n = 1 - 2 tprec tsens / (tprec + tsens + eps);
    DICE: d_nc = 1 - (2 I + s) / (sum P + sum T + s) per (n, c), and the loss is
    (1 - alpha) red(d) + alpha red(cl) with red = mean or sum (over (n, c) resp. n).

    Coefficients, with w_cl = alpha (1 without DICE) and w_d = 1 - alpha, over N resp. N Cu
    for MEAN, and den = tprec + tsens + eps:

        dcl/dtprec = -2 tsens (tsens + eps) / den^2,   dcl/dtsens = -2 tprec (tprec + eps) / den^2
        dL/dS_P = k1 T + k0,  k1 = w_cl dcl/dtprec / (B + s),  k0 = -k1 tprec     (through A and B)
        dL/dP  += k2 S_T,     k2 = w_cl dcl/dtsens / (B2 + s)                       (through A2)
        dL/dP  += b1 T + b0,  b1 = -2 w_d / dd,  b0 = w_d (2 I + s) / dd^2,  dd = sum P + sum T + s

    stored per (n, c) as [k1, k0, k2, b1, b0]."""
    s = scalar(sm_hi, sm_lo, tl.float64)
    eps = scalar(eps_hi, eps_lo, tl.float64)
    alpha = scalar(al_hi, al_lo, tl.float64)
    if DICE:
        w_cl = alpha
        w_d = 1.0 - alpha
    else:
        w_cl = alpha * 0.0 + 1.0
        w_d = alpha * 0.0
    if MEAN:
        w_cl = w_cl / N
        w_d = w_d / (N * Cu)
    cols = tl.arange(0, 8)
    cl_tot = tl.zeros([], tl.float64)
    d_tot = tl.zeros([], tl.float64)
    for n in range(0, N):
        acc8 = tl.zeros([8], tl.float64)
        for cu in range(0, Cu):
            first = tl.cast(n * Cu + cu, tl.int64) * tiles_per_channel
            blk = tl.zeros([BLOCK, 8], tl.float64)
            for start in range(0, tiles_per_channel, BLOCK):
                rows = start + tl.arange(0, BLOCK).to(tl.int64)
                m = rows[:, None] < tiles_per_channel
                blk += tl.load(part_ptr + (first + rows[:, None]) * 8 + cols[None, :], mask=m, other=0.0) \
                    .to(tl.float64)
            v = tl.sum(blk, axis=0)
            acc8 += v
            cbase = coef_ptr + tl.cast(n * Cu + cu, tl.int64) * 5
            if DICE:
                inter = tl.sum(tl.where(cols == 4, v, 0.0), axis=0)
                dd = tl.sum(tl.where((cols == 5) | (cols == 6), v, 0.0), axis=0) + s
                d_tot += 1.0 - (2.0 * inter + s) / dd
                tl.store(cbase + 3, (-2.0 * w_d / dd).to(ACC))
                tl.store(cbase + 4, (w_d * (2.0 * inter + s) / (dd * dd)).to(ACC))
            else:
                tl.store(cbase + 3, w_d.to(ACC))
                tl.store(cbase + 4, w_d.to(ACC))
        a = tl.sum(tl.where(cols == 0, acc8, 0.0), axis=0)
        b = tl.sum(tl.where(cols == 1, acc8, 0.0), axis=0)
        a2 = tl.sum(tl.where(cols == 2, acc8, 0.0), axis=0)
        b2 = tl.sum(tl.where(cols == 3, acc8, 0.0), axis=0)
        tp = (a + s) / (b + s)
        ts = (a2 + s) / (b2 + s)
        den = tp + ts + eps
        cl = 1.0 - 2.0 * tp * ts / den
        k1 = w_cl * (-2.0 * ts * (ts + eps) / (den * den)) / (b + s)
        k0 = -k1 * tp
        k2 = w_cl * (-2.0 * tp * (tp + eps) / (den * den)) / (b2 + s)
        for cu in range(0, Cu):
            cbase = coef_ptr + tl.cast(n * Cu + cu, tl.int64) * 5
            tl.store(cbase + 0, k1.to(ACC))
            tl.store(cbase + 1, k0.to(ACC))
            tl.store(cbase + 2, k2.to(ACC))
        if NONE:
            tl.store(loss_ptr + n, cl.to(ACC))
        cl_tot += cl
    if not NONE:
        if MEAN:
            cl_tot = cl_tot / N
            d_tot = d_tot / (N * Cu)
        if DICE:
            loss = (1.0 - alpha) * d_tot + alpha * cl_tot
        else:
            loss = cl_tot
        tl.store(loss_ptr, loss.to(ACC))


@triton.jit
def _put_dx(ptr, dx, inimg, centre, SCATTER: tl.constexpr):
    """The backward's output: the tile's dx (gather form), or the block's nonzero shares added in."""
    if SCATTER:
        tl.atomic_add(ptr, dx.to(ptr.dtype.element_ty), mask=inimg & (dx != 0.0), sem="relaxed")
    else:
        tl.store(ptr, dx.to(ptr.dtype.element_ty), mask=centre)


@triton.jit
def _skel_bwd_kernel(
    x_ptr,  # logits (or probabilities), (N, C, D, H, W) strided
    t_ptr,  # target: (N, C, D, H, W) mask, or (N, D, H, W) integer labels if MULTICLASS, strided
    g_ptr,  # upstream gradient: 0-d, or (N,) for reduction "none" (stride_gn), ACC
    coef_ptr,  # (N, Cu, 5) coefficients from the finisher, contiguous, ACC
    scr_ptr,  # scratch, (programs, n_slots, BLOCK) in ACC: one set of slots per program
    dx_ptr,  # out: dLoss/dx, (N, C, D, H, W) strided, x's dtype
    N, C, C0, D, H, W,  # C0: first used channel
    iterations,
    n_tiles_d, n_tiles_h, n_tiles_w, n_tiles,  # spatial tiles per axis; n_tiles = N x spatial tiles
    stride_xn, stride_xc, stride_xd, stride_xh, stride_xw,
    stride_tn, stride_tc, stride_td, stride_th, stride_tw,
    stride_dn, stride_dc, stride_dd, stride_dh, stride_dw,
    stride_gn,
    n_slots,
    HALO_D, HALO_H, HALO_W,  # halo per axis: 2 (iterations + 2), 0 where the block holds the whole axis
    MULTICLASS: tl.constexpr, SOFTMAX: tl.constexpr, SIGMOID: tl.constexpr,
    ACC: tl.constexpr, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    SCATTER: tl.constexpr,  # halo iterations + 2, dx (zeroed, ACC) accumulated over the block (module doc)
):
    """dLoss/dx for every channel of a spatial tile (all C channels per program: softmax couples them).

    Per used channel, with u_n the upstream gradient of image n and [k1, k0, k2, b1, b0] the
    finisher's coefficients (see ``_cldice_finish_kernel``):

        dL/dP = J_P^T (u_n (k1 T + k0)) + u_n (k2 S_T + b1 T + b0)

    with J_P^T the reverse of P's skeleton, recomputed on the block: the forward keeps
    E_0 .. E_{K+1} and S before each level in scratch slots, then for k = K .. 0 (S_k =
    S_{k-1} + relu(u), u = delta_k - S_{k-1} delta_k, delta_k = relu(E_k - dilate(E_{k+1}))):

        g_delta = [u > 0] g_S (1 - S_{k-1}),   g_S <- g_S (1 - [u > 0] delta_k)
        g_dir = [E_k > dilate(E_{k+1})] g_delta
        g_{E_{k+1}} += dilate^T(-g_dir),        g_{E_k} = g_dir + erode^T(g_{E_{k+1}})

    (dilate^T, erode^T route to the pools' chosen inputs, the tie rule of the module docstring).
    Unused channels get dP = 0. Then dx = dP p (1 - p) (SIGMOID), p (dP - sum_c p_c dP_c)
    (SOFTMAX, dP of every channel kept in scratch), or dP.

    Gather form (SCATTER false): the tile's dx is complete and stored. Scatter form: the upstream
    terms are seeded on the tile only, so the block's dP is the tile's outputs' share of every block
    pixel's gradient; dx is linear in dP (p fixed), so each block pixel's share is added into dx.
    """
    BLOCK: tl.constexpr = BD * BH * BW
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    l = tl.arange(0, BLOCK)
    ld = l // (BH * BW)
    lh = (l // BW) % BH
    lw = l % BW
    base = scr_ptr + pid.to(tl.int64) * n_slots * BLOCK
    xv = base  # exchange: values
    xc = base + BLOCK  # exchange: pool choices
    lev = base + 2 * BLOCK  # E_0 .. E_{K+1}
    sprev = lev + (iterations + 2) * BLOCK  # S before levels 0 .. K
    gpc = sprev + (iterations + 1) * BLOCK  # SOFTMAX: dP of each channel
    Cu = C - C0
    for tile in range(pid, n_tiles, n_prog):
        n32, gd, gh, gw, inimg, centre, nb = _block_coords(tile, n_tiles_d, n_tiles_h, n_tiles_w, D, H, W, ld, lh,
                                                           lw, HALO_D, HALO_H, HALO_W, BD, BH, BW)
        n = tl.cast(n32, tl.int64)
        u_n = tl.load(g_ptr + n * stride_gn).to(ACC)
        pix = gd.to(tl.int64) * stride_xd + gh.to(tl.int64) * stride_xh + gw.to(tl.int64) * stride_xw
        tpix = gd.to(tl.int64) * stride_td + gh.to(tl.int64) * stride_th + gw.to(tl.int64) * stride_tw
        dpix = gd.to(tl.int64) * stride_dd + gh.to(tl.int64) * stride_dh + gw.to(tl.int64) * stride_dw
        xb = x_ptr + n * stride_xn
        if SOFTMAX:
            mx = tl.full([BLOCK], float("-inf"), ACC)
            for cc in range(0, C):
                mx = tl.maximum(mx, tl.load(xb + cc * stride_xc + pix, mask=inimg, other=0.0).to(ACC))
            z = tl.zeros([BLOCK], ACC)
            for cc in range(0, C):
                z += tl.exp(tl.load(xb + cc * stride_xc + pix, mask=inimg, other=0.0).to(ACC) - mx)
        dot = tl.zeros([BLOCK], ACC)
        for c32 in range(0, C):
            c = tl.cast(c32, tl.int64)
            x = tl.load(xb + c * stride_xc + pix, mask=inimg, other=0.0).to(ACC)
            if SOFTMAX:
                p = tl.exp(x - mx) / z
            elif SIGMOID:
                p = sigmoid(x)
            else:
                p = x
            gp = tl.zeros([BLOCK], ACC)
            if c32 >= C0:
                if MULTICLASS:
                    lab = tl.load(t_ptr + n * stride_tn + tpix, mask=inimg, other=-1).to(tl.int64)
                    t = (lab == c).to(ACC)
                else:
                    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + tpix, mask=inimg, other=0).to(ACC)
                cb = coef_ptr + (n * Cu + (c - C0)) * 5
                k1 = tl.load(cb + 0).to(ACC) * u_n
                k0 = tl.load(cb + 1).to(ACC) * u_n
                k2 = tl.load(cb + 2).to(ACC) * u_n
                b1 = tl.load(cb + 3).to(ACC) * u_n
                b0 = tl.load(cb + 4).to(ACC) * u_n
                st = _skel(xv, t, iterations, l, nb, BD, BH, BW, ACC)
                if SCATTER:
                    seed = centre
                else:
                    seed = inimg
                rest = tl.where(seed, k2 * st + b1 * t + b0, 0.0)  # the terms outside P's skeleton
                g_s = tl.where(seed, k1 * t + k0, 0.0)  # dL/dS_P
                # forward of P's skeleton, keeping the levels and S before each level
                _put(lev, l, p)
                e = p
                s = tl.zeros([BLOCK], ACC)
                for k in range(0, iterations + 1):
                    e1 = _erode_from(lev + k * BLOCK, e, l, nb, BD, BH, BW)
                    _put(lev + (k + 1) * BLOCK, l, e1)
                    o, _cw, _ch, _cd = _dilate_from(lev + (k + 1) * BLOCK, xv, e1, l, nb, BD, BH, BW)
                    d = tl.maximum(e - o, 0.0)
                    tl.store(sprev + k * BLOCK + l, s)
                    s = s + tl.maximum(d - s * d, 0.0)
                    e = e1
                tl.debug_barrier()
                # reverse
                g_e1 = tl.zeros([BLOCK], ACC)
                for kk in range(0, iterations + 1):
                    k = iterations - kk
                    ek = tl.load(lev + k * BLOCK + l)
                    ek1 = tl.load(lev + (k + 1) * BLOCK + l)
                    sp = tl.load(sprev + k * BLOCK + l)
                    o, cw, ch, cd = _dilate_from(lev + (k + 1) * BLOCK, xv, ek1, l, nb, BD, BH, BW)
                    d = tl.maximum(ek - o, 0.0)
                    on = (d - sp * d) > 0.0
                    g_d = tl.where(on, g_s * (1.0 - sp), 0.0)
                    g_s = g_s - tl.where(on, g_s * d, 0.0)
                    g_dir = tl.where(ek - o > 0.0, g_d, 0.0)
                    g_o = -g_dir
                    if BD > 1:
                        g_o = _route_back(xv, xc, g_o, cd, l, nb, BH, BW, 0)
                    g_o = _route_back(xv, xc, g_o, ch, l, nb, BH, BW, 1)
                    g_o = _route_back(xv, xc, g_o, cw, l, nb, BH, BW, 2)
                    g_e1 += g_o
                    g_e1 = g_dir + _erode_back(lev + k * BLOCK, xv, xc, ek, g_e1, l, nb, BD, BH, BW)
                gp = g_e1 + rest
            if SOFTMAX:
                dot += p * gp
                tl.store(gpc + c * BLOCK + l, gp)
            else:
                if SIGMOID:
                    dx = gp * p * (1.0 - p)
                else:
                    dx = gp
                _put_dx(dx_ptr + n * stride_dn + c * stride_dc + dpix, dx, inimg, centre, SCATTER)
        if SOFTMAX:
            tl.debug_barrier()
            for c32 in range(0, C):
                c = tl.cast(c32, tl.int64)
                x = tl.load(xb + c * stride_xc + pix, mask=inimg, other=0.0).to(ACC)
                p = tl.exp(x - mx) / z
                gp = tl.load(gpc + c * BLOCK + l)
                dx = p * (gp - dot)
                _put_dx(dx_ptr + n * stride_dn + c * stride_dc + dpix, dx, inimg, centre, SCATTER)
            tl.debug_barrier()


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

_SM = {}
# Block extent caps per axis: forward / backward, 2D / 3D (module values so a test can force small
# blocks and so many tiles, seams and halos on small inputs).
CAPS = {"fwd2": 32, "fwd3": 16, "bwd2": 64, "bwd3": 16}
# The backward's block holds at most this many values (64 x 64, 16^3): where neither form's block fits
# (module docstring, "Limit") the backward is the PyTorch reverse pass, over the launch budget. 32^3 blocks
# are exact too but make a 32768-wide program: ptxas ran > 5 min on one variant.
MAX_BWD_BLOCK = 4096
BWD_FORM = "auto"  # "gather" / "scatter": force a backward form where its block fits (tests)
SCRATCH_BYTES = 64 << 20  # the backward's scratch, all programs together, at most about this


def _sm_count(device):
    if device.type != "cuda":
        return 4
    i = device.index if device.index is not None else torch.cuda.current_device()
    if i not in _SM:
        _SM[i] = torch.cuda.get_device_properties(i).multi_processor_count
    return _SM[i]


def _axis(size, halo, cap):
    """(block, halo, tiles) along one axis: one halo-free block if the axis fits in ``cap``, else
    blocks of ``cap`` (at least 2 halo + 1, so each tile has a pixel) with the halo."""
    whole = triton.next_power_of_2(size)
    if whole <= cap:
        return whole, 0, 1
    b = max(cap, triton.next_power_of_2(2 * halo + 1))
    return b, halo, triton.cdiv(size, b - 2 * halo)


def _geometry(x, halo, cap):
    three = x.dim() == 5
    D, H, W = x.shape[2:] if three else (1, *x.shape[2:])
    bd, hd, nd = _axis(D, halo, cap) if three else (1, 0, 1)
    bh, hh, nh = _axis(H, halo, cap)
    bw, hw, nw = _axis(W, halo, cap)
    return dict(N=x.shape[0], C=x.shape[1], D=D, H=H, W=W, BD=bd, BH=bh, BW=bw, hd=hd, hh=hh, hw=hw, nd=nd, nh=nh,
                nw=nw, block=bd * bh * bw, spatial_tiles=nd * nh * nw)


def _strides5(t, three, labels):
    s = list(t.stride())
    if labels:
        s = [s[0], 0] + s[1:]
    if not three:
        s = s[:2] + [0] + s[2:]
    return s


def _warps(block):
    return 4 if block <= 1024 else (8 if block <= 4096 else 16)


def forward(x, t, o):
    """(loss, coef): the loss, 0-d or (N,) per image for reduction "none" (clDice only), and the
    (N, Cu, 5) gradient coefficients the backward reads. See ``ops.py``."""
    three = x.dim() == 5
    gm = _geometry(x, o.iterations + 2, CAPS["fwd3" if three else "fwd2"])
    acc = acc_dtype(x.dtype)
    c0 = first_channel(o, gm["C"])
    cu = gm["C"] - c0
    per_channel = gm["spatial_tiles"]
    tiles = gm["N"] * cu * per_channel
    block = gm["block"]
    programs = max(1, min(tiles, 8 * _sm_count(x.device)))
    scratch = torch.empty((programs, 2, block), device=x.device, dtype=acc)
    part = torch.empty((tiles, NPART), device=x.device, dtype=acc)
    loss = torch.empty((gm["N"],) if o.reduction == "none" else (), device=x.device, dtype=acc)
    coef = torch.empty(coef_shape(o, x.shape), device=x.device, dtype=acc)
    mc = o.mode == "multiclass"
    sx = _strides5(x, three, False)
    st = _strides5(t, three, mc)
    sm, ep, al = split_f64(o.smooth), split_f64(o.eps), split_f64(0.0 if o.alpha is None else o.alpha)
    with device_guard(x):
        _skel_fwd_kernel[(programs,)](
            x_ptr=x, t_ptr=t, scr_ptr=scratch, part_ptr=part, N=gm["N"], C=gm["C"], C0=c0, D=gm["D"], H=gm["H"],
            W=gm["W"], iterations=o.iterations, n_tiles_d=gm["nd"], n_tiles_h=gm["nh"], n_tiles_w=gm["nw"],
            n_tiles=tiles, **dict(zip(("stride_xn", "stride_xc", "stride_xd", "stride_xh", "stride_xw"), sx)),
            **dict(zip(("stride_tn", "stride_tc", "stride_td", "stride_th", "stride_tw"), st)),
            HALO_D=gm["hd"], HALO_H=gm["hh"], HALO_W=gm["hw"], MULTICLASS=mc, SOFTMAX=o.from_logits and mc,
            SIGMOID=o.from_logits and not mc, ACC=tl_acc(x.dtype), BD=gm["BD"], BH=gm["BH"], BW=gm["BW"],
            num_warps=_warps(block))
        _cldice_finish_kernel[(1,)](
            part_ptr=part, loss_ptr=loss, coef_ptr=coef, N=gm["N"], Cu=cu, tiles_per_channel=per_channel,
            sm_hi=sm[0], sm_lo=sm[1], eps_hi=ep[0], eps_lo=ep[1], al_hi=al[0], al_lo=al[1],
            DICE=o.alpha is not None, MEAN=o.reduction == "mean", NONE=o.reduction == "none",
            ACC=tl_acc(x.dtype), BLOCK=64)
    return loss, coef


def _bwd_geometry(x, iterations):
    """(geometry, scatter) of the backward: the gather form (halo 2 (K + 2)) where its block fits in a
    program and it needs less than twice the scatter form's tiles, else the scatter form (halo K + 2);
    None where neither block fits (``MAX_BWD_BLOCK``)."""
    cap = CAPS["bwd3" if x.dim() == 5 else "bwd2"]
    gather = _geometry(x, 2 * (iterations + 2), cap)
    scatter = _geometry(x, iterations + 2, cap)
    fits = gather["block"] <= MAX_BWD_BLOCK
    if fits and BWD_FORM != "scatter" and (BWD_FORM == "gather" or
                                           gather["spatial_tiles"] < 2 * scatter["spatial_tiles"]):
        return gather, False
    if scatter["block"] <= MAX_BWD_BLOCK:
        return scatter, True
    return None, None


def backward(g, coef, x, t, o):
    """dLoss/dlogits with the logits' dtype and layout; ``g``: 0-d, or (N,) for "none"."""
    three = x.dim() == 5
    gm, scatter = _bwd_geometry(x, o.iterations)
    if gm is None:
        return torch_impl.backward(g, coef, x, t, o)  # a halo this wide needs blocks too large for a program
    block = gm["block"]
    acc = acc_dtype(x.dtype)
    c0 = first_channel(o, gm["C"])
    mc = o.mode == "multiclass"
    softmax = o.from_logits and mc
    tiles = gm["N"] * gm["spatial_tiles"]
    n_slots = 2 * o.iterations + 5 + (gm["C"] if softmax else 0)
    per_program = n_slots * block * acc.itemsize
    programs = max(1, min(tiles, 4 * _sm_count(x.device), SCRATCH_BYTES // per_program))
    scratch = torch.empty((programs, n_slots, block), device=x.device, dtype=acc)
    # the scatter form adds the blocks' shares into a zeroed ACC buffer (x's layout), cast after
    dx = torch.zeros_like(x, dtype=acc) if scatter else torch.empty_like(x)
    sx = _strides5(x, three, False)
    st = _strides5(t, three, mc)
    sd = _strides5(dx, three, False)
    stride_gn = g.stride(0) if g.dim() == 1 else 0
    with device_guard(x):
        _skel_bwd_kernel[(programs,)](
            x_ptr=x, t_ptr=t, g_ptr=g, coef_ptr=coef, scr_ptr=scratch, dx_ptr=dx, N=gm["N"], C=gm["C"], C0=c0,
            D=gm["D"], H=gm["H"], W=gm["W"], iterations=o.iterations, n_tiles_d=gm["nd"], n_tiles_h=gm["nh"],
            n_tiles_w=gm["nw"], n_tiles=tiles,
            **dict(zip(("stride_xn", "stride_xc", "stride_xd", "stride_xh", "stride_xw"), sx)),
            **dict(zip(("stride_tn", "stride_tc", "stride_td", "stride_th", "stride_tw"), st)),
            **dict(zip(("stride_dn", "stride_dc", "stride_dd", "stride_dh", "stride_dw"), sd)),
            stride_gn=stride_gn, n_slots=n_slots, HALO_D=gm["hd"], HALO_H=gm["hh"], HALO_W=gm["hw"],
            MULTICLASS=mc, SOFTMAX=softmax, SIGMOID=o.from_logits and not mc, ACC=tl_acc(x.dtype),
            BD=gm["BD"], BH=gm["BH"], BW=gm["BW"], SCATTER=scatter, num_warps=_warps(block))
    return dx.to(x.dtype) if dx.dtype != x.dtype else dx


def _aot_variants():
    specs = []
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        for mc, three in ((True, False), (False, True)):
            specs.append(aot_spec(_skel_fwd_kernel, dict(MULTICLASS=mc, SOFTMAX=mc, SIGMOID=not mc, ACC=acc,
                                                         BD=16 if three else 1, BH=16 if three else 32,
                                                         BW=16 if three else 32),
                                  x_ptr=f"*{dt}", t_ptr="*i64" if mc else "*fp32", scr_ptr=accty, part_ptr=accty))
        for dice, mean, none in ((True, True, False), (False, False, True)) if dt == "fp32" else ((True, True, False),):
            specs.append(aot_spec(_cldice_finish_kernel, dict(DICE=dice, MEAN=mean, NONE=none, ACC=acc, BLOCK=64),
                                  part_ptr=accty, loss_ptr=accty, coef_ptr=accty, sm_hi="fp32", sm_lo="fp32",
                                  eps_hi="fp32", eps_lo="fp32", al_hi="fp32", al_lo="fp32"))
    # the backward (~20 s per variant and target on one core at 4096 values): each dtype family once,
    # softmax and sigmoid, 2D and 3D; fp64 (gradcheck-sized inputs) at a 32 x 32 block, as a 4096-value
    # fp64 block costs ~60 s more per target
    # the scatter form (atomic adds into an ACC buffer), fp32 softmax and fp64 sigmoid at 8^3 (the 16^3
    # block is the gather form's bf16 variant's, the scatter form only adds the atomics: ~40 s saved)
    for dt, mc, three, hw, scatter in (("fp32", True, False, 64, False), ("bf16", False, True, 16, False),
                                       ("fp64", True, False, 32, False), ("fp32", True, True, 8, True),
                                       ("fp64", False, True, 8, True)):
        accty = "*fp64" if dt == "fp64" else "*fp32"
        specs.append(aot_spec(_skel_bwd_kernel, dict(MULTICLASS=mc, SOFTMAX=mc, SIGMOID=not mc,
                                                     ACC=tl.float64 if dt == "fp64" else tl.float32,
                                                     BD=hw if three else 1, BH=hw, BW=hw, SCATTER=scatter),
                              x_ptr=f"*{dt}", t_ptr="*i64" if mc else "*fp32", g_ptr=accty, coef_ptr=accty,
                              scr_ptr=accty, dx_ptr=accty if scatter else f"*{dt}"))
    return specs


AOT_SPECS = _aot_variants()
