"""The focal family's custom ops ``triton_segloss::focal_sigmoid`` and ``focal_softmax``
(and their ``_backward`` ops).

``focal_sigmoid(logits, target, alpha_weight?, class_weight?, options) -> (loss, coef)``
on (N, C, S) views (target: labels (N, 1, S) for the one-vs-rest form);
``focal_softmax(logits, target, alpha_weight?, class_weight?, options) -> (loss, coef, stats)``
on logits (N, C, S) and labels (N, 1, S). ``loss`` is 0-d (``"mean"``/``"sum"``) or the
elementwise map (``(N, C, S)`` sigmoid, ``(N, S)`` softmax) for ``"none"``; ``coef``
holds the one gradient scale per unit upstream gradient the finisher wrote (``(0,)``
for ``"none"``). ``stats`` (softmax, from logits, C > ONE_TILE_CLASSES: (N, 3, S), else
(0,)) holds what the Triton forward found per pixel for the backward (the running max,
the gradient's factor over the shifted class sum, the other classes' shifted sum), so
the backward sweeps the classes once; zeros from the PyTorch path, whose backward does not read it. The
backward reads ``coef``, ``stats`` and the upstream gradient from device memory: no
host sync anywhere.

A per-class ``alpha`` or ``class_weight`` given as a Python sequence travels as
the option ``class_alpha`` / ``class_weight_values``; its device copy is made once per
(device, dtype, values) and cached here, never per call. Given as tensors they
are the op's ``alpha_weight`` / ``class_weight`` arguments, read in place.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from triton_segloss._core.backend import select
from triton_segloss._core.cache import device_values
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class SigmoidFocalOptions(NamedTuple):
    """Every option of the sigmoid (binary / multilabel / one-vs-rest multiclass) focal loss, checked,
    as the op receives them."""

    alpha: Optional[float] = 0.25  # alpha_t = alpha t + (1 - alpha)(1 - t); None: alpha_t = 1
    gamma: float = 2.0
    ignore_index: Optional[float] = None
    reduction: str = "mean"
    class_alpha: Optional[tuple[float, ...]] = None  # per-class alpha a_c from a Python sequence (C,)
    class_weight_values: Optional[tuple[float, ...]] = None  # per-class multiplier w_c from a Python sequence (C,)
    scale: float = 1.0  # a uniform multiplier (a number given as class_weight)
    labels: bool = False  # the target holds integer labels (N, 1, S): t = [y == c], one-vs-rest
    from_logits: bool = True  # False: the input holds probabilities


class SoftmaxFocalOptions(NamedTuple):
    """Every option of the softmax (multiclass) focal loss, checked, as the op receives them."""

    alpha: float = 1.0  # the uniform class weight, used when no per-class alpha is given
    class_alpha: Optional[tuple[float, ...]] = None  # per-class alpha from a Python sequence (C,)
    gamma: float = 2.0
    ignore_index: Optional[int] = None
    reduction: str = "mean"
    class_weight_values: Optional[tuple[float, ...]] = None  # per-class multiplier from a Python sequence (C,)
    scale: float = 1.0  # a uniform multiplier (a number given as class_weight)
    from_logits: bool = True  # False: the input holds softmax probabilities


ONE_TILE_CLASSES = 16  # the Triton softmax kernels' widest class chunk (focal/kernels.py)


def softmax_stats_shape(N: int, C: int, S: int, o) -> tuple:
    """Shape of the softmax op's ``stats``: (N, 3, S) from logits with more classes than one chunk, else (0,)."""
    return (N, 3, S) if o.from_logits and C > ONE_TILE_CLASSES else (0,)


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _fake(logits, map_shape, o):
    acc = acc_dtype(logits.dtype)
    none = o.reduction == "none"
    return (logits.new_empty(map_shape if none else (), dtype=acc),
            logits.new_empty((0 if none else 1,), dtype=acc))


def _cached(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Per-class ``values`` as a (C,) tensor on ``device``: one host-to-device copy per
    (device, dtype, values), not one per call (on CUDA each would be a synchronising copy)."""
    return device_values(values, device, dtype)


def _per_class(logits, tensor, values):
    """The per-class weights the backends read: the tensor given, the cached Python values, or None."""
    if tensor is not None or values is None:
        return tensor
    return _cached(tuple(values), logits.device, acc_dtype(logits.dtype))


# ---- sigmoid focal ------------------------------------------------------------------------

def _sigmoid_forward(logits, target, alpha_weight, class_weight, o):
    aw, cw = _per_class(logits, alpha_weight, o.class_alpha), _per_class(logits, class_weight, o.class_weight_values)
    return _impl(logits.device).sigmoid_forward(logits, target, aw, cw, o)


def _sigmoid_fake(logits, target, alpha_weight, class_weight, o):
    return _fake(logits, logits.shape, o)


def _sigmoid_backward(grads, saved, logits, target, alpha_weight, class_weight, o):
    (g,), (coef,) = grads, saved
    aw, cw = _per_class(logits, alpha_weight, o.class_alpha), _per_class(logits, class_weight, o.class_weight_values)
    return _impl(logits.device).sigmoid_backward(g, coef, logits, target, aw, cw, o)


focal_sigmoid = define_op("focal_sigmoid", SigmoidFocalOptions,
                          tensors=("logits", "target", "alpha_weight?", "class_weight?"), outputs=2,
                          forward=_sigmoid_forward, fake=_sigmoid_fake, backward=_sigmoid_backward,
                          saved_outputs=(1,))


# ---- softmax focal ------------------------------------------------------------------------

def _softmax_forward(logits, target, alpha_weight, class_weight, o):
    aw, cw = _per_class(logits, alpha_weight, o.class_alpha), _per_class(logits, class_weight, o.class_weight_values)
    return _impl(logits.device).softmax_forward(logits, target[:, 0], aw, cw, o)


def _softmax_fake(logits, target, alpha_weight, class_weight, o):
    N, C, S = logits.shape
    return _fake(logits, (N, S), o) + (logits.new_empty(softmax_stats_shape(N, C, S, o), dtype=acc_dtype(logits.dtype)),)


def _softmax_backward(grads, saved, logits, target, alpha_weight, class_weight, o):
    (g,), (coef, stats) = grads, saved
    aw, cw = _per_class(logits, alpha_weight, o.class_alpha), _per_class(logits, class_weight, o.class_weight_values)
    return _impl(logits.device).softmax_backward(g, coef, stats, logits, target[:, 0], aw, cw, o)


focal_softmax = define_op("focal_softmax", SoftmaxFocalOptions,
                          tensors=("logits", "target", "alpha_weight?", "class_weight?"),
                          outputs=3, forward=_softmax_forward, fake=_softmax_fake, backward=_softmax_backward,
                          saved_outputs=(1, 2))
