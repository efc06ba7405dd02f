"""Public functions of the clDice family (Shit et al. 2021)."""

from __future__ import annotations

import torch
from torch import Tensor

from triton_segloss._core.validate import (
    binary_target_ncs, check_binary_values, check_label_values, check_logits, check_probabilities,
    check_reduction, finite_float, multiclass_target_ns, shape_str,
)

from .ops import ClDiceOptions, cldice

__all__ = ["cldice_loss", "dice_cldice_loss"]

MODES = ("binary", "multiclass", "multilabel")


def _check(logits, target, mode, iterations, smooth, eps, from_logits, reduction):
    check_logits(logits, min_dim=4)
    if logits.dim() > 5:
        raise ValueError(f"logits must be 2D (N, C, H, W) or 3D (N, C, D, H, W), got {shape_str(logits)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_reduction(reduction)
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise TypeError(f"iterations must be an int, got {iterations!r}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    smooth = finite_float(smooth, "smooth")
    eps = finite_float(eps, "eps")
    if not torch.compiler.is_compiling() and eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if mode == "multiclass":
        t = multiclass_target_ns(logits, target).reshape((logits.shape[0],) + tuple(logits.shape[2:]))
        check_label_values(t, logits.shape[1], None)
    else:
        if mode == "binary" and logits.shape[1] != 1:
            raise ValueError(f"mode='binary' needs logits with C == 1, got {shape_str(logits)}")
        t = binary_target_ncs(logits, target).view(logits.shape)
        check_binary_values(t, None)
        if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            t = t.to(torch.float32 if logits.dtype != torch.float64 else torch.float64)
    if not from_logits:
        check_probabilities(logits)
    return t, smooth, eps


def cldice_loss(logits: Tensor, target: Tensor, *, mode: str = "binary", iterations: int = 3, smooth: float = 1.0,
                eps: float = 1e-4, include_background: bool = True, from_logits: bool = True,
                reduction: str = "mean") -> Tensor:
    """Soft clDice loss, as MONAI's ``SoftclDiceLoss`` (1.6).

    With ``S = soft_skel(., iterations)`` of the probabilities ``P`` and the target ``T``
    (one-hot of the labels for ``"multiclass"``, never in memory on the kernel path),
    summed per image over the used channels and the pixels::

        Tprec = (sum S_P * T + smooth) / (sum S_P + smooth)
        Tsens = (sum S_T * P + smooth) / (sum S_T + smooth)
        loss  = 1 - 2 Tprec Tsens / (Tprec + Tsens + eps)

    Args:
        logits: ``(N, C, H, W)`` or ``(N, C, D, H, W)``; probabilities if ``from_logits=False``
            (taken as they are, as MONAI takes them), else sigmoid (binary, multilabel) or
            softmax over C (multiclass) is applied first.
        target: mask shaped like ``logits`` (``(N, *spatial)`` if C == 1), or integer labels
            ``(N, *spatial)`` for ``"multiclass"``. The target's skeleton gets no gradient.
        iterations: MONAI's ``iter_``; smooth: MONAI's ``smooth_nr == smooth_dr``;
            eps: MONAI's ``smooth`` (harmonic-mean denominator).
        include_background: False drops channel 0 (ignored when C == 1, as in MONAI).
            Default True as MONAI >= 1.5 (older MONAI and the paper's code always dropped
            channel 0: pass False for that).
        reduction: ``"mean"`` over images, ``"sum"``, or ``"none"`` (``(N,)``).
    """
    t, smooth, eps = _check(logits, target, mode, iterations, smooth, eps, from_logits, reduction)
    opts = ClDiceOptions(mode=mode, iterations=iterations, smooth=smooth, eps=eps,
                         include_background=bool(include_background), from_logits=bool(from_logits),
                         reduction=reduction, alpha=None)
    return cldice(logits, t, opts)[0]


def dice_cldice_loss(logits: Tensor, target: Tensor, *, mode: str = "binary", iterations: int = 3,
                     alpha: float = 0.5, smooth: float = 1.0, eps: float = 1e-4, include_background: bool = True,
                     from_logits: bool = True, reduction: str = "mean") -> Tensor:
    """``(1 - alpha) * dice + alpha * cldice``, as MONAI's ``SoftDiceclDiceLoss`` (1.6).

    ``dice`` is MONAI's ``DiceLoss`` per (image, channel), ``1 - (2 sum P T + smooth) /
    (sum P + sum T + smooth)``, averaged (``"mean"``) or summed (``"sum"``) over (image,
    used channel); ``cldice`` is :func:`cldice_loss` with the same arguments. ``"none"`` is
    not offered (MONAI's two terms have different shapes there).
    """
    if reduction == "none":
        raise ValueError("dice_cldice_loss: reduction must be 'mean' or 'sum', got 'none'")
    alpha = finite_float(alpha, "alpha")
    if not torch.compiler.is_compiling() and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    t, smooth, eps = _check(logits, target, mode, iterations, smooth, eps, from_logits, reduction)
    opts = ClDiceOptions(mode=mode, iterations=iterations, smooth=smooth, eps=eps,
                         include_background=bool(include_background), from_logits=bool(from_logits),
                         reduction=reduction, alpha=alpha)
    return cldice(logits, t, opts)[0]
