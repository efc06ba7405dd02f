"""The cross-entropy family's custom op ``triton_segloss::ce`` (and ``ce_backward``).

``ce(logits, target, weight?, pixel_weight?, options) -> (loss, coef, stats)``:
``logits`` (N, C, S), ``target`` (N, 1, S) labels, ``weight`` a (C,) tensor of
class weights (class weights given as numbers travel in the options instead),
``pixel_weight`` an (N, 1, S) map. ``loss`` is 0-d (``"mean"``/``"sum"``) or
the per-pixel ``(N, S)`` map (``"none"``); ``coef`` holds what the finisher
wrote for the backward: ``[scale]`` (the gradient per unit upstream gradient of
each pixel's loss), and with ``balance`` the C class weights it used after it.
``"none"`` without ``balance`` needs none: ``coef`` is empty. ``stats`` (N, 3, S) holds
what the Triton forward found per pixel for the backward when the classes take
more than one register tile (C > ONE_TILE_CLASSES: the running max, the log of the
shifted class sum, 1 - p_y), so the backward sweeps the classes once; it is empty
for fewer classes, and zeros from the PyTorch path, whose backward does not read
it. The backward reads ``coef``, ``stats`` and the upstream gradient from device
memory: no host sync anywhere.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from triton_segloss._core.backend import select
from triton_segloss._core.cache import device_values
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class CEOptions(NamedTuple):
    """Every option of ``cross_entropy``, checked, as the op receives them."""

    weight_values: Optional[tuple[float, ...]] = None  # class weights given as numbers (a tensor is the op's weight)
    balance: bool = False
    ignore_index: Optional[int] = None
    label_smoothing: float = 0.0
    reduction: str = "mean"


def coef_size(C: int, o: CEOptions) -> int:
    """Length of ``coef``: [scale] (+ the C class weights with balance); 0 for "none" without balance."""
    if o.balance:
        return 1 + C
    return 0 if o.reduction == "none" else 1


ONE_TILE_CLASSES = 64  # the Triton kernels' widest class chunk (ce/kernels.py)


def stats_shape(N: int, C: int, S: int) -> tuple:
    """Shape of ``stats``: (N, 3, S) when the classes take more than one chunk, else (0,)."""
    return (N, 3, S) if C > ONE_TILE_CLASSES else (0,)


def _weight_tensor(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return device_values(values, device, dtype)  # made once per (device, dtype, values), not per call


def _weight(logits, weight, o):
    """The class weights both backends read: the tensor, the cached tensor of the numbers, or None."""
    if weight is None and o.weight_values is not None:
        return _weight_tensor(tuple(o.weight_values), logits.device, acc_dtype(logits.dtype))
    return weight


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(logits, target, weight, pixel_weight, o):
    return _impl(logits.device).forward(logits, target, _weight(logits, weight, o), pixel_weight, o)


def _fake(logits, target, weight, pixel_weight, o):
    acc = acc_dtype(logits.dtype)
    N, C, S = logits.shape
    return (logits.new_empty((N, S) if o.reduction == "none" else (), dtype=acc),
            logits.new_empty((coef_size(C, o),), dtype=acc),
            logits.new_empty(stats_shape(N, C, S), dtype=acc))


def _backward(grads, saved, logits, target, weight, pixel_weight, o):
    (g,), (coef, stats) = grads, saved
    return _impl(logits.device).backward(g, coef, stats, logits, target, _weight(logits, weight, o), pixel_weight, o)


ce = define_op("ce", CEOptions, tensors=("logits", "target", "weight?", "pixel_weight?"), outputs=3,
               forward=_forward, fake=_fake, backward=_backward, saved_outputs=(1, 2))
