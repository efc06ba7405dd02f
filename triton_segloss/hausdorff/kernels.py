"""Triton kernels of the distance-map losses and their launchers (the family's only triton import).

Every tensor is seen as (N, C, S). Per pixel, with p the sigmoid (per channel) or the
softmax (over C, from integer labels held in registers: t[c, s] = [y_s == c], no one-hot
tensor) of the logits and constant distance maps f_a, f_b:

    HAUSDORFF (KIND 0):  l = (p - t)^2 * D,   D = f_a^alpha + f_b^alpha   (inf read as 0)
    BOUNDARY  (KIND 1):  l = p * phi,         phi = f_a outside the target, 1 - f_b inside

A training step is three launches: the forward kernel writes per-program partial sums
``(n_blocks_s, N * C)``, the one-program finisher sums them in a fixed order (float64)
into the loss, and the backward kernel reads the upstream gradient by pointer and the
host-side row scale (``ops.row_scale``). No float atomics, nothing goes through the host.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, device_guard, row_tile, scalar, sigmoid, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype

from .ops import first_class, out_shape, row_scale


@triton.jit
def _field_pow(f, a, ALPHA_CODE: tl.constexpr):
    """f^alpha with inf read as 0 (the field of an empty or full mask): ALPHA_CODE 0: alpha == 0
    (f^0 = 1 everywhere, as torch's 0 ** 0), 2: alpha == 2 (f * f), 1: any alpha > 0."""
    f = tl.where(f == float("inf"), 0.0, f)
    if ALPHA_CODE == 0:
        return f * 0.0 + 1.0
    elif ALPHA_CODE == 2:
        return f * f
    else:
        pos = f > 0
        return tl.where(pos, tl.exp(a * tl.log(tl.where(pos, f, 1.0))), 0.0)


@triton.jit
def _pixel_weight(fa, fb, t, a, KIND: tl.constexpr, ALPHA_CODE: tl.constexpr):
    """HAUSDORFF: D = f_a^alpha + f_b^alpha. BOUNDARY: f_a = distance to the target, f_b = distance
    to its complement; phi = f_a outside (t <= 0.5), 1 - f_b inside (the paper's code:
    edt(neg) neg - (edt(pos) - 1) pos), and 0 for a class empty or full in the row (an inf field)."""
    if KIND == 0:
        return _field_pow(fa, a, ALPHA_CODE) + _field_pow(fb, a, ALPHA_CODE)
    else:
        phi = tl.where(t > 0.5, 1.0 - fb, fa)
        return tl.where((phi == float("inf")) | (phi == float("-inf")), 0.0, phi)


@triton.jit
def _sigmoid_fwd_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    t_ptr,  # target mask, (N, C, S) strided, its own dtype
    fa_ptr,  # field a: the prediction's field (hausdorff) or the distance to the target (boundary), (N, C, S)
    fb_ptr,  # field b: the target's field (hausdorff) or the distance to its complement (boundary), (N, C, S)
    part_ptr,  # partials out, contiguous (n_blocks_s, N * C) in ACC
    C, S, NC,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    a_hi, a_lo,  # alpha (fp32 pair)
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """p = 1 / (1 + e^-x); partial = sum over BLOCK pixels of one (n, c) row of l (module docstring)."""
    pid = tl.program_id(0).to(tl.int64)
    row, n, c, s = row_tile(pid, n_blocks_s, C, BLOCK)
    mask = s < S
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    fa = tl.load(fa_ptr + n * stride_an + c * stride_ac + s * stride_as, mask=mask, other=0.0).to(ACC)
    fb = tl.load(fb_ptr + n * stride_bn + c * stride_bc + s * stride_bs, mask=mask, other=0.0).to(ACC)
    if FROM_LOGITS:
        p = sigmoid(x)
    else:
        p = x
    w = _pixel_weight(fa, fb, t, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE)
    if KIND == 0:
        l = (p - t) * (p - t) * w
    else:
        l = p * w
    tl.store(part_ptr + (pid % n_blocks_s) * NC + row, tl.sum(tl.where(mask, l, 0.0), axis=0))


@triton.jit
def _softmax_tile(x_ptr, y_ptr, fa_ptr, fb_ptr, n, cls, s, cmask, smask, stride_xn, stride_xc, stride_xs,
                  stride_yn, stride_ys, stride_an, stride_ac, stride_as, stride_bn, stride_bc, stride_bs, a,
                  KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, ACC: tl.constexpr):
    """(live, p, t, w) of a (C_PAD, BLOCK) tile of image n."""
    m2 = cmask[:, None] & smask[None, :]
    x = tl.load(x_ptr + n * stride_xn + cls[:, None] * stride_xc + s[None, :] * stride_xs, mask=m2,
                other=0.0).to(ACC)
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int64)
    t = ((cls[:, None] == y[None, :]) & m2).to(ACC)
    fa = tl.load(fa_ptr + n * stride_an + cls[:, None] * stride_ac + s[None, :] * stride_as, mask=m2,
                 other=0.0).to(ACC)
    fb = tl.load(fb_ptr + n * stride_bn + cls[:, None] * stride_bc + s[None, :] * stride_bs, mask=m2,
                 other=0.0).to(ACC)
    if FROM_LOGITS:
        xm = tl.where(cmask[:, None], x, float("-inf"))
        mx = tl.max(xm, axis=0)
        e = tl.exp(xm - mx[None, :])
        p = e / tl.sum(e, axis=0)[None, :]
    else:
        p = x
    w = _pixel_weight(fa, fb, t, a, KIND, ALPHA_CODE)
    return m2, p, t, w


