"""Fused argmax + histogram: confusion matrices and label counts.

One kernel, three modes (``PRED``):

* 0: ``x`` are logits ``(N, C, S)``; the prediction is their argmax over C
  (the first maximum wins, a NaN counts as the maximum: ``torch.argmax``);
  bin = ``C * true + pred``, ``C * C`` bins.
* 1: ``x`` are predicted labels ``(N, 1, S)``; bin as above.
* 2: no prediction; bin = ``true``, ``C`` bins (the label counts that
  ``cross_entropy(balance=True)`` needs).

A pixel counts when ``0 <= true < C``, ``true != ignore_index`` and (mode 1)
``0 <= pred < C`` -- seed 001's ``_fast_hist`` mask, plus the ignore label.

Counts are integers, so every merge order gives the same bits. With at most
``PRIVATE_MAX_BINS`` bins each program keeps a private int32 histogram of its
pixels in registers (``tl.histogram``) and writes it once; the launcher's
caller sums the (programs, bins) partials in int64. With more bins (C > 64 for
a confusion matrix) a register histogram would not fit, and every valid pixel
adds 1 to an int64 global bin with an atomic instead (integer atomics: exact
and order-independent).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import tl_acc

PRIVATE_MAX_BINS = 4096
PIXELS_PER_PROGRAM = 4096


@triton.jit
def _confusion_kernel(
    x_ptr,  # logits (N, C, S) strided (PRED == 0) or predicted labels (N, 1, S) strided (PRED == 1)
    t_ptr,  # true labels, (N, 1, S) strided
    part_ptr,  # per-program counts out, (programs, n_bins) int32; written if PRIVATE
    cm_ptr,  # (n_bins,) int64, zero-filled; incremented atomically if not PRIVATE
    C,
    S,
    n_bins,
    progs_per_image,  # programs per image; each covers iters * BLOCK_S consecutive pixels
    iters,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    ignore_index,  # label skipped when HAS_IGNORE
    PRED: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    PRIVATE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
    NUM_BINS: tl.constexpr,  # power of two >= n_bins (PRIVATE)
):
    """counts[b] = #{pixels: valid and bin(pixel) == b}  (no gradient: counts are integers)."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // progs_per_image
    first = (pid % progs_per_image) * iters * BLOCK_S
    hist = tl.zeros([NUM_BINS], dtype=tl.int32)
    for it in range(iters):
        s = first + it * BLOCK_S + tl.arange(0, BLOCK_S)
        smask = s < S
        t = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
        valid = smask & (t >= 0) & (t < C)
        if HAS_IGNORE:
            valid = valid & (t != ignore_index)
        if PRED == 0:
            best = tl.full([BLOCK_S], float("-inf"), ACC)
            pred = tl.zeros([BLOCK_S], dtype=tl.int64)
            seen_nan = s < 0  # all False
            for c0 in range(0, C, BLOCK_C):
                c = c0 + tl.arange(0, BLOCK_C)
                cmask = c < C
                ptrs = x_ptr + n * stride_xn + c[:, None].to(tl.int64) * stride_xc + s[None, :] * stride_xs
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
            b = t * C + pred
        elif PRED == 1:
            p = tl.load(x_ptr + n * stride_xn + s * stride_xs, mask=smask, other=0).to(tl.int64)
            valid = valid & (p >= 0) & (p < C)
            b = t * C + p
        else:
            b = t
        b = tl.where(valid, b, 0)
        if PRIVATE:
            hist += tl.histogram(b.to(tl.int32), NUM_BINS, mask=valid)
        else:
            tl.atomic_add(cm_ptr + b, tl.full([BLOCK_S], 1, tl.int64), mask=valid)
    if PRIVATE:
        bins = tl.arange(0, NUM_BINS)
        tl.store(part_ptr + pid * n_bins + bins, hist, mask=bins < n_bins)


