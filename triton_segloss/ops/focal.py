"""Custom ops of the focal family: sigmoid focal (binary / multilabel) and softmax focal
(multiclass), each a forward, a recomputing backward, fake and autograd registrations.

Every forward returns ``(loss, stats)``: the reduced loss (0-d) or the per-pixel map
(``(N, C, S)`` sigmoid, ``(N, S)`` softmax) for ``reduction="none"``, and the device-side
sums ``[sum loss, #valid]`` the backward scales the gradient with.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from . import _dispatch


def _acc(x: Tensor) -> torch.dtype:
    return acc_dtype(x.dtype)


def _finish(stats: Tensor, reduction: str) -> Tensor:
    s, n = stats.unbind(0)
    if reduction == "mean":
        return s / n.clamp_min(1)  # every pixel ignored: s == 0, the loss is 0
    return s.clone()


def _coef(grad: Tensor, stats: Tensor, reduction: str) -> Tensor:
    n = stats[1:2]
    if reduction == "none":
        return torch.ones_like(n)
    g = grad.to(n.dtype).reshape(1)
    return g / n.clamp_min(1) if reduction == "mean" else g


# ---- sigmoid focal ------------------------------------------------------------------------

@torch.library.custom_op("triton_segloss::focal_sigmoid_forward", mutates_args=())
def focal_sigmoid_forward(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    has_alpha: bool,
    gamma: float,
    has_ignore: bool,
    ignore_index: float,
    reduction: str,
) -> tuple[Tensor, Tensor]:
    impl = _dispatch.impl("focal", logits.device)
    loss_map, part = impl.focal_sigmoid_forward(
        logits, target, alpha if has_alpha else None, gamma, ignore_index if has_ignore else None,
        reduction == "none",
    )
    stats = _dispatch.sum_partials(part)
    if reduction == "none":
        return loss_map.contiguous(), stats
    return _finish(stats, reduction), stats


@focal_sigmoid_forward.register_fake
def _(logits, target, alpha, has_alpha, gamma, has_ignore, ignore_index, reduction):
    shape = logits.shape if reduction == "none" else ()
    return logits.new_empty(shape, dtype=_acc(logits)), logits.new_empty((2,), dtype=_acc(logits))


@torch.library.custom_op("triton_segloss::focal_sigmoid_backward", mutates_args=())
def focal_sigmoid_backward(
    grad: Tensor,
    stats: Tensor,
    logits: Tensor,
    target: Tensor,
    alpha: float,
    has_alpha: bool,
    gamma: float,
    has_ignore: bool,
    ignore_index: float,
    reduction: str,
) -> Tensor:
    impl = _dispatch.impl("focal", logits.device)
    dx = impl.focal_sigmoid_backward(
        logits, target, grad if reduction == "none" else None, _coef(grad, stats, reduction),
        alpha if has_alpha else None, gamma, ignore_index if has_ignore else None,
    )
    return _dispatch.like(dx, logits)


@focal_sigmoid_backward.register_fake
def _(grad, stats, logits, *args):
    return torch.empty_like(logits)


def _sigmoid_setup_context(ctx, inputs, output):
    logits, target, *flags = inputs
    ctx.save_for_backward(logits, target, output[1])
    ctx.flags = flags


def _sigmoid_backward(ctx, grad_loss, grad_stats):
    logits, target, stats = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = focal_sigmoid_backward(grad_loss, stats, logits, target, *ctx.flags)
    return (dx,) + (None,) * 7


focal_sigmoid_forward.register_autograd(_sigmoid_backward, setup_context=_sigmoid_setup_context)


# ---- softmax focal ------------------------------------------------------------------------

@torch.library.custom_op("triton_segloss::focal_softmax_forward", mutates_args=())
def focal_softmax_forward(
    logits: Tensor,
    target: Tensor,
    alpha_weight: Optional[Tensor],
    alpha: float,
    gamma: float,
    has_ignore: bool,
    ignore_index: int,
    reduction: str,
) -> tuple[Tensor, Tensor]:
    """``logits`` (N, C, S), ``target`` integer labels (N, 1, S); ``alpha_weight`` (C,) or None."""
    impl = _dispatch.impl("focal", logits.device)
    aw = None if alpha_weight is None else alpha_weight.to(_acc(logits)).contiguous()
    loss_map, part = impl.focal_softmax_forward(
        logits, target[:, 0], aw, alpha, gamma, ignore_index if has_ignore else None, reduction == "none",
    )
    stats = _dispatch.sum_partials(part)
    if reduction == "none":
        return loss_map.contiguous(), stats
    return _finish(stats, reduction), stats


@focal_softmax_forward.register_fake
def _(logits, target, alpha_weight, alpha, gamma, has_ignore, ignore_index, reduction):
    shape = (logits.shape[0], logits.shape[2]) if reduction == "none" else ()
    return logits.new_empty(shape, dtype=_acc(logits)), logits.new_empty((2,), dtype=_acc(logits))


@torch.library.custom_op("triton_segloss::focal_softmax_backward", mutates_args=())
def focal_softmax_backward(
    grad: Tensor,
    stats: Tensor,
    logits: Tensor,
    target: Tensor,
    alpha_weight: Optional[Tensor],
    alpha: float,
    gamma: float,
    has_ignore: bool,
    ignore_index: int,
    reduction: str,
) -> Tensor:
    impl = _dispatch.impl("focal", logits.device)
    aw = None if alpha_weight is None else alpha_weight.to(_acc(logits)).contiguous()
    dx = impl.focal_softmax_backward(
        logits, target[:, 0], aw, grad if reduction == "none" else None, _coef(grad, stats, reduction),
        alpha, gamma, ignore_index if has_ignore else None,
    )
    return _dispatch.like(dx, logits)


@focal_softmax_backward.register_fake
def _(grad, stats, logits, *args):
    return torch.empty_like(logits)


def _softmax_setup_context(ctx, inputs, output):
    logits, target, alpha_weight, *flags = inputs
    ctx.save_for_backward(logits, target, alpha_weight, output[1])
    ctx.flags = flags


def _softmax_backward(ctx, grad_loss, grad_stats):
    logits, target, alpha_weight, stats = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = focal_softmax_backward(grad_loss, stats, logits, target, alpha_weight, *ctx.flags)
    return (dx,) + (None,) * 7


focal_softmax_forward.register_autograd(_softmax_backward, setup_context=_softmax_setup_context)
