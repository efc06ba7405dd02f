"""Triton kernels of the clDice family and their launchers (the family's only triton import).

Forward: one fused skeleton kernel, one one-program finisher.

``_skel_fwd_kernel`` is persistent: P = min(tiles, 8 x SMs) programs walk the output
tiles of every (image, used channel) in a fixed order. A tile is a (TD, TH, TW) box of
output pixels; the program works on its (BD, BH, BW) power-of-two block, the tile plus a
halo of h = iterations + 2 pixels on each side (0 in D for 2D inputs, which run as 3D with
D = 1): every erosion and the final dilation of an opening spoil one more ring of the
block's edge, so after the deepest level (iterations + 1 erosions, one dilation) the
tile's centre is exact. The block's values (probabilities and target, the current
erosion level, the skeleton) live in registers; neighbour reads go through a per-program
scratch slot of 2 x BLOCK values (store, ``tl.debug_barrier()``, shifted masked loads,
barrier), reused by every stage, level and tile of the program: P x 2 x BLOCK x 4 bytes
(about 8.6 MB for 132 SMs and 4096-value blocks, L2-resident), never a full-size
intermediate. Per tile it writes 8 partial sums (A = sum S_P T, B = sum S_P,
A2 = sum S_T P, B2 = sum S_T, and Dice's I = sum P T, sum P, sum T).

Bytes per pixel (fp32 logits, fp32 mask, iterations = 3): DRAM reads are 4 + 4 bytes per
block pixel, i.e. 8 x R with the recompute factor R = block / tile = (32/22)^2 = 2.1 in
2D and (16/6)^3 = 19 in 3D (L2 catches most of the overlap: neighbouring tiles read the
same halo), nothing full-size written. The naive per-iteration path (MONAI's, our
``torch_impl``) writes and reads each pool's output at full size: per level 3 pools
(2 axis pools + min in 2D, 4 in 3D, then the dilation) and 3 elementwise results, each
written once and read about twice: ~ (iterations + 1) x ~8 tensors x 12 bytes ~ 400
bytes per pixel for prediction + target at iterations = 3, plus the autograd graph's
saved tensors (~ 30 full-size tensors) for the backward.

Backward: NOT fused yet. ``backward`` runs the PyTorch path's hand-written reverse pass
(``torch_impl.backward``: max-pool index routing, about 60 device ops), so a training step
on CUDA is 2 launches forward + ~60 backward, over the 4-launch budget. See the report.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import device_guard, scalar, sigmoid, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype

from . import torch_impl

NPART = 8  # per tile: [A, B, A2, B2, I, sum P, sum T, 0]


@triton.jit
def _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
           AXIS: tl.constexpr, STEP: tl.constexpr, other):
    """Value of the block's neighbour at +STEP along AXIS (0: D, 1: H, 2: W), read from scratch;
    ``other`` where the neighbour is outside the block or the image."""
    if AXIS == 0:
        ok = (ld + STEP >= 0) & (ld + STEP < BD) & (gd + STEP >= 0) & (gd + STEP < D)
        off = STEP * BH * BW
    elif AXIS == 1:
        ok = (lh + STEP >= 0) & (lh + STEP < BH) & (gh + STEP >= 0) & (gh + STEP < H)
        off = STEP * BW
    else:
        ok = (lw + STEP >= 0) & (lw + STEP < BW) & (gw + STEP >= 0) & (gw + STEP < W)
        off = STEP
    return tl.load(scr_ptr + l + off, mask=ok, other=other)


@triton.jit
def _stage(scr_ptr, v, l, ld, lh, lw, gd, gh, gw, D, H, W, BD: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
           ERODE: tl.constexpr, AXIS: tl.constexpr):
    """One neighbour stage through scratch: ERODE: min over the 2 x ND cross neighbours (all axes),
    else: max over the 3 neighbours along AXIS (one separable pass of the square dilation)."""
    tl.debug_barrier()
    tl.store(scr_ptr + l, v)
    tl.debug_barrier()
    if ERODE:
        inf = float("inf")
        m = v
        if BD > 1:
            m = tl.minimum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, 0, -1, inf))
            m = tl.minimum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, 0, 1, inf))
        m = tl.minimum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, 1, -1, inf))
        m = tl.minimum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, 1, 1, inf))
        m = tl.minimum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, 2, -1, inf))
        m = tl.minimum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, 2, 1, inf))
    else:
        ninf = float("-inf")
        m = tl.maximum(v, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, AXIS, -1, ninf))
        m = tl.maximum(m, _shift(scr_ptr, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, AXIS, 1, ninf))
    return m


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
    HALO_D, HALO,  # halo of the block in D (0 for 2D) and in H, W
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
    TD = BD - 2 * HALO_D
    TH = BH - 2 * HALO
    TW = BW - 2 * HALO
    for tile in range(pid, n_tiles, n_prog):
        tw_i = tile % n_tiles_w
        r = tile // n_tiles_w
        th_i = r % n_tiles_h
        r = r // n_tiles_h
        td_i = r % n_tiles_d
        row = r // n_tiles_d  # n * Cu + cu
        n = tl.cast(row // Cu, tl.int64)
        c = tl.cast(row % Cu + C0, tl.int64)
        gd = td_i * TD - HALO_D + ld
        gh = th_i * TH - HALO + lh
        gw = tw_i * TW - HALO + lw
        inimg = (gd >= 0) & (gd < D) & (gh >= 0) & (gh < H) & (gw >= 0) & (gw < W)
        centre = inimg & (ld >= HALO_D) & (ld < HALO_D + TD) & (lh >= HALO) & (lh < HALO + TH) \
            & (lw >= HALO) & (lw < HALO + TW)
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
        ep = p
        et = t
        sp = tl.zeros([BLOCK], ACC)
        st = tl.zeros([BLOCK], ACC)
        for _k in range(0, iterations + 1):
            ep1 = _stage(scr_p, ep, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, True, 0)
            et1 = _stage(scr_t, et, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, True, 0)
            op = ep1
            ot = et1
            if BD > 1:
                op = _stage(scr_p, op, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, False, 0)
                ot = _stage(scr_t, ot, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, False, 0)
            op = _stage(scr_p, op, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, False, 1)
            ot = _stage(scr_t, ot, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, False, 1)
            op = _stage(scr_p, op, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, False, 2)
            ot = _stage(scr_t, ot, l, ld, lh, lw, gd, gh, gw, D, H, W, BD, BH, BW, False, 2)
            dp = tl.maximum(ep - op, 0.0)
            dt = tl.maximum(et - ot, 0.0)
            sp = sp + tl.maximum(dp - sp * dp, 0.0)
            st = st + tl.maximum(dt - st * dt, 0.0)
            ep = ep1
            et = et1
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
    N, Cu, tiles_per_channel,
    sm_hi, sm_lo, eps_hi, eps_lo, al_hi, al_lo,  # smooth, eps, alpha (fp32 pairs)
    DICE: tl.constexpr, MEAN: tl.constexpr, NONE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program, fixed order. Per image n, from the sums over its channels' tiles:
    tprec = (A + s) / (B + s), tsens = (A2 + s) / (B2 + s), cl_n = 1 - 2 tprec tsens / (tprec + tsens + eps);
    DICE: d_nc = 1 - (2 I + s) / (sum P + sum T + s) per (n, c), and the loss is
    (1 - alpha) red(d) + alpha red(cl) with red = mean or sum (over (n, c) resp. n)."""
    s = scalar(sm_hi, sm_lo, tl.float64)
    eps = scalar(eps_hi, eps_lo, tl.float64)
    alpha = scalar(al_hi, al_lo, tl.float64)
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
            if DICE:
                inter = tl.sum(tl.where(cols == 4, v, 0.0), axis=0)
                den = tl.sum(tl.where((cols == 5) | (cols == 6), v, 0.0), axis=0)
                d_tot += 1.0 - (2.0 * inter + s) / (den + s)
        a = tl.sum(tl.where(cols == 0, acc8, 0.0), axis=0)
        b = tl.sum(tl.where(cols == 1, acc8, 0.0), axis=0)
        a2 = tl.sum(tl.where(cols == 2, acc8, 0.0), axis=0)
        b2 = tl.sum(tl.where(cols == 3, acc8, 0.0), axis=0)
        tp = (a + s) / (b + s)
        ts = (a2 + s) / (b2 + s)
        cl = 1.0 - 2.0 * tp * ts / (tp + ts + eps)
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


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

