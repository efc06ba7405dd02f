"""Argument checks shared by every loss.

Shape, dtype and device checks always run (they cost nothing). Checks of
tensor *values* need a host sync, so they run on CPU tensors always, on CUDA
only with ``TRITON_SEGLOSS_VALIDATE=1``, and never while ``torch.compile``
traces (see :func:`check_values_now`).
"""

from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABEL_DTYPES = (torch.int64, torch.int32, torch.uint8)
REDUCTIONS = ("mean", "sum", "none")


def shape_str(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_values_now(t: Tensor) -> bool:
    """True when value checks (which sync with the host) may run on ``t``."""
    if torch.compiler.is_compiling():
        return False
    if t.device.type == "cpu":
        return True
    return os.environ.get("TRITON_SEGLOSS_VALIDATE", "0") == "1"


def check_logits(logits: Tensor, name: str = "logits", min_dim: int = 2) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), "
            f"got dtype {logits.dtype} with shape {shape_str(logits)}"
        )
    if logits.dim() < min_dim:
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) with at least {min_dim} dims, got {shape_str(logits)}"
        )
    if logits.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch: shape {shape_str(logits)}")
    if logits.numel() == 0:
        raise ValueError(f"{name} has no pixels: shape {shape_str(logits)}; every dim must be at least 1")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_same_device(ref: Tensor, ref_name: str, other: Optional[Tensor], other_name: str) -> None:
    if other is not None and other.device != ref.device:
        raise ValueError(
            f"{other_name} is on {other.device} but {ref_name} is on {ref.device}; "
            f"move them to the same device"
        )


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation and result dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_ncs(x: Tensor, n: int, c: int) -> Tensor:
    """View ``x`` (already of shape (n, c, *spatial)) as (n, c, S) without copying when possible.

    ``reshape`` returns a view whenever the spatial dims merge (contiguous,
    channels_last, stride-0 broadcasts) and copies only for layouts where they
    do not (e.g. a spatially sliced view).
    """
    return x.reshape(n, c, -1)


def binary_target_ncs(logits: Tensor, target: Tensor, name: str = "target") -> Tensor:
    """Accept a binary/multilabel mask shaped like ``logits`` or like ``logits`` without dim 1 (when C == 1)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(target).__name__}")
    n, c = logits.shape[0], logits.shape[1]
    if target.shape == logits.shape:
        pass
    elif c == 1 and target.dim() == logits.dim() - 1 and target.shape[0] == n and target.shape[1:] == logits.shape[2:]:
        target = target.unsqueeze(1)
    else:
        extra = " or (N, *spatial) since C == 1" if c == 1 else ""
        raise ValueError(
            f"{name} must have the shape of logits {shape_str(logits)}{extra}; got {name} {shape_str(target)}"
        )
    if target.dtype == torch.bool:
        target = target.view(torch.uint8)
    elif target.is_complex():
        raise TypeError(f"{name} must be a real mask (float, bool or integer), got dtype {target.dtype}")
    check_same_device(logits, "logits", target, name)
    return as_ncs(target, n, c)


_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}
_TOP_BITS: dict = {}


def _top_bits(dtype: torch.dtype, top: float) -> int:
    """The bit pattern of ``top`` (a number >= 0 exact in ``dtype``) as the same-width signed int."""
    key = (dtype, top)
    if key not in _TOP_BITS:
        _TOP_BITS[key] = int(torch.tensor(top, dtype=dtype).view(_BITS[dtype]))
    return _TOP_BITS[key]


def _in_unit_range_bits(t: Tensor, top: float):
    """For a float CPU tensor: (every value lies in [+0, ``top``], the largest value's bits as an int).

    One ``aminmax`` of the values' bit patterns viewed as signed ints of the same width (about 2.5x
    faster than a float ``aminmax`` on the CPU, which handles NaN). For values whose sign bit is
    clear the int order is the float order, with +inf and every NaN above the finite values; a set
    sign bit (a negative value, -0.0, a negative NaN) makes the int negative. So lo >= 0 and
    hi <= bits(top) hold exactly when every value is in [+0, top]. A -0.0 fails the test although it
    is in range: callers then ask the float ``aminmax`` (a mask holding -0.0 costs that pass more)."""
    lo, hi = torch.aminmax(t.view(_BITS[t.dtype]))
    lo, hi = int(lo), int(hi)
    return 0 <= lo and hi <= _top_bits(t.dtype, top), hi


def _cpu_in_unit_range(t: Tensor) -> bool:
    """Every value of CPU tensor ``t`` lies in [0, 1]: the bits' ``aminmax`` for the float dtypes,
    the values' own ``aminmax`` otherwise and for a -0.0 (NaN fails both)."""
    if t.dtype in _BITS and _in_unit_range_bits(t, 1.0)[0]:
        return True
    lo, hi = (float(v) for v in torch.aminmax(t))
    return lo >= 0 and hi <= 1


