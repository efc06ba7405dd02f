"""Public functions of the surface family: Hausdorff distance, average surface distance and
normalised surface Dice of binary masks, per (n, c), on the device (no host sync, no loop
over n and c).

Definitions shared by the three (MONAI's, ``monai.metrics``, with ``use_subvoxels=False``):

* the border of a mask is its foreground pixels that have a face neighbour (4-connectivity
  in 2D, 6 in 3D, 2 in 1D) outside the foreground, the outside of the image counting as
  background: ``mask XOR binary_erosion(mask)`` with scipy's default cross structure. (MONAI
  crops to the foreground's bounding box with a margin of 1 first; that changes nothing.)
* ``d_pg``: for every pixel of the prediction's border, the exact Euclidean distance (in
  units of ``spacing``) to the nearest pixel of the target's border; ``d_gp`` the other way.
* an empty border is an empty mask. Both empty: ``nan`` (the metric is undefined). One
  empty: ``inf`` for the distances, ``0`` for the surface Dice.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.validate import finite_float, shape_str
from triton_segloss.distance.api import Spacing, as_b3, check_mask, check_spacing

from .ops import SurfaceOptions, surface_metric_op

__all__ = ["hausdorff_distance", "surface_distance", "surface_dice"]


def _pair(pred, target, include_background):
    nd = check_mask(pred, "pred")
    check_mask(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got pred {shape_str(pred)} "
                         f"and target {shape_str(target)}")
    if pred.device != target.device:
        raise ValueError(f"target is on {target.device} but pred is on {pred.device}; move them to the same device")
    if not include_background:
        if pred.shape[1] < 2:
            raise ValueError(f"include_background=False drops channel 0, but pred {shape_str(pred)} has C = "
                             f"{pred.shape[1]}; pass include_background=True for a single channel")
        pred, target = pred[:, 1:], target[:, 1:]
    return pred, target, nd


def _run(pred, target, opts, nd, spacing):
    n, c = pred.shape[:2]
    sp3 = (1.0,) * (3 - nd) + spacing
    o = opts._replace(spacing=sp3, ndim=nd, channels=c)
    return surface_metric_op(as_b3(pred.detach()), as_b3(target.detach()), o).view(n, c)


def hausdorff_distance(pred: Tensor, target: Tensor, *, percentile: Optional[float] = None, spacing: Spacing = None,
                       include_background: bool = True) -> Tensor:
    """Symmetric Hausdorff distance ``max(max d_pg, max d_gp)`` per (n, c), or with ``percentile``
    ``max(P(d_pg), P(d_gp))`` where ``P`` is the linear-interpolation percentile (numpy's and
    ``torch.quantile``'s default) of each direction's distances: HD95 is ``percentile=95``.

    Equal to ``monai.metrics.compute_hausdorff_distance(pred, target, percentile=...,
    include_background=..., spacing=...)``. Differences: the default keeps the background
    channel (``include_background=True``); ``percentile=0`` is the 0th percentile (the
    minimum of each direction), where MONAI treats 0 like ``None`` (the maximum); with a
    percentile and exactly one empty mask the result is ``inf``, where MONAI returns ``nan``
    (its ``torch.quantile`` of all-inf distances interpolates inf - inf).

    Args:
        pred, target: ``(N, C, *spatial)`` masks (1 to 3 spatial dims; bool, uint8 or float 0/1;
            one-hot or multilabel: every channel is its own binary mask).
        percentile: ``None`` or a number in [0, 100].
        spacing: ``None``, a positive float or one per spatial dim.
        include_background: ``False`` drops channel 0 (C - 1 columns).

    Returns ``(N, C)`` float32 (float64 for float64 ``pred``): ``nan`` where both masks are
    empty, ``inf`` where one is. CUDA path: no host sync; the distance transform is one
    Triton launch per spatial axis, the borders and per-row reductions are still a few
    dozen torch ops (not yet fused; see ``kernels.py``), plus a sort with ``percentile``.
    """
    pred, target, nd = _pair(pred, target, include_background)
    sp = check_spacing(spacing, nd)
    if percentile is not None:
        percentile = finite_float(percentile, "percentile")
        if not torch.compiler.is_compiling() and not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return _run(pred, target, SurfaceOptions(metric="hausdorff", percentile=percentile), nd, sp)


def surface_distance(pred: Tensor, target: Tensor, *, symmetric: bool = True, spacing: Spacing = None,
                     include_background: bool = True) -> Tensor:
    """Average surface distance per (n, c): with ``symmetric`` (ASSD) the mean of all distances
    of both directions, ``(sum d_pg + sum d_gp) / (|border_p| + |border_g|)``; otherwise the mean
    of ``d_pg`` (prediction to target).

    Equal to ``monai.metrics.compute_average_surface_distance(..., symmetric=...)`` (whose
    default is ``symmetric=False``, ``include_background=False``). Empty masks: ``nan`` when
    both are empty, ``inf`` when one is. Arguments, result and launches as
    :func:`hausdorff_distance` (never a sort).
    """
    pred, target, nd = _pair(pred, target, include_background)
    sp = check_spacing(spacing, nd)
    return _run(pred, target, SurfaceOptions(metric="asd", symmetric=bool(symmetric)), nd, sp)


def surface_dice(pred: Tensor, target: Tensor, *, tolerance: Union[float, Sequence[float]], spacing: Spacing = None,
                 include_background: bool = True) -> Tensor:
    """Normalised surface Dice (Nikolov et al. 2021) per (n, c): the fraction of both borders'
    pixels lying within ``tolerance`` of the other border,
    ``(#{d_pg <= tau} + #{d_gp <= tau}) / (|border_p| + |border_g|)``.

    Equal to ``monai.metrics.compute_surface_dice(..., class_thresholds=tolerance)`` with
    ``use_subvoxels=False`` (a border's size is its pixel count). ``tolerance``: one
    non-negative number for every channel, or one per evaluated channel (C, or C - 1 with
    ``include_background=False``, as MONAI's ``class_thresholds``), in units of ``spacing``.
    Both masks empty: ``nan``; one empty: ``0``. Launches as :func:`surface_distance`.
    """
    pred, target, nd = _pair(pred, target, include_background)
    sp = check_spacing(spacing, nd)
    c = pred.shape[1]
    if isinstance(tolerance, Tensor):
        raise TypeError("tolerance must be a number or a sequence of numbers, not a tensor")
    if isinstance(tolerance, (int, float)):
        tol = (finite_float(tolerance, "tolerance"),) * c
    else:
        try:
            tol = tuple(finite_float(t, f"tolerance[{i}]") for i, t in enumerate(tolerance))
        except TypeError:
            raise TypeError(f"tolerance must be a number or a sequence of numbers, got {tolerance!r}") from None
        if len(tol) != c:
            raise ValueError(f"tolerance must have one value per evaluated channel ({c}), got {len(tol)}")
    if not torch.compiler.is_compiling() and any(t < 0 for t in tol):
        raise ValueError(f"tolerance values must be >= 0, got {tol}")
    return _run(pred, target, SurfaceOptions(metric="nsd", tolerance=tol), nd, sp)
