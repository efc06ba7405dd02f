"""The distance-map losses' custom op ``triton_segloss::distance_weighted`` (and its backward).

``distance_weighted(logits, target, field_a, field_b, options) -> loss``

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
