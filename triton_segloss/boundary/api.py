"""Public functions of the boundary family: seed 001's boundary weights and its boundary-weighted
BCE + soft Dice."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from triton_segloss._core.validate import binary_target_ncs, check_binary_values, check_logits, finite_float, \
    shape_str

from .ops import BoundaryBCEDiceOptions, WeightMapOptions, boundary_bce_dice, weight_map

__all__ = ["boundary_weight_map", "boundary_bce_dice_loss"]


def _spatial_dims(target: Tensor, spatial_dims: Optional[int]) -> int:
    if spatial_dims is None:
        spatial_dims = 2 if target.dim() <= 4 else 3
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if target.dim() < spatial_dims + 1:
        raise ValueError(
            f"target must have shape (N, *spatial) or (N, C, *spatial) with {spatial_dims} spatial dims, "
            f"got {shape_str(target)}"
        )
    return spatial_dims


def _kernel_size(kernel_size) -> Optional[int]:
    """The checked kernel size; ``None`` stays ``None`` (the op picks it from the height)."""
    if kernel_size is None:
        return None
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an odd int or None, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd int (avg_pool's padding k // 2 centres it), got {kernel_size}"
        )
    return kernel_size


def boundary_weight_map(
    target: Tensor,
    kernel_size: Optional[int] = None,
    *,
    low: float = 0.01,
    high: float = 0.99,
    boundary_weight: float = 3.0,
    normalize: bool = True,
    spatial_dims: Optional[int] = None,
) -> Tensor:
    """Seed 001's boundary weights: pixels whose k-box mean of the mask lies in [low, high] weigh more.

    Exactly the seed's computation, generalised::

        a   = avg_pool(target, k, stride=1, padding=k // 2)    (count_include_pad: divisor k^d)
        ind = a >= low and a <= high                            (compared in the target's dtype)
        w   = 1 + (boundary_weight - 1) * ind
        w   = w / sum(w) * numel     if normalize               (one sum over the whole tensor)

    computed as exact window sums (a separable box filter whose cost per pixel does not
    depend on k) tested against thresholds that reproduce avg_pool's rounded mean bit for bit
    (see ``boundary/ops.py``), so ``ind`` equals the seed's for 0/1 masks, and ``w`` equals
    the seed's weights up to the rounding of ``sum(w)`` past 2^24.

    Args:
        target: mask ``(N, *spatial)`` or ``(N, C, *spatial)``; float (the seed's case), bool or
            integer (treated as float32, as avg_pool would need). Each leading index is its own
            image; the box never crosses images or channels. Soft targets in [0, 1] are accepted:
            their window sums are computed in float32 (float64 for float64 targets; float64 on
            the PyTorch path) and may differ from avg_pool's by summation rounding, so a pixel
            whose mean lies within that rounding of ``low``/``high`` can land on either side.
        kernel_size: odd box width k; None picks :func:`~triton_segloss.boundary.ops.default_kernel_size`
            of the height (the second-to-last dim): seed 001's table for its heights, a documented
            rule for every other height (never an error).
        low, high: the band on the box mean, inclusive (the seed's ``ge``/``le``).
        boundary_weight: weight of band pixels before normalisation (the seed's 1 + 2).
        normalize: rescale so the weights sum to the number of elements (seed 001).
        spatial_dims: 2 (``avg_pool2d``) or 3 (``avg_pool3d``); default 2 for targets with up
            to 4 dims, 3 for 5-dim ``(N, C, D, H, W)`` targets.

    Returns float32 weights (float64 for a float64 target) shaped like ``target``. Not
    differentiable (it reads the target only); a custom op, so ``torch.compile`` traces it.

    Example:
        >>> t = torch.zeros(1, 1, 8, 8); t[..., 2:6, 2:6] = 1
        >>> w = boundary_weight_map(t, 3)
        >>> w.shape, bool(w.max() > w.min())
        (torch.Size([1, 1, 8, 8]), True)
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.is_complex():
        raise TypeError(f"target must be a real mask (float, bool or integer), got dtype {target.dtype}")
    sd = _spatial_dims(target, spatial_dims)
    if target.numel() == 0:
        raise ValueError(f"target is empty: shape {shape_str(target)}")
    opts = WeightMapOptions(
        kernel_size=_kernel_size(kernel_size), spatial_dims=sd, low=finite_float(low, "low"),
        high=finite_float(high, "high"), boundary_weight=finite_float(boundary_weight, "boundary_weight"),
        normalize=bool(normalize),
    )
    check_binary_values(target, None)
    t = target.detach()
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    spatial = tuple(t.shape[-sd:])
    t4 = t.reshape(-1, 1, *spatial) if sd == 2 else t.reshape(-1, *spatial)
    return weight_map(t4, opts).view(target.shape)


def _bce_dice_terms(logits: Tensor, target: Tensor, kernel_size: Optional[int], weighted: bool,
                    log_dice: bool, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, bce, dice) of seed 001's CombinedLoss from one fused op (checks included)."""
    check_logits(logits)
    if logits.shape[1] != 1:
        raise ValueError(f"{name} needs binary logits (N, 1, *spatial), got logits {shape_str(logits)}")
    if logits.dim() not in (4, 5):
        raise ValueError(f"logits must be (N, 1, H, W) or (N, 1, D, H, W), got {shape_str(logits)}")
    binary_target_ncs(logits, target)  # shape, dtype and device checks
    check_binary_values(target, None)
    opts = BoundaryBCEDiceOptions(kernel_size=_kernel_size(kernel_size), weighted=bool(weighted),
                                  log_dice=bool(log_dice))
    t = target.reshape(logits.shape)
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    loss, bce, dice, _, _ = boundary_bce_dice(logits, t, opts)
    return loss, bce, dice


def boundary_bce_dice_loss(
    logits: Tensor,
    target: Tensor,
    kernel_size: Optional[int] = None,
    *,
    log_dice: bool = False,
) -> Tensor:
    """Seed 001's ``CombinedLoss`` (``is_weight=True``): boundary-weighted BCE + soft Dice.

    With w = :func:`boundary_weight_map` of the target (normalised: sum(w) = number of pixels),
    p = sigmoid(logits), per image n::

        bce  = sum(w * BCE(x, t)) / sum(w)                      (WeightedBCELoss2d)
        dice = 1 - mean_n (2 sum(w^2 p t) + 2) / (sum(w^2 p) + sum(w^2 t) + 1)   (WeightedSoftDiceLoss)
        loss = bce + dice,   or  bce - log(1 - dice)  with log_dice

    The weights, both terms and the gradient come from four kernel launches in all (window
    sums, one fused pass over the logits, a finisher, one backward pass); sum(w) is taken as
    the number of pixels, which the normalisation makes it up to rounding.

    Args:
        logits: ``(N, 1, *spatial)`` binary logits, 2D or 3D.
        target: 0/1 mask ``(N, 1, *spatial)`` or ``(N, *spatial)`` (soft values accepted, see
            :func:`boundary_weight_map`).
        kernel_size: box width; None picks seed 001's table /
            :func:`~triton_segloss.boundary.ops.default_kernel_size` of the height.
        log_dice: ``bce - log(1 - dice)`` instead of ``bce + dice`` (the seed's ``is_log_dice``).

    Returns the loss (0-d) in float32 (float64 for float64 logits); the gradient flows to the
    logits only.

    Example:
        >>> x = torch.zeros(1, 1, 8, 8); t = torch.zeros(1, 1, 8, 8); t[..., 2:6, 2:6] = 1
        >>> loss = boundary_bce_dice_loss(x, t, 3)
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """
    return _bce_dice_terms(logits, target, kernel_size, True, log_dice, "boundary_bce_dice_loss")[0]
