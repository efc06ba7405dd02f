"""Device launches and host syncs of one training step, counted on the CPU.

``python -m bench --launches`` prints, per loss and mode, what one forward and
one backward would launch on a GPU, counted on the CUDA code path without a GPU:

* Triton launches: every grid the interpreter runs (``TRITON_INTERPRET=1``).
* Other device work: every aten op seen by a ``TorchDispatchMode``, except
  views, metadata ops and allocations (``empty*``), which launch nothing.
  Custom ops (``triton_segloss::*``) are entered, so their insides are counted.
* Host syncs: ``.item()`` / ``bool(tensor)`` (``_local_scalar_dense``),
  ``nonzero``, ``equal``, and tensors built from host data (``lift_fresh``:
  ``torch.tensor(list, device=...)``, an H2D copy that synchronises on CUDA).
  A Python float written into a tensor element (``t[i] = x``) is a ``copy_``
  or ``fill_`` of an element and shows up as a launch.

Value checks are turned off while counting, as they are on CUDA by default.
Host time per step is measured with the Triton launches stubbed out (the grid
is not run), on tiny inputs, beside the eager equivalent run for real on the
same tiny CPU tensors (its kernels cost about as much as a launch there).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import triton  # noqa: F401  (TRITON_INTERPRET must already be set)
import triton.runtime.interpreter as _interp

from .traffic import _ALLOC_OPS, _custom_op_impl, _returns_alias, no_value_checks

SYNC_OPS = {"_local_scalar_dense", "item", "nonzero", "equal", "is_nonzero", "lift_fresh", "lift_fresh_copy",
            "_assert_async"}
FREE_OPS = _ALLOC_OPS | {"detach", "detach_", "lift_fresh", "set_", "resize_", "sym_size", "sym_stride", "sym_numel",
                         "sym_storage_offset", "is_same_size", "_has_compatible_shallow_copy_type"}


@dataclass
class Count:
    launches: int = 0
    syncs: int = 0
    ops: list = field(default_factory=list)

    def add(self, name: str, sync: bool, launch: bool) -> None:
        if launch:
            self.launches += 1
        if sync:
            self.syncs += 1
        self.ops.append(name)


class _Counter(TorchDispatchMode):
    active: Optional["_Counter"] = None
    in_kernel = 0

    def __init__(self):
        super().__init__()
        self.count = Count()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace not in ("aten", "prim", "prims"):
            impl = _custom_op_impl(func)
            if impl is not None:
                with self:
                    return impl(*args, **kwargs)
        out = func(*args, **kwargs)
        if _Counter.in_kernel:
            return out  # the interpreter's own host copies
        name = func._opname
        sync = name in SYNC_OPS
        launch = not (name in FREE_OPS or _returns_alias(func))
        if sync or launch:
            self.count.add(str(func), sync, launch)
        return out


@contextlib.contextmanager
def _grid_hook(stub: bool = False, sink: Optional[list] = None):
    """Count (and with ``stub``, skip) every Triton grid the interpreter launches."""
    saved = _interp.GridExecutor.__call__

    def __call__(self, *args, **kwargs):
        if _Counter.active is not None:
            _Counter.active.count.add(f"triton {getattr(self.fn, '__name__', 'kernel')}", False, True)
        if sink is not None:
            sink.append(getattr(self.fn, "__name__", "kernel"))
        if stub:
            return None
        _Counter.in_kernel += 1
        try:
            return saved(self, *args, **kwargs)
        finally:
            _Counter.in_kernel -= 1

    _interp.GridExecutor.__call__ = __call__
    try:
        yield
    finally:
        _interp.GridExecutor.__call__ = saved


@contextlib.contextmanager
def _counting():
    c = _Counter()
    _Counter.active = c
    try:
        with c:
            yield c.count
    finally:
        _Counter.active = None


@dataclass
class StepCount:
    forward: Count
    backward: Count

    @property
    def launches(self) -> int:
        return self.forward.launches + self.backward.launches

    @property
    def syncs(self) -> int:
        return self.forward.syncs + self.backward.syncs


def count_step(fn: Callable, logits: torch.Tensor, target, backward: bool = True) -> StepCount:
    """Launches and syncs of ``loss = fn(logits, target)`` and of d(loss)/d(logits) (Triton backend)."""
    import triton_segloss as tsl

    x = logits.detach().clone().requires_grad_(backward)
    with tsl.use_backend("triton"), no_value_checks(), _grid_hook():
        warm = fn(x, target)  # the first call may fill per-device caches (option tensors); count the second
        if backward:
            torch.autograd.grad(warm, x, torch.ones_like(warm))
        with _counting() as fwd:
            loss = fn(x, target)
        seed = torch.ones_like(loss) if backward else None  # autograd's seed gradient: not the loss's work
        bwd = Count()
        if backward:
            with _counting() as bwd:
                torch.autograd.grad(loss, x, seed)
    return StepCount(fwd, bwd)


def host_us(fn: Callable, logits: torch.Tensor, target, *, stub: bool, reps: int = 30, backward: bool = True) -> float:
    """Median host microseconds of one fwd+bwd (Triton launches skipped if ``stub``)."""
    import triton_segloss as tsl

    samples = []
    for i in range(reps + 3):
        x = logits.detach().clone().requires_grad_(backward)
        with contextlib.ExitStack() as st:
            if stub:
                st.enter_context(tsl.use_backend("triton"))
                st.enter_context(no_value_checks())
                st.enter_context(_grid_hook(stub=True))
            t0 = time.perf_counter()
            loss = fn(x, target)
            if backward:
                torch.autograd.grad(loss.sum() if loss.dim() else loss, x)
            dt = time.perf_counter() - t0
        if i >= 3:
            samples.append(dt * 1e6)
    return statistics.median(samples)


# ---- the cases: every public loss and mode, default and non-default options ----------------------

def _mask(shape, gen):
    return (torch.rand(shape, generator=gen) > 0.6).float()


def _labels(shape, c, gen):
    return torch.randint(0, c, (shape[0], *shape[2:]), generator=gen)


@dataclass
class Case:
    name: str
    fn: Callable
    shape: tuple
    target: str  # "mask", "labels", "image" (ncut) or "mask_u8"
    eager: Optional[Callable] = None
    backward: bool = True
    sort: int = 0  # device launches of the sort the loss needs on top of the budget (Lovász)
    dt: int = 0  # device launches of the distance transform on top of the budget (one per spatial axis)


_CONSTS: dict = {}


def const(like: torch.Tensor, key: str, make: Callable) -> torch.Tensor:
    """An option tensor made once per device (as a training script builds it once), not per call."""
    k = (key, like.device)
    if k not in _CONSTS:
        _CONSTS[k] = make().to(like.device)
    return _CONSTS[k]


def _eager():
    from . import eager

    return eager


def cases() -> list:
    import triton_segloss as tsl

    e = _eager()
    B, M = (2, 1, 16, 16), (2, 4, 16, 16)
    ce_w = [1.0, 2.0, 0.5, 1.0]  # a Python list: the library must not copy it to the device per call

    def ones(x):  # a weight map that broadcasts to any input size, on the input's device
        return const(x, "ones", lambda: torch.ones(1, 1, 1, 1))

    def ce_w_tensor(x):
        return const(x, "ce_w", lambda: torch.tensor(ce_w))
    return [
        Case("bce_with_logits", tsl.bce_with_logits, B, "mask", e.bce_seed001),
        Case("bce_with_logits balance", lambda x, t: tsl.bce_with_logits(x, t, balance=(0.25, 0.75)), B, "mask",
             e.bce_balanced_seed000),
        Case("bce_with_logits none", lambda x, t: tsl.bce_with_logits(x, t, reduction="none"), B, "mask"),
        Case("bce_with_logits weight+pos_weight+ignore",
             lambda x, t: tsl.bce_with_logits(x, t, weight=ones(x), pos_weight=2.0, ignore_index=255,
                                              label_smoothing=0.1), B, "mask"),
        Case("dice_loss binary", tsl.dice_loss, B, "mask", e.dice_binary_seed003),
        Case("dice_loss multiclass", lambda x, t: tsl.dice_loss(x, t, mode="multiclass"), M, "labels",
             e.dice_multiclass_seed004),
        Case("dice_loss multiclass classes+class_weight",
             lambda x, t: tsl.dice_loss(x, t, mode="multiclass", classes=[1, 2, 3], class_weight=[1.0, 2.0, 1.0, 1.0],
                                        per_image=True, log_loss=True), M, "labels"),
        Case("dice_loss multilabel", lambda x, t: tsl.dice_loss(x, t, mode="multilabel", smooth=1.0), M, "mask"),
        Case("jaccard_loss multiclass", lambda x, t: tsl.jaccard_loss(x, t, mode="multiclass"), M, "labels"),
        Case("tversky_loss binary focal", lambda x, t: tsl.tversky_loss(x, t, alpha=0.3, beta=0.7, gamma=0.75), B,
             "mask"),
        Case("generalized_dice_loss multiclass", lambda x, t: tsl.generalized_dice_loss(x, t, mode="multiclass"), M,
             "labels"),
        Case("bce_dice_loss", tsl.bce_dice_loss, B, "mask"),
        Case("ce_dice_loss", lambda x, t: tsl.ce_dice_loss(x, t, ce_weight=ce_w_tensor(x)), M, "labels"),
        Case("dice_focal_loss multiclass", lambda x, t: tsl.dice_focal_loss(x, t, mode="multiclass"), M, "labels"),
        Case("focal_loss binary", tsl.focal_loss, B, "mask", e.focal_sigmoid_torchvision),
        Case("focal_loss multiclass alpha list",
             lambda x, t: tsl.focal_loss(x, t, mode="multiclass", alpha=[0.1, 0.2, 0.3, 0.4], ignore_index=255), M,
             "labels", e.focal_softmax_seed004),
        Case("focal_loss multilabel none+ignore",
             lambda x, t: tsl.focal_loss(x, t, mode="multilabel", ignore_index=255, reduction="none"), M, "mask"),
        Case("focal_loss multiclass tensor alpha sum",
             lambda x, t: tsl.focal_loss(x, t, mode="multiclass", alpha=const(x, "focal_a", lambda: torch.tensor(ce_w)),
                                         gamma=0.5, reduction="sum"), M, "labels"),
        Case("cross_entropy", tsl.cross_entropy, M, "labels", e.cross_entropy2d_seed001),
        Case("cross_entropy weight+smoothing", lambda x, t: tsl.cross_entropy(x, t, weight=ce_w, label_smoothing=0.1),
             M, "labels"),
        Case("cross_entropy balance", lambda x, t: tsl.cross_entropy(x, t, balance=True), M, "labels",
             e.balanced_ce_seed003),
        Case("cross_entropy balance none+ignore+smoothing+pixel_weight",
             lambda x, t: tsl.cross_entropy(x, t, balance=True, reduction="none", ignore_index=255,
                                            label_smoothing=0.1, pixel_weight=ones(x)[:, 0]), M, "labels"),
        Case("lovasz_hinge", tsl.lovasz_hinge, B, "mask", e.lovasz_hinge_berman, sort=1),
        Case("lovasz_softmax", tsl.lovasz_softmax, M, "labels", e.lovasz_softmax_berman, sort=1),
        Case("lovasz_softmax classes list", lambda x, t: tsl.lovasz_softmax(x, t, classes=[0, 2], per_image=True), M,
             "labels", sort=1),
        Case("lovasz_hinge batch sum ignore+margin",
             lambda x, t: tsl.lovasz_hinge(x, t, per_image=False, reduction="sum", ignore_index=255, margin=(1, 5)),
             B, "mask", sort=1),
        Case("lovasz_softmax all none per_image ignore",
             lambda x, t: tsl.lovasz_softmax(x, t, classes="all", per_image=True, reduction="none", ignore_index=255),
             M, "labels", sort=1),
        Case("boundary_bce_dice_loss", lambda x, t: tsl.boundary_bce_dice_loss(x, t, kernel_size=5), B, "mask",
             lambda x, t: e.boundary_bce_dice_seed001(x, t, 5)),
        Case("boundary_bce_dice_loss default kernel log_dice",
             lambda x, t: tsl.boundary_bce_dice_loss(x, t, log_dice=True), B, "mask"),
        Case("boundary_bce_dice_loss 3d", lambda x, t: tsl.boundary_bce_dice_loss(x, t, kernel_size=3),
             (2, 1, 4, 8, 8), "mask"),
        Case("boundary_weight_map", lambda x, t: tsl.boundary_weight_map(t, 5), B, "mask", backward=False),
        Case("ncut_loss", lambda p, img: tsl.ncut_loss(p, img, radius=2), (2, 3, 16, 16), "image"),
        Case("ncut_loss spatial_gaussian", lambda p, img: tsl.ncut_loss(p, img, radius=2, spatial_gaussian=True),
             (2, 3, 16, 16), "image"),
        Case("confusion_matrix", lambda x, t: tsl.metrics.confusion_matrix(x, t, 4), M, "labels", backward=False),
        Case("hausdorff_dt_loss", tsl.hausdorff_dt_loss, B, "mask", dt=2),
        Case("hausdorff_dt_loss multiclass 3d", lambda x, t: tsl.hausdorff_dt_loss(x, t, mode="multiclass"),
             (2, 3, 4, 8, 8), "labels", dt=3),
        Case("boundary_loss multiclass", lambda x, t: tsl.boundary_loss(x, t, mode="multiclass"), M, "labels", dt=2),
        Case("dice_boundary_loss multiclass", lambda x, t: tsl.dice_boundary_loss(x, t, mode="multiclass", alpha=0.3),
             M, "labels", dt=2),
        Case("cldice_loss", tsl.cldice_loss, B, "mask"),
        Case("dice_cldice_loss multiclass", lambda x, t: tsl.dice_cldice_loss(x, t, mode="multiclass"), M, "labels"),
        Case("cldice_loss 3d", tsl.cldice_loss, (2, 1, 4, 8, 8), "mask"),
        Case("ce_dice_loss label_smoothing", lambda x, t: tsl.ce_dice_loss(x, t, label_smoothing=0.1), M, "labels"),
        Case("dice_loss multilabel soft_label", lambda x, t: tsl.dice_loss(x, t, mode="multilabel", soft_label=True), M,
             "mask"),
    ]


def make_inputs(case: Case, gen: torch.Generator):
    x = torch.randn(case.shape, generator=gen)
    if case.target == "mask":
        return x, _mask(case.shape, gen)
    if case.target == "labels":
        return x, _labels(case.shape, case.shape[1], gen)
    if case.target == "image":
        return torch.softmax(x, 1), torch.rand((case.shape[0], 3, *case.shape[2:]), generator=gen) * 255
    raise ValueError(case.target)


def run(names: Optional[list] = None, timing: bool = True) -> list:
    """One row per case: launches/syncs fwd and bwd, and host µs (stubbed) beside the eager equivalent."""
    gen = torch.Generator().manual_seed(0)
    rows = []
    for case in cases():
        if names and not any(n in case.name for n in names):
            continue
        x, t = make_inputs(case, gen)
        c = count_step(case.fn, x, t, backward=case.backward)
        row = dict(loss=case.name, fwd=c.forward.launches, bwd=c.backward.launches, syncs=c.syncs,
                   budget_ok=(c.launches <= 4 + case.sort + case.dt and c.syncs == 0), ops=c.forward.ops + c.backward.ops)
        if case.eager is not None:
            ce = _count_eager(case.eager, x, t, case.backward)
            row.update(eager_launches=ce.launches, eager_syncs=ce.syncs)
        if timing:
            row["host_us"] = host_us(case.fn, x, t, stub=True, backward=case.backward)
            if case.eager is not None:
                row["eager_us"] = host_us(case.eager, x, t, stub=False, backward=case.backward)
        rows.append(row)
    return rows


def _count_eager(fn, x, t, backward):
    x = x.detach().clone().requires_grad_(backward)
    with _counting() as fwd:
        loss = fn(x, t)
    bwd = Count()
    if backward:
        seed = torch.ones_like(loss)
        with _counting() as bwd:
            torch.autograd.grad(loss, x, seed)
    return StepCount(fwd, bwd)


def markdown(rows: list) -> str:
    head = "| loss | launches fwd + bwd | host syncs | within budget | host µs/step (kernels stubbed) | eager launches | eager syncs | eager host µs/step |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    lines = []
    for r in rows:
        hu = f"{r['host_us']:.0f}" if "host_us" in r else ""
        eu = f"{r['eager_us']:.0f}" if "eager_us" in r else ""
        lines.append(f"| {r['loss']} | {r['fwd']} + {r['bwd']} | {r['syncs']} | {'yes' if r['budget_ok'] else 'NO'} "
                     f"| {hu} | {r.get('eager_launches', '')} | {r.get('eager_syncs', '')} | {eu} |")
    return head + "\n".join(lines) + "\n"
