"""Fused softmax cross entropy: forward partial sums and a recomputing backward.

Logits are seen as (N, C, S) and labels as (N, 1, S), each with its own
strides, so channels_last and sliced inputs are read in place; the one-hot
target is never built (a label is compared with the class index). One program
handles BLOCK_S pixels of one image and sweeps the classes in chunks of
BLOCK_C with an online log-sum-exp, so any C works.

Traffic by construction: the forward reads the logits once, the labels once
and (if given) the pixel weights once, and writes 2 numbers per program (or
the per-pixel loss for ``reduction="none"``). With label smoothing, and in the
backward, a second sweep over the classes re-reads the tile this program read
in the first sweep (BLOCK_C * BLOCK_S elements, at most 16 KiB: served by the
cache, not by a second pass over memory); the backward writes the gradient
once. Nothing per-pixel is saved between forward and backward.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.validate import acc_dtype
from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import tl_acc


@triton.jit
def _ce_fwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # labels, (N, 1, S) strided
    w_ptr,  # class weights, (C,) contiguous in ACC; read if HAS_WEIGHT
    pw_ptr,  # per-pixel weights, (N, 1, S) strided; read if HAS_PIXEL_WEIGHT
    loss_ptr,  # per-pixel loss out, contiguous (N, S) in ACC; written if STORE_LOSS
    part_ptr,  # per-program partials out, (programs, 2) in ACC: [sum l, sum wt]
    ls_ptr,  # two ACC scalars: [1 - eps, eps / C] (eps = label_smoothing; a tensor keeps fp64 exact)
    C,
    S,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    stride_pn, stride_ps,
    ignore_index,  # label that marks an ignored pixel (if HAS_IGNORE)
    HAS_WEIGHT: tl.constexpr,
    HAS_PIXEL_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    SMOOTH: tl.constexpr,
    STORE_LOSS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Per pixel with label y, class weights w (1 if none), pixel weight m (1 if none),
    lse = log sum_c e^{x_c} = mx + log d (mx the running max, d = sum_c e^{x_c - mx}):

        l  = m * [ (1 - eps) * w_y * (lse - x_y) + eps / C * sum_c w_c * (lse - x_c) ]
        wt = m * w_y

    and l = wt = 0 on pixels whose label is ignore_index or outside [0, C).
    Partials per program: [sum l, sum wt]; "mean" is sum l / sum wt.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    smask = s < S
    y = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    # class offsets are taken in int64 below: C * stride_xc passes 2^31 in large volumes
    x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs

    mx = tl.full([BLOCK_S], float("-inf"), ACC)
    d = tl.zeros([BLOCK_S], dtype=ACC)
    xy = tl.zeros([BLOCK_S], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < C
        mask2 = cmask[:, None] & smask[None, :]
        x = tl.load(x_row + c[:, None].to(tl.int64) * stride_xc, mask=mask2, other=0.0).to(ACC)
        x = tl.where(cmask[:, None], x, float("-inf"))
        mx_new = tl.maximum(mx, tl.max(x, axis=0))
        d = d * tl.exp(mx - mx_new) + tl.sum(tl.exp(x - mx_new[None, :]), axis=0)
        mx = mx_new
        xy += tl.sum(tl.where(c[:, None] == y[None, :], x, 0.0), axis=0)
    log_d = tl.log(d)
    nll = (mx - xy) + log_d  # lse - x_y without forming lse (no cancellation for large logits)

    if HAS_WEIGHT:
        wy = tl.load(w_ptr + y, mask=valid, other=0.0).to(ACC)
    else:
        wy = tl.full([BLOCK_S], 1.0, ACC)
    loss = tl.load(ls_ptr).to(ACC) * wy * nll
    if SMOOTH:
        sm = tl.zeros([BLOCK_S], dtype=ACC)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            cmask = c < C
            mask2 = cmask[:, None] & smask[None, :]
            x = tl.load(x_row + c[:, None].to(tl.int64) * stride_xc, mask=mask2, other=0.0).to(ACC)
            if HAS_WEIGHT:
                wc = tl.load(w_ptr + c, mask=cmask, other=0.0).to(ACC)
            else:
                wc = tl.where(cmask, 1.0, 0.0).to(ACC)
            sm += tl.sum(wc[:, None] * ((mx[None, :] - x) + log_d[None, :]), axis=0)
        loss += tl.load(ls_ptr + 1).to(ACC) * sm
    wt = wy
    if HAS_PIXEL_WEIGHT:
        m = tl.load(pw_ptr + n * stride_pn + s * stride_ps, mask=smask, other=0.0).to(ACC)
        loss = loss * m
        wt = wt * m
    loss = tl.where(valid, loss, 0.0)
    wt = tl.where(valid, wt, 0.0)

    if STORE_LOSS:
        tl.store(loss_ptr + n * S + s, loss, mask=smask)
    tl.store(part_ptr + pid * 2 + 0, tl.sum(loss, axis=0))
    tl.store(part_ptr + pid * 2 + 1, tl.sum(wt, axis=0))


@triton.jit
def _ce_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # labels, (N, 1, S) strided
    w_ptr,  # class weights (C,) in ACC (if HAS_WEIGHT)
    pw_ptr,  # per-pixel weights, (N, 1, S) strided (if HAS_PIXEL_WEIGHT)
    g_ptr,  # upstream gradient map, (N, 1, S) strided (if G_IS_MAP)
    coef_ptr,  # three ACC scalars: [scale, 1 - eps, eps / C]; scale = g / sum wt (mean), g (sum), 1 (none)
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C,
    S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    stride_pn, stride_ps,
    stride_gn, stride_gs,
    stride_dn, stride_dc, stride_ds,
    ignore_index,
    HAS_WEIGHT: tl.constexpr,
    HAS_PIXEL_WEIGHT: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    SMOOTH: tl.constexpr,
    G_IS_MAP: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Recomputes lse in a first sweep, then with p_c = e^{x_c - lse}, W = sum_c w_c:

        dl/dx_c = m * [ (1 - eps) * w_y * (p_c - [c == y]) + eps / C * (W * p_c - w_c) ]
        dx_c    = coef * (g[n, s] if G_IS_MAP) * dl/dx_c,   and 0 on ignored pixels.

    For c == y, p_y - 1 = -sum_{c != y} p_c is taken from its own running sum
    (d_other / d) rather than by subtracting 1 from p_y ~ 1, which would cancel.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    smask = s < S
    y = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)
    x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs

    mx = tl.full([BLOCK_S], float("-inf"), ACC)
    d = tl.zeros([BLOCK_S], dtype=ACC)
    d_other = tl.zeros([BLOCK_S], dtype=ACC)  # the classes other than y
    w_total = tl.sum(tl.zeros([BLOCK_C], dtype=ACC), axis=0)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < C
        mask2 = cmask[:, None] & smask[None, :]
        x = tl.load(x_row + c[:, None].to(tl.int64) * stride_xc, mask=mask2, other=0.0).to(ACC)
        x = tl.where(cmask[:, None], x, float("-inf"))
        mx_new = tl.maximum(mx, tl.max(x, axis=0))
        alpha = tl.exp(mx - mx_new)
        e = tl.exp(x - mx_new[None, :])
        d = d * alpha + tl.sum(e, axis=0)
        d_other = d_other * alpha + tl.sum(tl.where(c[:, None] == y[None, :], 0.0, e), axis=0)
        mx = mx_new
        if SMOOTH:
            if HAS_WEIGHT:
                w_total += tl.sum(tl.load(w_ptr + c, mask=cmask, other=0.0).to(ACC), axis=0)
            else:
                w_total += tl.sum(cmask.to(ACC), axis=0)
    log_d = tl.log(d)
    one_minus_py = d_other / d

    if HAS_WEIGHT:
        wy = tl.load(w_ptr + y, mask=valid, other=0.0).to(ACC)
    else:
        wy = tl.full([BLOCK_S], 1.0, ACC)
    scale = tl.full([BLOCK_S], 1.0, ACC) * tl.load(coef_ptr).to(ACC)
    if HAS_PIXEL_WEIGHT:
        scale = scale * tl.load(pw_ptr + n * stride_pn + s * stride_ps, mask=smask, other=0.0).to(ACC)
    if G_IS_MAP:
        scale = scale * tl.load(g_ptr + n * stride_gn + s * stride_gs, mask=smask, other=0.0).to(ACC)
    scale = tl.where(valid, scale, 0.0)
    a = tl.load(coef_ptr + 1).to(ACC) * wy  # weight of the label term
    dx_row = dx_ptr + n * stride_dn + s[None, :] * stride_ds
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < C
        mask2 = cmask[:, None] & smask[None, :]
        x = tl.load(x_row + c[:, None].to(tl.int64) * stride_xc, mask=mask2, other=0.0).to(ACC)
        p = tl.exp((x - mx[None, :]) - log_d[None, :])
        g = a[None, :] * tl.where(c[:, None] == y[None, :], -one_minus_py[None, :], p)
        if SMOOTH:
            if HAS_WEIGHT:
                wc = tl.load(w_ptr + c, mask=cmask, other=0.0).to(ACC)
            else:
                wc = tl.full([BLOCK_C], 1.0, ACC)
            g += tl.load(coef_ptr + 2).to(ACC) * (w_total * p - wc[:, None])
        dx = g * scale[None, :]
        tl.store(dx_row + c[:, None].to(tl.int64) * stride_dc, dx.to(dx_ptr.dtype.element_ty), mask=mask2)


def _blocks(C: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_S, num_warps): classes in chunks of <= 64, a tile of <= 4096 elements."""
    block_c = max(2, min(triton.next_power_of_2(C), 64))
    block_s = max(32, min(1024, 4096 // block_c, triton.next_power_of_2(max(S, 1))))
    return block_c, block_s, 4


def _opt_strides(t):
    return (0, 0) if t is None else (t.stride(0), t.stride(2))


def smoothing_coefs(label_smoothing, C, dtype, device):
    """[1 - eps, eps / C] as a device tensor of ``dtype``, filled without a host-device copy
    (a Python float kernel argument would be rounded to fp32)."""
    out = torch.empty(2, dtype=dtype, device=device)
    out[0] = 1.0 - label_smoothing
    out[1] = label_smoothing / C
    return out


def ce_forward(x, t, w, pw, ignore_index, label_smoothing, store_loss):
    """Launch the forward kernel on (N, C, S) logits and (N, 1, S) labels.

    ``w``: class weights (C,) in the accumulation dtype or None; ``pw``: (N, 1, S)
    pixel weights or None. Returns (per-pixel loss (N, S) or None, partials (P, 2)).
    """
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    BLOCK_C, BLOCK_S, num_warps = _blocks(C, S)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    grid = (N * n_blocks_s,)
    part = torch.empty((grid[0], 2), device=x.device, dtype=acc)
    loss = torch.empty((N, S), device=x.device, dtype=acc) if store_loss else part
    ls = smoothing_coefs(label_smoothing, C, acc, x.device)
    _ce_fwd_kernel[grid](
        x, t, x if w is None else w, x if pw is None else pw, loss, part, ls,
        C, S, n_blocks_s,
        *x.stride(), t.stride(0), t.stride(2), *_opt_strides(pw),
        int(0 if ignore_index is None else ignore_index),
        HAS_WEIGHT=w is not None, HAS_PIXEL_WEIGHT=pw is not None, HAS_IGNORE=ignore_index is not None,
        SMOOTH=label_smoothing > 0, STORE_LOSS=store_loss, ACC=tl_acc(x.dtype),
        BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C, num_warps=num_warps,
    )
    return (loss if store_loss else None), part


def ce_backward(x, t, w, pw, g_map, coef, ignore_index, label_smoothing):
    """Launch the backward kernel; ``g_map``: (N, 1, S) upstream gradient or None, ``coef``: the
    (1,) gradient scale. Returns dL/dx with the logits' dtype and layout."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    coef = torch.cat([coef.reshape(1), smoothing_coefs(label_smoothing, C, coef.dtype, coef.device)])
    BLOCK_C, BLOCK_S, num_warps = _blocks(C, S)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    grid = (N * n_blocks_s,)
    _ce_bwd_kernel[grid](
        x, t, x if w is None else w, x if pw is None else pw, coef if g_map is None else g_map, coef, dx,
        C, S, n_blocks_s,
        *x.stride(), t.stride(0), t.stride(2), *_opt_strides(pw), *_opt_strides(g_map), *dx.stride(),
        int(0 if ignore_index is None else ignore_index),
        HAS_WEIGHT=w is not None, HAS_PIXEL_WEIGHT=pw is not None, HAS_IGNORE=ignore_index is not None,
        SMOOTH=label_smoothing > 0, G_IS_MAP=g_map is not None, ACC=tl_acc(x.dtype),
        BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C, num_warps=num_warps,
    )
    return dx


def _aot_variants():
    specs = []
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        flags = dict(HAS_WEIGHT=True, HAS_PIXEL_WEIGHT=True, HAS_IGNORE=True, SMOOTH=True, ACC=acc,
                     BLOCK_S=128, BLOCK_C=32)
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        specs.append(aot_spec(_ce_fwd_kernel, dict(flags, STORE_LOSS=True), x_ptr=f"*{dt}", t_ptr="*i64",
                              w_ptr=accty, pw_ptr="*fp32", loss_ptr=accty, part_ptr=accty, ls_ptr=accty))
        specs.append(aot_spec(_ce_bwd_kernel, dict(flags, G_IS_MAP=True), x_ptr=f"*{dt}", t_ptr="*u8",
                              w_ptr=accty, pw_ptr="*fp32", g_ptr=accty, coef_ptr=accty, dx_ptr=f"*{dt}"))
    # the common fast path: contiguous NCHW, no options, int64 strides (tensors past 2^31 elements)
    plain = dict(stride_xs=1, stride_ts=1, HAS_WEIGHT=False, HAS_PIXEL_WEIGHT=False, HAS_IGNORE=True,
                 SMOOTH=False, ACC=tl.float32, BLOCK_S=128, BLOCK_C=32)
    big = dict(S="i64", n_blocks_s="i64", stride_xn="i64", stride_xc="i64", stride_tn="i64", stride_pn="i64",
               stride_ps="i64")
    specs.append(aot_spec(_ce_fwd_kernel, dict(plain, STORE_LOSS=False),
                          divisible=("S", "stride_xn", "stride_xc", "stride_tn"), t_ptr="*i64", **big))
    specs.append(aot_spec(_ce_bwd_kernel, dict(plain, G_IS_MAP=False, stride_ds=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_tn", "stride_dn", "stride_dc"),
                          t_ptr="*i64", stride_gn="i64", stride_gs="i64", stride_dn="i64", stride_dc="i64", **big))
    return specs


AOT_SPECS = _aot_variants()
