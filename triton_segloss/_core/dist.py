"""Sums pooled across the ranks of a process group (``process_group=`` of the Dice family).

A loss that pools the batch (batch-pooled Dice) must see every rank's shard: each
rank computes its per-class sums, the sums are all-reduced, and every rank finishes
the same loss from the same global sums. The collective runs inside the family's
custom op (so ``torch.compile`` sees one opaque op), and the op's schema carries the
group by its name (``ProcessGroup.group_name``), resolved back to the group here.

Gradient convention (as ``torch.distributed.nn.functional.all_reduce``): the
backward all-reduces the upstream gradient of the loss, so with the same loss on
every rank each rank's logits gradient is ``world_size`` times the derivative of
the global loss with respect to its own logits, and DDP's averaging of the
parameter gradients gives exactly the gradient of the single-process run on the
whole batch.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def group_name(process_group) -> Optional[str]:
    """The name that identifies ``process_group`` in an op schema (None: no sync)."""
    if process_group is None:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("process_group was given but this torch build has no torch.distributed")
    if not isinstance(process_group, dist.ProcessGroup):
        raise TypeError(f"process_group must be a torch.distributed.ProcessGroup (e.g. "
                        f"torch.distributed.group.WORLD) or None, got {type(process_group).__name__}")
    return process_group.group_name


def _group(name: str):
    from torch.distributed.distributed_c10d import _resolve_process_group

    return _resolve_process_group(name)


def all_reduce_sum(t: Tensor, name: str) -> Tensor:
    """``t`` summed over the ranks of the group ``name``, in place (``t`` must be a fresh tensor)."""
    import torch.distributed as dist

    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=_group(name))
    return t


def all_reduce_upstream(g: Tensor, name: str) -> Tensor:
    """The upstream gradient of a pooled loss summed over the ranks (a fresh tensor; ``g`` is not touched)."""
    return all_reduce_sum(torch.clone(g, memory_format=torch.contiguous_format), name)
