"""The surface family's custom op ``triton_segloss::surface_metric``.

``surface_metric(pred, target, options) -> (B,)``: ``pred`` and ``target``
are ``(B, D0, D1, D2)`` masks (the api folds (N, C) into B = N * C and pads the spatial
dims to three in front), ``tolerance`` the per-channel surface-Dice tolerances (a cached
device tensor of C values, None for the other metrics). One value per (n, c), float32
(float64 when ``pred`` is float64). A metric has no gradient.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class SurfaceOptions(NamedTuple):
    metric: str = "hausdorff"  # "hausdorff" | "asd" | "nsd"
    percentile: Optional[float] = None  # hausdorff: None = the maximum
    symmetric: bool = True  # asd: both directions (ASSD) or pred -> target only
    spacing: tuple[float, ...] = (1.0, 1.0, 1.0)  # one per padded spatial dim (D0, D1, D2)
    ndim: int = 2  # real spatial dims: the last ndim of (D0, D1, D2)
    channels: int = 1  # C: row b of the batch is channel b % C (its tolerance)
    tolerance: tuple[float, ...] = ()  # nsd: one per channel


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(pred, target, o):
    return _impl(pred.device).surface_metric(pred, target, o)


def _fake(pred, target, o):
    return pred.new_empty((pred.shape[0],), dtype=acc_dtype(pred.dtype))


def _backward(grads, saved, pred, target, o):
    raise RuntimeError("triton_segloss surface metrics are not differentiable")


surface_metric_op = define_op("surface_metric", SurfaceOptions, tensors=("pred", "target"), outputs=1,
                              forward=_forward, fake=_fake, backward=_backward)
