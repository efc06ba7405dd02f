"""Which implementation runs an op: the Triton kernels or the PyTorch path.

* CUDA tensors run the compiled Triton kernels.
* CPU tensors run the same kernels in Triton's interpreter when
  ``TRITON_INTERPRET=1`` was set before ``triton`` (or this package) was
  imported; otherwise the PyTorch implementation of the same math.
* ``TRITON_SEGLOSS_BACKEND=triton|torch|auto`` (read at every call) and the
  context manager :func:`use_backend` force one. The context manager wins over
  the environment variable. Forcing ``triton`` where it cannot run raises.

The choice is made inside each op's implementation, so it is read when the op
runs (also inside a ``torch.compile``-d graph, where ops are opaque). A
``use_backend`` block holds for the thread (and asyncio task) that entered it,
not for other threads; the backward of an op runs on the backend its forward
chose, wherever autograd runs it (``_core.op`` records it).

Triton's interpreter is not thread-safe: launches on CPU tensors are
serialised by a process-wide lock (``_core.jit.device_guard``).
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import torch

BACKENDS = ("auto", "triton", "torch")

# TRITON_INTERPRET is read by ``@triton.jit`` when a kernel is decorated, so
# what matters is its value when our kernels were imported: record it now.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").strip().lower() not in ("", "0", "false", "no")

try:  # triton is a Linux-only dependency; the PyTorch path needs none of it
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised only where triton is absent
    HAS_TRITON = False

_forced: contextvars.ContextVar = contextvars.ContextVar("triton_segloss_backend", default=None)


def _check_name(name: str, source: str) -> str:
    name = name.strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS}, got {name!r}")
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Force ``"triton"``, ``"torch"`` or ``"auto"`` for the ops run inside the block."""
    token = force(_check_name(name, "use_backend(name)"))
    try:
        yield
    finally:
        unforce(token)


def force(name: str):
    """``use_backend`` without a context manager, for a name already checked (one that
    ``requested_backend`` returned): returns the token to hand to ``unforce``."""
    return _forced.set(name)


def unforce(token) -> None:
    _forced.reset(token)


def requested_backend() -> str:
    """The backend asked for right now: the innermost ``use_backend`` or the env var."""
    forced = _forced.get()
    if forced is not None:
        return forced
    return _check_name(os.environ.get("TRITON_SEGLOSS_BACKEND", "auto"), "TRITON_SEGLOSS_BACKEND")


def triton_unavailable_reason(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on ``device``, or None when they can."""
    if not HAS_TRITON:
        return "triton is not installed"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        if INTERPRET:
            return None
        return (
            "CPU tensors need Triton's interpreter: set TRITON_INTERPRET=1 in the "
            "environment before importing triton or triton_segloss"
        )
    return f"Triton kernels do not run on {device.type} tensors"


def select(device: torch.device) -> str:
    """Resolve the backend for tensors on ``device``: ``"triton"`` or ``"torch"``."""
    want = requested_backend()
    reason = triton_unavailable_reason(device)
    if want == "torch":
        return "torch"
    if want == "triton":
        if reason is not None:
            raise RuntimeError(f"backend 'triton' was forced but cannot run here: {reason}")
        return "triton"
    return "triton" if reason is None else "torch"
