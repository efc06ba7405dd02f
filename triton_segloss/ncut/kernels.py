"""Triton kernels of the NCut family and their launchers (the family's only triton import).

Probabilities are seen as (N, K, H, W) and the image as (N, CIN, H, W), each with
its own strides; the running form (no spatial filter) gets (N, K, 1, S) views and
walks the pixels as one axis, the spatial form needs the 2D neighbourhood. With the
per-(image, class) means of the image under the class probabilities

    mu_nkc = A_nkc / (B_nk + 1e-5 S),   A_nkc = sum_i p_ki I_ci,   B_nk = sum_i p_ki,

and per pixel ``D = sum_c (I_c - mu_kc)^2``, ``w = exp(-D^2 / sigma^2)`` (the seed squares
D again), the loss is ``K - sum_k |Num_k / (Den_k + 1e-6)|`` with

    running form:  Num_k = sum_{n,i} p_i^2 w_i,      Den_k = sum_{n,i} p_i w_i
    spatial form:  Num_k = sum_{n,i} p_i (G * pw)_i,  Den_k = sum_{n,i} p_i (G * w)_i

(G the (2R+1)^2 Gaussian exp(-(dy^2 + dx^2) / (2 sigma_s^2)), zero padding; the running form
is the spatial one with G = delta). mu needs a sum over every pixel of the image before
any w exists, so a training step is four launches, no host sync:

1. ``_ncut_moments_kernel``: per-program partials of B and A;
2. ``_ncut_cut_kernel``: every program sums the moment partials of its image (fixed order,
   so all programs see the same mu bitwise), writes mu once, and its partials of Num, Den
   and of the two moments H1, H2 that carry the gradient through mu;
3. ``_ncut_finish_kernel`` (one program): the loss and the gradient coefficients per unit
   upstream gradient ``[a_k, b_k] = [dL/dNum_k, dL/dDen_k]`` and ``E_nkc = dL/dmu_nkc / (B + 1e-5 S)``;
4. ``_ncut_bwd_kernel``: dp from p, I, mu, a, b, E and the upstream gradient, all read from
   device memory.

Partials are bounded: each (image, class block) gets at most ``_MAX_SPLIT`` programs in
passes 1 and 2 (each loops over its share of the pixel tiles), so the moment sums every
program of pass 2 repeats and the finisher's loop stay small. No float atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import device_guard, scalar, split_f64, tl_acc
from triton_segloss._core.validate import acc_dtype

_PROGRAMS = 1024  # programs per pass the split aims at
_MAX_SPLIT = 256  # programs per (image, class block) in passes 1 and 2
_BLOCK_P = 64  # partials summed per step (moments in pass 2, the finisher)


@triton.jit
def _pixel_offset(s, W, stride_h, stride_w, SPATIAL: tl.constexpr):
    """Offset of flat pixel s = h W + w (int64): 2D strides when SPATIAL, else s * stride_w (H == 1)."""
    if SPATIAL:
        h = s // W
        off = h * stride_h + (s - h * W) * stride_w
    else:
        off = s * stride_w
    return off


@triton.jit
def _split_sum(ptr, row, kmask, n_split, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
    """sum_j ptr[row_k * n_split + j] over j < n_split, per class: [BLOCK_K] float64, in a fixed order."""
    acc = tl.zeros([BLOCK_K, BLOCK_P], dtype=tl.float64)
    for j0 in range(0, n_split, BLOCK_P):
        j = j0 + tl.arange(0, BLOCK_P).to(tl.int64)
        m = kmask[:, None] & (j < n_split)[None, :]
        acc += tl.load(ptr + row[:, None] * n_split + j[None, :], mask=m, other=0.0).to(tl.float64)
    return tl.sum(acc, axis=1)


@triton.jit
def _column(t, c, CIN_P: tl.constexpr):
    """Column c of a [BLOCK_K, CIN_P] tile as a [BLOCK_K] vector."""
    return tl.sum(tl.where(tl.arange(0, CIN_P)[None, :] == c, t, 0.0), axis=1)


@triton.jit
def _dist(img_ptr, smask, mu, CIN, stride_ic, ACC: tl.constexpr, BLOCK_K: tl.constexpr,
          BLOCK_S: tl.constexpr, CIN_P: tl.constexpr):
    """D = sum_c (I_c - mu_kc)^2 on a [BLOCK_K, BLOCK_S] tile; ``img_ptr``: channel 0's [BLOCK_S] pointers."""
    dist = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    img_c = img_ptr  # advanced by stride_ic: 64-bit pointers, no int32 product c * stride_ic
    for c in range(CIN):
        img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
        diff = img[None, :] - _column(mu, c, CIN_P)[:, None]
        dist += diff * diff
        img_c += stride_ic
    return dist


