"""The Lovász family's custom ops ``triton_segloss::lovasz_hinge`` and ``lovasz_softmax``
(and their ``*_backward``).

``lovasz_hinge(logits, target, options) -> (loss, coef, d)`` and
``lovasz_softmax(logits, target, options) -> (loss, coef, d)``:

* ``loss``: 0-d for ``"mean"``/``"sum"``; for ``"none"`` the public function's
  per-segment values (hinge: ``(N,)`` per image, else 0-d; softmax: ``(N, KL)``
  per image, else ``(KL,)``, KL the listed classes).
* ``coef``: ``(SEG,)``, each sorted segment's gradient scale, written by the
  finisher (the reduction's weight: ``1/N``, the "present" mask, a class's
  multiplicity in a list...).
* ``d``: ``(SEG, P)``, the walk's per-element gradient factor at each pixel's
  own position (see ``kernels.py``): the one input-sized buffer kept for the backward.

The backward reads ``coef``, ``d`` and the upstream gradient from device memory:
no host sync, one kernel.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class LovaszHingeOptions(NamedTuple):
    """Every option of ``lovasz_hinge``, checked, as the op receives them."""

    per_image: bool = True
    ignore_index: Optional[float] = None
    margin: Optional[tuple[float, ...]] = None  # (m_neg, m_pos); None: 1 and 1
    reduction: str = "mean"


class LovaszSoftmaxOptions(NamedTuple):
    """Every option of ``lovasz_softmax``, checked, as the op receives them."""

    classes: Optional[tuple[int, ...]] = None  # the listed classes in the given order; None: every class
    only_present: bool = True  # without a list: average over the classes present in the segment ("present")
    per_image: bool = False
    ignore_index: Optional[int] = None
    from_logits: bool = True
    reduction: str = "mean"
    class_weight: Optional[tuple[float, ...]] = None  # length C: the weight of each class's loss


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _hinge_forward(logits, target, o):
    return _impl(logits.device).hinge_forward(logits, target, o)


def _hinge_fake(logits, target, o):
    n, _, s = logits.shape
    g, p = (n, s) if o.per_image else (1, n * s)
    acc = acc_dtype(logits.dtype)
    shape = ((n,) if o.per_image else ()) if o.reduction == "none" else ()
    return (logits.new_empty(shape, dtype=acc), logits.new_empty((g,), dtype=acc),
            logits.new_empty((g, p), dtype=acc))


def _hinge_backward(grads, saved, logits, target, o):
    (g,), (coef, d) = grads, saved
    return _impl(logits.device).hinge_backward(g, coef, d, logits, target, o)


def _softmax_forward(logits, target, o):
    return _impl(logits.device).softmax_forward(logits, target, o)


def _softmax_fake(logits, target, o):
    n, c, s = logits.shape
    k, kl = (c, c) if o.classes is None else (len(set(o.classes)), len(o.classes))
    g, p = (n, s) if o.per_image else (1, n * s)
    acc = acc_dtype(logits.dtype)
    shape = ((n, kl) if o.per_image else (kl,)) if o.reduction == "none" else ()
    return (logits.new_empty(shape, dtype=acc), logits.new_empty((g * k,), dtype=acc),
            logits.new_empty((g * k, p), dtype=acc))


def _softmax_backward(grads, saved, logits, target, o):
    (g,), (coef, d) = grads, saved
    return _impl(logits.device).softmax_backward(g, coef, d, logits, target, o)


hinge_op = define_op("lovasz_hinge", LovaszHingeOptions, tensors=("logits", "target"), outputs=3,
                     forward=_hinge_forward, fake=_hinge_fake, backward=_hinge_backward, saved_outputs=(1, 2))
softmax_op = define_op("lovasz_softmax", LovaszSoftmaxOptions, tensors=("logits", "target"), outputs=3,
                       forward=_softmax_forward, fake=_softmax_fake, backward=_softmax_backward,
                       saved_outputs=(1, 2))
