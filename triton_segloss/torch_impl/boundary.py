"""PyTorch path of seed 001's boundary band; mirrors ``kernels/boundary.py``.

Window sums come from prefix sums (``cumsum``) along each spatial axis, differenced at
``l + R`` and ``l - R - 1``: a pad, a cumsum and a subtraction per axis whatever the kernel
size. The prefix sums run in float64, so the window sums of a 0/1 mask are exact integers
for any image size (and those of soft targets carry ~1e-16 relative rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _window_sums(x: torch.Tensor, dim: int, R: int) -> torch.Tensor:
    """sum_{|u - l| <= R} x[u] along ``dim`` with zero padding: one cumsum, two slices.

    x is padded with R + 1 zeros before and R after, so with c its prefix sums
    win[l] = c[l + 2R + 1] - c[l].
    """
    L = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - dim) + [R + 1, R]
    c = torch.cumsum(F.pad(x, pad), dim)
    return c.narrow(dim, 2 * R + 1, L) - c.narrow(dim, 0, L)


def box_band(t, kernel_size, spatial_dims, thr):
    """Same contract as ``kernels.boundary.box_band``; the counts come back as one (1,) row."""
    x = t.to(torch.float64)
    R = kernel_size // 2
    for dim in (3, 2, 1)[:spatial_dims]:
        x = _window_sums(x, dim, R)
    lo, hi = thr.to(torch.float64).unbind(0)
    band = (x >= lo) & (x <= hi)
    return band.to(torch.uint8).contiguous(), band.sum().to(thr.dtype).reshape(1)
