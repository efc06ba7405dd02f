"""Fused sigmoid + binary cross entropy: forward partial sums and a recomputing backward.

Every tensor is seen as (N, C, S): batch, channel, flattened spatial, with
its own strides (stride 0 for broadcast maps), so channels_last and expanded
inputs are read in place. One program handles BLOCK pixels of one (n, c) row.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._validate import acc_dtype
from ._aot import aot_spec
from ._common import block_for, tl_acc


@triton.jit
def _bce_fwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target mask in [0, 1] (or ignore_index), (N, C, S) strided
    w_ptr,  # per-pixel weight, (N, C, S) strided; read only if HAS_WEIGHT
    pw_ptr,  # pos_weight, (N, C, S) strided (usually stride 0); read only if HAS_POS_WEIGHT
    loss_ptr,  # elementwise loss out, contiguous (N, C, S) in ACC; written only if STORE_LOSS
    part_ptr,  # per-program partials out, (programs, 4) in ACC
    C,
    S,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    stride_pn, stride_pc, stride_ps,
    scal_ptr,  # three ACC scalars: [pos_weight used when not HAS_POS_WEIGHT, ignore_index, label smoothing eps]
    HAS_WEIGHT: tl.constexpr,
    HAS_POS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    BALANCE: tl.constexpr,
    STORE_LOSS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Per pixel, with s = t (1 - eps) + eps / 2 and sp(x) = log(1 + e^x):

        l = w * [ pw * s * sp(-x) + (1 - s) * sp(x) ],  sp(-x) = sp(x) - x,
        sp(x) = max(x, 0) + log(1 + exp(-|x|))  (no overflow for any finite x).

    Ignored pixels give l = 0. Partials per program:
        BALANCE:  [sum_{t>0.5} l, sum_{t<0.5} l, #{t>0.5}, #{t<0.5}]
        else:     [sum l, 0, #valid, 0]
    """
    pid = tl.program_id(0).to(tl.int64)
    row = pid // n_blocks_s
    n = row // C
    c = row % C
    s = (pid % n_blocks_s) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S

    # scalars come through memory in ACC: a Python float argument would be rounded to fp32
    pos_weight_value = tl.load(scal_ptr).to(ACC)
    ignore_index = tl.load(scal_ptr + 1).to(ACC)
    label_smoothing = tl.load(scal_ptr + 2).to(ACC)
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    ts = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if HAS_POS_WEIGHT:
        pw = tl.load(pw_ptr + n * stride_pn + c * stride_pc + s * stride_ps, mask=mask, other=1.0).to(ACC)
    else:
        pw = pos_weight_value
    sp = tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))
    loss = (1.0 - ts) * sp + pw * ts * (sp - x)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + n * stride_wn + c * stride_wc + s * stride_ws, mask=mask, other=0.0).to(ACC)
        loss = loss * w
    loss = tl.where(valid, loss, 0.0)

    if STORE_LOSS:
        tl.store(loss_ptr + row * S + s, loss, mask=mask)
    if BALANCE:
        pos = valid & (t > 0.5)
        neg = valid & (t < 0.5)
        tl.store(part_ptr + pid * 4 + 0, tl.sum(tl.where(pos, loss, 0.0), axis=0))
        tl.store(part_ptr + pid * 4 + 1, tl.sum(tl.where(neg, loss, 0.0), axis=0))
        tl.store(part_ptr + pid * 4 + 2, tl.sum(pos.to(ACC), axis=0))
        tl.store(part_ptr + pid * 4 + 3, tl.sum(neg.to(ACC), axis=0))
    else:
        zero = tl.sum(tl.zeros([BLOCK], dtype=ACC), axis=0)
        tl.store(part_ptr + pid * 4 + 0, tl.sum(loss, axis=0))
        tl.store(part_ptr + pid * 4 + 1, zero)
        tl.store(part_ptr + pid * 4 + 2, tl.sum(valid.to(ACC), axis=0))
        tl.store(part_ptr + pid * 4 + 3, zero)