def _blocks(C: int, mode: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_S): a logits tile of at most 4096 elements; 1024 pixels without logits."""
    if mode != 0:
        return 1, 1024
    block_c = min(triton.next_power_of_2(C), 64)
    return block_c, max(64, min(1024, 4096 // block_c))


def confusion_partials(x, t, num_classes, mode, ignore_index):
    """Counts of ``t`` (and the prediction from ``x``) per bin, as partials to sum over dim 0.

    ``x``: logits (N, C, S) (mode 0), labels (N, 1, S) (mode 1) or ignored (mode 2);
    ``t``: labels (N, 1, S). Returns (programs, n_bins) int32 or (1, n_bins) int64.
    """
    N, _, S = t.shape
    C = int(num_classes)
    n_bins = C if mode == 2 else C * C
    BLOCK_C, BLOCK_S = _blocks(C, mode)
    iters = max(1, min(triton.cdiv(S, BLOCK_S), PIXELS_PER_PROGRAM // BLOCK_S))
    progs = triton.cdiv(S, iters * BLOCK_S)
    grid = (N * progs,)
    if grid[0] == 0:  # no pixels
        return torch.zeros((1, n_bins), device=t.device, dtype=torch.int64)
    private = n_bins <= PRIVATE_MAX_BINS
    num_bins = max(32, triton.next_power_of_2(n_bins)) if private else 32
    if private:
        part = torch.empty((grid[0], n_bins), device=t.device, dtype=torch.int32)
        cm = part
    else:
        cm = torch.zeros((1, n_bins), device=t.device, dtype=torch.int64)
        part = cm
    xs = x.stride() if mode != 2 else (0, 0, 0)
    _confusion_kernel[grid](
        t if mode == 2 else x, t, part, cm,
        C, S, n_bins, progs, iters,
        *xs, t.stride(0), t.stride(2),
        int(0 if ignore_index is None else ignore_index),
        PRED=mode, HAS_IGNORE=ignore_index is not None, PRIVATE=private,
        ACC=tl_acc(x.dtype) if mode == 0 else tl.float32,
        BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C, NUM_BINS=num_bins, num_warps=4,
    )
    return part if private else cm


def _aot_variants():
    specs = []
    common = dict(HAS_IGNORE=True, ACC=tl.float32, BLOCK_C=32, BLOCK_S=128)
    for dt in ("fp32", "bf16", "fp16", "fp64"):
        acc = tl.float64 if dt == "fp64" else tl.float32
        # logits of a 21-class problem: 441 bins in a private histogram
        specs.append(aot_spec(_confusion_kernel, dict(common, PRED=0, PRIVATE=True, NUM_BINS=512, ACC=acc),
                              x_ptr=f"*{dt}", t_ptr="*i64", part_ptr="*i32", cm_ptr="*i64"))
    # predicted labels, uint8 targets; 150 classes: global atomics
    specs.append(aot_spec(_confusion_kernel, dict(common, PRED=1, PRIVATE=True, NUM_BINS=512, BLOCK_C=1,
                                                  BLOCK_S=1024), x_ptr="*i32", t_ptr="*u8", part_ptr="*i32",
                          cm_ptr="*i64"))
    specs.append(aot_spec(_confusion_kernel, dict(common, PRED=0, PRIVATE=False, NUM_BINS=32, BLOCK_C=64,
                                                  BLOCK_S=64), x_ptr="*fp32", t_ptr="*i64", part_ptr="*i64",
                          cm_ptr="*i64"))
    # label counts (cross_entropy balance=True); int64 strides for tensors past 2^31 elements
    big = {"stride_xn": "i64", "stride_xc": "i64", "stride_xs": "i64", "stride_tn": "i64", "stride_ts": "i64"}
    specs.append(aot_spec(_confusion_kernel, dict(common, PRED=2, PRIVATE=True, NUM_BINS=32, BLOCK_C=1,
                                                  BLOCK_S=1024), x_ptr="*i64", t_ptr="*i64", part_ptr="*i32",
                          cm_ptr="*i64", S="i64", **big))
    # the common fast path: contiguous NCHW logits and labels, vectorised loads
    fast = dict(common, PRED=0, PRIVATE=True, NUM_BINS=512, stride_xs=1, stride_ts=1)
    specs.append(aot_spec(_confusion_kernel, fast, divisible=("S", "stride_xn", "stride_xc", "stride_tn"),
                          x_ptr="*fp16", t_ptr="*i64", part_ptr="*i32", cm_ptr="*i64", S="i64",
                          stride_xn="i64", stride_xc="i64", stride_tn="i64"))
    return specs


AOT_SPECS = _aot_variants()
