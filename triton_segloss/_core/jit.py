"""Shared ``@triton.jit`` device functions and launch helpers (the core's only triton import).

Device functions are inlined into the kernels that call them; they are not
kernels themselves, so they need no AOT spec (their callers are compiled).
"""

from __future__ import annotations

import math
import struct
import threading

import torch
import triton
import triton.language as tl


def tl_acc(dtype: torch.dtype):
    """Accumulation dtype for a kernel reading ``dtype``: fp64 for fp64 inputs, fp32 otherwise."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def block_for(n: int, max_block: int = 2048) -> tuple[int, int]:
    """(BLOCK, num_warps) for a 1D sweep over ``n`` elements: a power of two in [128, max_block]."""
    block = max(128, min(max_block, triton.next_power_of_2(max(int(n), 1))))
    return block, (4 if block <= 1024 else 8)


def split_f64(v) -> tuple[float, float]:
    """``v`` as an fp32 pair (hi, lo) with hi + lo == v to about 2^-48 relative.

    Triton passes Python floats to kernels as fp32; fp64 kernels rebuild the value
    with :func:`scalar`. ``None`` (an absent option) is passed as (0, 0).
    """
    v = 0.0 if v is None else float(v)
    if not math.isfinite(v) or abs(v) >= 3.4e38:
        return v, 0.0  # passed as is: the kernel sees +-inf (or nan), as fp32 would
    hi = struct.unpack("f", struct.pack("f", v))[0]  # round to fp32 on the host; no tensor, no device
    return hi, v - hi


_INTERPRETER_LOCK = threading.RLock()  # Triton's interpreter is not thread-safe


def device_guard(t: torch.Tensor):
    """Context for a launch on ``t``'s device: makes it current on CUDA (``cuda:1`` while
    ``cuda:0`` is current); on the CPU (the interpreter) it serialises launches across threads."""
    if t.device.type == "cuda":
        return torch.cuda.device(t.device)
    return _INTERPRETER_LOCK


@triton.jit
def scalar(hi, lo, ACC: tl.constexpr):
    """A float option passed as an fp32 pair (:func:`split_f64`), in the accumulation dtype."""
    if ACC == tl.float64:
        return tl.cast(hi, tl.float64) + tl.cast(lo, tl.float64)
    else:
        return tl.cast(hi, tl.float32)


@triton.jit
def row_tile(pid, n_blocks_s, C, BLOCK: tl.constexpr):
    """(row, n, c, s) of program ``pid``: tile ``pid % n_blocks_s`` of row ``pid // n_blocks_s`` of an
    (N, C, S) tensor seen as N * C rows; every index int64 (offsets past 2^31 elements)."""
    pid = pid.to(tl.int64)
    row = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    return row, row // C, row % C, s


@triton.jit
def log1p_exp_neg_abs(x):
    """log(1 + e^-|x|) without cancellation: exact to rounding as e^-|x| -> 0 (x = -20: 2.06e-9, not 0)."""
    e = tl.exp(-tl.abs(x))
    u = 1.0 + e
    return tl.where(u == 1.0, e, tl.log(u) * e / tl.where(u == 1.0, 1.0, u - 1.0))


@triton.jit
def softplus(x):
    """log(1 + e^x) for any finite x: max(x, 0) + log(1 + e^-|x|)."""
    return tl.maximum(x, 0.0) + log1p_exp_neg_abs(x)


@triton.jit
def sigmoid(x):
    """1 / (1 + e^-x), no overflow: e^-|x| is at most 1."""
    e = tl.exp(-tl.abs(x))
    r = 1.0 / (1.0 + e)
    return tl.where(x >= 0, r, e * r)


@triton.jit
def sum_rows(part_ptr, n_rows, K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr):
    """Column sums of a contiguous (n_rows, K) partials buffer, in float64, in a fixed order.

    The deterministic second stage of every two-stage reduction (no atomics):
    one program walks the rows in tiles of BLOCK and folds them into one tile,
    then sums the tile. Returns a [KP] float64 vector (KP = next_pow2(K); the
    columns past K are 0).
    """
    cols = tl.arange(0, KP)
    acc = tl.zeros([BLOCK, KP], dtype=tl.float64)
    for start in range(0, n_rows, BLOCK):
        rows = start + tl.arange(0, BLOCK).to(tl.int64)
        m = (rows[:, None] < n_rows) & (cols[None, :] < K)
        acc += tl.load(part_ptr + rows[:, None] * K + cols[None, :], mask=m, other=0.0).to(tl.float64)
    return tl.sum(acc, axis=0)


@triton.jit
def pick(v, k: tl.constexpr, KP: tl.constexpr):
    """Element ``k`` of a [KP] vector as a scalar."""
    return tl.sum(tl.where(tl.arange(0, KP) == k, v, 0.0), axis=0)


@triton.jit
def load_ncs(ptr, n, c, s, stride_n, stride_c, stride_s, mask, other, ACC: tl.constexpr):
    """Masked load of element (n, c, s) of an (N, C, S) strided view, cast to ACC at once."""
    return tl.load(ptr + n * stride_n + c * stride_c + s * stride_s, mask=mask, other=other).to(ACC)


@triton.jit
def ratio_grad(num, den, total, eps):
    """score = num / max(den, eps): exactly 1 where total == 0 (an empty class), 0 where the clamped
    den is 0; with d score / d num = 1 / max(den, eps) and d score / d den = -score / den (0 where
    den < eps: the clamp holds). The soft-overlap ratio of the Dice family and of the fused
    Dice + boundary loss."""
    empty = total == 0
    dc = tl.maximum(den, eps)
    ok = (dc > 0) & (total != 0)
    safe = tl.where(ok, dc, 1.0)
    s = tl.where(empty, 1.0, tl.where(ok, num / safe, 0.0))
    ds_num = tl.where(ok, 1.0 / safe, 0.0)
    ds_den = tl.where(ok & (den >= eps), -s / safe, 0.0)
    # a NaN sum (a NaN logit) must reach the loss: the comparisons above would turn it into "empty"
    # or "score 0" (a diverged model would show a finite Dice loss)
    bad = num + den + total
    nan = bad != bad
    return tl.where(nan, bad, s), tl.where(nan, bad, ds_num), tl.where(nan, bad, ds_den)
