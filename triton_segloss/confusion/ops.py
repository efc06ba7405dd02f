"""The confusion-matrix family's custom op ``triton_segloss::confusion_matrix``.

``confusion_matrix(pred_or_logits, target, options) -> cm``: ``pred_or_logits``
holds logits ``(N, C, S)`` (a floating tensor: the prediction is their argmax)
or predicted labels ``(N, 1, S)`` (an integer tensor); ``target`` labels
``(N, 1, S)``; ``cm`` the int64 ``(C, C)`` matrix, rows = true class. The
mode follows from the dtype, so no flag travels beside the tensor. Counts are
integers: the op has no gradient (its backward raises).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op

from . import torch_impl


class ConfusionOptions(NamedTuple):
    """Every option of ``confusion_matrix``, checked, as the op receives them."""

    num_classes: int
    ignore_index: Optional[int] = None


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(x, target, o):
    return _impl(target.device).forward(x, target, o)


def _fake(x, target, o):
    return target.new_empty((o.num_classes, o.num_classes), dtype=torch.int64)


def _backward(grads, saved, x, target, o):
    raise RuntimeError("triton_segloss.confusion_matrix counts pixels: it has no gradient")


confusion = define_op("confusion_matrix", ConfusionOptions, tensors=("pred_or_logits", "target"), outputs=1,
                      forward=_forward, fake=_fake, backward=_backward)
