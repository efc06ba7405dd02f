"""Eager float64 references for the distance transform and the surface metrics, by brute force.

Independent of the library: the distance of a pixel to a set is the minimum over every
pixel of the set of the Euclidean norm of the scaled coordinate difference; borders are
foreground pixels with a background (or out-of-image) face neighbour (scipy's
``binary_erosion`` with its default cross structure and border 0, as MONAI uses).
"""

import math

import torch


def _coords(shape, spacing):
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) * sp for s, sp in zip(shape, spacing)],
                           indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)  # (P, d)


def edt_to_set(in_set, spacing):
    """Distance of every pixel to the nearest True pixel of ``in_set`` (one image); inf if none."""
    shape = in_set.shape
    xy = _coords(shape, spacing)
    pts = xy[in_set.reshape(-1).bool()]
    if pts.shape[0] == 0:
        return torch.full(shape, math.inf, dtype=torch.float64)
    d = torch.cdist(xy, pts).amin(dim=1)
    return d.reshape(shape)


def distance_transform(mask, spacing=None):
    """(N, C, *spatial) -> distance to the nearest foreground pixel per slice (inf on empty slices)."""
    nd = mask.dim() - 2
    spacing = (1.0,) * nd if spacing is None else tuple(spacing)
    out = torch.empty(mask.shape, dtype=torch.float64)
    for n in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            out[n, c] = edt_to_set(mask[n, c] != 0, spacing)
    return out


def signed_distance_transform(mask, spacing=None):
    """d_out - d_in per slice, 0 on slices with one class only."""
    a = distance_transform(mask, spacing)
    b = distance_transform((mask == 0).to(torch.uint8), spacing)
    phi = a - b
    phi[torch.isinf(a) | torch.isinf(b)] = 0.0
    return phi


def border(m):
    """Foreground pixels with at least one face neighbour outside the foreground (or the image)."""
    m = m.bool()
    inner = m.clone()
    for ax in range(m.dim()):
        pad = [0, 0] * m.dim()
        pad[2 * (m.dim() - 1 - ax)] = 1
        pad[2 * (m.dim() - 1 - ax) + 1] = 1
        p = torch.nn.functional.pad(m.to(torch.uint8)[None, None], pad[::1])[0, 0].bool()
        n = m.shape[ax]
        inner &= p.narrow(ax, 0, n) & p.narrow(ax, 2, n)
    return m & ~inner


def _directed(a_border, b_border, spacing):
    """Distances of every pixel of ``a_border`` to the nearest pixel of ``b_border``."""
    return edt_to_set(b_border, spacing)[a_border]


def surface_stats(pred, target, spacing=None):
    """Per (n, c): (d_pg, d_gp) lists of directed border distances (float64)."""
    nd = pred.dim() - 2
    spacing = (1.0,) * nd if spacing is None else tuple(spacing)
    out = []
    for n in range(pred.shape[0]):
        row = []
        for c in range(pred.shape[1]):
            bp, bg = border(pred[n, c] != 0), border(target[n, c] != 0)
            row.append((_directed(bp, bg, spacing), _directed(bg, bp, spacing), int(bp.sum()), int(bg.sum())))
        out.append(row)
    return out


def _quantile(v, q):
    """numpy/torch 'linear' percentile of a 1D float64 tensor."""
    s = torch.sort(v).values
    r = q * (s.numel() - 1)
    lo, hi = math.floor(r), math.ceil(r)
    return s[lo] + (s[hi] - s[lo]) * (r - lo)


def hausdorff_distance(pred, target, percentile=None, spacing=None):
    st = surface_stats(pred, target, spacing)
    out = torch.empty(pred.shape[:2], dtype=torch.float64)
    for n, row in enumerate(st):
        for c, (dpg, dgp, np_, ng) in enumerate(row):
            if np_ == 0 and ng == 0:
                out[n, c] = math.nan
            elif np_ == 0 or ng == 0:
                out[n, c] = math.inf
            elif percentile is None:
                out[n, c] = max(dpg.max(), dgp.max())
            else:
                out[n, c] = max(_quantile(dpg, percentile / 100), _quantile(dgp, percentile / 100))
    return out


def surface_distance(pred, target, symmetric=True, spacing=None):
    st = surface_stats(pred, target, spacing)
    out = torch.empty(pred.shape[:2], dtype=torch.float64)
    for n, row in enumerate(st):
        for c, (dpg, dgp, np_, ng) in enumerate(row):
            if np_ == 0 and ng == 0:
                out[n, c] = math.nan
            elif np_ == 0 or ng == 0:
                out[n, c] = math.inf
            elif symmetric:
                out[n, c] = (dpg.sum() + dgp.sum()) / (np_ + ng)
            else:
                out[n, c] = dpg.mean()
    return out


def surface_dice(pred, target, tolerance, spacing=None):
    st = surface_stats(pred, target, spacing)
    out = torch.empty(pred.shape[:2], dtype=torch.float64)
    for n, row in enumerate(st):
        for c, (dpg, dgp, np_, ng) in enumerate(row):
            tau = tolerance[c] if isinstance(tolerance, (list, tuple)) else tolerance
            if np_ == 0 and ng == 0:
                out[n, c] = math.nan
            elif np_ == 0 or ng == 0:
                out[n, c] = 0.0
            else:
                out[n, c] = float((dpg <= tau).sum() + (dgp <= tau).sum()) / (np_ + ng)
    return out
