"""Seed 001's boundary band: a separable box filter with avg_pool's zero padding, then a band test.

``avg_pool2d/3d(x, k, stride=1, padding=k // 2, count_include_pad=True)`` is a window *sum*
over a k^d box (zero outside the image) divided by k^d. The sum is separable: one pass per
spatial axis, each a 1D window sum of width k = 2R + 1. The band test of the last pass
compares the window sum with two thresholds on the sum, chosen on the host so that the test
agrees bit for bit with avg_pool's rounded mean compared with ``low`` / ``high`` (see
``ops/boundary.py``); so the mean itself is never formed here.

Each pass sees its input as (M, L, B, E): M images, L the filtered axis, B the axis tiled
across a program's columns, E the remaining axis (size 1 in 2D), all with explicit strides.
A program owns a BLOCK_L x BLOCK_B tile of outputs and computes its window sums from two
loads and two prefix sums, so its cost per pixel does not depend on k (for 2R <= BLOCK_L; a
wider window adds (2R - BLOCK_L) / BLOCK_L loads per pixel):

    win(l0 + i) = K0 + sum_{j <= i} x[l0 + R + j] - sum_{j < i} x[l0 - R + j],
    K0 = sum_{l0 - R <= u < l0 + R} x[u]

On a 0/1 mask every partial sum is an integer below 2^24 (the launcher bounds the tile so
that (BLOCK_L + 2R) * (largest window sum entering the pass) stays below it), so the window
sums are exact in fp32, as avg_pool's own sums are.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import tl_acc


@triton.jit
def _box_sum_kernel(
    x_ptr,  # input (target, or the window sums of the previous pass), (M, L, B, E) strided
    y_ptr,  # output, (M, L, B, E) strided: window sums in ACC, or the 0/1 band indicator (uint8) if FINAL
    thr_ptr,  # two ACC values [lo, hi]: the band on window sums (read only if FINAL)
    part_ptr,  # per-program count of band pixels, (programs,) in ACC (written only if FINAL)
    L,
    B,
    E,
    R,  # window radius: width 2R + 1
    n_blocks_l,
    n_blocks_b,
    stride_xm, stride_xl, stride_xb, stride_xe,
    stride_ym, stride_yl, stride_yb, stride_ye,
    FINAL: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    """win[l] = sum_{|u - l| <= R, 0 <= u < L} x[u] along L (zero padding), for a tile of l and b:

        win(l0 + i) = K0 + incl_cumsum(x[l0 + R + .])[i] - excl_cumsum(x[l0 - R + .])[i]

    FINAL: y = (lo <= win <= hi) as uint8 and part = number of such pixels in the tile.
    Not differentiable (the target only).
    """
    pid = tl.program_id(0).to(tl.int64)
    per_me = n_blocks_l * n_blocks_b
    me = pid // per_me
    m = me // E
    e = me % E
    l0 = (pid % per_me) // n_blocks_b * BLOCK_L
    b = (pid % n_blocks_b) * BLOCK_B + tl.arange(0, BLOCK_B)
    i = tl.arange(0, BLOCK_L)
    bmask = (b < B)[None, :]
    x_base = x_ptr + m * stride_xm + e * stride_xe + b[None, :] * stride_xb

    pa = l0 - R + i  # leading edge of each window minus one: its exclusive prefix is subtracted
    a = tl.load(x_base + pa[:, None] * stride_xl, mask=((pa >= 0) & (pa < L))[:, None] & bmask, other=0).to(ACC)
    pb = l0 + R + i
    bt = tl.load(x_base + pb[:, None] * stride_xl, mask=((pb >= 0) & (pb < L))[:, None] & bmask, other=0).to(ACC)
    k0 = tl.sum(tl.where((i < 2 * R)[:, None], a, 0.0), axis=0)
    for j0 in range(BLOCK_L, 2 * R, BLOCK_L):  # only for windows wider than the tile
        pj = l0 - R + j0 + i
        mj = (j0 + i < 2 * R) & (pj >= 0) & (pj < L)
        k0 += tl.sum(tl.load(x_base + pj[:, None] * stride_xl, mask=mj[:, None] & bmask, other=0).to(ACC), axis=0)
    win = k0[None, :] + tl.cumsum(bt, axis=0) - (tl.cumsum(a, axis=0) - a)

    lo_ = l0 + i
    omask = (lo_ < L)[:, None] & bmask
    y_ptrs = y_ptr + m * stride_ym + e * stride_ye + lo_[:, None] * stride_yl + b[None, :] * stride_yb
    if FINAL:
        lo = tl.load(thr_ptr).to(ACC)
        hi = tl.load(thr_ptr + 1).to(ACC)
        band = (win >= lo) & (win <= hi) & omask
        tl.store(y_ptrs, band.to(tl.uint8), mask=omask)
        tl.store(part_ptr + pid, tl.sum(tl.sum(band.to(ACC), axis=1), axis=0))
    else:
        tl.store(y_ptrs, win, mask=omask)


# (L, B, E) dims of the (M, D, H, W) tensor for a pass along W, H and D
_AXES = {"W": (3, 2, 1), "H": (2, 3, 1), "D": (1, 3, 2)}
_EXACT = 2 ** 24  # integers below this are exact in fp32


def _blocks(L: int, B: int, contiguous: bool, R: int, vmax: int, acc) -> tuple[int, int]:
    """(BLOCK_L, BLOCK_B): long tiles along a contiguous L, 32-wide columns otherwise."""
    if contiguous:
        block_l = min(triton.next_power_of_2(L), 512)
        block_b = max(1, min(triton.next_power_of_2(B), 2048 // block_l))
    else:
        block_b = min(triton.next_power_of_2(B), 32)
        block_l = min(triton.next_power_of_2(L), 4096 // block_b)
    if acc == torch.float32:  # keep prefix sums of a 0/1 mask exact
        while block_l > 16 and (block_l + 2 * R) * vmax >= _EXACT:
            block_l //= 2
    return block_l, block_b


def _pass(src, dst, thr, part, axis, R, final, vmax):
    M = src.shape[0]
    li, bi, ei = _AXES[axis]
    L, B, E = src.shape[li], src.shape[bi], src.shape[ei]
    acc = thr.dtype
    xs, ys = list(src.stride()), list(dst.stride())
    if E > 1 and xs[ei] == B * xs[bi] and ys[ei] == B * ys[bi]:  # E continues B: one longer column axis
        B, E = B * E, 1
        xs[ei] = ys[ei] = 0
    BLOCK_L, BLOCK_B = _blocks(L, B, xs[li] == 1, R, vmax, acc)
    n_blocks_l, n_blocks_b = triton.cdiv(L, BLOCK_L), triton.cdiv(B, BLOCK_B)
    grid = (M * E * n_blocks_l * n_blocks_b,)
    if final:
        part = torch.empty((grid[0],), device=src.device, dtype=acc)
    _box_sum_kernel[grid](
        src, dst, thr, thr if part is None else part, L, B, E, R, n_blocks_l, n_blocks_b,
        xs[0], xs[li], xs[bi], xs[ei], ys[0], ys[li], ys[bi], ys[ei],
        FINAL=final, ACC=tl_acc(acc), BLOCK_L=BLOCK_L, BLOCK_B=BLOCK_B,
        num_warps=4 if BLOCK_L * BLOCK_B <= 2048 else 8,
    )
    return part


def box_band(t, kernel_size, spatial_dims, thr):
    """Band indicator of seed 001's avg-pool weights on ``t`` seen as (M, D, H, W) (D == 1 in 2D).

    ``thr``: two values [lo, hi] in the accumulation dtype (float64 for float64 targets, else
    float32) on ``t``'s device: the band on k^d-window sums. Passes along W, H (and D), the
    intermediate window sums in the accumulation dtype. Returns (indicator uint8 (M, D, H, W)
    contiguous, per-program band counts (P,)).
    """
    R = kernel_size // 2
    ind = torch.empty(t.shape, dtype=torch.uint8, device=t.device)
    axes = ("W", "H", "D")[:spatial_dims]
    src, part = t, None
    for step, axis in enumerate(axes):
        final = step == len(axes) - 1
        dst = ind if final else torch.empty(t.shape, dtype=thr.dtype, device=t.device)
        part = _pass(src, dst, thr, None, axis, R, final, kernel_size ** step)
        src = dst
    return ind, part


def _aot_variants():
    specs = []
    for dt, acc in (("u8", tl.float32), ("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        specs.append(aot_spec(_box_sum_kernel, dict(FINAL=False, ACC=acc, BLOCK_L=512, BLOCK_B=4), x_ptr=f"*{dt}",
                              y_ptr=accty, thr_ptr=accty, part_ptr=accty))
        specs.append(aot_spec(_box_sum_kernel, dict(FINAL=True, ACC=acc, BLOCK_L=128, BLOCK_B=32), x_ptr=accty,
                              y_ptr="*u8", thr_ptr=accty, part_ptr=accty))
    # the fast path: contiguous rows (W pass) and contiguous columns (H pass), int64 strides
    big = {f"stride_{a}{b}": "i64" for a in "xy" for b in "mlbe"}
    specs.append(aot_spec(_box_sum_kernel, dict(FINAL=False, ACC=tl.float32, BLOCK_L=512, BLOCK_B=4, stride_xl=1,
                                                stride_yl=1), x_ptr="*fp32", L="i64", B="i64",
                          divisible=("L", "stride_xm", "stride_xb", "stride_ym", "stride_yb"),
                          **{k: v for k, v in big.items() if k not in ("stride_xl", "stride_yl")}))
    specs.append(aot_spec(_box_sum_kernel, dict(FINAL=True, ACC=tl.float32, BLOCK_L=128, BLOCK_B=32, stride_xb=1,
                                                stride_yb=1), y_ptr="*u8", L="i64", B="i64",
                          divisible=("B", "stride_xm", "stride_xl", "stride_xe", "stride_ym", "stride_yl", "stride_ye"),
                          **{k: v for k, v in big.items() if k not in ("stride_xb", "stride_yb")}))
    return specs


AOT_SPECS = _aot_variants()
