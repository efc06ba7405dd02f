"""The clDice family's custom op ``triton_segloss::cldice`` (and ``cldice_backward``).

``cldice(logits, target, options) -> loss``: 0-d (``"mean"``/``"sum"``) or ``(N,)`` per image
(``"none"``, clDice alone). ``alpha`` not None adds MONAI's soft Dice:
``(1 - alpha) * dice + alpha * cldice``. The backward recomputes the skeletons from the
logits (nothing full-size is saved).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


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


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(logits, target, o):
    return _impl(logits.device).forward(logits, target, o)


def _fake(logits, target, o):
    shape = (logits.shape[0],) if o.reduction == "none" else ()
    return logits.new_empty(shape, dtype=acc_dtype(logits.dtype))


def _backward(grads, saved, logits, target, o):
    (g,) = grads
    return _impl(logits.device).backward(g, logits, target, o)


cldice = define_op("cldice", ClDiceOptions, tensors=("logits", "target"), outputs=1,
                   forward=_forward, fake=_fake, backward=_backward)
