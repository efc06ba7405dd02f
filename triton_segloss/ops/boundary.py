"""Custom op of seed 001's boundary weight map (not differentiable: it reads the target only).

The band test ``avg >= low and avg <= high`` is moved onto the window *sum* s: avg_pool's
mean is ``a = fl(s / K)`` (K = k^d, correctly rounded in the accumulation dtype, then
rounded to the target's dtype), compared with ``low``/``high`` in the target's dtype. That
is a monotone function of s, so ``{s : a(s) >= low}`` is ``[s_lo, inf)`` and
``{s : a(s) <= high}`` is ``(-inf, s_hi]`` over the representable sums; :func:`band_thresholds`
finds s_lo and s_hi by bisection over the bit patterns, evaluating a(s) and the comparison
exactly the way avg_pool and ``Tensor.ge/le`` do. The kernels then test ``s_lo <= s <= s_hi``
on exact window sums, which agrees with the seed bit for bit (tested against F.avg_pool2d on
masks that sit on the thresholds).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from . import _dispatch


def _acc(dtype: torch.dtype) -> torch.dtype:
    return acc_dtype(dtype)


def _pool_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype avg_pool would see: the target's own for floats, float32 for masks/integers."""
    return dtype if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else torch.float32


@functools.lru_cache(maxsize=512)
def band_thresholds(K: int, low: float, high: float, dtype: torch.dtype) -> tuple[float, float]:
    """(s_lo, s_hi): for every window sum s representable in the accumulation dtype,
    ``s_lo <= s <= s_hi`` iff ``a = avg_pool's mean of s`` satisfies ``a.ge(low) & a.le(high)``
    in ``dtype``. ``-inf``/``inf`` where a side holds for every sum in [0, 2K], and an empty
    band (s_lo > s_hi) where no sum qualifies.
    """
    acc = _acc(dtype)
    np_acc, np_bits = (np.float64, np.int64) if acc == torch.float64 else (np.float32, np.int32)

    def mean(bits: int) -> Tensor:
        s = np.array([bits], dtype=np_bits).view(np_acc)
        a = s / np_acc(K)  # IEEE division in the accumulation dtype, as avg_pool divides
        return torch.from_numpy(a).to(dtype)  # round-to-nearest-even into the target's dtype

    def first_true(pred, hi_bits: int) -> int:
        lo, hi = 0, hi_bits  # pred(hi) is True, pred monotone over bit patterns of s >= 0
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    top = int(np.array([2 * K], dtype=np_acc).view(np_bits)[0])

    def value(bits: int) -> float:
        return float(np.array([bits], dtype=np_bits).view(np_acc)[0])

    def ge(bits):
        return bool(mean(bits).ge(low))

    def gt(bits):
        return not bool(mean(bits).le(high))

    if ge(0):
        s_lo = float("-inf")
    elif not ge(top):
        s_lo = float("inf")
    else:
        s_lo = value(first_true(ge, top))
    if gt(0):
        s_hi = float("-inf")
    elif not gt(top):
        s_hi = float("inf")
    else:
        s_hi = value(first_true(gt, top) - 1)
    return s_lo, s_hi


_thr_cache: dict = {}


def _thresholds_on(device: torch.device, K: int, low: float, high: float, dtype: torch.dtype) -> Tensor:
    """``band_thresholds`` as a 2-element tensor on ``device`` (cached: one copy per device)."""
    key = (device, K, low, high, dtype)
    thr = _thr_cache.get(key)
    if thr is None:
        if len(_thr_cache) > 256:
            _thr_cache.clear()
        thr = torch.tensor(band_thresholds(K, low, high, dtype), dtype=_acc(dtype), device=device)
        _thr_cache[key] = thr
    return thr


@torch.library.custom_op("triton_segloss::boundary_weight_map", mutates_args=())
def boundary_weight_map(
    target: Tensor,
    kernel_size: int,
    spatial_dims: int,
    low: float,
    high: float,
    boundary_weight: float,
    normalize: bool,
) -> Tensor:
    """``target`` (M, D, H, W) (D == 1 for 2D); returns the weights, contiguous (M, D, H, W) in
    float32 (float64 for float64 targets)."""
    impl = _dispatch.impl("boundary", target.device)
    pool = _pool_dtype(target.dtype)
    acc = _acc(pool)
    thr = _thresholds_on(target.device, kernel_size ** spatial_dims, low, high, pool)
    ind, part = impl.box_band(target, kernel_size, spatial_dims, thr)
    if normalize:  # seed 001: w = (1 + (bw - 1) ind) / sum(w) * numel, sum(w) = numel + (bw - 1) #band
        count = _dispatch.sum_partials(part.reshape(-1, 1))[0].to(torch.float64)
        numel = float(ind.numel())
        w1 = (numel + (boundary_weight - 1.0) * count).to(acc)
    lo = torch.ones((), dtype=acc, device=target.device)
    hi = torch.full((), boundary_weight, dtype=acc, device=target.device)
    if normalize:  # (u / w1) * w0 per value u, rounded as the seed rounds it
        lo = torch.div(lo, w1) * numel
        hi = torch.div(hi, w1) * numel
    return torch.where(ind.view(torch.bool), hi, lo)


@boundary_weight_map.register_fake
def _(target, kernel_size, spatial_dims, low, high, boundary_weight, normalize):
    return target.new_empty(target.shape, dtype=_acc(_pool_dtype(target.dtype)))
