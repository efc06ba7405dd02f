"""Custom ops of the soft-overlap (Dice) family.

``dice_sums`` returns the per-(image, class) sums ``(N, C, 5)`` =
``[I, P, T, L, n]`` of ``kernels/dice.py`` (intersection, prediction sum, target
sum, pixel-term sum, valid count), in float32 (float64 for float64 logits).
Every loss of the family is finished from them by small torch code on (N, C)
tensors, which autograd differentiates; the gradient that reaches the sums,
``dLoss/d(sums)`` (N, C, 5), is exactly the per-(image, class) coefficient
table the backward kernel reads, so ``dice_sums_backward`` is one pass over
the inputs that writes the gradient once. Nothing input-sized is saved.

Flags (all plain op arguments):
    multiclass    softmax over C from integer labels (else sigmoid per channel)
    from_logits   False: the input already holds probabilities
    squared       P = sum wp p^2, T = sum wp t^2
    signed        p, t -> 2p - 1, 2t - 1 (seed 000)
    label_weight  om *= lw_neg + (lw_pos - lw_neg) t (seed 000: 0.2, 0.8)
    w_pow_i/_pt   the power (1 or 2) of the weight in I and in P, T
    pixel         0 none, 1 BCE (sigmoid) / CE (softmax), 2 focal
    alpha, gamma  focal parameters (alpha < 0: off; sigmoid only, softmax alpha is a class weight)
    hard          forward only: p -> [p > threshold] (a metric; the gradient is zero)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from . import _dispatch

NSUMS = 5


def _launch_args(has_ignore, ignore_index, squared, signed, has_label_weight, lw_neg, lw_pos, w_pow_i, w_pow_pt,
                 pixel, alpha, gamma):
    return (ignore_index if has_ignore else None, squared, signed,
            (lw_neg, lw_pos) if has_label_weight else None, w_pow_i, w_pow_pt, pixel, alpha, gamma)


@torch.library.custom_op("triton_segloss::dice_sums", mutates_args=())
def dice_sums(
    logits: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    multiclass: bool,
    from_logits: bool,
    has_ignore: bool,
    ignore_index: float,
    squared: bool,
    signed: bool,
    has_label_weight: bool,
    lw_neg: float,
    lw_pos: float,
    w_pow_i: int,
    w_pow_pt: int,
    pixel: int,
    alpha: float,
    gamma: float,
    hard: bool,
    threshold: float,
) -> Tensor:
    impl = _dispatch.impl("dice", logits.device)
    ig, sq, sg, lw, wpi, wpp, px, a, g = _launch_args(
        has_ignore, ignore_index, squared, signed, has_label_weight, lw_neg, lw_pos, w_pow_i, w_pow_pt,
        pixel, alpha, gamma)
    part = impl.dice_forward(logits, target, weight, multiclass, from_logits, ig, sq, sg, lw, wpi, wpp, px, a, g,
                             hard, threshold)
    return _dispatch.sum_partials(part)


@dice_sums.register_fake
def _(logits, target, weight, *flags):
    acc = acc_dtype(logits.dtype)
    return logits.new_empty((logits.shape[0], logits.shape[1], NSUMS), dtype=acc)


@torch.library.custom_op("triton_segloss::dice_sums_backward", mutates_args=())
def dice_sums_backward(
    grad: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    multiclass: bool,
    from_logits: bool,
    has_ignore: bool,
    ignore_index: float,
    squared: bool,
    signed: bool,
    has_label_weight: bool,
    lw_neg: float,
    lw_pos: float,
    w_pow_i: int,
    w_pow_pt: int,
    pixel: int,
    alpha: float,
    gamma: float,
    hard: bool,
    threshold: float,
) -> Tensor:
    if hard:  # a thresholded prediction is piecewise constant: zero gradient
        return torch.zeros_like(logits)
    impl = _dispatch.impl("dice", logits.device)
    ig, sq, sg, lw, wpi, wpp, px, a, g = _launch_args(
        has_ignore, ignore_index, squared, signed, has_label_weight, lw_neg, lw_pos, w_pow_i, w_pow_pt,
        pixel, alpha, gamma)
    acc = acc_dtype(logits.dtype)
    dx = impl.dice_backward(logits, target, weight, grad.to(acc).contiguous(), multiclass, from_logits,
                            ig, sq, sg, lw, wpi, wpp, px, a, g)
    return _dispatch.like(dx, logits)


@dice_sums_backward.register_fake
def _(grad, logits, *args):
    return torch.empty_like(logits)


def _setup_context(ctx, inputs, output):
    logits, target, weight, *flags = inputs
    ctx.save_for_backward(logits, target, weight)
    ctx.flags = flags


def _backward(ctx, grad):
    logits, target, weight = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = dice_sums_backward(grad, logits, target, weight, *ctx.flags)
    return (dx,) + (None,) * (2 + len(ctx.flags))


dice_sums.register_autograd(_backward, setup_context=_setup_context)
