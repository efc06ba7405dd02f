"""Triton kernels of the confusion-matrix family and their launchers (the family's only triton import).

A fused argmax + histogram. ``x`` holds logits ``(N, C, S)`` (the prediction is
their argmax over C: the first maximum wins, a NaN counts as the maximum, as in
``torch.argmax``) or predicted labels ``(N, 1, S)``; the bin of a pixel is
``C * true + pred``. A pixel counts when ``0 <= true < C``, ``true !=
ignore_index`` and ``0 <= pred < C`` -- seed 001's ``_fast_hist`` mask, plus the
ignore label and the predictions' range.

Counts are integers, so every merge order gives the same bits. Two launches:

* with at most ``PRIVATE_MAX_BINS`` bins each program of ``_confusion_kernel``
  keeps a private int32 histogram of its pixels in registers (``tl.histogram``)
  and writes it once; ``_confusion_finish_kernel`` sums the (programs, bins)
  partials into the int64 matrix;
* with more bins (C > 64) a register histogram would not fit: the matrix is
  zero-filled and every valid pixel adds 1 to its int64 bin with an atomic
  (integer atomics: exact and order-independent).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import device_guard, tl_acc

PRIVATE_MAX_BINS = 4096
PIXELS_PER_PROGRAM = 4096
FINISH_BINS = 256  # bins per program of the finisher
FINISH_ROWS = 16  # partial rows per step of the finisher


@triton.jit
def _confusion_kernel(
    x_ptr,  # logits (N, C, S) strided (FROM_LOGITS) or predicted labels (N, 1, S) strided
    t_ptr,  # true labels, (N, 1, S) strided
    part_ptr,  # per-program counts out, contiguous (programs, n_bins) int32; written if PRIVATE
    cm_ptr,  # the (n_bins,) int64 matrix, zero-filled; incremented atomically if not PRIVATE
    C, S,
    n_bins,  # C * C
    progs_per_image,  # programs per image; each covers iters * BLOCK_S consecutive pixels
    iters,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    ignore_index,  # label skipped when HAS_IGNORE
    FROM_LOGITS: tl.constexpr, HAS_IGNORE: tl.constexpr, PRIVATE: tl.constexpr,
    ACC: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr,
    NUM_BINS: tl.constexpr,  # power of two >= n_bins (PRIVATE)
):
    """counts[C * true + pred] = #{valid pixels with that (true, pred)}  (no gradient: counts are integers)."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // progs_per_image
    first = (pid % progs_per_image) * iters * BLOCK_S
    hist = tl.zeros([NUM_BINS], dtype=tl.int32)
    for it in range(iters):
        s = first + it * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)
        smask = s < S
        t = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
        valid = smask & (t >= 0) & (t < C)
        if HAS_IGNORE:
            valid = valid & (t != ignore_index)
        if FROM_LOGITS:
            best = tl.full([BLOCK_S], float("-inf"), ACC)
            pred = tl.zeros([BLOCK_S], dtype=tl.int64)
            seen_nan = s < 0  # all False
            for c0 in range(0, C, BLOCK_C):
                c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)  # int64: c * stride_xc passes 2^31 in large volumes
                cmask = c < C
                ptrs = x_ptr + n * stride_xn + c[:, None] * stride_xc + s[None, :] * stride_xs
                x = tl.load(ptrs, mask=cmask[:, None] & smask[None, :], other=float("-inf")).to(ACC)
                is_nan = (x != x).to(tl.int32)
                v, i = tl.max(tl.where(x != x, float("-inf"), x), axis=0, return_indices=True,
                              return_indices_tie_break_left=True)
                has_nan = tl.max(is_nan, axis=0) > 0
                first_nan = tl.argmax(is_nan, axis=0, tie_break_left=True)
                # strictly greater: an earlier chunk keeps a tie (first maximum wins);
                # the first NaN anywhere beats every number, as in torch.argmax
                pred = tl.where((v > best) & (~seen_nan), c0 + i.to(tl.int64), pred)
                best = tl.maximum(best, v)
                pred = tl.where(has_nan & (~seen_nan), c0 + first_nan.to(tl.int64), pred)
                seen_nan = seen_nan | has_nan
        else:
            pred = tl.load(x_ptr + n * stride_xn + s * stride_xs, mask=smask, other=0).to(tl.int64)
            valid = valid & (pred >= 0) & (pred < C)
        b = tl.where(valid, t * C + pred, 0)
        if PRIVATE:
            hist += tl.histogram(b.to(tl.int32), NUM_BINS, mask=valid)
        else:
            tl.atomic_add(cm_ptr + b, tl.full([BLOCK_S], 1, tl.int64), mask=valid)
    if PRIVATE:
        bins = tl.arange(0, NUM_BINS).to(tl.int64)
        tl.store(part_ptr + pid * n_bins + bins, hist, mask=bins < n_bins)


