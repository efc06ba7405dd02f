"""The distance family's custom op ``triton_segloss::distance_transform``.

``distance_transform(mask, options) -> dist``: ``mask`` is ``(B, D0, D1, D2)`` (the
api folds ``(N, C)`` into ``B`` and pads the spatial dims to three with size-1 dims in
front); ``dist`` has that shape, float32 (float64 for a float64 mask). The transform
takes a mask, not logits: it has no gradient (the api detaches the mask, so its
result never requires grad; the backward raises if autograd ever reaches it).
"""

from __future__ import annotations

from typing import NamedTuple

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class DistanceOptions(NamedTuple):
    """The checked options of ``distance_transform`` / ``signed_distance_transform``."""

    spacing: tuple[float, ...] = (1.0, 1.0, 1.0)  # one per padded spatial dim (D0, D1, D2)
    ndim: int = 2  # real spatial dims: the last ``ndim`` of (D0, D1, D2)
    signed: bool = False


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(mask, o):
    return _impl(mask.device).edt(mask, o)


def _fake(mask, o):
    return mask.new_empty(mask.shape, dtype=acc_dtype(mask.dtype))


def _backward(grads, saved, mask, o):
    raise RuntimeError("triton_segloss.distance_transform is not differentiable: it takes a mask, not logits")


distance_transform_op = define_op("distance_transform", DistanceOptions, tensors=("mask",), outputs=1,
                                  forward=_forward, fake=_fake, backward=_backward)
