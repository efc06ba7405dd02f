"""PyTorch path of the boundary family: the same functions and contract as ``kernels.py``.

Window sums come from prefix sums (``cumsum``) along each spatial axis, differenced at
``l + R`` and ``l - R - 1``: a pad, a cumsum and a subtraction per axis whatever the kernel
size. The prefix sums run in float64, so the window sums of a 0/1 mask are exact integers
for any image size (and those of soft targets carry ~1e-16 relative rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from triton_segloss._core.validate import acc_dtype


def _window_sums(x: torch.Tensor, dim: int, R: int) -> torch.Tensor:
    """sum_{|u - l| <= R} x[u] along ``dim`` with zero padding: one cumsum, two slices.

    x is padded with R + 1 zeros before and R after, so with c its prefix sums
    win[l] = c[l + 2R + 1] - c[l].
    """
    L = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - dim) + [R + 1, R]
    c = torch.cumsum(F.pad(x, pad), dim)
    return c.narrow(dim, 2 * R + 1, L) - c.narrow(dim, 0, L)


def _band(t4: torch.Tensor, box, spatial_dims: int) -> torch.Tensor:
    """Boolean band of seed 001's avg-pool test on ``t4`` (M, D, H, W)."""
    k, s_lo, s_hi = box
    x = t4.to(torch.float64)
    for dim in (3, 2, 1)[:spatial_dims]:
        x = _window_sums(x, dim, k // 2)
    return (x >= s_lo) & (x <= s_hi)


def _scales(band: torch.Tensor, boundary_weight: float, wacc: torch.dtype):
    """(lo, hi): seed 001's normalised weights outside / inside the band, rounded as it rounds them."""
    count = band.sum().to(torch.float64)
    numel = float(band.numel())
    w1 = (numel + (boundary_weight - 1.0) * count).to(wacc)
    lo = torch.div(torch.ones((), dtype=wacc, device=band.device), w1) * numel
    hi = torch.div(torch.full((), boundary_weight, dtype=wacc, device=band.device), w1) * numel
    return lo, hi


def _mdhw(t, spatial_dims):
    return t if spatial_dims == 2 else t[:, 0]


def weight_map(t, box, o):
    """Same contract as ``kernels.weight_map``."""
    wacc = acc_dtype(t.dtype)
    band = _band(t, box, o.spatial_dims)
    if o.normalize:
        lo, hi = _scales(band, o.boundary_weight, wacc)
    else:
        lo = torch.ones((), dtype=wacc, device=t.device)
        hi = torch.full((), o.boundary_weight, dtype=wacc, device=t.device)
    return torch.where(band, hi, lo).contiguous()


def forward(x, t, box, o):
    """Same contract as ``kernels.forward``."""
    sd = x.dim() - 2
    acc = acc_dtype(x.dtype)
    xa, ta = x.to(acc), t.to(acc)
    if o.weighted:
        b = _band(_mdhw(t, sd), box, sd).reshape(x.shape)
        lo, hi = (v.to(acc) for v in _scales(b, o.boundary_weight, acc_dtype(t.dtype)))
        w = torch.where(b, hi, lo)
        band = b.to(torch.uint8).contiguous()
    else:
        lo = hi = w = torch.ones((), dtype=acc, device=x.device)
        band = torch.empty((0,), dtype=torch.uint8, device=x.device)
    n, numel, dims = x.shape[0], x.numel(), tuple(range(1, x.dim()))
    p = torch.sigmoid(xa)
    l = xa.clamp_min(0) - xa * ta + torch.log1p(torch.exp(-xa.abs()))
    bce = (w * l).sum() / numel
    w2 = w * w
    den = (w2 * p).sum(dims) + (w2 * ta).sum(dims) + 1.0
    score = (2.0 * (w2 * p * ta).sum(dims) + 2.0) / den
    mean = score.mean()
    dice = 1.0 - mean
    if o.log_dice:
        loss, d_dice = bce - torch.log(mean), 1.0 / mean
    else:
        loss, d_dice = bce + dice, torch.ones_like(mean)
    per_image = torch.stack([-2.0 / (n * den), score / (n * den)], 1).reshape(-1)
    coef = torch.cat([torch.stack([lo / numel, hi / numel, d_dice, lo * lo, hi * hi]), per_image])
    return loss, bce, dice, coef, band


def backward(g_loss, g_bce, g_dice, coef, band, x, t, o):
    """Same contract as ``kernels.backward``."""
    acc = acc_dtype(x.dtype)
    xa, ta = x.to(acc), t.to(acc)
    zero = torch.zeros((), dtype=acc, device=x.device)
    gb = (zero if g_loss is None else g_loss.to(acc)) + (zero if g_bce is None else g_bce.to(acc))
    gd = (zero if g_loss is None else g_loss.to(acc) * coef[2]) + (zero if g_dice is None else g_dice.to(acc))
    if o.weighted:
        b = band.view(torch.bool)
        wb, w2 = torch.where(b, coef[1], coef[0]), torch.where(b, coef[4], coef[3])
    else:
        wb, w2 = coef[0], coef[3]
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    c, e = coef[5::2].view(shape), coef[6::2].view(shape)
    p = torch.sigmoid(xa)
    dx = gb * wb * (p - ta) + gd * w2 * (c * ta + e) * (p * (1.0 - p))
    return torch.empty_like(x).copy_(dx)
