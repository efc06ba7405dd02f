"""Custom ops of the fused softmax cross entropy: forward, backward, fake and autograd registrations.

``ce_forward`` returns ``(loss, stats, class_weight)``: the reduced loss (0-d) or
the per-pixel loss ((N, S) for ``reduction="none"``); ``stats = [sum l, sum wt]``
(see ``kernels/ce.py``); and the class weights the loss used ((C,): the given
``weight``, times the inverse label counts when ``balance``, ones when neither),
so the backward needs no second count. Counts never leave the device.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from . import _dispatch


def _acc(dtype: torch.dtype) -> torch.dtype:
    return acc_dtype(dtype)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den == 0 (every pixel ignored or of weight 0)."""
    return torch.where(den != 0, num / torch.where(den != 0, den, 1), 0)


def _class_weight(logits, target, weight, balance, has_ignore, ignore_index):
    """The class weights the kernels read, or None for all-ones; computed on the device."""
    if not balance:
        return weight
    C = logits.shape[1]
    impl = _dispatch.impl("confusion", logits.device)
    counts = impl.confusion_partials(target, target, C, 2, ignore_index if has_ignore else None)
    counts = counts.sum(0, dtype=torch.int64).to(_acc(logits.dtype))
    inv = _safe_div(torch.ones_like(counts), counts)  # 1 / n_c, and 0 for a class absent from the target
    return inv if weight is None else inv * weight


@torch.library.custom_op("triton_segloss::ce_forward", mutates_args=())
def ce_forward(
    logits: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    pixel_weight: Optional[Tensor],
    balance: bool,
    has_ignore: bool,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> tuple[Tensor, Tensor, Tensor]:
    w = _class_weight(logits, target, weight, balance, has_ignore, ignore_index)
    impl = _dispatch.impl("ce", logits.device)
    store = reduction == "none"
    loss_map, part = impl.ce_forward(
        logits, target, w, pixel_weight, ignore_index if has_ignore else None, label_smoothing, store
    )
    stats = _dispatch.sum_partials(part)
    cw = torch.ones(logits.shape[1], dtype=stats.dtype, device=logits.device) if w is None else w.clone()
    if store:
        return loss_map, stats, cw
    loss = _safe_div(stats[0], stats[1]) if reduction == "mean" else stats[0].clone()
    return loss, stats, cw


@ce_forward.register_fake
def _(logits, target, weight, pixel_weight, balance, has_ignore, ignore_index, label_smoothing, reduction):
    acc = _acc(logits.dtype)
    N, C = logits.shape[:2]
    shape = (N, logits.shape[2]) if reduction == "none" else ()
    return logits.new_empty(shape, dtype=acc), logits.new_empty((2,), dtype=acc), logits.new_empty((C,), dtype=acc)


@torch.library.custom_op("triton_segloss::ce_backward", mutates_args=())
def ce_backward(
    grad: Tensor,
    stats: Tensor,
    class_weight: Tensor,
    logits: Tensor,
    target: Tensor,
    pixel_weight: Optional[Tensor],
    has_weight: bool,
    has_ignore: bool,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    impl = _dispatch.impl("ce", logits.device)
    if reduction == "none":
        coef = torch.ones(1, dtype=stats.dtype, device=stats.device)
        g_map = grad.unsqueeze(1)  # (N, 1, S)
    else:
        g = grad.to(stats.dtype).reshape(1)
        coef = _safe_div(g, stats[1]) if reduction == "mean" else g
        g_map = None
    dx = impl.ce_backward(
        logits, target, class_weight if has_weight else None, pixel_weight, g_map, coef,
        ignore_index if has_ignore else None, label_smoothing,
    )
    return _dispatch.like(dx, logits)


@ce_backward.register_fake
def _(grad, stats, class_weight, logits, *args):
    return torch.empty_like(logits)


def _setup_context(ctx, inputs, output):
    logits, target, weight, pixel_weight, balance, has_ignore, ignore_index, label_smoothing, reduction = inputs
    ctx.save_for_backward(logits, target, pixel_weight, output[1], output[2])
    ctx.flags = (weight is not None or balance, has_ignore, ignore_index, label_smoothing, reduction)


def _backward(ctx, grad_loss, grad_stats, grad_cw):
    logits, target, pixel_weight, stats, cw = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        dx = ce_backward(grad_loss, stats, cw, logits, target, pixel_weight, *ctx.flags)
    return (dx,) + (None,) * 8


ce_forward.register_autograd(_backward, setup_context=_setup_context)