_SM = {}


def _sm_count(device):
    if device.type != "cuda":
        return 4
    i = device.index if device.index is not None else torch.cuda.current_device()
    if i not in _SM:
        _SM[i] = torch.cuda.get_device_properties(i).multi_processor_count
    return _SM[i]


def _block(size, halo, cap):
    """Block extent along one axis: a power of two holding the size plus both halos, at most ``cap``
    (and at least 2 * halo + 1, so each tile has one pixel)."""
    b = triton.next_power_of_2(size + 2 * halo)
    low = triton.next_power_of_2(2 * halo + 1)
    return max(low, min(b, cap))


def _geometry(x, o):
    N, C = x.shape[:2]
    three = x.dim() == 5
    D, H, W = x.shape[2:] if three else (1, *x.shape[2:])
    h = o.iterations + 2
    hd = h if three else 0
    cap = 16 if three else 32
    BD = _block(D, hd, cap) if three else 1
    BH, BW = _block(H, h, cap), _block(W, h, cap)
    nd, nh, nw = triton.cdiv(D, BD - 2 * hd), triton.cdiv(H, BH - 2 * h), triton.cdiv(W, BW - 2 * h)
    return dict(N=N, C=C, D=D, H=H, W=W, h=h, hd=hd, BD=BD, BH=BH, BW=BW, nd=nd, nh=nh, nw=nw)


