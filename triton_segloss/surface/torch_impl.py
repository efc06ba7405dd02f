"""PyTorch path of the surface family: the same function and contract as ``kernels.py``.

Borders by shifted comparisons (a foreground pixel whose face neighbours, with zero
padding, are not all foreground), the exact distance transform of the stacked borders
(``triton_segloss.distance``'s PyTorch path), then per-row masked reductions; the
percentile is a sort of the +inf-padded per-row distances and torch's linear
interpolation (``lerp``) at rank ``q (n - 1)``, as ``torch.quantile`` does it.
"""

from __future__ import annotations

import struct

import torch

from triton_segloss._core.cache import device_values
from triton_segloss._core.validate import acc_dtype
from triton_segloss.distance import torch_impl as edt_impl
from triton_segloss.distance.ops import DistanceOptions

_INF = float("inf")


def _border(m, ndim):
    """(B, D0, D1, D2) bool -> its border (scipy erosion with the cross structure, border 0, XOR)."""
    inner = m.clone()
    for ax in range(4 - ndim, 4):
        n = m.shape[ax]
        pad = [0] * 8
        pad[2 * (3 - ax)] = pad[2 * (3 - ax) + 1] = 1
        p = torch.nn.functional.pad(m, pad)
        inner &= p.narrow(ax, 0, n) & p.narrow(ax, 2, n)
    return m & ~inner


def _quantile(vals, cnt, q, acc):
    """Linear-interpolation quantile of the first ``cnt`` (sorted) entries of every row."""
    s = vals.sort(dim=-1).values
    if acc == torch.float32:  # torch.quantile takes q in the input's dtype; an fp32 product of fp32 values
        q = struct.unpack("f", struct.pack("f", q))[0]  # rounds the same whether formed in fp32 or fp64
    rank = (cnt.to(acc) - 1).clamp_min(0) * q  # no host tensor: no H2D copy
    lo = rank.floor().long().clamp_max(s.shape[-1] - 1)
    hi = rank.ceil().long().clamp_max(s.shape[-1] - 1)
    a = s.gather(-1, lo[:, None])[:, 0]
    b = s.gather(-1, hi[:, None])[:, 0]
    return torch.lerp(a, b, rank - lo.to(acc))


def surface_metric(pred, target, o):
    """(B, D0, D1, D2) masks -> (B,) metric per row (see ``api`` for the definitions and empties)."""
    return _metric_with(pred, target, o, edt_impl.edt)


def _metric_with(pred, target, o, edt):
    """``surface_metric`` with the distance transform ``edt`` (this path's, or the Triton kernels')."""
    acc = acc_dtype(pred.dtype)
    B = pred.shape[0]
    ep, eg = _border(pred != 0, o.ndim), _border(target != 0, o.ndim)
    edges = torch.cat([ep, eg]).to(torch.uint8)
    dt = edt(edges.to(acc) if acc == torch.float64 else edges,
                      DistanceOptions(spacing=o.spacing, ndim=o.ndim, signed=False))
    ep, eg = ep.reshape(B, -1), eg.reshape(B, -1)
    to_p, to_g = dt[:B].reshape(B, -1), dt[B:].reshape(B, -1)  # distance to the pred / target border
    cp, cg = ep.sum(1), eg.sum(1)
    none_both = (cp == 0) & (cg == 0)
    one_empty = (cp == 0) ^ (cg == 0)
    if o.metric == "hausdorff":
        if o.percentile is None:
            hp = torch.where(ep, to_g, -_INF).amax(1)
            hg = torch.where(eg, to_p, -_INF).amax(1)
        else:
            q = o.percentile / 100.0
            hp = _quantile(torch.where(ep, to_g, _INF), cp, q, acc)
            hg = _quantile(torch.where(eg, to_p, _INF), cg, q, acc)
        val = torch.maximum(hp, hg)
        empty = _INF
    elif o.metric == "asd":
        sp = torch.where(ep, to_g, 0.0).sum(1, dtype=torch.float64)
        if o.symmetric:
            sg = torch.where(eg, to_p, 0.0).sum(1, dtype=torch.float64)
            val = ((sp + sg) / (cp + cg).clamp_min(1)).to(acc)
        else:
            val = (sp / cp.clamp_min(1)).to(acc)
        empty = _INF
    else:
        tol = device_values(o.tolerance, pred.device, acc).repeat(B // o.channels)
        good = ((ep & (to_g <= tol[:, None])).sum(1) + (eg & (to_p <= tol[:, None])).sum(1)).to(torch.float64)
        val = (good / (cp + cg).clamp_min(1)).to(acc)
        empty = 0.0
    val = torch.where(one_empty, empty, val)
    return torch.where(none_both, float("nan"), val)