@triton.jit
def _neighbourhood(p_row, img_n, h, wc, smask, kmask, mu, H, W, R, CIN,
                   stride_ph, stride_pw, stride_ic, stride_ih, stride_iw, is2, ig2,
                   ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_S: tl.constexpr, CIN_P: tl.constexpr):
    """q = G * (p w), u = G * w, v = G * p on a tile (zero padding), G_d = exp(-|d|^2 ig2)."""
    q = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    u = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    v = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    for dy in range(-R, R + 1):
        hj = h + dy
        for dx in range(-R, R + 1):
            wj = wc + dx
            m = smask & (hj >= 0) & (hj < H) & (wj >= 0) & (wj < W)
            pj = tl.load(p_row[:, None] + (hj * stride_ph + wj * stride_pw)[None, :],
                         mask=kmask[:, None] & m[None, :], other=0.0).to(ACC)
            dj = _dist(img_n + hj * stride_ih + wj * stride_iw, m, mu, CIN, stride_ic, ACC, BLOCK_K, BLOCK_S,
                       CIN_P)
            wgt = tl.where(m[None, :], tl.exp(-(dj * dj) * is2), 0.0)
            gk = tl.exp(-(dy * dy + dx * dx) * ig2)
            q += gk * (pj * wgt)
            u += gk * wgt
            v += gk * pj
    return q, u, v