@triton.jit
def _confusion_finish_kernel(
    part_ptr,  # per-program counts, contiguous (n_part, n_bins) int32
    cm_ptr,  # out: the (n_bins,) int64 matrix
    n_part, n_bins,
    BLOCK_R: tl.constexpr, BLOCK_B: tl.constexpr,
):
    """cm[b] = sum_p part[p, b] in int64 (exact, so the order does not matter); BLOCK_B bins per program."""
    bins = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    bmask = bins < n_bins
    acc = tl.zeros([BLOCK_R, BLOCK_B], dtype=tl.int64)
    for r0 in range(0, n_part, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R).to(tl.int64)
        m = (rows[:, None] < n_part) & bmask[None, :]
        acc += tl.load(part_ptr + rows[:, None] * n_bins + bins[None, :], mask=m, other=0).to(tl.int64)
    tl.store(cm_ptr + bins, tl.sum(acc, axis=0), mask=bmask)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _blocks(C: int, from_logits: bool) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_S): a logits tile of at most 4096 elements; 1024 pixels of predicted labels."""
    if not from_logits:
        return 1, 1024
    block_c = min(triton.next_power_of_2(C), 64)
    return block_c, max(64, min(1024, 4096 // block_c))


def forward(x, t, o):
    """The int64 (C, C) matrix, rows = true class, columns = predicted class. ``x``: logits
    (N, C, S) (floating) or predicted labels (N, 1, S) (integer); ``t``: labels (N, 1, S)."""
    N, _, S = t.shape
    C = int(o.num_classes)
    n_bins = C * C
    from_logits = x.is_floating_point()
    if N * S == 0:  # no pixels
        return torch.zeros((C, C), device=t.device, dtype=torch.int64)
    BLOCK_C, BLOCK_S = _blocks(C, from_logits)
    iters = max(1, min(triton.cdiv(S, BLOCK_S), PIXELS_PER_PROGRAM // BLOCK_S))
    progs = triton.cdiv(S, iters * BLOCK_S)
    private = n_bins <= PRIVATE_MAX_BINS
    cm = (torch.empty if private else torch.zeros)((C, C), device=t.device, dtype=torch.int64)
    part = torch.empty((N * progs, n_bins), device=t.device, dtype=torch.int32) if private else None
    with device_guard(t):
        _confusion_kernel[(N * progs,)](
            x_ptr=x, t_ptr=t, part_ptr=part, cm_ptr=None if private else cm, C=C, S=S, n_bins=n_bins,
            progs_per_image=progs, iters=iters, stride_xn=x.stride(0), stride_xc=x.stride(1), stride_xs=x.stride(2),
            stride_tn=t.stride(0), stride_ts=t.stride(2),
            ignore_index=0 if o.ignore_index is None else int(o.ignore_index),
            FROM_LOGITS=from_logits, HAS_IGNORE=o.ignore_index is not None, PRIVATE=private,
            ACC=tl_acc(x.dtype), BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C,
            NUM_BINS=max(32, triton.next_power_of_2(n_bins)) if private else 32, num_warps=4)
        if private:
            _confusion_finish_kernel[(triton.cdiv(n_bins, FINISH_BINS),)](
                part_ptr=part, cm_ptr=cm, n_part=N * progs, n_bins=n_bins, BLOCK_R=FINISH_ROWS, BLOCK_B=FINISH_BINS)
    return cm


def _aot_variants():
    specs = []
    common = dict(HAS_IGNORE=True, BLOCK_C=32, BLOCK_S=128)
    for dt in ("fp32", "bf16", "fp16", "fp64"):
        acc = tl.float64 if dt == "fp64" else tl.float32
        # logits of a 21-class problem: 441 bins in a private histogram
        specs.append(aot_spec(_confusion_kernel, dict(common, FROM_LOGITS=True, PRIVATE=True, NUM_BINS=512, ACC=acc),
                              x_ptr=f"*{dt}", t_ptr="*i64", part_ptr="*i32", cm_ptr="*i64"))
    # predicted labels, uint8 targets
    specs.append(aot_spec(_confusion_kernel, dict(common, FROM_LOGITS=False, PRIVATE=True, NUM_BINS=512, BLOCK_C=1,
                                                  BLOCK_S=1024, ACC=tl.float32),
                          x_ptr="*i32", t_ptr="*u8", part_ptr="*i32", cm_ptr="*i64"))
    # 150 classes: global atomics
    specs.append(aot_spec(_confusion_kernel, dict(common, FROM_LOGITS=True, PRIVATE=False, NUM_BINS=32, BLOCK_C=64,
                                                  BLOCK_S=64, ACC=tl.float32),
                          x_ptr="*fp32", t_ptr="*i64", part_ptr="*i32", cm_ptr="*i64"))
    # the common fast path: contiguous NCHW logits and labels, vectorised loads, int64 strides
    fast = dict(common, FROM_LOGITS=True, PRIVATE=True, NUM_BINS=512, ACC=tl.float32, stride_xs=1, stride_ts=1)
    specs.append(aot_spec(_confusion_kernel, fast, divisible=("S", "stride_xn", "stride_xc", "stride_tn"),
                          x_ptr="*fp16", t_ptr="*i64", part_ptr="*i32", cm_ptr="*i64", S="i64",
                          stride_xn="i64", stride_xc="i64", stride_tn="i64"))
    specs.append(aot_spec(_confusion_finish_kernel, dict(BLOCK_R=FINISH_ROWS, BLOCK_B=FINISH_BINS),
                          part_ptr="*i32", cm_ptr="*i64"))
    return specs


AOT_SPECS = _aot_variants()
