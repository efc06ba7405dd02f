"""Exact memory traffic of one training step (forward + backward), in bytes.

Two counters, used together:

* :class:`KernelTraffic` counts what Triton kernels load and store, in Triton's
  interpreter: it wraps the interpreter builder's masked load / store (plain
  loads and stores go through them) and atomics, and adds, per call, the
  number of active lanes (mask true) times the element size. A lane that
  reads a scalar (``tl.load(coef_ptr)``) counts once per program. Lanes that
  land in a kernel's per-program scratch (a parameter named ``scr*``) are
  tallied apart as "scratch" (``StepTraffic.scratch_bytes``; still in the total).
* :class:`AtenTraffic` is a ``TorchDispatchMode`` that counts, for every aten
  op, the bytes of its tensor inputs (read) and outputs (written), except
  ``sort``: it is charged what CUDA's sort moves (``bench.lovasz_sort``'s model:
  radix passes over keys and int64 indices), several times its I/O. Views and
  other metadata ops count nothing; allocations (``empty*``) count nothing;
  ``copy_`` reads its source and writes its destination. A tensor's bytes are
  those of its distinct elements (a stride-0 broadcast counts once). Custom
  ops (``triton_segloss::*``) are entered: their own aten ops and kernels are
  counted, not the op as a black box. While the interpreter runs a kernel the
  aten counter is paused (the interpreter's own host copies are not traffic).

The minimum a loss must move per element of the logits is: forward reads the
logits and the target once, backward reads them once more and writes the
gradient once, e.g. fp32 logits + fp32 mask: 2 * (4 + 4) + 4 = 20 B/elem;
fp32 logits + int64 labels over C classes: 2 * (4 + 8 / C) + 4.

``TRITON_INTERPRET=1`` must be in the environment before ``triton`` is first
imported (``python -m bench --traffic`` sets it).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import triton  # noqa: F401  (TRITON_INTERPRET must already be set)
import triton.runtime.interpreter as _interp

_ALLOC_OPS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "empty_permuted"}


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements of ``t`` (stride-0 dims count once)."""
    if t.numel() == 0:
        return 0
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size()


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _tensors(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _tensors(y)


def _returns_alias(func) -> bool:
    """True for view / metadata ops: every returned tensor aliases an input without writing it."""
    rets = func._schema.returns
    return bool(rets) and all(r.alias_info is not None and not r.alias_info.is_write for r in rets)


@dataclass
class _Tally:
    read: int = 0
    written: int = 0
    by_op: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.read + self.written

    def add(self, name: str, read: int, written: int) -> None:
        self.read += read
        self.written += written
        self.by_op[name] += read + written


# ---------------------------------------------------------------------------
# Triton kernels, in the interpreter
# ---------------------------------------------------------------------------

class KernelTraffic:
    """Counts the bytes Triton kernels load and store while active (use as a context manager)."""

    _active: list["KernelTraffic"] = []
    _saved: dict = {}  # the interpreter's own methods while ours are installed
    in_kernel = 0  # > 0 while the interpreter runs a kernel grid
    kernel_name = ""  # the kernel running now (for the per-kernel breakdown)
    scratch_ranges: list = []  # (start, end) host addresses of the running kernel's scratch buffers

    def __init__(self):
        self.tally = _Tally()

    def __enter__(self):
        if not KernelTraffic._active:
            _install()
        KernelTraffic._active.append(self)
        return self

    def __exit__(self, *exc):
        KernelTraffic._active.remove(self)
        if not KernelTraffic._active:
            _uninstall()

    @classmethod
    def _add(cls, kind: str, read: int, written: int) -> None:
        for counter in cls._active:
            counter.tally.add(f"{cls.kernel_name} {kind}", read, written)


def _lanes(mask) -> int:
    return int(np.count_nonzero(mask.data))


def _elem_size(ptrs) -> int:
    return _interp._get_np_dtype(ptrs.get_element_ty()).itemsize


def _install() -> None:
    """Wrap the interpreter builder's memory ops and the grid launcher (undone by :func:`_uninstall`)."""
    if not _interp_active():
        raise RuntimeError(
            "counting kernel traffic needs Triton's interpreter: set TRITON_INTERPRET=1 in the environment "
            "before triton is imported (python -m bench --traffic does this)"
        )
    b = _interp.interpreter_builder
    masked_load, masked_store = b.create_masked_load, b.create_masked_store
    atomic_rmw, atomic_cas = b.create_atomic_rmw, b.create_atomic_cas

    def _split(ptrs, mask):
        """(bytes outside, bytes inside) the running kernel's scratch buffers, active lanes only."""
        n = _lanes(mask)
        if not KernelTraffic.scratch_ranges or n == 0:
            return n * _elem_size(ptrs), 0
        addr = np.broadcast_to(np.asarray(ptrs.data), np.shape(mask.data))[np.asarray(mask.data, dtype=bool)]
        inside = np.zeros(addr.shape, dtype=bool)
        for lo, hi in KernelTraffic.scratch_ranges:
            inside |= (addr >= lo) & (addr < hi)
        k = int(np.count_nonzero(inside))
        return (n - k) * _elem_size(ptrs), k * _elem_size(ptrs)

    def create_masked_load(ptrs, mask, other, cache_policy, is_volatile):
        out, scr = _split(ptrs, mask)
        KernelTraffic._add("tl.load", out, 0)
        if scr:
            KernelTraffic._add("scratch tl.load", scr, 0)
        return masked_load(ptrs, mask, other, cache_policy, is_volatile)

    def create_masked_store(ptrs, value, mask, cache_policy):
        out, scr = _split(ptrs, mask)
        KernelTraffic._add("tl.store", 0, out)
        if scr:
            KernelTraffic._add("scratch tl.store", 0, scr)
        return masked_store(ptrs, value, mask, cache_policy)

    def create_atomic_rmw(rmwOp, ptr, val, mask, sem, scope):
        n = _lanes(mask) * _elem_size(ptr)
        KernelTraffic._add("tl.load", n, 0)  # an atomic reads and writes each active lane
        KernelTraffic._add("tl.store", 0, n)
        return atomic_rmw(rmwOp, ptr, val, mask, sem, scope)

    def create_atomic_cas(ptr, cmp, val, sem, scope):
        n = int(np.asarray(ptr.data).size) * _elem_size(ptr)
        KernelTraffic._add("tl.load", n, 0)
        KernelTraffic._add("tl.store", 0, n)
        return atomic_cas(ptr, cmp, val, sem, scope)

    # instance attributes shadow the class's methods; create_load / create_store call these through self
    b.create_masked_load = create_masked_load
    b.create_masked_store = create_masked_store
    b.create_atomic_rmw = create_atomic_rmw
    b.create_atomic_cas = create_atomic_cas

    grid_call = KernelTraffic._saved["grid_call"] = _interp.GridExecutor.__call__
    init_args = KernelTraffic._saved["init_args"] = _interp.GridExecutor._init_args_hst

    def _init_args_hst(self, args_dev, kwargs):
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        # a kernel's per-program scratch (parameters named scr*): where its lanes land, on the host copies
        bound = inspect.signature(self.fn).bind_partial(*args_hst, **kwargs_hst).arguments
        KernelTraffic.scratch_ranges = [
            (t.data_ptr(), t.data_ptr() + t.untyped_storage().nbytes())
            for name, t in bound.items() if name.startswith("scr") and isinstance(t, torch.Tensor)]
        return args_hst, kwargs_hst

    _interp.GridExecutor._init_args_hst = _init_args_hst

    def __call__(self, *args, **kwargs):
        KernelTraffic.in_kernel += 1
        KernelTraffic.kernel_name = getattr(self.fn, "__name__", "kernel")
        try:
            return grid_call(self, *args, **kwargs)
        finally:
            KernelTraffic.in_kernel -= 1
            KernelTraffic.scratch_ranges = []

    _interp.GridExecutor.__call__ = __call__


def _uninstall() -> None:
    b = _interp.interpreter_builder
    for name in ("create_masked_load", "create_masked_store", "create_atomic_rmw", "create_atomic_cas"):
        b.__dict__.pop(name, None)
    _interp.GridExecutor.__call__ = KernelTraffic._saved.pop("grid_call")
    _interp.GridExecutor._init_args_hst = KernelTraffic._saved.pop("init_args")


def _interp_active() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() not in ("", "0", "false", "no")


# ---------------------------------------------------------------------------
# aten ops
# ---------------------------------------------------------------------------

def _custom_op_impl(func):
    """The Python implementation behind a ``torch.library.custom_op``, or None."""
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:  # pragma: no cover - older torch
        return None
    opdef = OPDEFS.get(f"{func.namespace}::{func._opname}")
    return None if opdef is None else opdef._init_fn


class AtenTraffic(TorchDispatchMode):
    """Counts the bytes read and written by aten ops run inside the block."""

    def __init__(self):
        super().__init__()
        self.tally = _Tally()
        self.sort_io = 0  # the sorts' own inputs + outputs (what the count charged before the model)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace not in ("aten", "prim", "prims"):
            impl = _custom_op_impl(func)
            if impl is not None:
                with self:  # count the ops inside the custom op, not the op as one black box
                    return impl(*args, **kwargs)
        out = func(*args, **kwargs)
        if KernelTraffic.in_kernel:
            return out
        name = func._opname
        if _returns_alias(func) or name in _ALLOC_OPS:
            return out
        if name == "copy_":
            self.tally.add(str(func), tensor_bytes(args[1]), tensor_bytes(args[0]))
            return out
        reads = sum(tensor_bytes(t) for k, v in (*enumerate(args), *kwargs.items()) if k != "out"
                    for t in _tensors(v))
        writes = sum(tensor_bytes(t) for t in _tensors(out))
        if name == "sort" and SORT_MODEL:
            self.sort_io += reads + writes
            self.tally.add(*_sort_model(func, args, kwargs))
            return out
        touched = _indexed_model(name, args, out) if INDEXED_MODEL else None
        if touched is not None:
            reads, writes = touched
        self.tally.add(str(func), reads, writes)
        return out


INDEXED_MODEL = True  # charge gathers and in-place scatters the elements they touch, not whole tensors


def _indexed_model(name, args, out):
    """(read, written) of an indexed op by the elements it touches, or None for any other op: a gather
    (``gather``, ``take``, ``index_select``) reads its index and one input element per output element
    and writes its output; an in-place scatter (``scatter_``, ``scatter_add_``, ``put_``, ``index_add_``)
    reads its index and its source (one element per index, a 0-d value: nothing) and reads (the adds)
    or writes one element of ``self`` per index. Counting the whole input, as for other ops, charged
    a label lookup in an (N, C, S) tensor C times the bytes it moves."""
    if name in ("gather", "take", "index_select"):
        src, index = args[0], args[2] if name != "take" else args[1]
        return tensor_bytes(index) + out.numel() * src.element_size(), tensor_bytes(out)
    if name in ("scatter_", "scatter_add_", "put_", "index_add_"):
        self_ = args[0]
        index = args[1] if name == "put_" else args[2]
        src = args[2] if name == "put_" else (args[3] if len(args) > 3 else None)
        n = index.numel() if name != "index_add_" else (src.numel() if isinstance(src, torch.Tensor) else 0)
        src_read = 0
        if isinstance(src, torch.Tensor) and src.dim():
            src_read = n * src.element_size()
        adds = name in ("scatter_add_", "index_add_") or (name == "put_" and len(args) > 3 and args[3])
        self_bytes = n * self_.element_size()
        return tensor_bytes(index) + src_read + (self_bytes if adds else 0), self_bytes
    return None


SORT_MODEL = True  # charge torch.sort what CUDA's sort moves (bench/lovasz_sort.py), not its I/O


def _sort_model(func, args, kwargs):
    """(name, read, written) of a sort as CUDA runs it: ``bench.lovasz_sort.sort_bytes_per_elem``'s
    model of torch's CUDA sort (several radix passes over keys and int64 indices, and for 2..127
    segments a second sort on the segment ids), split half read, half written."""
    from bench.lovasz_sort import sort_bytes_per_elem

    keys = args[0]
    dim = kwargs.get("dim", -1)
    for a in args[1:]:
        if isinstance(a, int) and not isinstance(a, bool):
            dim = a
            break
    n = keys.shape[dim] if keys.dim() else 1
    nseg = keys.numel() // max(n, 1)
    path, per = sort_bytes_per_elem(nseg, n, keys.element_size())
    moved = int(round(per * keys.numel()))
    return f"{func} (CUDA model: {path})", moved - moved // 2, moved // 2


# ---------------------------------------------------------------------------
# One training step
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def no_value_checks():
    """Turn off triton_segloss's value checks (host syncs), as on CUDA by default."""
    patched = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("triton_segloss") and hasattr(mod, "check_values_now"):
            patched.append((mod, mod.check_values_now))
            mod.check_values_now = lambda t: False
    try:
        yield
    finally:
        for mod, fn in patched:
            mod.check_values_now = fn


@dataclass
class StepTraffic:
    kernel_bytes: int
    aten_bytes: int
    aten_by_op: Counter
    kernel_by_op: Counter
    sort_io: int = 0  # torch.sort's tensor inputs + outputs (the sort itself is charged by the CUDA model)

    @property
    def total(self) -> int:
        return self.kernel_bytes + self.aten_bytes

    @property
    def scratch_bytes(self) -> int:
        """Of ``kernel_bytes``: loads and stores of kernels' per-program scratch (parameters named
        ``scr*``, e.g. clDice's neighbour exchange), which a GPU serves from L1/L2."""
        return sum(b for op, b in self.kernel_by_op.items() if " scratch " in op)


def count_step(fn, logits: torch.Tensor, target: torch.Tensor, backward: bool = True) -> StepTraffic:
    """Bytes moved by ``loss = fn(logits, target)`` and, if ``backward``, d(loss)/d(logits)."""
    x = logits.detach().clone().requires_grad_(backward)
    with no_value_checks(), KernelTraffic() as kt, AtenTraffic() as at:
        loss = fn(x, target)
        if backward:
            torch.autograd.grad(loss, x)
    return StepTraffic(kt.tally.total, at.tally.total, at.tally.by_op, kt.tally.by_op, at.sort_io)
