"""Focal loss: sigmoid focal (binary / multilabel, torchvision's semantics) and softmax focal
(multiclass, integer labels). Forward writes per-program partial sums; backward recomputes
everything from the logits and the target.

Tensors are seen as (N, C, S) with their own strides; labels as (N, S). In the sigmoid
kernels one program handles BLOCK pixels of one (n, c) row; in the softmax kernels one
program handles BLOCK_S pixels of one image and walks the classes in chunks of BLOCK_C with
an online log-sum-exp, so the labels are never one-hot encoded.

Both forms keep ``q = 1 - p_t`` free of cancellation (it is computed as a sum of the other
probabilities, never as ``1 - p_t``), take ``q ** gamma`` as ``exp(gamma * log q)`` (with
its limit at q = 0: 1 for gamma = 0, else 0) and write the gradient with the
``q ** (gamma - 1)`` factor multiplied out, so it stays finite for gamma < 1 as p_t -> 1.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.validate import acc_dtype
from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, tl_acc


@triton.jit
def _focal_sigmoid_fwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target in [0, 1] (or ignore_index), (N, C, S) strided
    loss_ptr,  # elementwise loss out, contiguous (N, C, S) in ACC; written only if STORE_LOSS
    part_ptr,  # per-program partials out, (programs, 2) in ACC: [sum loss, #valid]
    C,
    S,
    n_blocks_s,  # programs per (n, c) row
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    alpha,  # alpha of alpha_t = alpha t + (1 - alpha)(1 - t), used if HAS_ALPHA
    gamma,  # focusing exponent >= 0
    zero_pow,  # 0 ** gamma: 1.0 for gamma == 0, else 0.0
    ignore_index,  # target value that marks a pixel ignored (if HAS_IGNORE)
    HAS_ALPHA: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    STORE_LOSS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """torchvision's sigmoid focal loss per pixel, with p = sigmoid(x), e = exp(-|x|):

        ce = log(1 + e^x) - x t = log1p(e) + (max(x, 0) - x t)
        q  = 1 - p_t = t (1 - p) + (1 - t) p      (1 - p = e / (1 + e) for x >= 0: exact, no 1 - p)
        l  = alpha_t * q^gamma * ce,   alpha_t = alpha t + (1 - alpha)(1 - t)  (1 without HAS_ALPHA)

    Ignored pixels give l = 0. Partials per program: [sum l, #valid].
    """
    pid = tl.program_id(0).to(tl.int64)
    row = pid // n_blocks_s
    n = row // C
    c = row % C
    s = (pid % n_blocks_s) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S

    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    t = tl.where(valid, t, 0.0)
    e = tl.exp(-tl.abs(x))
    inv = 1.0 / (1.0 + e)
    p = tl.where(x >= 0, inv, e * inv)
    pm = tl.where(x >= 0, e * inv, inv)  # 1 - p
    u = 1.0 + e
    log1p_e = tl.where(u == 1.0, e, tl.log(u) * e / tl.where(u == 1.0, 1.0, u - 1.0))  # log(1 + e), exact as e -> 0
    ce = log1p_e + (tl.maximum(x, 0.0) - x * t)  # the bracket is exact for hard targets: add it last
    q = t * pm + (1.0 - t) * p
    loss = tl.where(q > 0, tl.exp(gamma * tl.log(tl.where(q > 0, q, 1.0))), zero_pow) * ce
    if HAS_ALPHA:
        loss = loss * (alpha * t + (1.0 - alpha) * (1.0 - t))
    loss = tl.where(valid, loss, 0.0)

    if STORE_LOSS:
        tl.store(loss_ptr + row * S + s, loss, mask=mask)
    tl.store(part_ptr + pid * 2 + 0, tl.sum(loss, axis=0))
    tl.store(part_ptr + pid * 2 + 1, tl.sum(valid.to(ACC), axis=0))


@triton.jit
def _focal_sigmoid_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    t_ptr,  # target, (N, C, S) strided
    g_ptr,  # upstream gradient map (N, C, S) strided (if G_IS_MAP)
    coef_ptr,  # one ACC scalar: g / #valid (mean), g (sum) or 1 (none)
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C,
    S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_tc, stride_ts,
    stride_gn, stride_gc, stride_gs,
    stride_dn, stride_dc, stride_ds,
    alpha,
    gamma,
    zero_pow,
    ignore_index,
    HAS_ALPHA: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    G_IS_MAP: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Recomputes p, q, ce as in forward. With p' = p (1 - p), dq/dx = (1 - 2t) p', dce/dx = p - t:

        dl/dx = alpha_t [ gamma q^(gamma-1) (1 - 2t) p' ce + q^gamma (p - t) ]
              = alpha_t q^gamma [ gamma (1 - 2t) r ce + (p - t) ],   r = p (1 - p) / q

    r <= 1 always (q is a convex combination of p and 1 - p, both >= p (1 - p)), so the
    q^(gamma - 1) that blows up for gamma < 1 as q -> 0 never appears; at q == 0 (p rounded to
    0 or 1 with a hard target) r is set to 0, where q^gamma ce vanishes anyway.
    p - t is formed as (1 - t) p - t (1 - p), exact for hard targets.
    dx = coef * dl/dx (times g[n, c, s] if G_IS_MAP), 0 on ignored pixels.
    """
    pid = tl.program_id(0).to(tl.int64)
    row = pid // n_blocks_s
    n = row // C
    c = row % C
    s = (pid % n_blocks_s) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S

    x = tl.load(x_ptr + n * stride_xn + c * stride_xc + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + c * stride_tc + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    t = tl.where(valid, t, 0.0)
    e = tl.exp(-tl.abs(x))
    inv = 1.0 / (1.0 + e)
    p = tl.where(x >= 0, inv, e * inv)
    pm = tl.where(x >= 0, e * inv, inv)
    u = 1.0 + e
    log1p_e = tl.where(u == 1.0, e, tl.log(u) * e / tl.where(u == 1.0, 1.0, u - 1.0))  # log(1 + e), exact as e -> 0
    ce = log1p_e + (tl.maximum(x, 0.0) - x * t)  # the bracket is exact for hard targets: add it last
    q = t * pm + (1.0 - t) * p
    qpos = q > 0
    mod = tl.where(qpos, tl.exp(gamma * tl.log(tl.where(q > 0, q, 1.0))), zero_pow)
    r = tl.where(qpos, p * pm / tl.where(qpos, q, 1.0), 0.0)
    dx = mod * (gamma * (1.0 - 2.0 * t) * r * ce + ((1.0 - t) * p - t * pm))
    if HAS_ALPHA:
        dx = dx * (alpha * t + (1.0 - alpha) * (1.0 - t))
    scale = tl.load(coef_ptr).to(ACC)
    if G_IS_MAP:
        g = tl.load(g_ptr + n * stride_gn + c * stride_gc + s * stride_gs, mask=mask, other=0.0).to(ACC)
        scale = scale * g
    dx = tl.where(valid, dx * scale, 0.0)
    tl.store(dx_ptr + n * stride_dn + c * stride_dc + s * stride_ds, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _focal_softmax_fwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    a_ptr,  # per-class alpha, (C,) contiguous in ACC; read only if ALPHA_PER_CLASS
    loss_ptr,  # per-pixel loss out, contiguous (N, S) in ACC; written only if STORE_LOSS
    part_ptr,  # per-program partials out, (programs, 2) in ACC: [sum loss, #valid]
    C,
    S,
    n_blocks_s,  # programs per image
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    alpha,  # scalar class weight (1.0 when disabled), used unless ALPHA_PER_CLASS
    gamma,
    zero_pow,  # 0 ** gamma
    ignore_index,  # label that marks a pixel ignored (if HAS_IGNORE)
    ALPHA_PER_CLASS: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    STORE_LOSS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Softmax focal loss per pixel with label y, over classes in chunks (online max m):

        se = sum_k e^(x_k - m),  so = sum_{k != y} e^(x_k - m),  ey = e^(x_y - m)
        q  = 1 - p_y = so / se                       (no 1 - p_y cancellation)
        ce = -log p_y = log1p(so / ey)   if ey > 1/2  (accurate as p_y -> 1)
                      = log(se) + m - x_y otherwise
        l  = a_y * q^gamma * ce,   a_y = alpha[y] (ALPHA_PER_CLASS) or alpha

    Labels outside [0, C) and ignored pixels give l = 0 and do not count.
    Partials per program: [sum l, #valid].
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    smask = s < S
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)

    m = tl.full([BLOCK_S], float("-inf"), ACC)
    se = tl.zeros([BLOCK_S], ACC)
    so = tl.zeros([BLOCK_S], ACC)
    xy = tl.zeros([BLOCK_S], ACC)
    for c0 in range(0, C, BLOCK_C):
        c = (c0 + tl.arange(0, BLOCK_C)).to(tl.int64)
        cmask = c < C
        ptrs = x_ptr + n * stride_xn + c[:, None] * stride_xc + s[None, :] * stride_xs
        xt = tl.load(ptrs, mask=cmask[:, None] & smask[None, :], other=0.0).to(ACC)
        xt = tl.where(cmask[:, None], xt, float("-inf"))
        m_new = tl.maximum(m, tl.max(xt, axis=0))
        rescale = tl.exp(m - m_new)
        ex = tl.exp(xt - m_new[None, :])
        is_y = c[:, None] == y[None, :]
        se = se * rescale + tl.sum(ex, axis=0)
        so = so * rescale + tl.sum(tl.where(is_y, 0.0, ex), axis=0)
        xy = xy + tl.sum(tl.where(is_y, xt, 0.0), axis=0)
        m = m_new

    ey = tl.exp(xy - m)
    big = ey > 0.5
    z = so / tl.where(big, ey, 1.0)
    u = 1.0 + z
    log1p_z = tl.where(u == 1.0, z, tl.log(u) * z / tl.where(u == 1.0, 1.0, u - 1.0))
    ce = tl.where(big, log1p_z, tl.log(se) + (m - xy))
    q = so / se
    loss = tl.where(q > 0, tl.exp(gamma * tl.log(tl.where(q > 0, q, 1.0))), zero_pow) * ce
    if ALPHA_PER_CLASS:
        loss = loss * tl.load(a_ptr + y, mask=valid, other=0.0).to(ACC)
    else:
        loss = loss * alpha
    loss = tl.where(valid, loss, 0.0)

    if STORE_LOSS:
        tl.store(loss_ptr + n * S + s, loss, mask=smask)
    tl.store(part_ptr + pid * 2 + 0, tl.sum(loss, axis=0))
    tl.store(part_ptr + pid * 2 + 1, tl.sum(valid.to(ACC), axis=0))


@triton.jit
def _focal_softmax_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    y_ptr,  # integer labels, (N, S) strided
    a_ptr,  # per-class alpha (C,) in ACC (if ALPHA_PER_CLASS)
    g_ptr,  # upstream gradient map (N, S) strided (if G_IS_MAP)
    coef_ptr,  # one ACC scalar: g / #valid (mean), g (sum) or 1 (none)
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C,
    S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_yn, stride_ys,
    stride_gn, stride_gs,
    stride_dn, stride_dc, stride_ds,
    alpha,
    gamma,
    zero_pow,
    ignore_index,
    ALPHA_PER_CLASS: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    G_IS_MAP: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Recomputes m, se, so, x_y (first sweep over the classes), then writes dx (second sweep).

    With dce/dx_k = p_k - [k == y] and dq/dx_k = p_y (p_k - [k == y]):

        dl/dx_k = a_y (p_k - [k == y]) [ q^gamma + gamma q^(gamma-1) p_y ce ]
                = a_y (p_k - [k == y]) q^gamma [ 1 + gamma p_y (ce / q) ]

    ce / q = -log(1 - q) / q -> 1 as q -> 0 (set to 1 at q == 0), so no q^(gamma - 1) is formed
    and the gradient stays finite for gamma < 1. p_y - 1 is written -q (no cancellation).
    dx = coef * dl/dx (times g[n, s] if G_IS_MAP), 0 on ignored pixels. The second sweep
    re-reads this program's logits tile, which is still in cache.
    """
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    smask = s < S
    y = tl.load(y_ptr + n * stride_yn + s * stride_ys, mask=smask, other=0).to(tl.int64)
    valid = smask & (y >= 0) & (y < C)
    if HAS_IGNORE:
        valid = valid & (y != ignore_index)

    m = tl.full([BLOCK_S], float("-inf"), ACC)
    se = tl.zeros([BLOCK_S], ACC)
    so = tl.zeros([BLOCK_S], ACC)
    xy = tl.zeros([BLOCK_S], ACC)
    for c0 in range(0, C, BLOCK_C):
        c = (c0 + tl.arange(0, BLOCK_C)).to(tl.int64)
        cmask = c < C
        ptrs = x_ptr + n * stride_xn + c[:, None] * stride_xc + s[None, :] * stride_xs
        xt = tl.load(ptrs, mask=cmask[:, None] & smask[None, :], other=0.0).to(ACC)
        xt = tl.where(cmask[:, None], xt, float("-inf"))
        m_new = tl.maximum(m, tl.max(xt, axis=0))
        rescale = tl.exp(m - m_new)
        ex = tl.exp(xt - m_new[None, :])
        is_y = c[:, None] == y[None, :]
        se = se * rescale + tl.sum(ex, axis=0)
        so = so * rescale + tl.sum(tl.where(is_y, 0.0, ex), axis=0)
        xy = xy + tl.sum(tl.where(is_y, xt, 0.0), axis=0)
        m = m_new

    ey = tl.exp(xy - m)
    big = ey > 0.5
    z = so / tl.where(big, ey, 1.0)
    u = 1.0 + z
    log1p_z = tl.where(u == 1.0, z, tl.log(u) * z / tl.where(u == 1.0, 1.0, u - 1.0))
    ce = tl.where(big, log1p_z, tl.log(se) + (m - xy))
    q = so / se
    qpos = q > 0
    ratio = tl.where(qpos, ce / tl.where(qpos, q, 1.0), 1.0)
    f = tl.where(qpos, tl.exp(gamma * tl.log(tl.where(q > 0, q, 1.0))), zero_pow) * (1.0 + gamma * (ey / se) * ratio)
    if ALPHA_PER_CLASS:
        f = f * tl.load(a_ptr + y, mask=valid, other=0.0).to(ACC)
    else:
        f = f * alpha
    f = f * tl.load(coef_ptr).to(ACC)
    if G_IS_MAP:
        f = f * tl.load(g_ptr + n * stride_gn + s * stride_gs, mask=smask, other=0.0).to(ACC)
    f = tl.where(valid, f, 0.0)
    inv_se = 1.0 / se

    for c0 in range(0, C, BLOCK_C):
        c = (c0 + tl.arange(0, BLOCK_C)).to(tl.int64)
        cmask = c < C
        mask2 = cmask[:, None] & smask[None, :]
        ptrs = x_ptr + n * stride_xn + c[:, None] * stride_xc + s[None, :] * stride_xs
        xt = tl.load(ptrs, mask=mask2, other=0.0).to(ACC)
        pk = tl.exp(xt - m[None, :]) * inv_se[None, :]
        d = tl.where(c[:, None] == y[None, :], -q[None, :], pk)
        dx = d * f[None, :]
        dptrs = dx_ptr + n * stride_dn + c[:, None] * stride_dc + s[None, :] * stride_ds
        tl.store(dptrs, dx.to(dx_ptr.dtype.element_ty), mask=mask2)


def _zero_pow(gamma: float) -> float:
    return 1.0 if gamma == 0 else 0.0


def _acc(x: torch.Tensor) -> torch.dtype:
    return acc_dtype(x.dtype)


def _softmax_blocks(C: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_S, num_warps): up to 16 classes per chunk, about 2048 elements per tile."""
    block_c = min(triton.next_power_of_2(max(C, 1)), 16)
    block_s = max(32, min(2048 // block_c, triton.next_power_of_2(max(S, 1))))
    return block_c, block_s, 4 if block_c * block_s <= 1024 else 8


def focal_sigmoid_forward(x, t, alpha, gamma, ignore_index, store_loss):
    """Launch the sigmoid forward on (N, C, S) views; ``alpha`` None disables alpha_t.

    Returns (loss map (N, C, S) in ACC or None, partials (P, 2)).
    """
    N, C, S = x.shape
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    grid = (N * C * n_blocks_s,)
    part = torch.empty((grid[0], 2), device=x.device, dtype=_acc(x))
    loss = torch.empty((N, C, S), device=x.device, dtype=_acc(x)) if store_loss else part
    _focal_sigmoid_fwd_kernel[grid](
        x, t, loss, part, C, S, n_blocks_s, *x.stride(), *t.stride(),
        float(0.0 if alpha is None else alpha), float(gamma), _zero_pow(gamma),
        float(0.0 if ignore_index is None else ignore_index),
        HAS_ALPHA=alpha is not None, HAS_IGNORE=ignore_index is not None, STORE_LOSS=store_loss,
        ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps,
    )
    return (loss if store_loss else None), part


def focal_sigmoid_backward(x, t, g_map, coef, alpha, gamma, ignore_index):
    """Launch the sigmoid backward; returns dL/dx with the logits' dtype and layout."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    grid = (N * C * n_blocks_s,)
    g_strides = (0, 0, 0) if g_map is None else g_map.stride()
    _focal_sigmoid_bwd_kernel[grid](
        x, t, coef if g_map is None else g_map, coef, dx, C, S, n_blocks_s,
        *x.stride(), *t.stride(), *g_strides, *dx.stride(),
        float(0.0 if alpha is None else alpha), float(gamma), _zero_pow(gamma),
        float(0.0 if ignore_index is None else ignore_index),
        HAS_ALPHA=alpha is not None, HAS_IGNORE=ignore_index is not None, G_IS_MAP=g_map is not None,
        ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps,
    )
    return dx


def focal_softmax_forward(x, y, alpha_w, alpha, gamma, ignore_index, store_loss):
    """Launch the softmax forward on logits (N, C, S) and labels (N, S).

    ``alpha_w``: per-class weights (C,) in ACC or None (then the scalar ``alpha`` applies).
    Returns (loss map (N, S) in ACC or None, partials (P, 2)).
    """
    N, C, S = x.shape
    BLOCK_C, BLOCK_S, num_warps = _softmax_blocks(C, S)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    grid = (N * n_blocks_s,)
    part = torch.empty((grid[0], 2), device=x.device, dtype=_acc(x))
    loss = torch.empty((N, S), device=x.device, dtype=_acc(x)) if store_loss else part
    _focal_softmax_fwd_kernel[grid](
        x, y, part if alpha_w is None else alpha_w, loss, part, C, S, n_blocks_s, *x.stride(), *y.stride(),
        float(alpha), float(gamma), _zero_pow(gamma), int(0 if ignore_index is None else ignore_index),
        ALPHA_PER_CLASS=alpha_w is not None, HAS_IGNORE=ignore_index is not None, STORE_LOSS=store_loss,
        ACC=tl_acc(x.dtype), BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, num_warps=num_warps,
    )
    return (loss if store_loss else None), part


def focal_softmax_backward(x, y, alpha_w, g_map, coef, alpha, gamma, ignore_index):
    """Launch the softmax backward; ``g_map`` (N, S) or None. Returns dL/dx like ``x``."""
    N, C, S = x.shape
    dx = torch.empty_like(x)
    BLOCK_C, BLOCK_S, num_warps = _softmax_blocks(C, S)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    grid = (N * n_blocks_s,)
    g_strides = (0, 0) if g_map is None else g_map.stride()
    _focal_softmax_bwd_kernel[grid](
        x, y, coef if alpha_w is None else alpha_w, coef if g_map is None else g_map, coef, dx, C, S, n_blocks_s,
        *x.stride(), *y.stride(), *g_strides, *dx.stride(),
        float(alpha), float(gamma), _zero_pow(gamma), int(0 if ignore_index is None else ignore_index),
        ALPHA_PER_CLASS=alpha_w is not None, HAS_IGNORE=ignore_index is not None, G_IS_MAP=g_map is not None,
        ACC=tl_acc(x.dtype), BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, num_warps=num_warps,
    )
    return dx


def _aot_variants():
    specs = []
    scal = dict(alpha="fp32", gamma="fp32", zero_pow="fp32")
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        flags = dict(HAS_ALPHA=True, HAS_IGNORE=True, ACC=acc, BLOCK=1024)
        specs.append(aot_spec(_focal_sigmoid_fwd_kernel, dict(flags, STORE_LOSS=True), x_ptr=f"*{dt}", t_ptr="*u8",
                              loss_ptr=accty, part_ptr=accty, ignore_index="fp32", **scal))
        specs.append(aot_spec(_focal_sigmoid_bwd_kernel, dict(flags, G_IS_MAP=True), x_ptr=f"*{dt}", t_ptr="*fp32",
                              g_ptr=accty, coef_ptr=accty, dx_ptr=f"*{dt}", ignore_index="fp32", **scal))
        sflags = dict(ALPHA_PER_CLASS=True, HAS_IGNORE=True, ACC=acc, BLOCK_C=16, BLOCK_S=128)
        specs.append(aot_spec(_focal_softmax_fwd_kernel, dict(sflags, STORE_LOSS=True), x_ptr=f"*{dt}", y_ptr="*i64",
                              a_ptr=accty, loss_ptr=accty, part_ptr=accty, **scal))
        specs.append(aot_spec(_focal_softmax_bwd_kernel, dict(sflags, G_IS_MAP=True), x_ptr=f"*{dt}", y_ptr="*u8",
                              a_ptr=accty, g_ptr=accty, coef_ptr=accty, dx_ptr=f"*{dt}", **scal))
    # the common fast path: no options, stride-1 pixels, int64 strides (tensors past 2^31 elements)
    big_sig = {f"stride_{a}{b}": "i64" for a in "xtgd" for b in "nc"}
    plain = dict(stride_xs=1, stride_ts=1, HAS_ALPHA=True, HAS_IGNORE=False, ACC=tl.float32, BLOCK=2048)
    specs.append(aot_spec(_focal_sigmoid_fwd_kernel, dict(plain, STORE_LOSS=False), S="i64", n_blocks_s="i64",
                          ignore_index="fp32", divisible=("S", "stride_xn", "stride_xc", "stride_tn", "stride_tc"),
                          **scal, **{k: v for k, v in big_sig.items() if k[7] in "xt"}))
    specs.append(aot_spec(_focal_sigmoid_bwd_kernel, dict(plain, G_IS_MAP=False, stride_ds=1), S="i64",
                          n_blocks_s="i64", ignore_index="fp32", t_ptr="*bf16", x_ptr="*bf16", dx_ptr="*bf16",
                          divisible=("S", "stride_xn", "stride_xc", "stride_dn", "stride_dc"), **scal, **big_sig))
    big_soft = {f"stride_{a}": "i64" for a in ("xn", "xc", "yn", "gn", "dn", "dc")}
    splain = dict(stride_xs=1, stride_ys=1, ALPHA_PER_CLASS=False, HAS_IGNORE=True, ACC=tl.float32,
                  BLOCK_C=8, BLOCK_S=256)
    specs.append(aot_spec(_focal_softmax_fwd_kernel, dict(splain, STORE_LOSS=False), y_ptr="*i64", S="i64",
                          n_blocks_s="i64", divisible=("S", "stride_xn", "stride_xc", "stride_yn"), **scal,
                          **{k: v for k, v in big_soft.items() if k[7] in "xy"}))
    specs.append(aot_spec(_focal_softmax_bwd_kernel, dict(splain, G_IS_MAP=False, stride_ds=1), y_ptr="*i64",
                          S="i64", n_blocks_s="i64", x_ptr="*bf16", dx_ptr="*bf16",
                          divisible=("S", "stride_xn", "stride_xc", "stride_dn", "stride_dc"), **scal, **big_soft))
    return specs


AOT_SPECS = _aot_variants()
