"""The boundary family's custom ops and the host-side rules they share.

* ``triton_segloss::boundary_weight_map(target, <WeightMapOptions>) -> weights``: seed 001's
  weights of ``target`` seen as (M, D, H, W) (D == 1 in 2D), contiguous, float32 (float64 for
  float64 targets). Not differentiable (it reads the target only).
* ``triton_segloss::boundary_bce_dice(logits, target, <BoundaryBCEDiceOptions>)
  -> (loss, bce, dice, coef, band)``: the three 0-d terms, the finisher's gradient coefficients
  and the uint8 band indicator the backward reads. Gradients flow from ``loss``, ``bce`` and
  ``dice`` to the logits; the backward reads ``coef``, ``band`` and the upstream gradients from
  device memory: no host sync anywhere.

The band test ``avg >= low and avg <= high`` is moved onto the window *sum* s: avg_pool's mean
is ``a = fl(s / K)`` (K = k^d, correctly rounded in the accumulation dtype, then rounded to the
target's dtype), compared with ``low``/``high`` in the target's dtype. That is a monotone
function of s, so ``{s : a(s) >= low}`` is ``[s_lo, inf)`` and ``{s : a(s) <= high}`` is
``(-inf, s_hi]`` over the representable sums; :func:`band_thresholds` finds s_lo and s_hi by
bisection over the bit patterns, evaluating a(s) and the comparison exactly the way avg_pool and
``Tensor.ge/le`` do (on the host, no device work). Both backends then test ``s_lo <= s <= s_hi``
on exact window sums, which agrees with the seed bit for bit.

``kernel_size=None`` travels to the op as ``None`` and is resolved from the height there, where
the shape is concrete: nothing in the traced graph depends on it.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional

import torch

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl

SEED001_KERNEL_SIZES = {128: 11, 256: 21, 512: 21, 1024: 41, 1280: 51}
"""Seed 001's kernel size by image height H (it raises for any other height)."""


def default_kernel_size(height: int) -> int:
    """Seed 001's table for H in {128, 256, 512, 1024, 1280}; any other H gets the nearest odd
    integer (ties up) to the piecewise-linear interpolation of that table in H, extended
    through the origin below 128 (k = 11 H / 128) and proportionally above 1280
    (k = 51 H / 1280), and never less than 3. E.g. H = 64 -> 5, 384 -> 21, 768 -> 31, 2048 -> 81.
    """
    h = int(height)
    if h in SEED001_KERNEL_SIZES:
        return SEED001_KERNEL_SIZES[h]
    pts = sorted(SEED001_KERNEL_SIZES.items())
    if h < pts[0][0]:
        k = h * pts[0][1] / pts[0][0]
    elif h > pts[-1][0]:
        k = h * pts[-1][1] / pts[-1][0]
    else:
        (h0, k0), (h1, k1) = next((a, b) for a, b in zip(pts, pts[1:]) if a[0] < h < b[0])
        k = k0 + (k1 - k0) * (h - h0) / (h1 - h0)
    return max(3, 2 * math.floor(k / 2) + 1)


def pool_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype avg_pool would see: the target's own for floats, float32 for masks/integers."""
    return dtype if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else torch.float32


@functools.lru_cache(maxsize=512)
def band_thresholds(K: int, low: float, high: float, dtype: torch.dtype) -> tuple[float, float]:
    """(s_lo, s_hi): for every window sum s representable in the accumulation dtype,
    ``s_lo <= s <= s_hi`` iff ``a = avg_pool's mean of s`` satisfies ``a.ge(low) & a.le(high)``
    in ``dtype``. ``-inf``/``inf`` where a side holds for every sum in [0, 2K], and an empty
    band (s_lo > s_hi) where no sum qualifies.
    """
    acc = acc_dtype(dtype)
    bits_t = torch.int64 if acc == torch.float64 else torch.int32  # host tensors: bit patterns of acc floats

    def as_float(bits: int) -> torch.Tensor:
        return torch.tensor([bits], dtype=bits_t).view(acc)

    def mean(bits: int) -> torch.Tensor:
        a = as_float(bits) / torch.tensor([K], dtype=acc)  # IEEE division in the accumulation dtype, as avg_pool
        return a.to(dtype)  # round-to-nearest-even into the target's dtype

    def first_true(pred, hi_bits: int) -> int:
        lo, hi = 0, hi_bits  # pred(hi) is True, pred monotone over bit patterns of s >= 0
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    top = int(torch.tensor([2 * K], dtype=acc).view(bits_t)[0])

    def value(bits: int) -> float:
        return float(as_float(bits)[0])

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


