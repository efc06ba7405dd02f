"""Custom ops of the fused BCE family: forward, backward, fake and autograd registrations.

``bce_forward`` returns ``(loss, stats)``: the reduced loss (0-d) or the
elementwise loss ((N, C, S) for ``reduction="none"``), and four device-side
sums ``[s0, s1, n0, n1]`` (see ``kernels/bce.py``) that the backward needs to
scale the gradient. Counts never leave the device.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._validate import acc_dtype
from . import _dispatch


def _finish(stats: Tensor, reduction: str, balance: bool, a: float, b: float) -> Tensor:
    """The scalar loss from the summed partials, without host syncs."""
    s0, s1, n0, n1 = stats.unbind(0)
    if balance:
        return a * s0 / n0.clamp_min(1) + b * s1 / n1.clamp_min(1)
    if reduction == "mean":
        return s0 / n0.clamp_min(1)  # all pixels ignored: s0 == 0, so the loss is 0
    return s0.clone()


def _coef(grad: Tensor, stats: Tensor, reduction: str, balance: bool, a: float, b: float) -> Tensor:
    """The two per-pixel gradient scales the backward kernel reads (see its docstring)."""
    _, _, n0, n1 = stats.unbind(0)
    g = torch.ones_like(n0) if reduction == "none" else grad.to(n0.dtype)
    if balance:
        return torch.stack([g * a / n0.clamp_min(1), g * b / n1.clamp_min(1)])
    if reduction == "mean":
        return torch.stack([g / n0.clamp_min(1), g])
    return torch.stack([g, g])


@torch.library.custom_op("triton_segloss::bce_forward", mutates_args=())
def bce_forward(
    logits: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    pos_weight: Optional[Tensor],
    pos_weight_value: float,
    has_ignore: bool,
    ignore_index: float,
    label_smoothing: float,
    balance: bool,
    balance_a: float,
    balance_b: float,
    reduction: str,
) -> tuple[Tensor, Tensor]:
    impl = _dispatch.impl("bce", logits.device)
    ignore = ignore_index if has_ignore else None
    store = reduction == "none"
    loss_map, part = impl.bce_forward(
        logits, target, weight, pos_weight, pos_weight_value, ignore, label_smoothing, balance, store
    )
    stats = _dispatch.sum_partials(part)
    if store:
        if balance:  # each pixel's share of the balanced sum: l * a / n_pos or l * b / n_neg
            coef = _coef(stats.new_ones(()), stats, "none", True, balance_a, balance_b)
            t = target.to(loss_map.dtype)
            loss_map = loss_map * torch.where(t > 0.5, coef[0], torch.where(t < 0.5, coef[1], 0.0))
        return loss_map, stats
    return _finish(stats, reduction, balance, balance_a, balance_b), stats


@bce_forward.register_fake
def _(logits, target, weight, pos_weight, pos_weight_value, has_ignore, ignore_index, label_smoothing,
      balance, balance_a, balance_b, reduction):
    acc = acc_dtype(logits.dtype)
    shape = logits.shape if reduction == "none" else ()
    return logits.new_empty(shape, dtype=acc), logits.new_empty((4,), dtype=acc)


@torch.library.custom_op("triton_segloss::bce_backward", mutates_args=())
def bce_backward(
    grad: Tensor,
    stats: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    pos_weight: Optional[Tensor],
    pos_weight_value: float,
    has_ignore: bool,
    ignore_index: float,
    label_smoothing: float,
    balance: bool,
    balance_a: float,
    balance_b: float,
    reduction: str,
) -> Tensor:
    impl = _dispatch.impl("bce", logits.device)
    coef = _coef(grad, stats, reduction, balance, balance_a, balance_b)
    g_map = grad if reduction == "none" else None
    dx = impl.bce_backward(
        logits, target, weight, pos_weight, g_map, coef, pos_weight_value,
        ignore_index if has_ignore else None, label_smoothing, balance,
    )
    return _dispatch.like(dx, logits)


@bce_backward.register_fake
def _(grad, stats, logits, *args):
    return torch.empty_like(logits)


def _setup_context(ctx, inputs, output):
    logits, target, weight, pos_weight, *flags = inputs
    ctx.save_for_backward(logits, target, weight, pos_weight, output[1])
    ctx.flags = flags


def _backward(ctx, grad_loss, grad_stats):
    logits, target, weight, pos_weight, stats = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = bce_backward(grad_loss, stats, logits, target, weight, pos_weight, *ctx.flags)
    return (dx,) + (None,) * 11


bce_forward.register_autograd(_backward, setup_context=_setup_context)
