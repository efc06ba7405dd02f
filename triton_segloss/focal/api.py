"""Public functions of the focal family: sigmoid focal (binary / multilabel / one-vs-rest multiclass) and
softmax focal (multiclass)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_binary_values, check_label_values, check_logits, check_probabilities,
    check_reduction, check_same_device, check_values_now, finite_float, multiclass_target_ns, shape_str,
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


def _per_class(logits: Tensor, value, name: str, allow_negative: bool = False):
    """(tensor (C,) or None, Python values (C,) or None) of a per-class sequence or tensor ``value``."""
    c = logits.shape[1]
    if isinstance(value, Tensor):
        if value.is_complex() or not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        check_same_device(logits, "logits", value, name)
        if value.dim() > 1:
            raise ValueError(f"{name} must be a 1-D per-class tensor, got shape {shape_str(value)}")
        w, values, k = value.reshape(-1), None, value.numel()  # read in place, in its dtype, by the kernels
        if check_values_now(value) and k and not allow_negative and bool((value < 0).any()):
            raise ValueError(f"{name} entries must be >= 0, got {value.tolist()}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(finite_float(a, f"{name}[{i}]") for i, a in enumerate(value))
        if not allow_negative and any(a < 0 for a in values):
            raise ValueError(f"{name} entries must be >= 0, got {list(value)}")
        w, k = None, len(values)
    else:
        raise TypeError(f"{name} must be a number, a per-class sequence, a tensor or None, got {type(value).__name__}")
    if k != c:
        raise ValueError(f"{name} has {k} entries but logits {shape_str(logits)} have {c} classes")
    return w, values


def _class_alpha(logits: Tensor, alpha) -> tuple[Optional[Tensor], Optional[tuple[float, ...]], Optional[float]]:
    """(per-class tensor (C,) or None, per-class values or None, scalar alpha or None)."""
    if alpha is None or isinstance(alpha, (int, float)):
        return None, None, _scalar_alpha(alpha)
    w, values = _per_class(logits, alpha, "alpha")
    return w, values, None


def _class_weight(logits: Tensor, class_weight) -> tuple[Optional[Tensor], Optional[tuple[float, ...]], float]:
    """(per-class tensor or None, per-class values or None, uniform scale) of ``class_weight``."""
    if class_weight is None:
        return None, None, 1.0
    if isinstance(class_weight, (int, float)):
        v = finite_float(class_weight, "class_weight")
        if v < 0:
            raise ValueError(f"class_weight must be >= 0, got {v}")
        return None, None, v
    w, values = _per_class(logits, class_weight, "class_weight")
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
    class_weight: Union[float, Sequence[float], Tensor, None] = None,
    use_softmax: bool = True,
    from_logits: bool = True,
) -> Tensor:
    """Focal loss (Lin et al.) in one fused pass over the logits, with a recomputing backward.

    ``mode="binary"`` (logits ``(N, 1, *spatial)``) and ``mode="multilabel"`` (``(N, C, *spatial)``):
    torchvision's ``sigmoid_focal_loss`` per element, with ``p = sigmoid(x)``::

        p_t = p t + (1 - p)(1 - t);   l = w_c alpha_t (1 - p_t)^gamma BCE(x, t)
        alpha_t = a_c t + (1 - a_c)(1 - t)     (alpha None or < 0: alpha_t = 1)

    ``a_c = alpha`` for a number, ``alpha[c]`` for a per-class sequence or tensor of length C
    (every a_c >= 0). The target is a mask shaped like ``logits`` (binary also ``(N, *spatial)``),
    soft labels in [0, 1] allowed (float, bool or integer).

    ``mode="multiclass"``: integer labels ``(N, *spatial)`` (int64/int32/uint8, never one-hot
    encoded). With ``use_softmax=True`` (the default) softmax focal, ``p_y`` the softmax
    probability of the labelled class::

        l = w_y a_y (1 - p_y)^gamma (-log p_y)

    where ``a_y = alpha[y]`` for a per-class sequence or tensor of length C, ``a_y = alpha`` for a
    number >= 0 (a uniform factor), and 1 for None or a negative number. With
    ``use_softmax=False``: one-vs-rest sigmoid focal on the (virtual) one-hot channels of the
    labels, ``t_c = [y == c]``, exactly the binary/multilabel formula above per channel (smp's
    multiclass ``FocalLoss``, MONAI's ``FocalLoss(use_softmax=False, to_onehot_y=True)``);
    ``"mean"`` then divides by the non-ignored pixels times C and ``"none"`` gives
    ``(N, C, *spatial)``.

    ``gamma = 0`` gives plain BCE / cross entropy (times alpha_t): the modulating factor is
    exactly 1. Large ``|logits|`` and ``gamma < 1`` are safe: ``1 - p_t`` is formed without
    cancellation and the gradient never forms ``(1 - p_t)^(gamma - 1)``.

    Args:
        ignore_index: pixels whose target equals it get no loss and zero gradient.
        reduction: ``"mean"`` (over non-ignored elements, also with a per-class alpha or
            class_weight, where torch's weighted cross entropy would divide by the summed
            weights instead; 0 when every pixel is ignored),
            ``"sum"`` or ``"none"`` (the per-element loss: shaped like ``logits`` for
            binary/multilabel and one-vs-rest multiclass, ``(N, *spatial)`` for softmax).
        class_weight: a per-class multiplier ``w_c`` of the loss (MONAI ``FocalLoss(weight=)``):
            a number >= 0 (every class), or a sequence / tensor of length C with entries >= 0.
            Softmax: the labelled class's weight ``w_y``.
        use_softmax: multiclass only: False for the one-vs-rest sigmoid form.
        from_logits: False: ``logits`` already holds probabilities in [0, 1] (sigmoid outputs for
            binary/multilabel and one-vs-rest multiclass, softmax outputs for softmax
            multiclass). Logs are clamped at -100 (torch's ``binary_cross_entropy``):
            ``BCE = -t max(log p, -100) - (1 - t) max(log(1 - p), -100)``, softmax
            ``-log p_y`` at most 100; the gradient is the one with respect to the probabilities
            (softmax: only ``p_y`` gets one).

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
    if not isinstance(use_softmax, bool):
        raise TypeError(f"use_softmax must be a bool, got {type(use_softmax).__name__}")
    if not isinstance(from_logits, bool):
        raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
    if not use_softmax and mode != "multiclass":
        raise ValueError(f"use_softmax=False applies to mode='multiclass' only (mode={mode!r} is sigmoid already)")
    n, c = logits.shape[:2]
    x = as_ncs(logits, n, c)
    if not from_logits:
        check_probabilities(logits)
    alpha_w, class_alpha, alpha_value = _class_alpha(logits, alpha)
    weight_w, class_values, scale = _class_weight(logits, class_weight)

    if mode == "multiclass":
        y = multiclass_target_ns(logits, target)
        if ignore_index is not None:
            if isinstance(ignore_index, float) and not ignore_index.is_integer():
                raise ValueError(f"ignore_index must be an integer label for mode='multiclass', got {ignore_index}")
            ignore_index = int(ignore_index)
        check_label_values(target, c, ignore_index)
        if not use_softmax:
            opts = SigmoidFocalOptions(alpha=alpha_value, class_alpha=class_alpha, gamma=gamma,
                                       ignore_index=None if ignore_index is None else float(ignore_index),
                                       reduction=reduction, class_weight_values=class_values, scale=scale, labels=True,
                                       from_logits=from_logits)
            loss, _ = focal_sigmoid(x, y, alpha_w, weight_w, opts)
            return loss.view(logits.shape) if reduction == "none" else loss
        opts = SoftmaxFocalOptions(alpha=1.0 if alpha_value is None else alpha_value, class_alpha=class_alpha,
                                   gamma=gamma, ignore_index=ignore_index, reduction=reduction,
                                   class_weight_values=class_values, scale=scale, from_logits=from_logits)
        loss, _, _ = focal_softmax(x, y, alpha_w, weight_w, opts)
        if reduction == "none":
            return loss.view((n, *logits.shape[2:]))
        return loss

    if mode == "binary" and c != 1:
        raise ValueError(
            f"mode='binary' needs logits with one channel (N, 1, *spatial), got logits {shape_str(logits)}; "
            f"use mode='multilabel' for C independent masks"
        )
    t = binary_target_ncs(logits, target)
    if ignore_index is not None:
        ignore_index = finite_float(ignore_index, "ignore_index")
    check_binary_values(target, ignore_index)
    opts = SigmoidFocalOptions(alpha=alpha_value, class_alpha=class_alpha, gamma=gamma, ignore_index=ignore_index,
                               reduction=reduction, class_weight_values=class_values, scale=scale, from_logits=from_logits)
    loss, _ = focal_sigmoid(x, t, alpha_w, weight_w, opts)
    if reduction == "none":
        return loss.view(logits.shape)
    return loss
