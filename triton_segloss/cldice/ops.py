"""The clDice family's custom op ``triton_segloss::cldice`` (and ``cldice_backward``).

``cldice(logits, target, options) -> (loss, coef)``: ``loss`` 0-d (``"mean"``/``"sum"``) or
``(N,)`` per image (``"none"``, clDice alone); ``alpha`` not None adds MONAI's soft Dice:
``(1 - alpha) * dice + alpha * cldice``. ``coef`` ``(N, Cu, 5)`` (Cu used channels) holds the
finisher's gradient coefficients per unit upstream gradient, ``[k1, k0, k2, b1, b0]``:

    dLoss/dP = J_P^T (u_n (k1 T + k0)) + u_n (k2 S_T + b1 T + b0)

with ``u_n`` the upstream gradient of image n and ``J_P^T`` the reverse of the prediction's
soft skeleton. The backward reads ``coef`` and recomputes the skeletons from the logits
(nothing full-size is saved).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

NCOEF = 5  # [k1, k0, k2, b1, b0] per (image, used channel)


class ClDiceOptions(NamedTuple):
    """Every option of ``cldice_loss`` / ``dice_cldice_loss``, checked, as the op receives them."""

    mode: str = "binary"
    iterations: int = 3
    smooth: float = 1.0  # MONAI's smooth_nr == smooth_dr
    eps: float = 1e-4  # MONAI's `smooth` in the harmonic mean's denominator
    include_background: bool = True
    from_logits: bool = True
    reduction: str = "mean"
    alpha: Optional[float] = None  # None: clDice alone; else the Dice + clDice mix


def first_channel(o: ClDiceOptions, c) -> int:
    """The first used channel: 1 drops the background (only when there is more than one channel)."""
    return 1 if (not o.include_background and c > 1) else 0


def coef_shape(o: ClDiceOptions, shape) -> tuple:
    n, c = shape[0], shape[1]
    return (n, c - first_channel(o, c), NCOEF)


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    from . import torch_impl

    return torch_impl


def _forward(logits, target, o):
    return _impl(logits.device).forward(logits, target, o)


def _fake(logits, target, o):
    shape = (logits.shape[0],) if o.reduction == "none" else ()
    acc = acc_dtype(logits.dtype)
    return logits.new_empty(shape, dtype=acc), logits.new_empty(coef_shape(o, logits.shape), dtype=acc)


def _backward(grads, saved, logits, target, o):
    (g,), (coef,) = grads, saved
    return _impl(logits.device).backward(g, coef, logits, target, o)


cldice = define_op("cldice", ClDiceOptions, tensors=("logits", "target"), outputs=2,
                   forward=_forward, fake=_fake, backward=_backward, saved_outputs=(1,))