@triton.jit
def _bce_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target, (N, C, S) strided
    w_ptr,  # per-pixel weight (if HAS_WEIGHT)
    pw_ptr,  # pos_weight map (if HAS_POS_WEIGHT)
    g_ptr,  # upstream gradient map (N, C, S) strided (if G_IS_MAP)
    coef_ptr,  # two ACC scalars: [scale for t>0.5, scale for t<0.5] (BALANCE) or [scale, unused]
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C,
    S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    stride_pn, stride_pc, stride_ps,
    stride_gn, stride_gc, stride_gs,
    stride_dn, stride_dc, stride_ds,
    scal_ptr,  # three ACC scalars: [pos_weight, ignore_index, label smoothing eps], as in forward
    HAS_WEIGHT: tl.constexpr,
    HAS_POS_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    BALANCE: tl.constexpr,
    G_IS_MAP: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Recomputes sigma = 1 / (1 + e^-x) from the logits; with s, pw, w as in forward:

        dl/dx = w * [ (1 - s) * sigma - pw * s * (1 - sigma) ]
        dx    = scale * dl/dx,   scale = coef[0]                       (mean: g / #valid, sum: g)
                                 scale = coef[t>0.5 ? 0 : 1]           (BALANCE: g a / n_pos, g b / n_neg)
                                 scale *= g[n, c, s]                   (G_IS_MAP, reduction "none")
    and dx = 0 on ignored pixels (and on t == 0.5 exactly under BALANCE).
    """
    pid = tl.program_id(0).to(tl.int64)
    row = pid // n_blocks_s
    n = row // C
    c = row % C
    s = (pid % n_blocks_s) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S

    # scalars come through memory in ACC: a Python float argument would be rounded to fp32
    pos_weight_value = tl.load(scal_ptr).to(ACC)
    ignore_index = tl.load(scal_ptr + 1).to(ACC)
    label_smoothing = tl.load(scal_ptr + 2).to(ACC)
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    ts = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if HAS_POS_WEIGHT:
        pw = tl.load(pw_ptr + n * stride_pn + c * stride_pc + s * stride_ps, mask=mask, other=1.0).to(ACC)
    else:
        pw = pos_weight_value
    sig = 1.0 / (1.0 + tl.exp(-x))
    dx = (1.0 - ts) * sig - pw * ts * (1.0 - sig)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + n * stride_wn + c * stride_wc + s * stride_ws, mask=mask, other=0.0).to(ACC)
        dx = dx * w
    c0 = tl.load(coef_ptr).to(ACC)
    if BALANCE:
        c1 = tl.load(coef_ptr + 1).to(ACC)
        scale = tl.where(t > 0.5, c0, tl.where(t < 0.5, c1, 0.0))
    else:
        scale = c0
    if G_IS_MAP:
        g = tl.load(g_ptr + n * stride_gn + c * stride_gc + s * stride_gs, mask=mask, other=0.0).to(ACC)
        scale = scale * g
    dx = tl.where(valid, dx * scale, 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _opt_strides(t):
    return (0, 0, 0) if t is None else tuple(t.stride())


def _scalars(pos_weight_value, ignore_index, label_smoothing, acc, device):
    """[pos_weight, ignore_index, eps] as an ACC tensor, filled on the device (no host-device copy)."""
    out = torch.empty(3, dtype=acc, device=device)
    out[0] = float(pos_weight_value)
    out[1] = float(0.0 if ignore_index is None else ignore_index)
    out[2] = float(label_smoothing)
    return out


def bce_forward(x, t, w, pw, pos_weight_value, ignore_index, label_smoothing, balance, store_loss):
    """Launch the forward kernel on (N, C, S) views; returns (loss map or None, partials (P, 4))."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    grid = (N * C * n_blocks_s,)
    part = torch.empty((grid[0], 4), device=x.device, dtype=acc)
    loss = torch.empty((N, C, S), device=x.device, dtype=acc) if store_loss else part
    _bce_fwd_kernel[grid](
        x, t, x if w is None else w, x if pw is None else pw, loss, part,
        C, S, n_blocks_s,
        *x.stride(), *t.stride(), *_opt_strides(w), *_opt_strides(pw),
        _scalars(pos_weight_value, ignore_index, label_smoothing, acc, x.device),
        HAS_WEIGHT=w is not None, HAS_POS_WEIGHT=pw is not None, HAS_IGNORE=ignore_index is not None,
        BALANCE=balance, STORE_LOSS=store_loss, ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps,
    )
    return (loss if store_loss else None), part


def bce_backward(x, t, w, pw, g_map, coef, pos_weight_value, ignore_index, label_smoothing, balance):
    """Launch the backward kernel; returns dL/dx with the logits' dtype and layout."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    grid = (N * C * n_blocks_s,)
    _bce_bwd_kernel[grid](
        x, t, x if w is None else w, x if pw is None else pw, coef if g_map is None else g_map, coef, dx,
        C, S, n_blocks_s,
        *x.stride(), *t.stride(), *_opt_strides(w), *_opt_strides(pw), *_opt_strides(g_map), *dx.stride(),
        _scalars(pos_weight_value, ignore_index, label_smoothing, coef.dtype, x.device),
        HAS_WEIGHT=w is not None, HAS_POS_WEIGHT=pw is not None, HAS_IGNORE=ignore_index is not None,
        BALANCE=balance, G_IS_MAP=g_map is not None, ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps,
    )
    return dx


def _aot_variants():
    specs = []
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        flags = dict(HAS_WEIGHT=True, HAS_POS_WEIGHT=True, HAS_IGNORE=True, BALANCE=True, ACC=acc, BLOCK=1024)
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        specs.append(aot_spec(_bce_fwd_kernel, dict(flags, STORE_LOSS=True), x_ptr=f"*{dt}", t_ptr="*u8",
                              loss_ptr=accty, part_ptr=accty, scal_ptr=accty))
        specs.append(aot_spec(_bce_bwd_kernel, dict(flags, G_IS_MAP=True), x_ptr=f"*{dt}", t_ptr="*fp32",
                              dx_ptr=f"*{dt}", coef_ptr=accty, g_ptr=accty, scal_ptr=accty))
    # the common fast path: no options, stride-1 pixels, int64 strides (tensors past 2^31 elements)
    plain = dict(stride_xs=1, stride_ts=1, HAS_WEIGHT=False, HAS_POS_WEIGHT=False, HAS_IGNORE=False,
                 BALANCE=False, ACC=tl.float32, BLOCK=2048)
    big = {f"stride_{a}{b}": "i64" for a in "xtwpgd" for b in "nc"}
    div = ("S", "stride_xn", "stride_xc", "stride_tn", "stride_tc", "stride_dn", "stride_dc")
    specs.append(aot_spec(_bce_fwd_kernel, dict(plain, STORE_LOSS=False), divisible=div[:5], S="i64", n_blocks_s="i64",
                          **{k: v for k, v in big.items() if k[7] in "xtwp"}))
    specs.append(aot_spec(_bce_bwd_kernel, dict(plain, G_IS_MAP=False, stride_ds=1), divisible=div, S="i64", n_blocks_s="i64", **big))
    return specs


AOT_SPECS = _aot_variants()
