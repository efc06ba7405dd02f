"""Distance-map losses: the Hausdorff distance-transform loss (Karimi & Salcudean 2019), the
boundary loss (Kervadec et al. 2019) and the scheduled region + boundary combination.

Both losses weigh each pixel by constant distance maps (no gradient flows through them),
computed on the device by the ``distance`` family's exact EDT, one launch per spatial axis,
whose first pass reads the logits and the target and thresholds them in registers (custom op
``triton_segloss::distance_loss_fields``). The pixel pass is one custom op
(``triton_segloss::distance_weighted``, ``ops.py``): a forward kernel that reads the logits
once (probabilities, the pixel term and the partial sums), a one-program finisher and a
backward kernel. A training step: 2 + 3 launches in 2D, 3 + 3 in 3D, no host sync.

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

from .ops import DiceBoundaryOptions, DistanceLossOptions, FieldOptions, dice_boundary, distance_weighted, \
    loss_fields

__all__ = ["hausdorff_dt_loss", "boundary_loss", "dice_boundary_loss", "BoundaryLossSchedule"]

MODES = ("binary", "multiclass", "multilabel")
REGIONS = ("generalized_dice", "dice")


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


def _prepare(logits: Tensor, target: Tensor, mode: str, from_logits: bool) -> Tensor:
    """Checks; returns the target as the op reads it ((N, 1, S) labels or an (N, C, S) mask)."""
    check_logits(logits)
    _check_mode(mode, logits)
    c = logits.shape[1]
    if mode == "multiclass":
        t = multiclass_target_ns(logits, target)
        check_label_values(target, c, None)
    else:
        t = binary_target_ncs(logits, target)
        check_binary_values(target, None)
    if not from_logits:
        check_probabilities(logits)
    return t


def _alpha(alpha) -> float:
    a = finite_float(alpha, "alpha")
    if not torch.compiler.is_compiling() and a < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return a


def _fields(logits: Tensor, t: Tensor, kind: str, mode: str, from_logits: bool, spacing) -> tuple[Tensor, Tensor]:
    """The op's two constant maps ``(N, C, *spatial)`` from the logits and the target ``t`` (the
    op's view of it), computed on the device by one custom op (``ops.loss_fields``: the exact EDT,
    one launch per spatial axis, masks thresholded inside its first pass)."""
    from triton_segloss.distance.api import check_spacing

    n, c, *spatial = logits.shape
    ndim = len(spatial)
    if ndim > 3:
        raise ValueError(f"the distance maps need 1, 2 or 3 spatial dims, got logits {shape_str(logits)}")
    sp = check_spacing(None if spacing is None else tuple(float(v) for v in spacing), ndim)
    tt = t.reshape((n,) + tuple(spatial)) if mode == "multiclass" else t.reshape((n, c) + tuple(spatial))
    o = FieldOptions(kind=kind, multiclass=mode == "multiclass", from_logits=bool(from_logits),
                     spacing=(1.0,) * (3 - ndim) + sp, ndim=ndim)
    f = loss_fields(logits.detach(), tt, o)
    return f[0], f[1]


def _op(logits, t, fa, fb, opts):
    n, c = logits.shape[:2]
    return distance_weighted(as_ncs(logits, n, c), t, as_ncs(fa, n, c), as_ncs(fb, n, c), opts)


def _hausdorff_from_fields(logits: Tensor, target: Tensor, pred_field: Tensor, target_field: Tensor, *,
                           mode: str = "binary", alpha: float = 2.0, include_background: bool = False,
                           per_image: bool = False, from_logits: bool = True, reduction: str = "mean") -> Tensor:
    """``hausdorff_dt_loss`` with the two distance fields given (``(N, C, *spatial)`` each;
    ``inf`` reads as 0). Tests and users who precompute the target's field use it."""
    check_reduction(reduction)
    t = _prepare(logits, target, mode, from_logits)
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

    Launches on the CUDA path: one per spatial axis for both fields (the exact EDT of
    ``m_p``, ``~m_p``, ``m_t`` and ``~m_t`` at once, the masks thresholded inside its first
    pass), then the loss's forward, finisher and backward: 5 (2D) or 6 (3D) a training step,
    no other device op, no host sync.
    """
    check_reduction(reduction)
    t = _prepare(logits, target, mode, from_logits)
    fa, fb = _fields(logits, t, "hausdorff", mode, from_logits, spacing)
    opts = DistanceLossOptions(kind="hausdorff", multiclass=mode == "multiclass", from_logits=bool(from_logits),
                               alpha=_alpha(alpha), skip_background=not include_background,
                               per_image=bool(per_image), reduction=reduction)
    return _op(logits, t, fa, fb, opts)


def _boundary_from_fields(logits: Tensor, target: Tensor, dist_to_target: Tensor, dist_to_complement: Tensor, *,
                          mode: str = "multiclass", include_background: bool = False, per_image: bool = False,
                          from_logits: bool = True, reduction: str = "mean") -> Tensor:
    """``boundary_loss`` with the target's two distance maps given (``inf`` where a class is empty)."""
    check_reduction(reduction)
    t = _prepare(logits, target, mode, from_logits)
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

    Launches on the CUDA path: one per spatial axis for the target's two maps (the mask
    thresholded inside the EDT's first pass), then the loss's forward, finisher and backward:
    5 (2D) or 6 (3D) a training step, no other device op, no host sync.
    """
    check_reduction(reduction)
    t = _prepare(logits, target, mode, from_logits)
    fa, fb = _fields(logits, t, "boundary", mode, from_logits, spacing)
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
    reduced; the region term equals ``triton_segloss.generalized_dice_loss`` / ``dice_loss`` with
    ``per_image=True`` (and their defaults ``smooth=0``, ``eps=1e-7``).

    One op (``triton_segloss::dice_boundary``): the boundary loss's pixel pass also sums the region
    term's ``I = sum p t``, ``P = sum p``, ``T = sum t`` per (image, class), one finisher writes the
    loss and the region term's gradient coefficients, one backward kernel adds both gradients.
    Launches on the CUDA path: the target maps' EDT (one per spatial axis) + 3: 5 (2D) or 6 (3D)
    a training step, no host sync.
    """
    a = finite_float(alpha, "alpha")
    if not torch.compiler.is_compiling() and not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    t = _prepare(logits, target, mode, from_logits)
    fa, fb = _fields(logits, t, "boundary", mode, from_logits, spacing)
    n, c = logits.shape[:2]
    o = DiceBoundaryOptions(multiclass=mode == "multiclass", from_logits=bool(from_logits), region=region, weight=a,
                            skip_background=not include_background)
    loss, _ = dice_boundary(as_ncs(logits, n, c), t, as_ncs(fa, n, c), as_ncs(fb, n, c), o)
    return loss


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
