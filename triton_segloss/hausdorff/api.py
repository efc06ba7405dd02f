"""Distance-map losses: the Hausdorff distance-transform loss (Karimi & Salcudean 2019), the
boundary loss (Kervadec et al. 2019) and the scheduled region + boundary combination.

Both losses weigh each pixel by constant distance maps (no gradient flows through them),
computed on the device by the ``distance`` family's exact EDT from thresholded masks.
The pixel pass is one custom op (``triton_segloss::distance_weighted``, ``ops.py``):
a forward kernel that reads the logits once (probabilities, the pixel term and the
partial sums), a one-program finisher and a backward kernel. The distance maps add the
EDT's launches and the mask preparation (see each function).

Conventions shared by the family:

* ``mode="binary"``: sigmoid of ``(N, 1, *spatial)`` logits, a mask target;
  ``"multilabel"``: sigmoid per channel, an ``(N, C, *spatial)`` mask;
  ``"multiclass"``: softmax over C, integer labels ``(N, *spatial)`` (the one-hot channels
  exist only in registers in the loss kernels; the EDT's input masks are bool maps).
* Target masks are ``target > 0.5``; ``from_logits=False`` takes probabilities.
* ``include_background=False`` drops channel 0 when C > 1 (MONAI's rule; C == 1 keeps it).
* A row is one (image, class); its value is the mean over its pixels. ``"mean"`` averages the
  kept rows, ``"sum"`` adds them (``per_image=False``: the rows of the pooled batch, i.e. the
  per-image rows divided by N), ``"none"`` returns ``(N, K)`` (``per_image=True``) or ``(1, K)``.
* Losses come back in float32 (float64 for float64 logits); the gradient has the logits'
  dtype and layout.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_binary_values, check_label_values, check_logits, check_probabilities,
    check_reduction, finite_float, multiclass_target_ns, shape_str,
)

from .ops import DistanceLossOptions, distance_weighted

__all__ = ["hausdorff_dt_loss", "boundary_loss", "dice_boundary_loss", "BoundaryLossSchedule"]

MODES = ("binary", "multiclass", "multilabel")
REGIONS = ("generalized_dice", "dice")


def _edt(mask: Tensor, spacing) -> Tensor:
    """Distance of every pixel of ``mask`` (N, C, *spatial) to its nearest True pixel (0 on it,
    inf where a slice has none): the ``distance`` family's exact EDT."""
    from triton_segloss.distance.api import distance_transform

    return distance_transform(mask, spacing=spacing)


def _check_mode(mode: str, logits: Tensor) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "binary" and logits.shape[1] != 1:
        raise ValueError(
            f"mode='binary' needs logits with one channel, got logits {shape_str(logits)}; "
            f"use mode='multilabel' (sigmoid per channel) or mode='multiclass' (softmax)"
        )
    if logits.dim() < 3:
        raise ValueError(f"logits must have shape (N, C, *spatial) with at least one spatial dim, "
                         f"got {shape_str(logits)}")


def _prepare(logits: Tensor, target: Tensor, mode: str, from_logits: bool, want_mask: bool = True):
    """Checks; returns (t for the op, the target's bool mask (N, C, *spatial), or None)."""
    check_logits(logits)
    _check_mode(mode, logits)
    n, c = logits.shape[:2]
    spatial = tuple(logits.shape[2:])
    if mode == "multiclass":
        t = multiclass_target_ns(logits, target)
        check_label_values(target, c, None)
        mt = None
        if want_mask:
            cls = torch.arange(c, device=logits.device).view((1, c) + (1,) * len(spatial))
            mt = t.view((n, 1) + spatial) == cls
    else:
        t = binary_target_ncs(logits, target)
        check_binary_values(target, None)
        mt = t.view((n, c) + spatial) > 0.5 if want_mask else None
    if not from_logits:
        check_probabilities(logits)
    return t, mt


def _pred_mask(logits: Tensor, mode: str, from_logits: bool) -> Tensor:
    """The prediction's mask p > 0.5 (sigmoid: x > 0, which is p > 0.5 in exact arithmetic)."""
    if not from_logits:
        return logits.detach() > 0.5
    if mode == "multiclass":
        return torch.softmax(logits.detach(), dim=1) > 0.5
    return logits.detach() > 0


def _alpha(alpha) -> float:
    a = finite_float(alpha, "alpha")
    if not torch.compiler.is_compiling() and a < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return a