@triton.jit
def _ncut_moments_kernel(
    p_ptr,  # class probabilities, (N, K, H, W) strided
    img_ptr,  # image, (N, CIN, H, W) strided, its own dtype
    part_ptr,  # partials out, contiguous (N, K, 1 + CIN, n_split) in ACC: [B, A_0 .. A_CIN-1]
    K, CIN, H, W, S,
    n_blocks_k, n_split,
    stride_pn, stride_pk, stride_ph, stride_pw,
    stride_in, stride_ic, stride_ih, stride_iw,
    SPATIAL: tl.constexpr, ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_S: tl.constexpr,
    CIN_P: tl.constexpr,
):
    """Program (n, class block, split j) over the pixel tiles j, j + n_split, ...:

        B_k = sum_i p_ki,   A_kc = sum_i p_ki I_ci.
    """
    pid = tl.program_id(0).to(tl.int64)
    split = pid % n_split
    kb = (pid // n_split) % n_blocks_k
    n = pid // (n_split * n_blocks_k)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K).to(tl.int64)
    kmask = k < K
    cols = tl.arange(0, CIN_P)
    p_row = p_ptr + n * stride_pn + k * stride_pk
    img_n = img_ptr + n * stride_in
    b = tl.zeros([BLOCK_K], dtype=ACC)
    a = tl.zeros([BLOCK_K, CIN_P], dtype=ACC)
    for s0 in range(split * BLOCK_S, S, n_split * BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S).to(tl.int64)
        smask = s < S
        p = tl.load(p_row[:, None] + _pixel_offset(s, W, stride_ph, stride_pw, SPATIAL)[None, :],
                    mask=kmask[:, None] & smask[None, :], other=0.0).to(ACC)
        b += tl.sum(p, axis=1)
        img_c = img_n + _pixel_offset(s, W, stride_ih, stride_iw, SPATIAL)
        for c in range(CIN):
            img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
            a += tl.where(cols[None, :] == c, tl.sum(p * img[None, :], axis=1)[:, None], 0.0)
            img_c += stride_ic
    row = (n * K + k) * (1 + CIN)
    tl.store(part_ptr + row * n_split + split, b, mask=kmask)
    tl.store(part_ptr + (row[:, None] + 1 + cols[None, :]) * n_split + split, a,
             mask=kmask[:, None] & (cols < CIN)[None, :])


@triton.jit
def _ncut_cut_kernel(
    p_ptr,  # class probabilities, (N, K, H, W) strided
    img_ptr,  # image, (N, CIN, H, W) strided
    mom_ptr,  # moment partials from _ncut_moments_kernel, contiguous (N, K, 1 + CIN, n_split) in ACC
    mu_ptr,  # class means out, contiguous (N, K, CIN) in ACC (written by the split-0 programs)
    part_ptr,  # partials out, contiguous (N, K, 2 + 2 CIN, n_split) in ACC: [Num, Den, H1_c.., H2_c..]
    K, CIN, H, W, S, R,
    n_blocks_k, n_split,
    stride_pn, stride_pk, stride_ph, stride_pw,
    stride_in, stride_ic, stride_ih, stride_iw,
    is2_hi, is2_lo,  # 1 / sigma_value^2 (fp32 pair)
    ig2_hi, ig2_lo,  # 1 / (2 sigma_spatial^2) (fp32 pair); read only if SPATIAL
    SPATIAL: tl.constexpr, ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_S: tl.constexpr,
    CIN_P: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """Program (n, class block, split j). mu from the fixed-order sum of the moment partials;
    with q = G * (p w), u = G * w, v = G * p (running form: q = p w, u = w, v = p), per class:

        Num_k = sum_i p q,   Den_k = sum_i p u,
        H1_kc = sum_i v p w D (I_c - mu_kc) / (B + 1e-5 S),   H2_kc = sum_i v w D (I_c - mu_kc) / (B + 1e-5 S).

    H1, H2 carry the gradient through mu: dL/dw_i = v_i (a p_i + b), dw/dD = -2 D w / sigma^2,
    dD/dmu_c = -2 (I_c - mu_c), so dL/dmu_kc / (B + 1e-5 S) = (4 / sigma^2) (a_k H1_kc + b_k H2_kc).
    """
    pid = tl.program_id(0).to(tl.int64)
    split = pid % n_split
    kb = (pid // n_split) % n_blocks_k
    n = pid // (n_split * n_blocks_k)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K).to(tl.int64)
    kmask = k < K
    cols = tl.arange(0, CIN_P)
    cmask = kmask[:, None] & (cols < CIN)[None, :]
    # class means: every program of image n sums the same partials in the same order
    mrow = (n * K + k) * (1 + CIN)
    mu_den = _split_sum(mom_ptr, mrow, kmask, n_split, BLOCK_K, BLOCK_P) + tl.full([], 1e-5, tl.float64) * S
    mu64 = tl.zeros([BLOCK_K, CIN_P], dtype=tl.float64)
    for c in range(CIN):
        a_c = _split_sum(mom_ptr, mrow + 1 + c, kmask, n_split, BLOCK_K, BLOCK_P)
        mu64 += tl.where(cols[None, :] == c, (a_c / mu_den)[:, None], 0.0)
    mu = mu64.to(ACC)
    inv_den = (1.0 / mu_den).to(ACC)
    tl.store(mu_ptr + (n * K + k)[:, None] * CIN + cols[None, :], mu,
             mask=cmask & (cols + split == cols)[None, :])  # split 0 only
    is2 = scalar(is2_hi, is2_lo, ACC)
    ig2 = scalar(ig2_hi, ig2_lo, ACC)
    p_row = p_ptr + n * stride_pn + k * stride_pk
    img_n = img_ptr + n * stride_in
    num = tl.zeros([BLOCK_K], dtype=ACC)
    den = tl.zeros([BLOCK_K], dtype=ACC)
    h1 = tl.zeros([BLOCK_K, CIN_P], dtype=ACC)
    h2 = tl.zeros([BLOCK_K, CIN_P], dtype=ACC)
    for s0 in range(split * BLOCK_S, S, n_split * BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S).to(tl.int64)
        smask = s < S
        valid = kmask[:, None] & smask[None, :]
        p = tl.load(p_row[:, None] + _pixel_offset(s, W, stride_ph, stride_pw, SPATIAL)[None, :],
                    mask=valid, other=0.0).to(ACC)
        img_s = img_n + _pixel_offset(s, W, stride_ih, stride_iw, SPATIAL)
        dist = _dist(img_s, smask, mu, CIN, stride_ic, ACC, BLOCK_K, BLOCK_S, CIN_P)
        w = tl.exp(-(dist * dist) * is2)
        if SPATIAL:
            h = s // W
            q, u, v = _neighbourhood(p_row, img_n, h, s - h * W, smask, kmask, mu, H, W, R, CIN,
                                     stride_ph, stride_pw, stride_ic, stride_ih, stride_iw, is2, ig2,
                                     ACC, BLOCK_K, BLOCK_S, CIN_P)
            num += tl.sum(p * q, axis=1)
            den += tl.sum(p * u, axis=1)
            t2 = tl.where(valid, v * w * dist, 0.0)  # dL/dw = v (a p + b): the b part, times dw/dD up to -2/sigma^2
        else:
            pw = p * w  # 0 outside the tile: p is loaded as 0 there
            num += tl.sum(p * pw, axis=1)
            den += tl.sum(pw, axis=1)
            t2 = pw * dist
        t1 = p * t2
        img_c = img_s
        for c in range(CIN):
            img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
            diff = img[None, :] - _column(mu, c, CIN_P)[:, None]
            h1 += tl.where(cols[None, :] == c, tl.sum(t1 * diff, axis=1)[:, None], 0.0)
            h2 += tl.where(cols[None, :] == c, tl.sum(t2 * diff, axis=1)[:, None], 0.0)
            img_c += stride_ic
    row = (n * K + k) * (2 + 2 * CIN)
    tl.store(part_ptr + row * n_split + split, num, mask=kmask)
    tl.store(part_ptr + (row + 1) * n_split + split, den, mask=kmask)
    tl.store(part_ptr + (row[:, None] + 2 + cols[None, :]) * n_split + split, h1 * inv_den[:, None], mask=cmask)
    tl.store(part_ptr + (row[:, None] + 2 + CIN + cols[None, :]) * n_split + split, h2 * inv_den[:, None],
             mask=cmask)


@triton.jit
def _ncut_finish_kernel(
    part_ptr,  # cut partials, contiguous (N, K, 2 + 2 CIN, n_split) in ACC
    loss_ptr,  # the 0-d loss out, ACC
    ab_ptr,  # out: contiguous (K, 2) in ACC, [a_k, b_k] per unit upstream gradient
    e_ptr,  # out: contiguous (N, K, CIN) in ACC, E_nkc per unit upstream gradient
    N, K, CIN, n_split,
    is2_hi, is2_lo,  # 1 / sigma_value^2 (fp32 pair)
    ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """One program. With Num_k, Den_k, H1, H2 the fixed-order float64 sums of the partials,
    r_k = Num_k / (Den_k + 1e-6) and s_k = sign(r_k):

        loss = K - sum_k |r_k|
        a_k  = dL/dNum_k = -s_k / (Den_k + 1e-6),   b_k = dL/dDen_k = s_k Num_k / (Den_k + 1e-6)^2
        E_nkc = (4 / sigma^2) (a_k H1_nkc + b_k H2_nkc)
    """
    F = 2 + 2 * CIN
    is2 = scalar(is2_hi, is2_lo, tl.float64)
    total = tl.zeros([BLOCK_K], dtype=tl.float64)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        kmask = k < K
        num = tl.zeros([BLOCK_K], dtype=tl.float64)
        den = tl.zeros([BLOCK_K], dtype=tl.float64)
        row = k * F
        for n in range(N):
            num += _split_sum(part_ptr, row, kmask, n_split, BLOCK_K, BLOCK_P)
            den += _split_sum(part_ptr, row + 1, kmask, n_split, BLOCK_K, BLOCK_P)
            row += K * F
        de = den + tl.full([], 1e-6, tl.float64)
        r = num / de
        sgn = tl.where(r > 0, 1.0, tl.where(r < 0, -1.0, 0.0))
        a = -sgn / de
        b = sgn * num / (de * de)
        total += tl.where(kmask, tl.abs(r), 0.0)
        tl.store(ab_ptr + k * 2, a.to(ACC), mask=kmask)
        tl.store(ab_ptr + k * 2 + 1, b.to(ACC), mask=kmask)
        row = k * F
        erow = k * CIN
        for n in range(N):
            for c in range(CIN):
                h1 = _split_sum(part_ptr, row + 2 + c, kmask, n_split, BLOCK_K, BLOCK_P)
                h2 = _split_sum(part_ptr, row + 2 + CIN + c, kmask, n_split, BLOCK_K, BLOCK_P)
                tl.store(e_ptr + erow + c, (4.0 * is2 * (a * h1 + b * h2)).to(ACC), mask=kmask)
            row += K * F
            erow += K * CIN
    tl.store(loss_ptr, (K - tl.sum(total, axis=0)).to(ACC))


@triton.jit
def _ncut_bwd_kernel(
    p_ptr,  # class probabilities, (N, K, H, W) strided
    img_ptr,  # image, (N, CIN, H, W) strided
    mu_ptr,  # class means, contiguous (N, K, CIN) in ACC
    ab_ptr,  # contiguous (K, 2) in ACC: [a_k, b_k] per unit upstream gradient
    e_ptr,  # contiguous (N, K, CIN) in ACC: E_nkc per unit upstream gradient
    g_ptr,  # the 0-d upstream gradient of the loss
    dp_ptr,  # gradient out, (N, K, H, W) strided, probs' dtype
    K, CIN, H, W, S, R,
    n_blocks_k, n_blocks_s,
    stride_pn, stride_pk, stride_ph, stride_pw,
    stride_in, stride_ic, stride_ih, stride_iw,
    stride_dn, stride_dk, stride_dh, stride_dw,
    is2_hi, is2_lo, ig2_hi, ig2_lo,  # as in _ncut_cut_kernel
    SPATIAL: tl.constexpr, ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_S: tl.constexpr,
    CIN_P: tl.constexpr,
):
    """mu_kc = A_kc / (B_k + 1e-5 S), so dmu_kc/dp_ki = (I_ci - mu_kc) / (B_k + 1e-5 S), and with g the
    upstream gradient, q, u, v as in the cut kernel (the 2D neighbourhood is recomputed):

        spatial:  dL/dp_ki = g [a_k (q + v w) + b_k u + sum_c E_kc (I_ci - mu_kc)]
        running:  dL/dp_ki = g [w (2 a_k p + b_k) + sum_c E_kc (I_ci - mu_kc)]      (q = p w, u = w, v = p)
    """
    pid = tl.program_id(0).to(tl.int64)
    sb = pid % n_blocks_s
    kb = (pid // n_blocks_s) % n_blocks_k
    n = pid // (n_blocks_s * n_blocks_k)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K).to(tl.int64)
    s = sb * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)
    kmask = k < K
    smask = s < S
    valid = kmask[:, None] & smask[None, :]
    cols = tl.arange(0, CIN_P)
    cmask = kmask[:, None] & (cols < CIN)[None, :]
    crow = (n * K + k)[:, None] * CIN + cols[None, :]
    mu = tl.load(mu_ptr + crow, mask=cmask, other=0.0).to(ACC)
    e = tl.load(e_ptr + crow, mask=cmask, other=0.0).to(ACC)
    a = tl.load(ab_ptr + k * 2, mask=kmask, other=0.0).to(ACC)
    b = tl.load(ab_ptr + k * 2 + 1, mask=kmask, other=0.0).to(ACC)
    is2 = scalar(is2_hi, is2_lo, ACC)
    ig2 = scalar(ig2_hi, ig2_lo, ACC)
    p_row = p_ptr + n * stride_pn + k * stride_pk
    img_n = img_ptr + n * stride_in
    p = tl.load(p_row[:, None] + _pixel_offset(s, W, stride_ph, stride_pw, SPATIAL)[None, :],
                mask=valid, other=0.0).to(ACC)
    img_s = img_n + _pixel_offset(s, W, stride_ih, stride_iw, SPATIAL)
    dist = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    via_mu = tl.zeros([BLOCK_K, BLOCK_S], dtype=ACC)
    img_c = img_s
    for c in range(CIN):
        img = tl.load(img_c, mask=smask, other=0.0).to(ACC)
        diff = img[None, :] - _column(mu, c, CIN_P)[:, None]
        dist += diff * diff
        via_mu += _column(e, c, CIN_P)[:, None] * diff
        img_c += stride_ic
    w = tl.exp(-(dist * dist) * is2)
    if SPATIAL:
        h = s // W
        q, u, v = _neighbourhood(p_row, img_n, h, s - h * W, smask, kmask, mu, H, W, R, CIN,
                                 stride_ph, stride_pw, stride_ic, stride_ih, stride_iw, is2, ig2,
                                 ACC, BLOCK_K, BLOCK_S, CIN_P)
        dp = a[:, None] * (q + v * w) + b[:, None] * u + via_mu
    else:
        dp = w * (2.0 * a[:, None] * p + b[:, None]) + via_mu
    dp = dp * tl.load(g_ptr).to(ACC)
    tl.store(dp_ptr + n * stride_dn + k[:, None] * stride_dk
             + _pixel_offset(s, W, stride_dh, stride_dw, SPATIAL)[None, :],
             dp.to(dp_ptr.dtype.element_ty), mask=valid)


# ---- launchers (same names and contract as torch_impl.py) ----------------------------------------

def _blocks(K: int, spatial: bool) -> tuple[int, int]:
    """(BLOCK_K, BLOCK_S): up to 16 classes per program, a tile of 2048 elements (1024 for the
    spatial form, whose neighbourhood loop holds more tiles live)."""
    block_k = min(triton.next_power_of_2(max(K, 1)), 16)
    return block_k, max(64 if spatial else 128, (1024 if spatial else 2048) // block_k)


def _layout(p, img, o):
    N, K, H, W = p.shape
    spatial = o.radius is not None
    BLOCK_K, BLOCK_S = _blocks(K, spatial)
    nk, ns = triton.cdiv(K, BLOCK_K), triton.cdiv(H * W, BLOCK_S)
    n_split = max(1, min(ns, _MAX_SPLIT, triton.cdiv(_PROGRAMS, N * nk)))
    return dict(N=N, K=K, CIN=img.shape[1], H=H, W=W, S=H * W, nk=nk, ns=ns, n_split=n_split, spatial=spatial,
                BLOCK_K=BLOCK_K, BLOCK_S=BLOCK_S, CIN_P=triton.next_power_of_2(img.shape[1]))


def _strides(prefix, t):
    return dict(zip((f"stride_{prefix}{d}" for d in ("n", "c" if prefix == "i" else "k", "h", "w")), t.stride()))


def _scalars(o):
    is2 = split_f64(1.0 / (o.sigma_value * o.sigma_value))
    ig2 = split_f64(0.0 if o.radius is None else 1.0 / (2.0 * o.sigma_spatial * o.sigma_spatial))
    return dict(is2_hi=is2[0], is2_lo=is2[1], ig2_hi=ig2[0], ig2_lo=ig2[1])


def forward(probs, image, o):
    """(loss, mu, ab, e): the 0-d loss, the class means (N, K, CIN), and the finisher's gradient
    coefficients per unit upstream gradient, ab (K, 2) and e (N, K, CIN). See ``ops.py``."""
    L = _layout(probs, image, o)
    N, K, CIN, n_split = L["N"], L["K"], L["CIN"], L["n_split"]
    acc = acc_dtype(probs.dtype)
    dev = probs.device
    mom = torch.empty((N, K, 1 + CIN, n_split), device=dev, dtype=acc)
    part = torch.empty((N, K, 2 + 2 * CIN, n_split), device=dev, dtype=acc)
    mu = torch.empty((N, K, CIN), device=dev, dtype=acc)
    ab = torch.empty((K, 2), device=dev, dtype=acc)
    e = torch.empty((N, K, CIN), device=dev, dtype=acc)
    loss = torch.empty((), device=dev, dtype=acc)
    sizes = dict(K=K, CIN=CIN, H=L["H"], W=L["W"], S=L["S"], n_blocks_k=L["nk"], n_split=n_split)
    strides = dict(**_strides("p", probs), **_strides("i", image))
    meta = dict(SPATIAL=L["spatial"], ACC=tl_acc(probs.dtype), BLOCK_K=L["BLOCK_K"], BLOCK_S=L["BLOCK_S"],
                CIN_P=L["CIN_P"], num_warps=4)
    grid = (N * L["nk"] * n_split,)
    sc = _scalars(o)
    with device_guard(probs):
        _ncut_moments_kernel[grid](p_ptr=probs, img_ptr=image, part_ptr=mom, **sizes, **strides, **meta)
        _ncut_cut_kernel[grid](p_ptr=probs, img_ptr=image, mom_ptr=mom, mu_ptr=mu, part_ptr=part, **sizes,
                               R=o.radius or 0, **strides, **sc, **meta, BLOCK_P=_BLOCK_P)
        _ncut_finish_kernel[(1,)](part_ptr=part, loss_ptr=loss, ab_ptr=ab, e_ptr=e, N=N, K=K, CIN=CIN,
                                  n_split=n_split, is2_hi=sc["is2_hi"], is2_lo=sc["is2_lo"],
                                  ACC=tl_acc(probs.dtype), BLOCK_K=16, BLOCK_P=_BLOCK_P)
    return loss, mu, ab, e


def backward(g, mu, ab, e, probs, image, o):
    """dLoss/dprobs with the probabilities' dtype and layout; ``g``: the 0-d upstream gradient."""
    L = _layout(probs, image, o)
    dp = torch.empty_like(probs)
    with device_guard(probs):
        _ncut_bwd_kernel[(L["N"] * L["nk"] * L["ns"],)](
            p_ptr=probs, img_ptr=image, mu_ptr=mu, ab_ptr=ab, e_ptr=e, g_ptr=g, dp_ptr=dp,
            K=L["K"], CIN=L["CIN"], H=L["H"], W=L["W"], S=L["S"], R=o.radius or 0,
            n_blocks_k=L["nk"], n_blocks_s=L["ns"], **_strides("p", probs), **_strides("i", image),
            **dict(zip(("stride_dn", "stride_dk", "stride_dh", "stride_dw"), dp.stride())), **_scalars(o),
            SPATIAL=L["spatial"], ACC=tl_acc(probs.dtype), BLOCK_K=L["BLOCK_K"], BLOCK_S=L["BLOCK_S"],
            CIN_P=L["CIN_P"], num_warps=4)
    return dp


def _aot_variants():
    specs = []
    floats = {k: "fp32" for k in ("is2_hi", "is2_lo", "ig2_hi", "ig2_lo")}
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        for spatial, cin_p in ((False, 1), (False, 4), (True, 4)) if dt == "fp32" else ((True, 4),):
            flags = dict(SPATIAL=spatial, ACC=acc, BLOCK_K=4, BLOCK_S=256 if spatial else 512, CIN_P=cin_p)
            specs.append(aot_spec(_ncut_moments_kernel, flags, p_ptr=f"*{dt}", img_ptr="*u8", part_ptr=accty))
            specs.append(aot_spec(_ncut_cut_kernel, dict(flags, BLOCK_P=_BLOCK_P), p_ptr=f"*{dt}", img_ptr="*fp32",
                                  mom_ptr=accty, mu_ptr=accty, part_ptr=accty, **floats))
            specs.append(aot_spec(_ncut_bwd_kernel, flags, p_ptr=f"*{dt}", img_ptr="*fp32", mu_ptr=accty,
                                  ab_ptr=accty, e_ptr=accty, g_ptr=accty, dp_ptr=f"*{dt}", **floats))
        specs.append(aot_spec(_ncut_finish_kernel, dict(ACC=acc, BLOCK_K=16, BLOCK_P=_BLOCK_P), part_ptr=accty,
                              loss_ptr=accty, ab_ptr=accty, e_ptr=accty, is2_hi="fp32", is2_lo="fp32"))
    # contiguous fast path with int64 sizes and strides (tensors past 2^31 elements)
    fast = dict(SPATIAL=False, ACC=tl.float32, BLOCK_K=16, BLOCK_S=128, CIN_P=4, stride_pw=1, stride_iw=1)
    big = dict(S="i64", stride_pn="i64", stride_pk="i64", stride_in="i64", stride_ic="i64")
    div = ("S", "stride_pn", "stride_pk", "stride_in", "stride_ic")
    specs.append(aot_spec(_ncut_moments_kernel, fast, divisible=div, **big))
    specs.append(aot_spec(_ncut_cut_kernel, dict(fast, BLOCK_P=_BLOCK_P), divisible=div, **big, **floats))
    specs.append(aot_spec(_ncut_bwd_kernel, dict(fast, stride_dw=1), divisible=div + ("stride_dn", "stride_dk"),
                          stride_dn="i64", stride_dk="i64", **big, **floats))
    return specs


AOT_SPECS = _aot_variants()
