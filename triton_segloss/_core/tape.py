"""What a PyTorch-path forward keeps for its backward on the eager route (``op._EagerOp``).

The ops' contract is the GPU design: the forward returns the loss and a few coefficients, and the
backward recomputes the per-pixel values it needs from the inputs (on a GPU that re-read is cheaper
than a store and a load of a saved tensor, and the op's outputs stay the same on every backend).
On the CPU that recompute is most of the backward's time: the class exponentials of CE and focal,
the probabilities of Dice, the soft skeletons of clDice. So an eager call on plain tensors, the
route that skips the custom-op dispatcher, lets the PyTorch path keep those tensors between the
two passes, as an autograd graph of the same eager code would::

    # torch_impl.forward
    tape.keep("ce", e=e, d=d)    # a no-op unless the eager route is recording
    # torch_impl.backward
    kept = tape.taken("ce")      # the forward's dict on the eager route, else None: recompute
    e, d = (kept["e"], kept["d"]) if kept else recompute(...)

Rules: a backward may overwrite the kept tensors (they are its own: the eager route hands them over
once and forgets them, so a second backward with ``retain_graph=True`` recomputes); what it derives
from the kept tensors must be bitwise what it would recompute (tests compare the two routes, and the
custom-op route, taken under ``torch.compile``, fake tensors and the bench counters, never keeps
anything); only the PyTorch path keeps (the Triton kernels' contract is unchanged). The forward
records only when the logits need a gradient; under ``no_grad`` nothing is kept.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_state = threading.local()


@contextmanager
def recording(enabled: bool = True):
    """Collect what the forward keeps into the yielded dict (left empty when not ``enabled``)."""
    rec, prev = start(enabled)
    try:
        yield rec
    finally:
        stop(prev)


def keep(tag: str, **tensors) -> None:
    """Keep tensors under ``tag`` (the family: an op whose backward runs two families' PyTorch
    paths keeps for both) when the eager route records; else nothing happens."""
    rec = getattr(_state, "rec", None)
    if rec is not None:
        rec.setdefault(tag, {}).update(tensors)


def recording_now() -> bool:
    """Whether ``keep`` would keep: a forward may skip work that only a kept tensor needs."""
    return getattr(_state, "rec", None) is not None


def start(enabled: bool):
    """Start collecting what the forward keeps (``recording`` without a context manager, for the
    eager route's hot path): returns (the dict to collect into, the state to hand back to ``stop``).
    Until ``stop`` the forward is on the eager route (``unread_zeros``), recording or not."""
    prev = (getattr(_state, "rec", None), getattr(_state, "eager", False))
    rec: dict = {}
    _state.rec = rec if enabled else None
    _state.eager = True
    return rec, prev


def stop(prev) -> None:
    _state.rec, _state.eager = prev


def unread_zeros(like, shape: tuple, dtype):
    """Zeros of ``shape`` for an op output that this backend's backward never reads (the Triton
    kernels' per-pixel ``stats``, returned by the PyTorch path only to keep the op's outputs the same
    on every backend). On the eager route, where no fake tensor promised contiguous strides, a
    broadcast view of one zero: an (N, 3, S) fp32 block of zeros costs a fresh allocation and a
    write pass (~160 us with page faults at 4x21x128x128) for nothing. Elsewhere, and for an empty
    shape (the (0,) of C within one class tile: nothing to allocate, one op instead of two), real zeros."""
    if getattr(_state, "eager", False) and 0 not in shape:
        return like.new_zeros((), dtype=dtype).expand(shape)
    return like.new_zeros(shape, dtype=dtype)


def start_replay(kept):
    """Hand ``kept`` to the backward (``replaying`` without a context manager): returns the state
    to hand back to ``stop_replay``."""
    prev = getattr(_state, "kept", None)
    _state.kept = kept or None
    return prev


def stop_replay(prev) -> None:
    _state.kept = prev


@contextmanager
def replaying(kept):
    """Hand ``kept`` (a dict, or None) to the backward run inside the block (``taken``)."""
    prev = start_replay(kept)
    try:
        yield
    finally:
        stop_replay(prev)


def taken(tag: str):
    """The tensors the forward kept under ``tag`` (a dict) inside the eager route's backward, once;
    else None (then the backward recomputes). Taking removes them, so nothing is used twice."""
    kept = getattr(_state, "kept", None)
    return None if kept is None else kept.pop(tag, None)