def _fields_of(masks: Sequence[Tensor], spacing, logits: Tensor) -> list[Tensor]:
    """Each mask's DT(m) and DT(~m), from one EDT call on the stacked masks (float64 fields for
    float64 logits: the EDT returns the mask's float dtype, float32 for a bool mask)."""
    c = masks[0].shape[1]
    stack = torch.cat([m for mk in masks for m in (mk, ~mk)], dim=1)
    if logits.dtype == torch.float64:
        stack = stack.to(torch.float64)
    d = _edt(stack, spacing)
    return [d[:, i * c:(i + 1) * c] for i in range(2 * len(masks))]


def _op(logits, t, fa, fb, opts):
    n, c = logits.shape[:2]
    return distance_weighted(as_ncs(logits, n, c), t, as_ncs(fa, n, c), as_ncs(fb, n, c), opts)


def _hausdorff_from_fields(logits: Tensor, target: Tensor, pred_field: Tensor, target_field: Tensor, *,
                           mode: str = "binary", alpha: float = 2.0, include_background: bool = False,
                           per_image: bool = False, from_logits: bool = True, reduction: str = "mean") -> Tensor:
    """``hausdorff_dt_loss`` with the two distance fields given (``(N, C, *spatial)`` each;
    ``inf`` reads as 0). Tests and users who precompute the target's field use it."""
    check_reduction(reduction)
    t, _ = _prepare(logits, target, mode, from_logits, want_mask=False)
    opts = DistanceLossOptions(kind="hausdorff", multiclass=mode == "multiclass", from_logits=bool(from_logits),
                               alpha=_alpha(alpha), skip_background=not include_background,
                               per_image=bool(per_image), reduction=reduction)
    return _op(logits, t, pred_field, target_field, opts)


def hausdorff_dt_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    alpha: float = 2.0,
    include_background: bool = False,
    per_image: bool = False,
    from_logits: bool = True,
    spacing: Optional[Sequence[float]] = None,
    reduction: str = "mean",
) -> Tensor:
    """One-sided distance-transform Hausdorff loss (Karimi & Salcudean 2019), MONAI's
    ``HausdorffDTLoss`` semantics. Per pixel of each kept (image, class)::

        l = (p - t)^2 * (d_p^alpha + d_t^alpha)

    with ``d_m = DT(m) + DT(~m)`` the distance of each pixel to the nearest pixel on the other
    side of mask m (the prediction's ``p > 0.5`` and the target's ``t > 0.5``), and ``d_m = 0``
    where m is empty or full in that image and class. The fields are constants (no gradient).

    Args:
        logits: ``(N, C, *spatial)`` (at least one spatial dim), float16/bfloat16/float32/float64.
        target: binary: ``(N, 1, *spatial)`` or ``(N, *spatial)`` mask; multilabel: a mask shaped
            like ``logits``; multiclass: integer labels ``(N, *spatial)``.
        mode: ``"binary"``, ``"multiclass"`` (softmax) or ``"multilabel"`` (sigmoid per channel).
        alpha: the distance exponent (>= 0; MONAI's default 2).
        include_background: False drops channel 0 when C > 1.
        per_image: for ``"none"``: ``(N, K)`` rows per image (MONAI ``batch=False``) instead of the
            pooled ``(1, K)`` (``batch=True``); for ``"sum"``: the per-image rows summed instead of
            the pooled rows. ``"mean"`` is the same either way.
        from_logits: False when ``logits`` already hold probabilities.
        spacing: pixel spacing per spatial dim for the EDT (default 1).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (MONAI's ``(N, K, 1, ...)`` without the
            trailing ones).

    Launches on the CUDA path: the op's 3 (forward, finisher, backward), plus the masks
    (a compare each, a softmax for multiclass, one cat), one EDT call on the stacked
    ``[m_p, ~m_p, m_t, ~m_t]`` and two adds for the fields. No host sync.
    """
    check_reduction(reduction)
    t, mt = _prepare(logits, target, mode, from_logits)
    mp = _pred_mask(logits, mode, from_logits)
    a, na, b, nb = _fields_of([mp, mt], None if spacing is None else tuple(float(v) for v in spacing), logits)
    opts = DistanceLossOptions(kind="hausdorff", multiclass=mode == "multiclass", from_logits=bool(from_logits),
                               alpha=_alpha(alpha), skip_background=not include_background,
                               per_image=bool(per_image), reduction=reduction)
    return _op(logits, t, a + na, b + nb, opts)


