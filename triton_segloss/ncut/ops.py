"""The NCut family's custom op ``triton_segloss::ncut`` (and ``ncut_backward``).

``ncut(probs, image, options) -> (loss, mu, ab, e)``: ``probs`` (N, K, H, W) and
``image`` (N, CIN, H, W) (the running form gets (N, K, 1, S) views); ``loss`` is
0-d, ``mu`` (N, K, CIN) the class means, ``ab`` (K, 2) and ``e`` (N, K, CIN) the
gradient coefficients per unit upstream gradient that the finisher wrote. The
backward reads them and the upstream gradient from device memory: no host sync,
no per-pixel tensor kept between the passes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from triton_segloss._core.backend import select
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

from . import torch_impl


class NCutOptions(NamedTuple):
    """Every option of ``ncut_loss``, checked, as the op receives them."""

    sigma_value: float = 10.0
    radius: Optional[int] = None  # the spatial Gaussian's radius; None: the running form (no spatial filter)
    sigma_spatial: float = 4.0  # read only with a radius


def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    return torch_impl


def _forward(probs, image, o):
    return _impl(probs.device).forward(probs, image, o)


def _fake(probs, image, o):
    acc = acc_dtype(probs.dtype)
    n, k = probs.shape[:2]
    cin = image.shape[1]
    return (probs.new_empty((), dtype=acc), probs.new_empty((n, k, cin), dtype=acc),
            probs.new_empty((k, 2), dtype=acc), probs.new_empty((n, k, cin), dtype=acc))


def _backward(grads, saved, probs, image, o):
    (g,), (mu, ab, e) = grads, saved
    return _impl(probs.device).backward(g, mu, ab, e, probs, image, o)


ncut = define_op("ncut", NCutOptions, tensors=("probs", "image"), outputs=4, forward=_forward, fake=_fake,
                 backward=_backward, saved_outputs=(1, 2, 3))
