"""Small helpers shared by the kernel launchers."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def tl_acc(dtype: torch.dtype):
    """Accumulation dtype for a kernel reading ``dtype``: fp64 for fp64 inputs, fp32 otherwise."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def block_for(n: int, max_block: int = 2048) -> tuple[int, int]:
    """(BLOCK, num_warps) for a 1D sweep over ``n`` elements: a power of two in [128, max_block]."""
    block = max(128, min(max_block, triton.next_power_of_2(max(int(n), 1))))
    return block, (4 if block <= 1024 else 8)
