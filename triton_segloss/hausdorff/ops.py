"""The distance-map losses' custom ops: ``triton_segloss::distance_loss_fields`` (the constant
distance maps) and ``triton_segloss::distance_weighted`` (the loss, and its backward).

``distance_loss_fields(logits, target, options) -> fields``: ``(2, N, C, *spatial)`` in the
accumulation dtype, ``fields[0] = f_a`` and ``fields[1] = f_b`` below, computed from the
logits and the target themselves (the masks exist only in the first EDT pass's registers:
the prediction's ``p > 0.5``, the target's ``t > 0.5`` or ``y == c``). No gradient (the api
passes detached logits; the backward raises if autograd ever reaches it). Launches: one per
spatial axis (``kernels.fields``).

``distance_weighted(logits, target, field_a, field_b, options) -> loss``

``dice_boundary(logits, target, field_a, field_b, options) -> (loss, coef)``: the boundary loss's
pixel pass, which also sums the region term (generalized or soft Dice per image), finished into
``(1 - w) region + w boundary`` and the region term's coefficients (see ``DiceBoundaryOptions``).

Both losses of the family weigh each pixel's prediction by constant distance maps
(no gradient flows through them):

* ``kind="hausdorff"`` (Karimi & Salcudean 2019):  ``l = (p - t)^2 (f_a^alpha + f_b^alpha)``,
  ``f_a`` the prediction's field, ``f_b`` the target's field (``inf`` anywhere in a
  field is read as 0: the field of an empty or full mask, MONAI's rule).
* ``kind="boundary"`` (Kervadec et al. 2019): ``l = p * phi`` with the target's signed
  distance ``phi = f_a`` outside the target and ``1 - f_b`` inside (``f_a``: distance to the
  target, ``f_b``: distance to its complement; the paper's code
  ``edt(neg) * neg - (edt(pos) - 1) * pos``), and ``phi = 0`` in a row whose target class is
  empty or fills it (an ``inf`` field).

A row is one (image n, class c); its value is the mean of ``l`` over the row's S
pixels. ``loss`` is 0-d for ``"mean"`` (mean over the kept rows) and ``"sum"``
(sum over them), ``(N, K)`` per image and kept class for ``"none"`` with
``per_image`` and ``(1, K)`` pooled over the batch without (K = C or C - 1 without
the background). Rows are kept unless ``skip_background`` drops class 0.
The backward reads the upstream gradient by pointer and a host-side scale
(:func:`row_scale`): no coefficient tensor, no host sync.
"""

from __future__ import annotations

from typing import NamedTuple

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

KINDS = ("hausdorff", "boundary")


class DistanceLossOptions(NamedTuple):
    """Every option of the family, checked, as the op receives them."""

    kind: str = "hausdorff"
    multiclass: bool = False  # softmax over C from integer labels (else sigmoid per channel)
    from_logits: bool = True  # False: logits already hold probabilities
    alpha: float = 2.0  # the distance exponent (hausdorff)
    skip_background: bool = False  # drop class 0 (C > 1 only)
    per_image: bool = True  # "none": one row per image (else the batch pooled)
    reduction: str = "mean"


class FieldOptions(NamedTuple):
    """What the fields op computes: the hausdorff fields (``d_p``, ``d_t``) or the boundary
    loss's two maps of the target (``DT(t)``, ``DT(~t)``)."""

    kind: str = "hausdorff"
    multiclass: bool = False  # target: integer labels (N, *spatial), the prediction's mask from a softmax
    from_logits: bool = True  # False: the prediction's mask is logits > 0.5 (probabilities)
    spacing: tuple[float, ...] = (1.0, 1.0, 1.0)  # one per padded spatial dim (D0, D1, D2)
    ndim: int = 2  # real spatial dims: the last ``ndim`` of (D0, D1, D2)


def first_class(o: DistanceLossOptions, c: int) -> int:
    return 1 if (o.skip_background and c > 1) else 0


