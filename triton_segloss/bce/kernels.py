"""Triton kernels of the BCE family and their launchers (the family's only triton import).

Every tensor is seen as (N, C, S): batch, channel, flattened spatial, with its
own strides (stride 0 for broadcast maps), so channels_last and expanded inputs
are read in place. One program handles BLOCK pixels of one (n, c) row.

A training step is at most three launches (four for ``reduction="none"`` with
``balance``): the forward kernel writes per-program partials, the one-program
finisher sums them in a fixed order and writes the loss and the two gradient
coefficients, and the backward kernel reads those coefficients and the upstream
gradient from device memory. Nothing goes through the host.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, device_guard, load_ncs, pick, row_tile, scalar, sigmoid, \
    softplus, split_f64, sum_rows, tl_acc
from triton_segloss._core.validate import acc_dtype

NPART = 4  # partials per program: [sum_pos l, sum_neg l, n_pos, n_neg] (balance) or [sum l, 0, n, 0]


@triton.jit
def _bce_pixel(x_ptr, t_ptr, w_ptr, pw_ptr, n, c, s, mask,
               stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
               stride_wn, stride_wc, stride_ws, stride_pn, stride_pc, stride_ps,
               pw_hi, pw_lo, ig_hi, ig_lo, ls_hi, ls_lo,
               HAS_WEIGHT: tl.constexpr, HAS_POS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
               ACC: tl.constexpr):
    """The prologue both passes share: (x, raw target t, smoothed target ts, pw, w, valid)."""
    x = load_ncs(x_ptr, n, c, s, stride_xn, stride_xc, stride_xs, mask, 0.0, ACC)
    t = load_ncs(t_ptr, n, c, s, stride_tn, stride_tc, stride_ts, mask, 0, ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != scalar(ig_hi, ig_lo, ACC))
    eps = scalar(ls_hi, ls_lo, ACC)
    ts = t * (1.0 - eps) + 0.5 * eps
    if HAS_POS_WEIGHT:
        pw = load_ncs(pw_ptr, n, c, s, stride_pn, stride_pc, stride_ps, mask, 1.0, ACC)
    else:
        pw = scalar(pw_hi, pw_lo, ACC)
    if HAS_WEIGHT:
        w = load_ncs(w_ptr, n, c, s, stride_wn, stride_wc, stride_ws, mask, 0.0, ACC)
    else:
        w = 1.0
    return x, t, ts, pw, w, valid


@triton.jit
def _bce_fwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target mask in [0, 1] (or ignore_index), (N, C, S) strided, its own dtype
    w_ptr,  # per-pixel weight, (N, C, S) strided; read only if HAS_WEIGHT
    pw_ptr,  # pos_weight map, (N, C, S) strided (often stride 0); read only if HAS_POS_WEIGHT
    coef_ptr,  # two ACC gradient scales [t > 0.5, t < 0.5] from the finisher; read only if APPLY_COEF
    loss_ptr,  # elementwise loss out, contiguous (N, C, S) in ACC; written only if STORE_LOSS
    part_ptr,  # per-program partials out, (programs, 4) in ACC; written only if STORE_PARTIALS
    C, S,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    stride_pn, stride_pc, stride_ps,
    pw_hi, pw_lo,  # scalar pos_weight (fp32 pair) used when not HAS_POS_WEIGHT
    ig_hi, ig_lo,  # ignore_index (fp32 pair)
    ls_hi, ls_lo,  # label smoothing eps (fp32 pair)
    HAS_WEIGHT: tl.constexpr, HAS_POS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
    BALANCE: tl.constexpr, STORE_LOSS: tl.constexpr, STORE_PARTIALS: tl.constexpr, APPLY_COEF: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """Per pixel, with ts = t (1 - eps) + eps / 2 and sp(x) = log(1 + e^x):

        l = w * [ pw * ts * sp(-x) + (1 - ts) * sp(x) ],   sp(-x) = sp(x) - x,
        sp(x) = max(x, 0) + log(1 + e^-|x|)   (no overflow, no cancellation for any finite x).

    Ignored pixels give l = 0. Partials per program:
        BALANCE:  [sum_{t>0.5} l, sum_{t<0.5} l, #{t>0.5}, #{t<0.5}]      else: [sum l, 0, #valid, 0]
    APPLY_COEF (reduction "none" with balance, after the finisher): the stored map is
    l * coef[t > 0.5 ? 0 : 1] (0 where t == 0.5 exactly), each pixel's share of the loss.
    """
    row, n, c, s = row_tile(tl.program_id(0), n_blocks_s, C, BLOCK)
    mask = s < S
    x, t, ts, pw, w, valid = _bce_pixel(
        x_ptr, t_ptr, w_ptr, pw_ptr, n, c, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc,
        stride_ts, stride_wn, stride_wc, stride_ws, stride_pn, stride_pc, stride_ps, pw_hi, pw_lo, ig_hi, ig_lo,
        ls_hi, ls_lo, HAS_WEIGHT, HAS_POS_WEIGHT, HAS_IGNORE, ACC)
    sp = softplus(x)
    loss = tl.where(valid, w * ((1.0 - ts) * sp + pw * ts * (sp - x)), 0.0)
    pos = valid & (t > 0.5)
    neg = valid & (t < 0.5)
    if STORE_LOSS:
        out = loss
        if APPLY_COEF:
            out = loss * tl.where(pos, tl.load(coef_ptr).to(ACC), tl.where(neg, tl.load(coef_ptr + 1).to(ACC), 0.0))
        tl.store(loss_ptr + row * S + s, out, mask=mask)
    if STORE_PARTIALS:
        pid = tl.program_id(0).to(tl.int64)
        if BALANCE:
            tl.store(part_ptr + pid * 4 + 0, tl.sum(tl.where(pos, loss, 0.0), axis=0))
            tl.store(part_ptr + pid * 4 + 1, tl.sum(tl.where(neg, loss, 0.0), axis=0))
            tl.store(part_ptr + pid * 4 + 2, tl.sum(pos.to(ACC), axis=0))
            tl.store(part_ptr + pid * 4 + 3, tl.sum(neg.to(ACC), axis=0))
        else:
            zero = tl.full([], 0.0, ACC)
            tl.store(part_ptr + pid * 4 + 0, tl.sum(loss, axis=0))
            tl.store(part_ptr + pid * 4 + 1, zero)
            tl.store(part_ptr + pid * 4 + 2, tl.sum(valid.to(ACC), axis=0))
            tl.store(part_ptr + pid * 4 + 3, zero)


@triton.jit
def _bce_finish_kernel(
    part_ptr,  # per-program partials, contiguous (n_part, 4) in ACC
    loss_ptr,  # the 0-d loss out, ACC; written only if STORE_LOSS
    coef_ptr,  # out: two ACC gradient scales per unit upstream gradient [t > 0.5 (or all), t < 0.5]
    n_part,
    a_hi, a_lo, b_hi, b_lo,  # balance weights (fp32 pairs)
    BALANCE: tl.constexpr, MEAN: tl.constexpr, STORE_LOSS: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program. With [s0, s1, n0, n1] the fixed-order float64 sums of the partials:

        BALANCE:  loss = a s0 / max(n0, 1) + b s1 / max(n1, 1),  coef = [a / max(n0, 1), b / max(n1, 1)]
        mean:     loss = s0 / max(n0, 1),                        coef = [1 / max(n0, 1)] * 2
        sum:      loss = s0,                                     coef = [1, 1]

    dLoss/dl_pixel = coef[side of the pixel]: the backward multiplies it by the upstream gradient.
    All pixels ignored: n0 = 0, s0 = 0, so the loss is 0 (and the gradient too).
    """
    tot = sum_rows(part_ptr, n_part, 4, 4, BLOCK)
    s0 = pick(tot, 0, 4)
    s1 = pick(tot, 1, 4)
    n0 = tl.maximum(pick(tot, 2, 4), 1.0)
    n1 = tl.maximum(pick(tot, 3, 4), 1.0)
    if BALANCE:
        c0 = scalar(a_hi, a_lo, tl.float64) / n0
        c1 = scalar(b_hi, b_lo, tl.float64) / n1
        loss = s0 * c0 + s1 * c1
    elif MEAN:
        c0 = 1.0 / n0
        c1 = c0
        loss = s0 / n0
    else:
        c0 = tl.full([], 1.0, tl.float64)
        c1 = c0
        loss = s0
    if STORE_LOSS:
        tl.store(loss_ptr, loss.to(ACC))
    tl.store(coef_ptr, c0.to(ACC))
    tl.store(coef_ptr + 1, c1.to(ACC))


@triton.jit
def _bce_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target, (N, C, S) strided
    w_ptr,  # per-pixel weight (if HAS_WEIGHT)
    pw_ptr,  # pos_weight map (if HAS_POS_WEIGHT)
    g_ptr,  # upstream gradient: (N, C, S) strided map if G_IS_MAP, else the 0-d loss gradient
    coef_ptr,  # two ACC scales [t > 0.5 (or all), t < 0.5] from the finisher; read only if HAS_COEF
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_wn, stride_wc, stride_ws,
    stride_pn, stride_pc, stride_ps,
    stride_gn, stride_gc, stride_gs,
    stride_dn, stride_dc, stride_ds,
    pw_hi, pw_lo, ig_hi, ig_lo, ls_hi, ls_lo,  # as in forward
    HAS_WEIGHT: tl.constexpr, HAS_POS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr,
    BALANCE: tl.constexpr, HAS_COEF: tl.constexpr, G_IS_MAP: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """Recomputes sigma = 1 / (1 + e^-x); with ts, pw, w as in forward:

        dl/dx = w * [ (1 - ts) * sigma - pw * ts * (1 - sigma) ]
        dx    = g * scale * dl/dx,  scale = coef[t > 0.5 ? 0 : 1] (BALANCE; 0 at t == 0.5), coef[0], or 1
    with g the upstream gradient (per pixel for reduction "none"), and dx = 0 on ignored pixels.
    """
    row, n, c, s = row_tile(tl.program_id(0), n_blocks_s, C, BLOCK)
    mask = s < S
    x, t, ts, pw, w, valid = _bce_pixel(
        x_ptr, t_ptr, w_ptr, pw_ptr, n, c, s, mask, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc,
        stride_ts, stride_wn, stride_wc, stride_ws, stride_pn, stride_pc, stride_ps, pw_hi, pw_lo, ig_hi, ig_lo,
        ls_hi, ls_lo, HAS_WEIGHT, HAS_POS_WEIGHT, HAS_IGNORE, ACC)
    sig = sigmoid(x)
    dx = w * ((1.0 - ts) * sig - pw * ts * (1.0 - sig))
    if HAS_COEF:
        c0 = tl.load(coef_ptr).to(ACC)
        if BALANCE:
            dx = dx * tl.where(t > 0.5, c0, tl.where(t < 0.5, tl.load(coef_ptr + 1).to(ACC), 0.0))
        else:
            dx = dx * c0
    if G_IS_MAP:
        dx = dx * load_ncs(g_ptr, n, c, s, stride_gn, stride_gc, stride_gs, mask, 0.0, ACC)
    else:
        dx = dx * tl.load(g_ptr).to(ACC)
    dx = tl.where(valid, dx, 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _strides(t):
    return (0, 0, 0) if t is None else tuple(t.stride())


def _grid(x):
    N, C, S = x.shape
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    return N * C * n_blocks_s, n_blocks_s, BLOCK, num_warps


def _scalars(o):
    pw = split_f64(o.pos_weight)
    ig = split_f64(o.ignore_index)
    ls = split_f64(o.label_smoothing)
    return dict(pw_hi=pw[0], pw_lo=pw[1], ig_hi=ig[0], ig_lo=ig[1], ls_hi=ls[0], ls_lo=ls[1])


def _flags(w, pw, o):
    return dict(HAS_WEIGHT=w is not None, HAS_POS_WEIGHT=pw is not None, HAS_IGNORE=o.ignore_index is not None,
                BALANCE=o.balance is not None)


def forward(x, t, w, pw, o):
    """(loss, coef): the 0-d loss (or the (N, C, S) map for "none") and the finisher's two
    gradient scales ((0,) when "none" without balance needs none). See ``ops.py``."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    programs, n_blocks_s, BLOCK, num_warps = _grid(x)
    none = o.reduction == "none"
    need_sums = not none or o.balance is not None
    part = torch.empty((programs if need_sums else 0, NPART), device=x.device, dtype=acc)
    coef = torch.empty((2 if need_sums else 0,), device=x.device, dtype=acc)
    loss = torch.empty((N, C, S) if none else (), device=x.device, dtype=acc)
    common = dict(x_ptr=x, t_ptr=t, w_ptr=w, pw_ptr=pw, coef_ptr=coef, loss_ptr=loss, part_ptr=part, C=C, S=S,
                  n_blocks_s=n_blocks_s, **dict(zip(("stride_xn", "stride_xc", "stride_xs"), x.stride())),
                  **dict(zip(("stride_tn", "stride_tc", "stride_ts"), t.stride())),
                  **dict(zip(("stride_wn", "stride_wc", "stride_ws"), _strides(w))),
                  **dict(zip(("stride_pn", "stride_pc", "stride_ps"), _strides(pw))),
                  **_scalars(o), **_flags(w, pw, o), ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps)
    a, b = (0.0, 0.0) if o.balance is None else o.balance
    with device_guard(x):
        if need_sums:
            _bce_fwd_kernel[(programs,)](**common, STORE_LOSS=False, STORE_PARTIALS=True, APPLY_COEF=False)
            a2, b2 = split_f64(a), split_f64(b)
            _bce_finish_kernel[(1,)](
                part_ptr=part, loss_ptr=loss, coef_ptr=coef, n_part=programs, a_hi=a2[0], a_lo=a2[1],
                b_hi=b2[0], b_lo=b2[1], BALANCE=o.balance is not None, MEAN=o.reduction == "mean",
                STORE_LOSS=not none, ACC=tl_acc(x.dtype), BLOCK=256)
        if none:
            _bce_fwd_kernel[(programs,)](**common, STORE_LOSS=True, STORE_PARTIALS=False,
                                         APPLY_COEF=o.balance is not None)
    return loss, coef


def backward(g, coef, x, t, w, pw, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: 0-d, or the (N, C, S) map for "none"."""
    dx = torch.empty_like(x)
    programs, n_blocks_s, BLOCK, num_warps = _grid(x)
    g_map = o.reduction == "none"
    with device_guard(x):
        _bce_bwd_kernel[(programs,)](
            x_ptr=x, t_ptr=t, w_ptr=w, pw_ptr=pw, g_ptr=g, coef_ptr=coef, dx_ptr=dx, C=x.shape[1], S=x.shape[2],
            n_blocks_s=n_blocks_s, **dict(zip(("stride_xn", "stride_xc", "stride_xs"), x.stride())),
            **dict(zip(("stride_tn", "stride_tc", "stride_ts"), t.stride())),
            **dict(zip(("stride_wn", "stride_wc", "stride_ws"), _strides(w))),
            **dict(zip(("stride_pn", "stride_pc", "stride_ps"), _strides(pw))),
            **dict(zip(("stride_gn", "stride_gc", "stride_gs"), g.stride() if g_map else (0, 0, 0))),
            **dict(zip(("stride_dn", "stride_dc", "stride_ds"), dx.stride())),
            **_scalars(o), **_flags(w, pw, o), HAS_COEF=coef.numel() > 0, G_IS_MAP=g_map,
            ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps)
    return dx


def _aot_variants():
    specs = []
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        flags = dict(HAS_WEIGHT=True, HAS_POS_WEIGHT=True, HAS_IGNORE=True, BALANCE=True, ACC=acc, BLOCK=1024)
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        specs.append(aot_spec(_bce_fwd_kernel, dict(flags, STORE_LOSS=True, STORE_PARTIALS=True, APPLY_COEF=True),
                              x_ptr=f"*{dt}", t_ptr="*u8", loss_ptr=accty, part_ptr=accty, coef_ptr=accty,
                              pw_hi="fp32", pw_lo="fp32", ig_hi="fp32", ig_lo="fp32", ls_hi="fp32", ls_lo="fp32"))
        specs.append(aot_spec(_bce_bwd_kernel, dict(flags, HAS_COEF=True, G_IS_MAP=True), x_ptr=f"*{dt}",
                              t_ptr="*fp32", dx_ptr=f"*{dt}", coef_ptr=accty, g_ptr=accty,
                              pw_hi="fp32", pw_lo="fp32", ig_hi="fp32", ig_lo="fp32", ls_hi="fp32", ls_lo="fp32"))
        for balance, mean in ((True, False), (False, True), (False, False)) if dt == "fp32" else ((True, False),):
            specs.append(aot_spec(_bce_finish_kernel, dict(BALANCE=balance, MEAN=mean, STORE_LOSS=True, ACC=acc,
                                                           BLOCK=256),
                                  part_ptr=accty, loss_ptr=accty, coef_ptr=accty,
                                  a_hi="fp32", a_lo="fp32", b_hi="fp32", b_lo="fp32"))
    # the common fast path: no options, stride-1 pixels, int64 strides (tensors past 2^31 elements)
    plain = dict(stride_xs=1, stride_ts=1, HAS_WEIGHT=False, HAS_POS_WEIGHT=False, HAS_IGNORE=False,
                 BALANCE=False, ACC=tl.float32, BLOCK=2048)
    big = {f"stride_{a}{b}": "i64" for a in "xtwpgd" for b in "nc"}
    floats = {k: "fp32" for k in ("pw_hi", "pw_lo", "ig_hi", "ig_lo", "ls_hi", "ls_lo")}
    div = ("S", "stride_xn", "stride_xc", "stride_tn", "stride_tc", "stride_dn", "stride_dc")
    specs.append(aot_spec(_bce_fwd_kernel, dict(plain, STORE_LOSS=False, STORE_PARTIALS=True, APPLY_COEF=False),
                          divisible=div[:5], S="i64", n_blocks_s="i64",
                          **{k: v for k, v in big.items() if k[7] in "xtwp"}, **floats))
    specs.append(aot_spec(_bce_bwd_kernel, dict(plain, HAS_COEF=True, G_IS_MAP=False, stride_ds=1), divisible=div,
                          S="i64", n_blocks_s="i64", **big, **floats))
    return specs


AOT_SPECS = _aot_variants()
