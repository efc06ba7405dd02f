"""Device dispatch shared by every op: pick the Triton launchers or the PyTorch path."""

from __future__ import annotations

import importlib

import torch
from torch import Tensor

from triton_segloss._core.backend import select


def impl(family: str, device: torch.device):
    """The module holding ``family``'s launchers for the backend selected now on ``device``.

    ``triton_segloss.kernels.<family>`` and ``triton_segloss.torch_impl.<family>``
    expose functions with the same names and signatures.
    """
    pkg = "kernels" if select(device) == "triton" else "torch_impl"
    return importlib.import_module(f"triton_segloss.{pkg}.{family}")


def sum_partials(part: Tensor) -> Tensor:
    """Second pass of a two-stage reduction: sum per-program partials over dim 0 in a fixed order.

    The sum runs in float64 (counts stay exact far past 2^24 and the result does
    not depend on the number of programs beyond rounding), then comes back in the
    partials' dtype.
    """
    return part.to(torch.float64).sum(0).to(part.dtype)


def like(out: Tensor, ref: Tensor) -> Tensor:
    """``out`` laid out as ``torch.empty_like(ref)`` would be (what the fake kernels promise).

    The Triton launchers allocate with ``empty_like`` already; the PyTorch path's
    elementwise results can come back in another layout when inputs mix layouts.
    """
    want = torch.empty_like(ref)
    if out.stride() == want.stride():
        return out
    return want.copy_(out)