_LAST_BINARY: list = [None]  # ((target's key), every value is 0 or 1): what check_binary_values saw last


def binary_known(t: Tensor) -> Optional[bool]:
    """Whether every value of CPU mask ``t`` is 0 or 1, when ``check_binary_values(..., binary=True)``
    has just read these very values (taken once, as ``label_range``); else None (not known)."""
    memo, _LAST_BINARY[0] = _LAST_BINARY[0], None
    if memo is not None and memo[0] == _range_key(t):
        return memo[1]
    return None


def check_binary_values(target: Tensor, ignore_index: Optional[float], name: str = "target",
                        binary: bool = False) -> None:
    """Binary targets must lie in [0, 1] unless equal to ``ignore_index`` (value check).

    With ``binary`` (the BCE PyTorch path asks for it) a CPU check also records whether
    every value is 0 or 1, for ``binary_known``: for a float mask it reads t - t^2, which is >= 0
    exactly for t in [0, 1] (fl(t^2) <= t there; t^2 > t above 1 and t - t^2 < 0 below 0; NaN
    propagates) and 0 exactly for t in {0, 1}: one aminmax answers both, at the cost of one write
    pass (the PyTorch path then skips its own test, a write and a read pass)."""
    _LAST_BINARY[0] = None
    if not check_values_now(target) or target.numel() == 0:
        return
    t = target.view(torch.uint8) if target.dtype == torch.bool else target
    if t.device.type == "cpu":  # reading the two numbers is free here: compare them as numbers
        if binary and t.dtype in _BITS:
            q = torch.addcmul(t, t, t, value=-1.0)
            ok, hi_bits = _in_unit_range_bits(q, 0.25)  # fl(t - t^2) <= 1/4: the rounding is monotone
            if ok:
                _LAST_BINARY[0] = (_range_key(t), hi_bits == 0)  # +0.0 is the only value with bits 0
                return
            lo, hi = (float(v) for v in torch.aminmax(q))
            if lo >= 0:  # NaN compares False
                _LAST_BINARY[0] = (_range_key(t), hi == 0)
                return
        elif _cpu_in_unit_range(t):
            if binary and not t.is_floating_point():
                _LAST_BINARY[0] = (_range_key(t), True)
            return
    else:
        lo, hi = torch.aminmax(t)  # one pass; NaN propagates and fails the comparisons below
        if bool((lo >= 0) & (hi <= 1)):
            return
    t = t.float() if not t.is_floating_point() else t
    bad = (t < 0) | (t > 1) | torch.isnan(t)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bool(bad.any()):
        v = t[bad].flatten()[:4].tolist()
        extra = "" if ignore_index is None else f" and not equal to ignore_index={ignore_index}"
        raise ValueError(
            f"{name} must hold values in [0, 1]{extra}; found e.g. {v} in {name} of shape {shape_str(target)}"
        )


def check_probabilities(p: Tensor, name: str = "logits") -> None:
    """``from_logits=False``: the input must hold probabilities in [0, 1] (value check).

    One rule for every family that takes probabilities (the Dice family, Lovász-Softmax).
    """
    if not check_values_now(p) or p.numel() == 0:
        return
    if p.device.type == "cpu":  # free to read here
        if _cpu_in_unit_range(p):
            return
    else:
        lo, hi = torch.aminmax(p)  # one pass; NaN fails the comparisons
        if bool((lo >= 0) & (hi <= 1)):
            return
    bad = (p < 0) | (p > 1) | torch.isnan(p)
    v = p[bad].flatten()[:4].tolist()
    raise ValueError(
        f"{name} must hold probabilities in [0, 1] when from_logits=False; found e.g. {v} "
        f"in {name} of shape {shape_str(p)}"
    )


def pixel_map_ncs(logits: Tensor, w: Optional[Tensor], name: str) -> Optional[Tensor]:
    """A per-pixel map broadcastable to ``logits``, returned as an (N, C, S) (possibly stride-0) view."""
    if w is None:
        return None
    if not isinstance(w, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(w).__name__}")
    if not w.is_floating_point() and w.dtype not in (torch.uint8, torch.bool, torch.int32, torch.int64):
        raise TypeError(f"{name} must be a real tensor, got dtype {w.dtype}")
    check_same_device(logits, "logits", w, name)
    shape = tuple(logits.shape)
    ws = tuple(w.shape)
    if len(ws) == len(shape) - 1 and logits.shape[1] == 1 and ws[0] == shape[0]:
        w = w.unsqueeze(1)  # (N, *spatial) map for a binary (N, 1, *spatial) logit
    try:
        w = w.expand(shape)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {shape_str(w)} does not broadcast to logits {shape_str(logits)}"
        ) from None
    if w.dtype == torch.bool:
        w = w.view(torch.uint8)
    return as_ncs(w, shape[0], shape[1])


