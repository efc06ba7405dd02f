"""The BCE family's custom op ``triton_segloss::bce`` (and ``bce_backward``).

``bce(logits, target, weight?, pos_weight_map?, options) -> (loss, coef)``:
``loss`` is 0-d (``"mean"``/``"sum"``) or the elementwise ``(N, C, S)`` map
(``"none"``); ``coef`` holds the two gradient scales per unit upstream gradient
that the finisher wrote (``(0,)`` when ``"none"`` without ``balance`` needs
none). The backward reads ``coef`` and the upstream gradient from device
memory: no host sync anywhere.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class BCEOptions(NamedTuple):
    """Every option of ``bce_with_logits``, checked, as the op receives them."""

    pos_weight: float = 1.0  # the scalar positive weight (a tensor pos_weight is the op's pos_weight_map)
    ignore_index: Optional[float] = None
    label_smoothing: float = 0.0
    balance: Optional[tuple[float, ...]] = None  # (a, b)
    reduction: str = "mean"


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(logits, target, weight, pos_weight_map, o):
    return _impl(logits.device).forward(logits, target, weight, pos_weight_map, o)


def _fake(logits, target, weight, pos_weight_map, o):
    acc = acc_dtype(logits.dtype)
    none = o.reduction == "none"
    sums = not none or o.balance is not None
    return (logits.new_empty(logits.shape if none else (), dtype=acc),
            logits.new_empty((2 if sums else 0,), dtype=acc))


def _backward(grads, saved, logits, target, weight, pos_weight_map, o):
    (g,), (coef,) = grads, saved
    return _impl(logits.device).backward(g, coef, logits, target, weight, pos_weight_map, o)


bce = define_op("bce", BCEOptions, tensors=("logits", "target", "weight?", "pos_weight_map?"), outputs=2,
                forward=_forward, fake=_fake, backward=_backward, saved_outputs=(1,))