@triton.jit
def _softmax_fwd_kernel(
    x_ptr,  # logits (probabilities if not FROM_LOGITS), (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    fa_ptr,  # field a, (N, C, S) strided
    fb_ptr,  # field b, (N, C, S) strided
    part_ptr,  # partials out, contiguous (n_blocks_s, N * C) in ACC
    C, S, NC,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    a_hi, a_lo,  # alpha (fp32 pair)
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, ACC: tl.constexpr,
    C_PAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Softmax over C in registers, t[c, s] = [y_s == c]; partial[c] = sum over BLOCK pixels of l[c, s]."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    blk = pid % n_blocks_s
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    s = blk * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    smask = s < S
    m2, p, t, w = _softmax_tile(x_ptr, y_ptr, fa_ptr, fb_ptr, n, cls, s, cmask, smask, stride_xn, stride_xc,
                                stride_xs, stride_yn, stride_ys, stride_an, stride_ac, stride_as, stride_bn,
                                stride_bc, stride_bs, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE, FROM_LOGITS, ACC)
    if KIND == 0:
        l = (p - t) * (p - t) * w
    else:
        l = p * w
    tl.store(part_ptr + blk * NC + n * C + cls, tl.sum(tl.where(m2, l, 0.0), axis=1), mask=cmask)


@triton.jit
def _finish_kernel(
    part_ptr,  # partials, contiguous (n_blocks, N * C) in ACC
    out_ptr,  # the loss out: 0-d, or contiguous (R, K) for "none"; ACC
    N, C, n_blocks,
    C0,  # first kept class (1 without the background)
    sc_hi, sc_lo,  # ops.row_scale (fp32 pair)
    NONE: tl.constexpr, PER_IMAGE: tl.constexpr, C_PAD: tl.constexpr,
):
    """One program. Row sums r[n, c] = sum_b part[b, n C + c] in float64 in a fixed order; with the
    row scale k: "none" per image: out[n, c - C0] = k r[n, c]; pooled: out[0, c - C0] = k sum_n r[n, c];
    "mean"/"sum": out = k sum_{n, c >= C0} r[n, c]."""
    cls = tl.arange(0, C_PAD)
    keep = (cls < C) & (cls >= C0)
    k = scalar(sc_hi, sc_lo, tl.float64)
    nc = N.to(tl.int64) * C
    tot = tl.zeros([C_PAD], dtype=tl.float64)
    for n in range(N):
        r = tl.zeros([C_PAD], dtype=tl.float64)
        for b in range(n_blocks):
            r += tl.load(part_ptr + b * nc + n * C + cls, mask=keep, other=0.0).to(tl.float64)
        if NONE and PER_IMAGE:
            tl.store(out_ptr + n * (C - C0) + cls - C0, (r * k).to(out_ptr.dtype.element_ty), mask=keep)
        tot += r
    if NONE:
        if not PER_IMAGE:
            tl.store(out_ptr + cls - C0, (tot * k).to(out_ptr.dtype.element_ty), mask=keep)
    else:
        tl.store(out_ptr, (tl.sum(tot, axis=0) * k).to(out_ptr.dtype.element_ty))


@triton.jit
def _sigmoid_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target mask, (N, C, S) strided
    fa_ptr,  # field a, (N, C, S) strided
    fb_ptr,  # field b, (N, C, S) strided
    g_ptr,  # upstream gradient: 0-d, or (R, K) strided for "none"
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    C0,  # first kept class
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    stride_gr, stride_gk,  # of g (0 for a 0-d g); row r = n per image, else 0
    stride_dn, stride_dc, stride_ds,
    a_hi, a_lo, sc_hi, sc_lo,  # alpha, the row scale (fp32 pairs)
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, PER_IMAGE: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """dl/dp = 2 (p - t) D (hausdorff) or phi (boundary); dx = g[row] * k * dl/dp * p (1 - p)
    (FROM_LOGITS; else dx = g k dl/dp), 0 for the skipped background row."""
    row, n, c, s = row_tile(tl.program_id(0), n_blocks_s, C, BLOCK)
    mask = s < S
    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    fa = tl.load(fa_ptr + n * stride_an + c * stride_ac + s * stride_as, mask=mask, other=0.0).to(ACC)
    fb = tl.load(fb_ptr + n * stride_bn + c * stride_bc + s * stride_bs, mask=mask, other=0.0).to(ACC)
    w = _pixel_weight(fa, fb, t, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE)
    if FROM_LOGITS:
        p = sigmoid(x)
    else:
        p = x
    if KIND == 0:
        gp = 2.0 * (p - t) * w
    else:
        gp = w
    if FROM_LOGITS:
        gp = gp * p * (1.0 - p)
    kept = c >= C0
    if PER_IMAGE:
        r = n
    else:
        r = n * 0
    g = tl.load(g_ptr + r * stride_gr + tl.maximum(c - C0, 0) * stride_gk).to(ACC)
    dx = tl.where(kept, gp * (g * scalar(sc_hi, sc_lo, ACC)), 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    fa_ptr,  # field a, (N, C, S) strided
    fb_ptr,  # field b, (N, C, S) strided
    g_ptr,  # upstream gradient: 0-d, or (R, K) strided for "none"
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C, S,
    n_blocks_s,
    C0,  # first kept class
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_an, stride_ac, stride_as,
    stride_bn, stride_bc, stride_bs,
    stride_gr, stride_gk,
    stride_dn, stride_dc, stride_ds,
    a_hi, a_lo, sc_hi, sc_lo,
    KIND: tl.constexpr, ALPHA_CODE: tl.constexpr, FROM_LOGITS: tl.constexpr, PER_IMAGE: tl.constexpr,
    ACC: tl.constexpr, C_PAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """gp[c] = g[row, c - C0] * k * dl/dp_c (0 for c < C0); softmax chain rule over the classes:
    dx_j = p_j (gp_j - sum_c p_c gp_c) (FROM_LOGITS; else dx = gp)."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    blk = pid % n_blocks_s
    cls = tl.arange(0, C_PAD).to(tl.int64)
    cmask = cls < C
    s = blk * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    smask = s < S
    m2, p, t, w = _softmax_tile(x_ptr, y_ptr, fa_ptr, fb_ptr, n, cls, s, cmask, smask, stride_xn, stride_xc,
                                stride_xs, stride_yn, stride_ys, stride_an, stride_ac, stride_as, stride_bn,
                                stride_bc, stride_bs, scalar(a_hi, a_lo, ACC), KIND, ALPHA_CODE, FROM_LOGITS, ACC)
    if KIND == 0:
        gp = 2.0 * (p - t) * w
    else:
        gp = w
    keep = cmask & (cls >= C0)
    if PER_IMAGE:
        r = n
    else:
        r = n * 0
    g = tl.load(g_ptr + r * stride_gr + tl.maximum(cls - C0, 0) * stride_gk, mask=keep, other=0.0).to(ACC)
    gp = tl.where(m2 & keep[:, None], gp * (g * scalar(sc_hi, sc_lo, ACC))[:, None], 0.0)
    if FROM_LOGITS:
        dot = tl.sum(p * gp, axis=0)
        dx = p * (gp - dot[None, :])
    else:
        dx = gp
    tl.store(dx_ptr + n * stride_dn + cls[:, None] * stride_dc + s[None, :] * stride_ds,
             dx.to(dx_ptr.dtype.element_ty), mask=m2)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _alpha_code(o):
    if o.kind != "hausdorff" or o.alpha == 2.0:
        return 2
    return 0 if o.alpha == 0.0 else 1


def _common(x, t, fa, fb, o):
    fb_ = fb
    a = split_f64(o.alpha)
    d = dict(x_ptr=x, fa_ptr=fa, fb_ptr=fb_,
             **dict(zip(("stride_xn", "stride_xc", "stride_xs"), x.stride())),
             **dict(zip(("stride_an", "stride_ac", "stride_as"), fa.stride())),
             **dict(zip(("stride_bn", "stride_bc", "stride_bs"), fb_.stride())),
             a_hi=a[0], a_lo=a[1], KIND=0 if o.kind == "hausdorff" else 1, ALPHA_CODE=_alpha_code(o),
             FROM_LOGITS=bool(o.from_logits), ACC=tl_acc(x.dtype))
    if o.multiclass:
        d.update(y_ptr=t, stride_yn=t.stride(0), stride_ys=t.stride(2))
    else:
        d.update(t_ptr=t, **dict(zip(("stride_tn", "stride_tc", "stride_ts"), t.stride())))
    return d


def _grid(x, o):
    N, C, S = x.shape
    if o.multiclass:
        c_pad = triton.next_power_of_2(C)
        BLOCK, num_warps = block_for(S, max(128, 4096 // c_pad))
        nb = triton.cdiv(S, BLOCK)
        return N * nb, nb, BLOCK, num_warps, c_pad
    BLOCK, num_warps = block_for(S)
    nb = triton.cdiv(S, BLOCK)
    return N * C * nb, nb, BLOCK, num_warps, None


def forward(x, t, fa, fb, o):
    """The loss (see ``ops.py``)."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    programs, nb, BLOCK, num_warps, c_pad = _grid(x, o)
    part = torch.empty((nb, N * C), device=x.device, dtype=acc)
    out = torch.empty(out_shape(o, N, C), device=x.device, dtype=acc)
    sc = split_f64(row_scale(o, N, C, S))
    common = _common(x, t, fa, fb, o)
    with device_guard(x):
        if o.multiclass:
            _softmax_fwd_kernel[(programs,)](**common, part_ptr=part, C=C, S=S, NC=N * C, n_blocks_s=nb,
                                             C_PAD=c_pad, BLOCK=BLOCK, num_warps=num_warps)
        else:
            _sigmoid_fwd_kernel[(programs,)](**common, part_ptr=part, C=C, S=S, NC=N * C, n_blocks_s=nb,
                                             BLOCK=BLOCK, num_warps=num_warps)
        _finish_kernel[(1,)](part_ptr=part, out_ptr=out, N=N, C=C, n_blocks=nb, C0=first_class(o, C),
                             sc_hi=sc[0], sc_lo=sc[1], NONE=o.reduction == "none", PER_IMAGE=bool(o.per_image),
                             C_PAD=triton.next_power_of_2(C))
    return out


def backward(g, x, t, fa, fb, o):
    """dLoss/dx with the logits' dtype and layout; ``g``: 0-d, or (R, K) for "none"."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    programs, nb, BLOCK, num_warps, c_pad = _grid(x, o)
    sc = split_f64(row_scale(o, N, C, S))
    gs = tuple(g.stride()) if g.dim() == 2 else (0, 0)
    args = dict(_common(x, t, fa, fb, o), g_ptr=g, dx_ptr=dx, C=C, S=S, n_blocks_s=nb, C0=first_class(o, C),
                stride_gr=gs[0], stride_gk=gs[1], **dict(zip(("stride_dn", "stride_dc", "stride_ds"), dx.stride())),
                sc_hi=sc[0], sc_lo=sc[1], PER_IMAGE=bool(o.per_image), BLOCK=BLOCK, num_warps=num_warps)
    with device_guard(x):
        if o.multiclass:
            _softmax_bwd_kernel[(programs,)](**args, C_PAD=c_pad)
        else:
            _sigmoid_bwd_kernel[(programs,)](**args)
    return dx


def _aot_variants():
    specs = []
    fl = {"a_hi": "fp32", "a_lo": "fp32"}
    fl2 = dict(fl, sc_hi="fp32", sc_lo="fp32")
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        for kind, code in ((0, 1), (1, 2)):
            flags = dict(KIND=kind, ALPHA_CODE=code, FROM_LOGITS=True, ACC=acc)
            specs.append(aot_spec(_sigmoid_fwd_kernel, dict(flags, BLOCK=1024), x_ptr=f"*{dt}", t_ptr="*u8",
                                  part_ptr=accty, **fl))
            specs.append(aot_spec(_softmax_fwd_kernel, dict(flags, C_PAD=4, BLOCK=1024), x_ptr=f"*{dt}",
                                  y_ptr="*i64", part_ptr=accty, **fl))
            specs.append(aot_spec(_sigmoid_bwd_kernel, dict(flags, PER_IMAGE=True, BLOCK=1024), x_ptr=f"*{dt}",
                                  t_ptr="*u8", g_ptr=accty, dx_ptr=f"*{dt}", **fl2))
            specs.append(aot_spec(_softmax_bwd_kernel, dict(flags, PER_IMAGE=False, C_PAD=4, BLOCK=1024),
                                  x_ptr=f"*{dt}", y_ptr="*i64", g_ptr=accty, dx_ptr=f"*{dt}", **fl2))
        for none, per in ((False, False), (True, True), (True, False)) if dt == "fp32" else ((True, True),):
            specs.append(aot_spec(_finish_kernel, dict(NONE=none, PER_IMAGE=per, C_PAD=4), part_ptr=accty,
                                  out_ptr=accty, sc_hi="fp32", sc_lo="fp32"))
    return specs


AOT_SPECS = _aot_variants()