def out_shape(o: DistanceLossOptions, n: int, c: int) -> tuple:
    if o.reduction != "none":
        return ()
    return (n if o.per_image else 1, c - first_class(o, c))


def row_scale(o: DistanceLossOptions, n: int, c: int, s: int) -> float:
    """The factor from a row's pixel sum to its share of the loss (or of its "none" element)."""
    k = c - first_class(o, c)
    if o.reduction == "mean":
        return 1.0 / (n * k * s)
    if o.per_image:
        return 1.0 / s
    return 1.0 / (n * s)


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    from . import torch_impl

    return torch_impl


def _fields_forward(logits, target, o):
    return _impl(logits.device).fields(logits, target, o)


def _fields_fake(logits, target, o):
    return logits.new_empty((2, *logits.shape), dtype=acc_dtype(logits.dtype))


def _fields_backward(grads, saved, logits, target, o):
    raise RuntimeError("triton_segloss::distance_loss_fields is not differentiable: its maps are constants")


loss_fields = define_op("distance_loss_fields", FieldOptions, tensors=("logits", "target"), outputs=1,
                        forward=_fields_forward, fake=_fields_fake, backward=_fields_backward)


def _forward(logits, target, field_a, field_b, o):
    return _impl(logits.device).forward(logits, target, field_a, field_b, o)


def _fake(logits, target, field_a, field_b, o):
    n, c = logits.shape[0], logits.shape[1]
    return logits.new_empty(out_shape(o, n, c), dtype=acc_dtype(logits.dtype))


def _backward(grads, saved, logits, target, field_a, field_b, o):
    (g,) = grads
    return _impl(logits.device).backward(g, logits, target, field_a, field_b, o)


distance_weighted = define_op("distance_weighted", DistanceLossOptions,
                              tensors=("logits", "target", "field_a", "field_b"), outputs=1,
                              forward=_forward, fake=_fake, backward=_backward)


# ---- the region + boundary combination in one op --------------------------------------------------

REGIONS = ("generalized_dice", "dice")


class DiceBoundaryOptions(NamedTuple):
    """``dice_boundary_loss``: ``(1 - weight) * region + weight * boundary``, both "mean" reduced."""

    multiclass: bool = True  # softmax over C from integer labels (else sigmoid per channel)
    from_logits: bool = True
    region: str = "generalized_dice"  # per image over every class: generalized Dice (1 / T^2) or soft Dice
    weight: float = 0.5  # the boundary term's weight alpha of the schedule
    skip_background: bool = True  # the boundary term drops class 0 (C > 1 only)
    eps: float = 1e-7  # the region score's denominator clamp (the Dice family's default)


def boundary_options(o: DiceBoundaryOptions) -> DistanceLossOptions:
    """The boundary term of the combination as the distance-weighted kernels read it."""
    return DistanceLossOptions(kind="boundary", multiclass=o.multiclass, from_logits=o.from_logits,
                               skip_background=o.skip_background, per_image=True, reduction="mean")


def _db_forward(logits, target, field_a, field_b, o):
    return _impl(logits.device).dice_boundary_forward(logits, target, field_a, field_b, o)


def _db_fake(logits, target, field_a, field_b, o):
    n, c = logits.shape[0], logits.shape[1]
    acc = acc_dtype(logits.dtype)
    return logits.new_empty((), dtype=acc), logits.new_empty((n, c, 2), dtype=acc)


def _db_backward(grads, saved, logits, target, field_a, field_b, o):
    (g,) = grads
    (coef,) = saved
    return _impl(logits.device).dice_boundary_backward(g, coef, logits, target, field_a, field_b, o)


# (loss, coef): coef (N, C, 2) = dLoss/dI, dLoss/dP of the region term per (image, class), per unit
# upstream gradient, written by the finisher; the backward adds the boundary term's (alpha phi k).
dice_boundary = define_op("dice_boundary", DiceBoundaryOptions, tensors=("logits", "target", "field_a", "field_b"),
                          outputs=2, forward=_db_forward, fake=_db_fake, backward=_db_backward, saved_outputs=(1,))