def _boundary_from_fields(logits: Tensor, target: Tensor, dist_to_target: Tensor, dist_to_complement: Tensor, *,
                          mode: str = "multiclass", include_background: bool = False, per_image: bool = False,
                          from_logits: bool = True, reduction: str = "mean") -> Tensor:
    """``boundary_loss`` with the target's two distance maps given (``inf`` where a class is empty)."""
    check_reduction(reduction)
    t, _ = _prepare(logits, target, mode, from_logits, want_mask=False)
    opts = DistanceLossOptions(kind="boundary", multiclass=mode == "multiclass", from_logits=bool(from_logits),
                               skip_background=not include_background, per_image=bool(per_image),
                               reduction=reduction)
    return _op(logits, t, dist_to_target, dist_to_complement, opts)


def boundary_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "multiclass",
    include_background: bool = False,
    per_image: bool = False,
    from_logits: bool = True,
    spacing: Optional[Sequence[float]] = None,
    reduction: str = "mean",
) -> Tensor:
    """Boundary loss (Kervadec et al. 2019): the mean over pixels of ``p * phi_G`` per kept class.

    ``phi_G`` is the target's signed distance map as in the paper's code
    (``edt(neg) * neg - (edt(pos) - 1) * pos``): outside the object it is the distance to the
    nearest object pixel (>= 1), inside it is ``1 - (distance to the nearest background pixel)``
    (<= 0; 0 on the object's border pixels). A class absent from an image's target has
    ``phi = 0`` there (the paper's code), and so has a class that fills the whole image
    (no boundary). The loss is minimised by predicting the object (negative phi) and nothing
    outside it; it can be negative. No gradient flows through phi.

    Args and reductions as :func:`hausdorff_dt_loss` (default ``mode="multiclass"``, and
    ``include_background=False`` keeps the paper's foreground classes).

    Launches on the CUDA path: the op's 3, the mask (a compare, an arange for multiclass),
    one cat and one EDT call on ``[m_t, ~m_t]``. No host sync.
    """
    check_reduction(reduction)
    t, mt = _prepare(logits, target, mode, from_logits)
    fa, fb = _fields_of([mt], None if spacing is None else tuple(float(v) for v in spacing), logits)
    opts = DistanceLossOptions(kind="boundary", multiclass=mode == "multiclass", from_logits=bool(from_logits),
                               skip_background=not include_background, per_image=bool(per_image),
                               reduction=reduction)
    return _op(logits, t, fa, fb, opts)


def dice_boundary_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "multiclass",
    alpha: float,
    region: str = "generalized_dice",
    include_background: bool = False,
    from_logits: bool = True,
    spacing: Optional[Sequence[float]] = None,
) -> Tensor:
    """``(1 - alpha) * region + alpha * boundary``: the rebalancing schedule of Kervadec et al.
    (the journal version, MedIA 2021): the region loss alone at first, the boundary loss's weight
    ``alpha`` raised each epoch (:class:`BoundaryLossSchedule`).

    ``region="generalized_dice"`` (the paper's, per image, over every class including the
    background as in its code) or ``"dice"`` (plain soft Dice, same classes); the boundary term
    is :func:`boundary_loss` over the kept classes (``include_background``). Both are "mean"
    reduced. Launches: the Dice family's 3 plus the boundary loss's (see there).
    """
    a = finite_float(alpha, "alpha")
    if not torch.compiler.is_compiling() and not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    from triton_segloss.dice.api import dice_loss, generalized_dice_loss

    fn = generalized_dice_loss if region == "generalized_dice" else dice_loss
    reg = fn(logits, target, mode=mode, per_image=True, from_logits=from_logits)
    bnd = boundary_loss(logits, target, mode=mode, include_background=include_background, from_logits=from_logits,
                        spacing=spacing)
    return reg * (1.0 - a) + bnd * a


class BoundaryLossSchedule:
    """The boundary weight ``alpha`` of :func:`dice_boundary_loss`: ``start``, raised by ``step`` at
    each :meth:`step` (call it once per epoch), capped at ``max``."""

    def __init__(self, start: float = 0.01, step: float = 0.01, max: float = 0.99) -> None:
        self.start = finite_float(start, "start")
        self.increment = finite_float(step, "step")
        self.max = finite_float(max, "max")
        if not 0.0 <= self.start <= self.max <= 1.0:
            raise ValueError(f"need 0 <= start <= max <= 1, got start={start}, max={max}")
        if self.increment < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.epochs = 0

    @property
    def alpha(self) -> float:
        return min(self.max, self.start + self.epochs * self.increment)

    def step(self) -> float:
        """Advance one epoch; returns the new ``alpha``."""
        self.epochs += 1
        return self.alpha

    def state_dict(self) -> dict:
        return {"epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epochs = int(state["epochs"])
