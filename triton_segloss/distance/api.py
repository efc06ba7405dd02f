"""Public functions of the distance family: exact Euclidean distance transforms of masks."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.validate import check_values_now, finite_float, shape_str

from .ops import DistanceOptions, distance_transform_op

__all__ = ["distance_transform", "signed_distance_transform"]

Spacing = Union[float, Sequence[float], None]


def check_mask(mask: Tensor, name: str = "mask") -> int:
    """Checks a ``(N, C, *spatial)`` mask (1 to 3 spatial dims; bool, uint8 or float 0/1);
    returns the number of spatial dims."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if not (mask.dtype in (torch.bool, torch.uint8) or mask.is_floating_point()):
        raise TypeError(f"{name} must be a bool, uint8 or floating 0/1 mask, got dtype {mask.dtype} "
                        f"with shape {shape_str(mask)}")
    if mask.dim() not in (3, 4, 5):
        raise ValueError(f"{name} must have shape (N, C, *spatial) with 1, 2 or 3 spatial dims, "
                         f"got {shape_str(mask)}")
    if mask.numel() == 0:
        raise ValueError(f"{name} has no pixels: shape {shape_str(mask)}; every dim must be at least 1")
    if mask.is_floating_point() and check_values_now(mask):
        bad = (mask != 0) & (mask != 1)
        if bool(bad.any()):
            v = mask[bad].flatten()[:4].tolist()
            raise ValueError(f"{name} must hold only 0 and 1; found e.g. {v} in {name} of shape {shape_str(mask)}")
    return mask.dim() - 2


def check_spacing(spacing: Spacing, ndim: int, name: str = "spacing") -> tuple[float, ...]:
    """``spacing`` as one positive finite float per spatial dim."""
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, Tensor):
        raise TypeError(f"{name} must be a number or a sequence of {ndim} numbers, not a tensor")
    if isinstance(spacing, (int, float)):
        values = (spacing,) * ndim
    else:
        try:
            values = tuple(spacing)
        except TypeError:
            raise TypeError(f"{name} must be a number or a sequence of {ndim} numbers, got {spacing!r}") from None
        if len(values) != ndim:
            raise ValueError(f"{name} must have one value per spatial dim ({ndim}), got {len(values)}: {spacing!r}")
    out = tuple(finite_float(v, f"{name}[{i}]") for i, v in enumerate(values))
    if not torch.compiler.is_compiling() and any(v <= 0 for v in out):
        raise ValueError(f"{name} values must be positive, got {out}")
    return out


def as_b3(mask: Tensor) -> Tensor:
    """``(N, C, *spatial)`` as ``(N * C, D0, D1, D2)``: size-1 spatial dims padded in front
    (a view whenever the (N, C) dims merge; bool is read as uint8)."""
    if mask.dtype == torch.bool:
        mask = mask.view(torch.uint8)
    n, c, *sp = mask.shape
    return mask.reshape(n * c, *([1] * (3 - len(sp))), *sp)


def edt_b3(mask_b3: Tensor, spacing: tuple[float, ...], ndim: int, signed: bool = False) -> Tensor:
    """The op on an already checked ``(B, D0, D1, D2)`` mask (used by ``triton_segloss.surface``)."""
    sp3 = (1.0,) * (3 - ndim) + tuple(spacing)
    return distance_transform_op(mask_b3.detach(), DistanceOptions(spacing=sp3, ndim=ndim, signed=signed))


def distance_transform(mask: Tensor, *, spacing: Spacing = None) -> Tensor:
    """Exact Euclidean distance of every pixel to the nearest foreground (nonzero) pixel.

    Every ``(n, c)`` slice is its own image. Foreground pixels get 0; distances are in
    units of ``spacing`` (anisotropic voxels). Per slice with some foreground this equals
    ``scipy.ndimage.distance_transform_edt(1 - mask, sampling=spacing)`` (scipy measures
    the distance of nonzero pixels to zero pixels: the opposite convention).

    A slice with no foreground at all gets ``inf`` everywhere (there is no nearest
    foreground pixel; scipy has no such value).

    Args:
        mask: ``(N, C, *spatial)`` with 1, 2 or 3 spatial dims; bool, uint8, or float holding 0/1
            (checked where value checks may run). Any strides.
        spacing: ``None`` (1 per dim), a positive float, or one positive float per spatial dim.

    Returns ``(N, C, *spatial)`` float32 (float64 for a float64 mask), never requiring grad
    (the transform of a mask has no gradient). Exact: squared distances are computed
    exactly up to one rounding per pass, then one square root.
    """
    ndim = check_mask(mask)
    sp = check_spacing(spacing, ndim)
    return edt_b3(as_b3(mask), sp, ndim).view(mask.shape)


def signed_distance_transform(mask: Tensor, *, spacing: Spacing = None) -> Tensor:
    """Signed distance ``phi = d_out - d_in``: negative inside, positive outside.

    ``d_out`` is the distance of a background pixel to the nearest foreground pixel (0 on
    the foreground), ``d_in`` the distance of a foreground pixel to the nearest background
    pixel (0 on the background), both exact Euclidean in units of ``spacing``::

        phi = distance_transform(mask) - distance_transform(1 - mask)
            = edt(1 - m) - edt(m)          (scipy.ndimage.distance_transform_edt, per slice)

    so a foreground pixel touching the background has ``phi = -1`` and a background pixel
    touching the foreground ``phi = +1`` (unit spacing); no pixel gets 0 when both classes
    are present. This is the level set of Kervadec et al.'s boundary loss (2019).

    A slice that is all background or all foreground has no boundary: ``phi = 0`` everywhere
    there (its boundary-loss term vanishes).

    Arguments and result as :func:`distance_transform`.
    """
    ndim = check_mask(mask)
    sp = check_spacing(spacing, ndim)
    return edt_b3(as_b3(mask), sp, ndim, signed=True).view(mask.shape)