def box_for(kernel_size: Optional[int], height: int, spatial_dims: int, low: float, high: float,
            dtype: torch.dtype) -> tuple[int, float, float]:
    """(k, s_lo, s_hi) for a target of ``dtype``: the kernel size (``None``: from the height) and
    the band on k^d-window sums, clamped to finite values (window sums of a target in [0, 1] lie
    in [0, K], up to rounding, so -1 and 4K + 4 stand for -inf and inf)."""
    k = default_kernel_size(height) if kernel_size is None else int(kernel_size)
    K = k ** spatial_dims
    s_lo, s_hi = band_thresholds(K, float(low), float(high), pool_dtype(dtype))
    big = 4.0 * K + 4.0
    return k, min(max(s_lo, -1.0), big), min(max(s_hi, -1.0), big)


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


# ---- boundary_weight_map ---------------------------------------------------------------------------

class WeightMapOptions(NamedTuple):
    """Every option of ``boundary_weight_map``, checked, as the op receives them."""

    kernel_size: Optional[int] = None  # odd; None: default_kernel_size(H) at run time
    spatial_dims: int = 2
    low: float = 0.01
    high: float = 0.99
    boundary_weight: float = 3.0
    normalize: bool = True


def _weight_map(target, o):
    box = box_for(o.kernel_size, target.shape[2], o.spatial_dims, o.low, o.high, target.dtype)
    return _impl(target.device).weight_map(target, box, o)


def _weight_map_fake(target, o):
    return target.new_empty(target.shape, dtype=acc_dtype(target.dtype))


def _weight_map_backward(grads, saved, target, o):
    raise RuntimeError("boundary_weight_map is not differentiable: it reads the target only")


weight_map = define_op("boundary_weight_map", WeightMapOptions, tensors=("target",), outputs=1,
                       forward=_weight_map, fake=_weight_map_fake, backward=_weight_map_backward)


# ---- boundary_bce_dice_loss ------------------------------------------------------------------------

class BoundaryBCEDiceOptions(NamedTuple):
    """Every option of the fused boundary-weighted BCE + soft Dice, as the op receives them."""

    kernel_size: Optional[int] = None  # odd; None: default_kernel_size(H) at run time
    weighted: bool = True  # False: w = 1 (seed 001's combined_loss with is_weight=False)
    log_dice: bool = False
    low: float = 0.01
    high: float = 0.99
    boundary_weight: float = 3.0


def _bce_dice(logits, target, o):
    box = None
    if o.weighted:
        box = box_for(o.kernel_size, logits.shape[-2], logits.dim() - 2, o.low, o.high, target.dtype)
    return _impl(logits.device).forward(logits, target, box, o)


def _bce_dice_fake(logits, target, o):
    acc = acc_dtype(logits.dtype)
    scalar = logits.new_empty((), dtype=acc)
    return (scalar, logits.new_empty((), dtype=acc), logits.new_empty((), dtype=acc),
            logits.new_empty((5 + 2 * logits.shape[0],), dtype=acc),
            logits.new_empty(logits.shape if o.weighted else (0,), dtype=torch.uint8))


def _bce_dice_backward(grads, saved, logits, target, o):
    (g_loss, g_bce, g_dice), (coef, band) = grads, saved
    return _impl(logits.device).backward(g_loss, g_bce, g_dice, coef, band, logits, target, o)


boundary_bce_dice = define_op("boundary_bce_dice", BoundaryBCEDiceOptions, tensors=("logits", "target"), outputs=5,
                              forward=_bce_dice, fake=_bce_dice_fake, backward=_bce_dice_backward,
                              saved_outputs=(3, 4), grad_outputs=(0, 1, 2))