def _strides5(t, three, labels):
    s = list(t.stride())
    if labels:
        s = [s[0], 0] + s[1:]
    if not three:
        s = s[:2] + [0] + s[2:]
    return s


def forward(x, t, o):
    """The loss: 0-d, or (N,) per image for reduction "none" (clDice only). See ``ops.py``."""
    gm = _geometry(x, o)
    acc = acc_dtype(x.dtype)
    c0 = 1 if (not o.include_background and gm["C"] > 1) else 0
    cu = gm["C"] - c0
    per_channel = gm["nd"] * gm["nh"] * gm["nw"]
    tiles = gm["N"] * cu * per_channel
    block = gm["BD"] * gm["BH"] * gm["BW"]
    programs = max(1, min(tiles, 8 * _sm_count(x.device)))
    scratch = torch.empty((programs, 2, block), device=x.device, dtype=acc)
    part = torch.empty((tiles, NPART), device=x.device, dtype=acc)
    loss = torch.empty((gm["N"],) if o.reduction == "none" else (), device=x.device, dtype=acc)
    three = x.dim() == 5
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
            HALO_D=gm["hd"], HALO=gm["h"], MULTICLASS=mc, SOFTMAX=o.from_logits and mc,
            SIGMOID=o.from_logits and not mc, ACC=tl_acc(x.dtype), BD=gm["BD"], BH=gm["BH"], BW=gm["BW"],
            num_warps=4 if block <= 1024 else 8)
        _cldice_finish_kernel[(1,)](
            part_ptr=part, loss_ptr=loss, N=gm["N"], Cu=cu, tiles_per_channel=per_channel, sm_hi=sm[0],
            sm_lo=sm[1], eps_hi=ep[0], eps_lo=ep[1], al_hi=al[0], al_lo=al[1], DICE=o.alpha is not None,
            MEAN=o.reduction == "mean", NONE=o.reduction == "none", ACC=tl_acc(x.dtype), BLOCK=64)
    return loss


def backward(g, x, t, o):
    """dLoss/dlogits with the logits' dtype and layout. Not fused yet: the PyTorch path's reverse pass."""
    return torch_impl.backward(g, x, t, o)


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
                                  part_ptr=accty, loss_ptr=accty, sm_hi="fp32", sm_lo="fp32", eps_hi="fp32",
                                  eps_lo="fp32", al_hi="fp32", al_lo="fp32"))
    return specs


AOT_SPECS = _aot_variants()
