"""Custom ops of the Lovász family: forward, backward, fake and autograd registrations.

The forward ops return the loss of every segment (an image or the batch, times
a class for Lovász-Softmax) and two sorted buffers the backward needs:
``d`` (SEG, P), the per-element gradient factor in sorted order, and ``perm``
(SEG, P) int64, the sort permutation. They are the one input-sized thing kept
between forward and backward (the sort is unavoidable; see
``kernels/lovasz.py``). ``lovasz_softmax_forward`` also returns the foreground
count of each segment, from which "present" classes are read on the device.
Reductions over segments happen outside the ops, in plain torch.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from . import _dispatch


def _acc(dtype: torch.dtype) -> torch.dtype:
    return acc_dtype(dtype)


@torch.library.custom_op("triton_segloss::lovasz_hinge_forward", mutates_args=())
def lovasz_hinge_forward(
    logits: Tensor,
    target: Tensor,
    per_image: bool,
    has_ignore: bool,
    ignore_index: float,
    margin_neg: float,
    margin_pos: float,
) -> tuple[Tensor, Tensor, Tensor]:
    impl = _dispatch.impl("lovasz", logits.device)
    return impl.lovasz_hinge_forward(
        logits, target, per_image, ignore_index if has_ignore else None, margin_neg, margin_pos
    )


@lovasz_hinge_forward.register_fake
def _(logits, target, per_image, has_ignore, ignore_index, margin_neg, margin_pos):
    n, _, s = logits.shape
    g, p = (n, s) if per_image else (1, n * s)
    acc = _acc(logits.dtype)
    return (logits.new_empty((g,), dtype=acc), logits.new_empty((g, p), dtype=acc),
            logits.new_empty((g, p), dtype=torch.int64))


@torch.library.custom_op("triton_segloss::lovasz_hinge_backward", mutates_args=())
def lovasz_hinge_backward(grad: Tensor, d: Tensor, perm: Tensor, logits: Tensor) -> Tensor:
    impl = _dispatch.impl("lovasz", logits.device)
    return _dispatch.like(impl.lovasz_hinge_backward(grad, d, perm, logits), logits)


@lovasz_hinge_backward.register_fake
def _(grad, d, perm, logits):
    return torch.empty_like(logits)


def _hinge_setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output[1], output[2])


def _hinge_backward(ctx, grad_loss, grad_d, grad_perm):
    logits, d, perm = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = lovasz_hinge_backward(grad_loss, d, perm, logits)
    return (dx,) + (None,) * 6


lovasz_hinge_forward.register_autograd(_hinge_backward, setup_context=_hinge_setup_context)


@torch.library.custom_op("triton_segloss::lovasz_softmax_forward", mutates_args=())
def lovasz_softmax_forward(
    logits: Tensor,
    target: Tensor,
    classes: Optional[list[int]],
    per_image: bool,
    has_ignore: bool,
    ignore_index: int,
    from_logits: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    impl = _dispatch.impl("lovasz", logits.device)
    return impl.lovasz_softmax_forward(
        logits, target, classes, per_image, ignore_index if has_ignore else None, from_logits
    )


@lovasz_softmax_forward.register_fake
def _(logits, target, classes, per_image, has_ignore, ignore_index, from_logits):
    n, c, s = logits.shape
    k = c if classes is None else len(classes)
    g, p = (n, s) if per_image else (1, n * s)
    acc = _acc(logits.dtype)
    return (logits.new_empty((g, k), dtype=acc), logits.new_empty((g, k), dtype=torch.int32),
            logits.new_empty((g * k, p), dtype=acc), logits.new_empty((g * k, p), dtype=torch.int64))


@torch.library.custom_op("triton_segloss::lovasz_softmax_backward", mutates_args=())
def lovasz_softmax_backward(
    grad: Tensor,
    d: Tensor,
    perm: Tensor,
    logits: Tensor,
    classes: Optional[list[int]],
    from_logits: bool,
) -> Tensor:
    impl = _dispatch.impl("lovasz", logits.device)
    return _dispatch.like(impl.lovasz_softmax_backward(grad, d, perm, logits, classes, from_logits), logits)


@lovasz_softmax_backward.register_fake
def _(grad, d, perm, logits, classes, from_logits):
    return torch.empty_like(logits)


def _softmax_setup_context(ctx, inputs, output):
    logits, _, classes, _, _, _, from_logits = inputs
    ctx.save_for_backward(logits, output[2], output[3])
    ctx.classes = classes
    ctx.from_logits = from_logits


def _softmax_backward(ctx, grad_loss, grad_gts, grad_d, grad_perm):
    logits, d, perm = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = lovasz_softmax_backward(grad_loss, d, perm, logits, ctx.classes, ctx.from_logits)
    return (dx,) + (None,) * 6


lovasz_softmax_forward.register_autograd(_softmax_backward, setup_context=_softmax_setup_context)
