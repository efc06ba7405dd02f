"""Public functions of the focal family: sigmoid focal (binary / multilabel) and softmax focal (multiclass)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_binary_values, check_label_values, check_logits, check_reduction,
    check_same_device, finite_float, multiclass_target_ns, shape_str,
)

from .ops import SigmoidFocalOptions, SoftmaxFocalOptions, focal_sigmoid, focal_softmax

__all__ = ["focal_loss"]

MODES = ("binary", "multiclass", "multilabel")


def _scalar_alpha(alpha) -> Optional[float]:
    """None for a disabled alpha (None or negative, torchvision's convention), else the number."""
    if alpha is None:
        return None
    a = finite_float(alpha, "alpha")
    return a if a >= 0 else None


def _class_alpha(logits: Tensor, alpha) -> tuple[Optional[Tensor], Optional[tuple[float, ...]], float]:
    """(per-class tensor (C,) or None, per-class values or None, uniform weight) for the softmax form."""
    if alpha is None or isinstance(alpha, (int, float)):
        a = _scalar_alpha(alpha)
        return None, None, 1.0 if a is None else a
    c = logits.shape[1]
    if isinstance(alpha, Tensor):
        if alpha.is_complex() or not (alpha.is_floating_point() or alpha.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"alpha must be a real tensor, got dtype {alpha.dtype}")
        check_same_device(logits, "logits", alpha, "alpha")
        w, values, k = alpha.reshape(-1), None, alpha.numel()  # read in place, in its dtype, by the kernels
    elif isinstance(alpha, Sequence) and not isinstance(alpha, str):
        values = tuple(finite_float(a, f"alpha[{i}]") for i, a in enumerate(alpha))
        if any(a < 0 for a in values):
            raise ValueError(f"alpha entries must be >= 0, got {list(alpha)}")
        w, k = None, len(values)
    else:
        raise TypeError(f"alpha must be a number, a per-class sequence, a tensor or None, got {type(alpha).__name__}")
    if k != c:
        raise ValueError(f"alpha has {k} entries but logits {shape_str(logits)} have {c} classes")
    return w, values, 1.0


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    alpha: Union[float, Sequence[float], Tensor, None] = 0.25,
    gamma: float = 2.0,
    ignore_index: Union[int, float, None] = None,
    reduction: str = "mean",
) -> Tensor:
    """Focal loss (Lin et al.) in one fused pass over the logits, with a recomputing backward.

    ``mode="binary"`` (logits ``(N, 1, *spatial)``) and ``mode="multilabel"`` (``(N, C, *spatial)``):
    torchvision's ``sigmoid_focal_loss`` per element, with ``p = sigmoid(x)``::

        p_t = p t + (1 - p)(1 - t);   l = alpha_t (1 - p_t)^gamma BCE(x, t)
        alpha_t = alpha t + (1 - alpha)(1 - t)     (alpha None or < 0: alpha_t = 1)

    the target a mask shaped like ``logits`` (binary also ``(N, *spatial)``), soft labels in
    [0, 1] allowed (float, bool or integer).

    ``mode="multiclass"``: softmax focal on integer labels ``(N, *spatial)`` (int64/int32/uint8,
    never one-hot encoded), ``p_y`` the softmax probability of the labelled class::

        l = a_y (1 - p_y)^gamma (-log p_y)

    where ``a_y = alpha[y]`` for a per-class sequence or tensor of length C, ``a_y = alpha`` for a
    number >= 0 (a uniform factor), and 1 for None or a negative number.

    ``gamma = 0`` gives plain BCE / cross entropy (times alpha_t): the modulating factor is
    exactly 1. Large ``|logits|`` and ``gamma < 1`` are safe: ``1 - p_t`` is formed without
    cancellation and the gradient never forms ``(1 - p_t)^(gamma - 1)``.

    Args:
        ignore_index: pixels whose target equals it get no loss and zero gradient.
        reduction: ``"mean"`` (over non-ignored pixels, also with a per-class alpha, where
            torch's weighted cross entropy would divide by the summed weights instead; 0 when
            every pixel is ignored),
            ``"sum"`` or ``"none"`` (the per-element loss: shaped like ``logits`` for
            binary/multilabel, ``(N, *spatial)`` for multiclass).

    Returns the loss in float32 (float64 for float64 logits); the gradient has the logits'
    dtype and layout.

    Example:
        >>> import torch, triton_segloss as tsl
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> round(float(tsl.focal_loss(x, torch.ones(1, 1, 2, 2), alpha=None, gamma=0.0)), 4)  # log 2
        0.6931
    """
    check_logits(logits)
    check_reduction(reduction)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    gamma = finite_float(gamma, "gamma")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    n, c = logits.shape[:2]
    x = as_ncs(logits, n, c)

    if mode == "multiclass":
        y = multiclass_target_ns(logits, target)
        if ignore_index is not None:
            if isinstance(ignore_index, float) and not ignore_index.is_integer():
                raise ValueError(f"ignore_index must be an integer label for mode='multiclass', got {ignore_index}")
            ignore_index = int(ignore_index)
        check_label_values(target, c, ignore_index)
        alpha_w, class_alpha, alpha_value = _class_alpha(logits, alpha)
        opts = SoftmaxFocalOptions(alpha=alpha_value, class_alpha=class_alpha, gamma=gamma,
                                   ignore_index=ignore_index, reduction=reduction)
        loss, _ = focal_softmax(x, y, alpha_w, opts)
        if reduction == "none":
            return loss.view((n, *logits.shape[2:]))
        return loss

    if mode == "binary" and c != 1:
        raise ValueError(
            f"mode='binary' needs logits with one channel (N, 1, *spatial), got logits {shape_str(logits)}; "
            f"use mode='multilabel' for C independent masks"
        )
    if isinstance(alpha, (Sequence, Tensor)):
        raise TypeError(f"alpha must be a number or None for mode={mode!r}, got {type(alpha).__name__}")
    t = binary_target_ncs(logits, target)
    if ignore_index is not None:
        ignore_index = finite_float(ignore_index, "ignore_index")
    check_binary_values(target, ignore_index)
    opts = SigmoidFocalOptions(alpha=_scalar_alpha(alpha), gamma=gamma, ignore_index=ignore_index,
                               reduction=reduction)
    loss, _ = focal_sigmoid(x, t, opts)
    if reduction == "none":
        return loss.view(logits.shape)
    return loss
