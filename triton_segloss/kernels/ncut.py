"""Soft normalized cut (seed 003's ``NCutLoss2D``, running form): three small kernels.

Probabilities are seen as (N, K, S) and the image as (N, CIN, S), each with
its own strides. With per-(image, class) means mu_{nkc} of the image under
the class probabilities, and per pixel

    D = sum_c (I_c - mu_kc)^2,    w = exp(-D^2 / sigma^2)    (the seed squares D again)

the loss is K - sum_k |Num_k / (Den_k + 1e-6)|, Num_k = sum_{n,i} p^2 w,
Den_k = sum_{n,i} p w. mu needs a sum over every pixel before any w exists,
so the forward is two sweeps (moments, then the cut sums) and the backward
one: the forward also sums the two per-(n, k, c) moments H1, H2 that the
gradient through mu needs (see ``_ncut_cut_kernel``), so the backward only
writes dp. Traffic by construction: forward reads p and I twice, backward
reads them once and writes dp once; partials are O(N K CIN) per block of
pixels.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.validate import acc_dtype
from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import tl_acc


@triton.jit
def _ncut_moments_kernel(
    p_ptr,  # class probabilities, (N, K, S) strided
    img_ptr,  # image, (N, CIN, S) strided
    part_ptr,  # partials out, contiguous (N, n_blocks_s, K, 1 + CIN) in ACC
    K,
    S,
    CIN,
    n_blocks_k,
    n_blocks_s,
    stride_pn, stride_pk, stride_ps,
    stride_in, stride_ic, stride_is,
    ACC: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Per program (n, block of classes, block of pixels): B_k = sum_i p_ki, A_kc = sum_i p_ki I_ci."""
    pid = tl.program_id(0).to(tl.int64)
    sb = pid % n_blocks_s
    kb = (pid // n_blocks_s) % n_blocks_k
    n = pid // (n_blocks_s * n_blocks_k)
    s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    smask = s < S
    kmask = k < K
    p = tl.load(p_ptr + n * stride_pn + k[:, None] * stride_pk + s[None, :] * stride_ps,
                mask=kmask[:, None] & smask[None, :], other=0.0).to(ACC)
    F = 1 + CIN
    out = part_ptr + ((n * n_blocks_s + sb) * K + k) * F
    tl.store(out, tl.sum(p, axis=1), mask=kmask)
    img_c = img_ptr + n * stride_in + s * stride_is  # channel c's row; advanced by stride_ic (64-bit pointers)
    for c in range(CIN):
        img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
        tl.store(out + 1 + c, tl.sum(p * img[None, :], axis=1), mask=kmask)
        img_c += stride_ic


@triton.jit
def _ncut_cut_kernel(
    p_ptr,  # class probabilities, (N, K, S) strided
    img_ptr,  # image, (N, CIN, S) strided
    mu_ptr,  # class means, contiguous (N, K, CIN) in ACC
    coef_ptr,  # one ACC scalar: 1 / sigma^2
    part_ptr,  # partials out, contiguous (N, n_blocks_s, K, 2 + 2 CIN) in ACC
    K,
    S,
    CIN,
    n_blocks_k,
    n_blocks_s,
    stride_pn, stride_pk, stride_ps,
    stride_in, stride_ic, stride_is,
    ACC: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """With D, w as in the module docstring, per program and class k:

        num_k = sum_i p^2 w,   den_k = sum_i p w,
        H1_kc = sum_i p^2 w D (I_c - mu_kc),   H2_kc = sum_i p w D (I_c - mu_kc).

    H1, H2 carry the gradient through mu: with e = dL/dw = a p^2 + b p,
    dL/dmu_kc = sum_i e * dw/dD * dD/dmu_kc = (4 / sigma^2) (a H1_kc + b H2_kc).
    """
    pid = tl.program_id(0).to(tl.int64)
    sb = pid % n_blocks_s
    kb = (pid // n_blocks_s) % n_blocks_k
    n = pid // (n_blocks_s * n_blocks_k)
    s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    smask = s < S
    kmask = k < K
    p = tl.load(p_ptr + n * stride_pn + k[:, None] * stride_pk + s[None, :] * stride_ps,
                mask=kmask[:, None] & smask[None, :], other=0.0).to(ACC)
    mu_row = mu_ptr + (n * K + k) * CIN
    dist = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    img_c = img_ptr + n * stride_in + s * stride_is  # channel c's row; advanced by stride_ic (64-bit pointers)
    for c in range(CIN):
        img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
        mu = tl.load(mu_row + c, mask=kmask, other=0.0)
        diff = img[None, :] - mu[:, None]
        dist += diff * diff
        img_c += stride_ic
    w = tl.exp(-(dist * dist) * tl.load(coef_ptr).to(ACC))
    pw = p * w  # zero outside the tile: p loaded as 0 there
    p2w = p * pw
    F = 2 + 2 * CIN
    out = part_ptr + ((n * n_blocks_s + sb) * K + k) * F
    tl.store(out, tl.sum(p2w, axis=1), mask=kmask)
    tl.store(out + 1, tl.sum(pw, axis=1), mask=kmask)
    img_c = img_ptr + n * stride_in + s * stride_is
    for c in range(CIN):
        img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
        mu = tl.load(mu_row + c, mask=kmask, other=0.0)
        dd = dist * (img[None, :] - mu[:, None])
        tl.store(out + 2 + c, tl.sum(p2w * dd, axis=1), mask=kmask)
        tl.store(out + 2 + CIN + c, tl.sum(pw * dd, axis=1), mask=kmask)
        img_c += stride_ic


@triton.jit
def _ncut_bwd_kernel(
    p_ptr,  # class probabilities, (N, K, S) strided
    img_ptr,  # image, (N, CIN, S) strided
    mu_ptr,  # class means, contiguous (N, K, CIN) in ACC
    coef_ptr,  # one ACC scalar: 1 / sigma^2
    ab_ptr,  # contiguous (K, 2) in ACC: [a_k, b_k] = [dL/dNum_k, dL/dDen_k]
    e_ptr,  # contiguous (N, K, CIN) in ACC: dL/dmu_nkc / (B_nk + 1e-5 S)
    dp_ptr,  # gradient out, (N, K, S) strided, probs' dtype
    K,
    S,
    CIN,
    n_blocks_k,
    n_blocks_s,
    stride_pn, stride_pk, stride_ps,
    stride_in, stride_ic, stride_is,
    stride_dn, stride_dk, stride_ds,
    ACC: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """mu_kc = A_kc / (B_k + 1e-5 S), so dmu_kc/dp_ki = (I_ci - mu_kc) / (B_k + 1e-5 S), and

        dL/dp_ki = w (2 a_k p + b_k) + sum_c E_kc (I_ci - mu_kc).
    """
    pid = tl.program_id(0).to(tl.int64)
    sb = pid % n_blocks_s
    kb = (pid // n_blocks_s) % n_blocks_k
    n = pid // (n_blocks_s * n_blocks_k)
    s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    smask = s < S
    kmask = k < K
    mask2 = kmask[:, None] & smask[None, :]
    p = tl.load(p_ptr + n * stride_pn + k[:, None] * stride_pk + s[None, :] * stride_ps,
                mask=mask2, other=0.0).to(ACC)
    row = (n * K + k) * CIN
    dist = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    via_mu = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    img_c = img_ptr + n * stride_in + s * stride_is  # channel c's row; advanced by stride_ic (64-bit pointers)
    for c in range(CIN):
        img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
        mu = tl.load(mu_ptr + row + c, mask=kmask, other=0.0)
        e = tl.load(e_ptr + row + c, mask=kmask, other=0.0)
        diff = img[None, :] - mu[:, None]
        dist += diff * diff
        via_mu += e[:, None] * diff
        img_c += stride_ic
    w = tl.exp(-(dist * dist) * tl.load(coef_ptr).to(ACC))
    a = tl.load(ab_ptr + k * 2, mask=kmask, other=0.0)
    b = tl.load(ab_ptr + k * 2 + 1, mask=kmask, other=0.0)
    dp = w * (2.0 * a[:, None] * p + b[:, None]) + via_mu
    tl.store(dp_ptr + n * stride_dn + k[:, None] * stride_dk + s[None, :] * stride_ds,
             dp.to(dp_ptr.dtype.element_ty), mask=mask2)


def _blocks(K: int) -> tuple[int, int]:
    """(BLOCK_K, BLOCK_S): up to 16 classes per program, a tile of at most 2048 elements."""
    block_k = min(triton.next_power_of_2(max(K, 1)), 16)
    return block_k, max(128, 2048 // block_k)


def _grid(p):
    N, K, S = p.shape
    BLOCK_K, BLOCK_S = _blocks(K)
    nk, ns = triton.cdiv(K, BLOCK_K), triton.cdiv(S, BLOCK_S)
    return (N * nk * ns,), nk, ns, BLOCK_K, BLOCK_S


def ncut_moments(p, img):
    """Partials (N, blocks, K, 1 + CIN) of [sum p, sum p I_c] (sum over dim 1 to finish)."""
    N, K, S = p.shape
    CIN = img.shape[1]
    grid, nk, ns, BLOCK_K, BLOCK_S = _grid(p)
    acc = acc_dtype(p.dtype)
    part = torch.empty((N, ns, K, 1 + CIN), device=p.device, dtype=acc)
    _ncut_moments_kernel[grid](
        p, img, part, K, S, CIN, nk, ns, *p.stride(), *img.stride(),
        ACC=tl_acc(p.dtype), BLOCK_K=BLOCK_K, BLOCK_S=BLOCK_S, num_warps=4,
    )
    return part


def ncut_cut(p, img, mu, coef):
    """Partials (N, blocks, K, 2 + 2 CIN) of [num, den, H1_c.., H2_c..]; ``coef`` = [1 / sigma^2]."""
    N, K, S = p.shape
    CIN = img.shape[1]
    grid, nk, ns, BLOCK_K, BLOCK_S = _grid(p)
    part = torch.empty((N, ns, K, 2 + 2 * CIN), device=p.device, dtype=mu.dtype)
    _ncut_cut_kernel[grid](
        p, img, mu, coef, part, K, S, CIN, nk, ns, *p.stride(), *img.stride(),
        ACC=tl_acc(p.dtype), BLOCK_K=BLOCK_K, BLOCK_S=BLOCK_S, num_warps=4,
    )
    return part


def ncut_backward(p, img, mu, coef, ab, e):
    """dL/dp with the probabilities' dtype and layout."""
    N, K, S = p.shape
    CIN = img.shape[1]
    grid, nk, ns, BLOCK_K, BLOCK_S = _grid(p)
    dp = torch.empty_like(p)
    _ncut_bwd_kernel[grid](
        p, img, mu, coef, ab, e, dp, K, S, CIN, nk, ns, *p.stride(), *img.stride(), *dp.stride(),
        ACC=tl_acc(p.dtype), BLOCK_K=BLOCK_K, BLOCK_S=BLOCK_S, num_warps=4,
    )
    return dp


def _aot_variants():
    specs = []
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        flags = dict(ACC=acc, BLOCK_K=4, BLOCK_S=512)
        specs.append(aot_spec(_ncut_moments_kernel, flags, p_ptr=f"*{dt}", img_ptr="*fp32", part_ptr=accty))
        specs.append(aot_spec(_ncut_cut_kernel, flags, p_ptr=f"*{dt}", img_ptr="*u8", mu_ptr=accty,
                              coef_ptr=accty, part_ptr=accty))
        specs.append(aot_spec(_ncut_bwd_kernel, flags, p_ptr=f"*{dt}", img_ptr="*fp32", mu_ptr=accty,
                              coef_ptr=accty, ab_ptr=accty, e_ptr=accty, dp_ptr=f"*{dt}"))
    # contiguous fast path with int64 strides (tensors past 2^31 elements)
    fast = dict(ACC=tl.float32, BLOCK_K=16, BLOCK_S=128, stride_ps=1, stride_is=1)
    big = dict(S="i64", stride_pn="i64", stride_pk="i64", stride_in="i64", stride_ic="i64")
    div = ("S", "stride_pn", "stride_pk", "stride_in", "stride_ic")
    specs.append(aot_spec(_ncut_moments_kernel, fast, divisible=div, **big))
    specs.append(aot_spec(_ncut_cut_kernel, fast, divisible=div, **big))
    specs.append(aot_spec(_ncut_bwd_kernel, dict(fast, stride_ds=1), divisible=div + ("stride_dn", "stride_dk"),
                          stride_dn="i64", stride_dk="i64", **big))
    return specs


AOT_SPECS = _aot_variants()