def finite_float(x, name: str) -> float:
    """``x`` as a float; a ValueError names ``name`` if it is not finite.

    While ``torch.compile`` traces, the value is returned unchecked: under
    ``dynamic=True`` float arguments are symbolic, dynamo cannot trace
    ``math.isfinite`` on them, and a check would specialise the graph on the value
    (the same rule as the value checks of tensors, which never run while tracing).
    """
    if isinstance(x, bool):
        return float(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {x!r}") from None
    if torch.compiler.is_compiling():
        return v
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def pair(x: Sequence[float], name: str) -> tuple[float, float]:
    try:
        a, b = x
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (a, b), got {x!r}") from None
    return finite_float(a, f"{name}[0]"), finite_float(b, f"{name}[1]")


def multiclass_target_ns(logits: Tensor, target: Tensor, name: str = "target", min_classes: int = 2) -> Tensor:
    """Integer labels ``(N, *spatial)`` for logits ``(N, C, *spatial)``, returned as an (N, 1, S) view.

    Never one-hot encoded: kernels read the label and compare it with the class index.
    A softmax over one class is constant (loss 0, gradient 0 whatever the logits), so a
    multiclass loss with C == 1 is an error that points at ``mode="binary"``.
    """
    if logits.shape[1] < min_classes:
        raise ValueError(
            f"logits {shape_str(logits)} have C = {logits.shape[1]} in dim 1, but a multiclass (softmax) loss "
            f"needs C >= {min_classes}; for one foreground channel use a binary (sigmoid) loss / mode='binary'"
        )
    if not isinstance(target, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype not in LABEL_DTYPES:
        raise TypeError(
            f"{name} must hold integer class labels (int64, int32 or uint8) for mode='multiclass', "
            f"got dtype {target.dtype} with shape {shape_str(target)}"
        )
    n = logits.shape[0]
    if target.dim() == logits.dim() and target.shape[1] == 1:
        target = target.squeeze(1)  # (N, 1, *spatial) labels are common too
    if tuple(target.shape) != (n, *logits.shape[2:]):
        raise ValueError(
            f"{name} must have shape (N, *spatial) = {(n, *logits.shape[2:])} for logits "
            f"{shape_str(logits)}; got {name} {shape_str(target)}"
        )
    check_same_device(logits, "logits", target, name)
    return target.reshape(n, 1, -1)


def label_ignore(target: Tensor, ignore_index: Optional[int]) -> Optional[int]:
    """``ignore_index`` if a label of ``target``'s dtype can equal it, else None.

    uint8 labels never equal -100 or -1: compared in uint8 the value would wrap
    (-100 -> 156) and silently ignore real labels, so such an ignore_index ignores
    nothing and the labels are range-checked like any others.
    """
    if ignore_index is None:
        return None
    if target.dtype == torch.uint8 and not 0 <= ignore_index <= 255:
        return None
    if target.dtype == torch.int32 and not -2**31 <= ignore_index < 2**31:
        return None
    return ignore_index


_LAST_RANGE: list = [None]  # ((labels' key), lo, hi): what check_label_values read last, for label_range


def _range_key(t: Tensor) -> tuple:
    # views of the same labels share the pointer and the version counter; an in-place write bumps it
    return t.data_ptr(), t.numel(), t.dtype, t.device, t._version


def label_range(t: Tensor) -> tuple[int, int]:
    """(min, max) of CPU labels as ints: the value check's ``aminmax`` when it has just read these
    very labels (taken once), else one ``aminmax`` pass. Saves a pass over the labels per call."""
    memo, _LAST_RANGE[0] = _LAST_RANGE[0], None
    if memo is not None and memo[0] == _range_key(t):
        return memo[1], memo[2]
    lo, hi = torch.aminmax(t)
    return int(lo), int(hi)


def check_label_values(target: Tensor, num_classes: int, ignore_index: Optional[int], name: str = "target") -> None:
    """Labels must lie in [0, num_classes) unless equal to ``ignore_index`` (value check).

    Comparisons run in int64, so a negative ``ignore_index`` never matches a wrapped uint8 label.
    """
    _LAST_RANGE[0] = None
    if not check_values_now(target) or target.numel() == 0:
        return
    lo, hi = torch.aminmax(target)  # one pass for the common all-valid case
    if target.device.type == "cpu":  # reading the two numbers is free here: compare them as ints
        lo, hi = int(lo), int(hi)
        _LAST_RANGE[0] = (_range_key(target), lo, hi)
        if 0 <= lo and hi < num_classes:
            return
    elif bool((lo >= 0) & (hi < num_classes)):  # one host read on CUDA (TRITON_SEGLOSS_VALIDATE=1)
        return
    t = target.long()
    bad = (t < 0) | (t >= num_classes)
    ignore_index = label_ignore(target, ignore_index)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bool(bad.any()):
        v = t[bad].flatten()[:4].tolist()
        extra = "" if ignore_index is None else f" or equal ignore_index={ignore_index}"
        raise ValueError(
            f"{name} labels must lie in [0, {num_classes}){extra}; found e.g. {v} in {name} "
            f"of shape {shape_str(target)}"
        )
