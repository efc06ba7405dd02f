"""Lovász hinge and Lovász-Softmax: errors, one batched sort, a walk over each sorted segment.

A *segment* is the set of pixels whose errors are sorted together: one image
(``per_image``) or the whole batch, times one class for Lovász-Softmax. All
segments are laid out as rows of one (SEG, P) tensor and sorted by a single
``torch.sort(..., descending=True, stable=True)`` (stable: ties keep pixel
order, so every run breaks them the same way). Ignored pixels get the error
-inf: they sort last, count neither as foreground nor background, and cost
nothing.

Forward, per segment with sorted errors e_1 >= ... >= e_P and foreground flags
f_i (Alg. 1 of Berman et al.), with gts = sum f, cf_i = f_1 + ... + f_i and
cb_i the same count of valid background pixels:

    J_i = 1 - (gts - cf_i) / (gts + cb_i),  g_i = J_i - J_{i-1}  (J_0 = 0)
    loss = sum_i relu(e_i) g_i

The walk computes g_i without the cancellation of J_i - J_{i-1}: with
U_i = gts + cb_i and I_i = gts - cf_i,

    g_i = 1 / U_i                       if pixel i is foreground
    g_i = I_i / (U_{i-1} U_i)           if it is valid background (U_{i-1} = U_i - 1)
    g_i = 1                             ... and U_{i-1} = 0 (no foreground, first background)
    g_i = 0                             if it is ignored.

The walk also overwrites the sorted errors with d_i = g_i * [e_i > 0] * s_i,
where s_i = de_i/dz_i is -1 for foreground and +1 for background (hinge:
e = m - x * (2f - 1), z = x; softmax: e = |f - p|, z = p in [0, 1]). The
backward is then a scatter through the permutation: dz[perm_i] = coef * d_i.

Traffic per element (a pixel; a (pixel, class) pair for softmax), by
construction, beside the sort itself (which reads the keys and writes the
sorted errors and the int64 permutation):
  forward   errors kernel: read x (and the target / label once per pixel),
            write the key (4 B, ACC); walk: read the sorted error (4 B) and
            the permutation (8 B), gather the label, write d over the error
            (4 B); the count pass (only when a row is split into chunks)
            reads the permutation and gathers the label once more.
  backward  scatter: read d (4 B) and the permutation (8 B), write dx
            (hinge, probabilities) or dL/dp (4 B, ACC); softmax from logits
            then reads x and dL/dp and writes dx once (the softmax Jacobian
            needs every class of a pixel, hence the dL/dp buffer).
d and the permutation (12 B) are what the forward keeps for the backward.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from triton_segloss._core.validate import acc_dtype
from triton_segloss._core.aot import aot_spec
from triton_segloss._core.jit import block_for, tl_acc

# The walk splits each sorted segment into chunks so that about PROGRAMS programs run;
# a first pass counts foreground / background per chunk (the carries of the scan).
PROGRAMS = 264
MAX_BLOCK = 1024


@triton.jit
def _lovasz_hinge_err_kernel(
    x_ptr,  # logits, (N, 1, S) strided
    t_ptr,  # {0, 1} target (or ignore_index), (N, 1, S) strided
    key_ptr,  # errors out, contiguous (N, S) in ACC; ignored pixels get -inf
    cnt_ptr,  # foreground count per program out, (N * n_blocks_s,) int32
    S,
    n_blocks_s,
    stride_xn, stride_xs,
    stride_tn, stride_ts,
    ignore_index,  # target value that marks a pixel ignored (if HAS_IGNORE)
    margin_neg,  # hinge margin of background pixels
    margin_pos,  # hinge margin of foreground pixels
    HAS_IGNORE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """e = m - x * (2f - 1) with f = [t > 0.5] and m = margin_pos if f else margin_neg."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK + tl.arange(0, BLOCK)
    mask = s < S
    x = tl.load(x_ptr + n * stride_xn + s * stride_xs, mask=mask, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=mask, other=0).to(ACC)
    valid = mask
    if HAS_IGNORE:
        valid = valid & (t != ignore_index)
    fg = valid & (t > 0.5)
    e = tl.where(fg, margin_pos - x, margin_neg + x)
    e = tl.where(valid, e, float("-inf"))
    tl.store(key_ptr + n * S + s, e, mask=mask)
    tl.store(cnt_ptr + pid, tl.sum(fg.to(tl.int32), axis=0))


@triton.jit
def _lovasz_softmax_err_kernel(
    x_ptr,  # logits (or probabilities if not FROM_LOGITS), (N, C, S) strided
    t_ptr,  # integer labels, (N, S) strided
    cls_ptr,  # (K,) int32: the class of each error column (read if not ALL_CLASSES)
    key_ptr,  # errors out, ACC: column k of image n at key_ptr + n * stride_kn + k * stride_kk + s
    cnt_ptr,  # foreground count per (program, column) out, (N * n_blocks_s, K) int32
    C,
    K,
    S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_tn, stride_ts,
    stride_kn, stride_kk,
    ignore_index,
    HAS_IGNORE: tl.constexpr,
    ALL_CLASSES: tl.constexpr,
    FROM_LOGITS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """p = softmax(x) over C (online max / sum in a first sweep over C), then for each
    column k with class c = cls[k]: e = |[label == c] - p_c|, -inf on ignored pixels."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    smask = s < S
    lab = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=smask, other=0).to(tl.int64)
    valid = smask
    if HAS_IGNORE:
        valid = valid & (lab != ignore_index)
    x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs
    if FROM_LOGITS:
        m = tl.full([BLOCK_S], float("-inf"), ACC)
        z = tl.zeros([BLOCK_S], ACC)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            cm = c < C
            xt = tl.load(x_row + c[:, None] * stride_xc, mask=cm[:, None] & smask[None, :], other=0.0).to(ACC)
            xt = tl.where(cm[:, None], xt, float("-inf"))
            m_new = tl.maximum(m, tl.max(xt, axis=0))
            z = z * tl.exp(m - m_new) + tl.sum(tl.exp(xt - m_new[None, :]), axis=0)
            m = m_new
        inv_z = 1.0 / z
    for k0 in range(0, K, BLOCK_C):
        k = k0 + tl.arange(0, BLOCK_C)
        km = k < K
        if ALL_CLASSES:
            cls = k.to(tl.int64)
        else:
            cls = tl.load(cls_ptr + k, mask=km, other=0).to(tl.int64)
        tmask = km[:, None] & smask[None, :]
        p = tl.load(x_row + cls[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
        if FROM_LOGITS:
            p = tl.exp(p - m[None, :]) * inv_z[None, :]
        fg = (lab[None, :] == cls[:, None]) & valid[None, :]
        e = tl.abs(fg.to(ACC) - p)
        e = tl.where(valid[None, :], e, float("-inf"))
        tl.store(key_ptr + n * stride_kn + k[:, None] * stride_kk + s[None, :], e, mask=tmask)
        tl.store(cnt_ptr + pid * K + k, tl.sum(fg.to(tl.int32), axis=1), mask=km)


@triton.jit
def _lovasz_count_kernel(
    perm_ptr,  # (SEG, P) int64: source position (n' * S + s within the segment) of each sorted element
    t_ptr,  # labels / target, (N, S) strided
    cls_ptr,  # (K,) int32 class per column (softmax, read if not ALL_CLASSES)
    cnt_ptr,  # (SEG, n_chunks, 2) int32 out: [foreground, valid background] per chunk
    P,
    S,
    K,
    n_chunks,
    chunk,  # elements per chunk, a multiple of BLOCK
    stride_tn, stride_ts,
    ignore_index,
    HINGE: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    ALL_CLASSES: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """First pass of the chunked scan: the counts each chunk adds to cf and cb."""
    pid = tl.program_id(0).to(tl.int64)
    seg = pid // n_chunks
    start = (pid % n_chunks) * chunk
    g = seg // K
    k = seg % K
    nf = tl.zeros([BLOCK], tl.int32)
    nb = tl.zeros([BLOCK], tl.int32)
    for off in range(0, chunk, BLOCK):
        i = start + off + tl.arange(0, BLOCK)
        mask = i < P
        src = tl.load(perm_ptr + seg * P + i, mask=mask, other=0)
        n = g + src // S
        s = src % S
        if HINGE:
            t = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=mask, other=0).to(tl.float32)
            valid = mask
            if HAS_IGNORE:
                valid = valid & (t != ignore_index)
            fg = valid & (t > 0.5)
        else:
            if ALL_CLASSES:
                cls = k
            else:
                cls = tl.load(cls_ptr + k).to(tl.int64)
            lab = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=mask, other=0).to(tl.int64)
            valid = mask
            if HAS_IGNORE:
                valid = valid & (lab != ignore_index)
            fg = valid & (lab == cls)
        nf += fg.to(tl.int32)
        nb += (valid & ~fg).to(tl.int32)
    # one reduction for both counts: foreground in the low 32 bits, background above
    counts = tl.sum(nf.to(tl.int64) + (nb.to(tl.int64) << 32), axis=0)
    tl.store(cnt_ptr + pid * 2, (counts & 0xFFFFFFFF).to(tl.int32))
    tl.store(cnt_ptr + pid * 2 + 1, (counts >> 32).to(tl.int32))


@triton.jit
def _lovasz_walk_kernel(
    err_ptr,  # (SEG, P) sorted errors in ACC; overwritten with d (see the module docstring)
    perm_ptr,  # (SEG, P) int64 source position of each sorted element within its segment
    t_ptr,  # labels / target, (N, S) strided
    cls_ptr,  # (K,) int32 class per column (softmax, read if not ALL_CLASSES)
    gts_ptr,  # (SEG,) int32 foreground count of each segment
    carry_ptr,  # (SEG, n_chunks, 2) int32: foreground / valid background before each chunk
    part_ptr,  # (SEG, n_chunks) ACC out: each chunk's share of the segment's loss
    P,
    S,
    K,
    n_chunks,
    chunk,
    stride_tn, stride_ts,
    ignore_index,
    HINGE: tl.constexpr,
    HAS_IGNORE: tl.constexpr,
    ALL_CLASSES: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """cf, cb: a block scan (tl.cumsum) plus a carry across blocks, starting from the
    chunk's carry. g_i in closed form, loss partial sum_i relu(e_i) g_i, and
    d_i = g_i [e_i > 0] (f_i ? -1 : +1) stored over e_i."""
    pid = tl.program_id(0).to(tl.int64)
    seg = pid // n_chunks
    start = (pid % n_chunks) * chunk
    g = seg // K
    k = seg % K
    gts = tl.load(gts_ptr + seg)
    cf = tl.load(carry_ptr + pid * 2)
    cb = tl.load(carry_ptr + pid * 2 + 1)
    acc = tl.zeros([BLOCK], ACC)
    for off in range(0, chunk, BLOCK):
        i = start + off + tl.arange(0, BLOCK)
        mask = i < P
        e = tl.load(err_ptr + seg * P + i, mask=mask, other=0.0)
        src = tl.load(perm_ptr + seg * P + i, mask=mask, other=0)
        n = g + src // S
        s = src % S
        if HINGE:
            t = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=mask, other=0).to(tl.float32)
            valid = mask
            if HAS_IGNORE:
                valid = valid & (t != ignore_index)
            fg = valid & (t > 0.5)
        else:
            if ALL_CLASSES:
                cls = k
            else:
                cls = tl.load(cls_ptr + k).to(tl.int64)
            lab = tl.load(t_ptr + n * stride_tn + s * stride_ts, mask=mask, other=0).to(tl.int64)
            valid = mask
            if HAS_IGNORE:
                valid = valid & (lab != ignore_index)
            fg = valid & (lab == cls)
        bg = valid & ~fg
        # one scan for both counts: foreground in the low 16 bits, background above (BLOCK < 2^16)
        code = fg.to(tl.int32) + (bg.to(tl.int32) << 16)
        scan = tl.cumsum(code, axis=0)
        cfi = cf + (scan & 0xFFFF)
        cbi = cb + (scan >> 16)
        total = tl.sum(code, axis=0)
        cf += total & 0xFFFF
        cb += total >> 16
        u = (gts + cbi).to(ACC)
        inter = (gts - cfi).to(ACC)
        u_safe = tl.maximum(u, 1.0)
        u_prev = tl.maximum(u - 1.0, 1.0)
        g_bg = tl.where(u > 1.0, inter / u_prev / u_safe, 1.0)
        lg = tl.where(fg, 1.0 / u_safe, tl.where(bg, g_bg, 0.0))
        pos = e > 0.0
        acc += tl.where(pos, e, 0.0) * lg
        d = tl.where(pos, tl.where(fg, -lg, lg), 0.0)
        tl.store(err_ptr + seg * P + i, d, mask=mask)
    tl.store(part_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _lovasz_scatter_kernel(
    d_ptr,  # (SEG, P) ACC: d_i of each sorted element (from the walk)
    perm_ptr,  # (SEG, P) int64 source position of each sorted element
    coef_ptr,  # (SEG,) ACC: the upstream gradient of each segment's loss
    cls_ptr,  # (K,) int32 class per column (read if not ALL_CLASSES)
    out_ptr,  # gradient out, (N, C, S) strided: dL/dx (hinge, probabilities) or dL/dp (ACC)
    P,
    S,
    K,
    n_blocks,
    stride_on, stride_oc, stride_os,
    ALL_CLASSES: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """out[n, cls[k], s] = coef[seg] * d_i at the pixel the sorted element i came from."""
    pid = tl.program_id(0).to(tl.int64)
    seg = pid // n_blocks
    i = (pid % n_blocks) * BLOCK + tl.arange(0, BLOCK)
    mask = i < P
    g = seg // K
    k = seg % K
    if ALL_CLASSES:
        cls = k
    else:
        cls = tl.load(cls_ptr + k).to(tl.int64)
    coef = tl.load(coef_ptr + seg)
    d = tl.load(d_ptr + seg * P + i, mask=mask, other=0.0)
    src = tl.load(perm_ptr + seg * P + i, mask=mask, other=0)
    n = g + src // S
    s = src % S
    tl.store(out_ptr + n * stride_on + cls * stride_oc + s * stride_os,
             (coef * d).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lovasz_softmax_bwd_kernel(
    x_ptr,  # logits, (N, C, S) strided
    gp_ptr,  # dL/dp, contiguous (N, C, S) in ACC
    dx_ptr,  # gradient out, (N, C, S) strided, logits' dtype
    C,
    S,
    n_blocks_s,
    stride_xn, stride_xc, stride_xs,
    stride_dn, stride_dc, stride_ds,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """The softmax Jacobian: dL/dx_j = p_j (dL/dp_j - sum_c p_c dL/dp_c), p recomputed from x."""
    pid = tl.program_id(0).to(tl.int64)
    n = pid // n_blocks_s
    s = (pid % n_blocks_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    smask = s < S
    x_row = x_ptr + n * stride_xn + s[None, :] * stride_xs
    g_row = gp_ptr + n * C * S + s[None, :]
    m = tl.full([BLOCK_S], float("-inf"), ACC)
    z = tl.zeros([BLOCK_S], ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = c < C
        xt = tl.load(x_row + c[:, None] * stride_xc, mask=cm[:, None] & smask[None, :], other=0.0).to(ACC)
        xt = tl.where(cm[:, None], xt, float("-inf"))
        m_new = tl.maximum(m, tl.max(xt, axis=0))
        z = z * tl.exp(m - m_new) + tl.sum(tl.exp(xt - m_new[None, :]), axis=0)
        m = m_new
    inv_z = 1.0 / z
    dot = tl.zeros([BLOCK_S], ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        tmask = (c < C)[:, None] & smask[None, :]
        xt = tl.load(x_row + c[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
        gt = tl.load(g_row + c[:, None] * S, mask=tmask, other=0.0)
        dot += tl.sum(tl.where(tmask, tl.exp(xt - m[None, :]) * inv_z[None, :] * gt, 0.0), axis=0)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        tmask = (c < C)[:, None] & smask[None, :]
        xt = tl.load(x_row + c[:, None] * stride_xc, mask=tmask, other=0.0).to(ACC)
        gt = tl.load(g_row + c[:, None] * S, mask=tmask, other=0.0)
        p = tl.exp(xt - m[None, :]) * inv_z[None, :]
        dx = p * (gt - dot[None, :])
        tl.store(dx_ptr + n * stride_dn + c[:, None] * stride_dc + s[None, :] * stride_ds,
                 dx.to(dx_ptr.dtype.element_ty), mask=tmask)


# ---- launchers ---------------------------------------------------------------

def _class_blocks(c: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_S) for the per-pixel softmax kernels: a tile of about 4096 elements."""
    block_c = min(32, max(2, triton.next_power_of_2(c)))
    return block_c, max(32, 4096 // block_c)


def _walk_plan(seg: int, p: int) -> tuple[int, int, int]:
    """(BLOCK, chunk, n_chunks): split each of ``seg`` sorted rows of length ``p`` into
    chunks of whole blocks, so that about PROGRAMS programs walk in parallel."""
    block = min(MAX_BLOCK, max(128, triton.next_power_of_2(triton.cdiv(seg * p, PROGRAMS))))
    n_chunks = max(1, min(triton.cdiv(p, block), triton.cdiv(PROGRAMS, seg)))
    chunk = triton.cdiv(triton.cdiv(p, n_chunks), block) * block
    return block, chunk, triton.cdiv(p, chunk)


def _walk(err, perm, t2, cls, gts, k, s, ignore_index, hinge, all_classes):
    """Count (when a segment has several chunks), then walk; returns the loss per segment (SEG,)."""
    seg, p = err.shape
    acc = err.dtype
    block, chunk, n_chunks = _walk_plan(seg, p)
    flags = dict(HINGE=hinge, HAS_IGNORE=ignore_index is not None, ALL_CLASSES=all_classes)
    ign = (float(ignore_index) if hinge else int(ignore_index)) if ignore_index is not None else 0
    grid = (seg * n_chunks,)
    if n_chunks > 1:
        cnt = torch.empty((seg, n_chunks, 2), device=err.device, dtype=torch.int32)
        _lovasz_count_kernel[grid](
            perm, t2, cls, cnt, p, s, k, n_chunks, chunk, *t2.stride(), ign, BLOCK=block, **flags,
        )
        carry = (torch.cumsum(cnt, dim=1, dtype=torch.int32) - cnt).contiguous()
    else:
        carry = torch.zeros((seg, 1, 2), device=err.device, dtype=torch.int32)
    part = torch.empty((seg, n_chunks), device=err.device, dtype=acc)
    _lovasz_walk_kernel[grid](
        err, perm, t2, cls, gts, carry, part, p, s, k, n_chunks, chunk, *t2.stride(), ign,
        ACC=tl_acc(acc), BLOCK=block, **flags,
    )
    return part.to(torch.float64).sum(1).to(acc)


def lovasz_hinge_forward(x, t, per_image, ignore_index, margin_neg, margin_pos):
    """x, t: (N, 1, S). Returns (loss per segment (G,), d (G, P), perm (G, P) int64), with
    G, P = N, S if ``per_image`` else 1, N * S. ``d`` is the walk's d_i in sorted order."""
    N, _, S = x.shape
    acc = acc_dtype(x.dtype)
    BLOCK, num_warps = block_for(S)
    n_blocks_s = triton.cdiv(S, BLOCK)
    keys = torch.empty((N, S), device=x.device, dtype=acc)
    cnt = torch.empty((N, n_blocks_s), device=x.device, dtype=torch.int32)
    _lovasz_hinge_err_kernel[(N * n_blocks_s,)](
        x, t, keys, cnt, S, n_blocks_s, x.stride(0), x.stride(2), t.stride(0), t.stride(2),
        float(0.0 if ignore_index is None else ignore_index), float(margin_neg), float(margin_pos),
        HAS_IGNORE=ignore_index is not None, ACC=tl_acc(x.dtype), BLOCK=BLOCK, num_warps=num_warps,
    )
    g, p = (N, S) if per_image else (1, N * S)
    err, perm = torch.sort(keys.view(g, p), dim=1, descending=True, stable=True)
    gts = cnt.sum(1, dtype=torch.int32) if per_image else cnt.sum(dtype=torch.int32).view(1)
    t2 = t.select(1, 0)
    loss = _walk(err, perm, t2, t2, gts, 1, S, ignore_index, True, True)
    return loss, err, perm


def lovasz_softmax_forward(x, t, classes, per_image, ignore_index, from_logits):
    """x: (N, C, S) logits (or probabilities), t: (N, 1, S) labels, ``classes``: None (all C)
    or a list of K distinct classes. Returns (loss (G, K), fg count (G, K) int32,
    d (G * K, P), perm (G * K, P) int64); segment (g, k) is row g * K + k."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    all_classes = classes is None
    K = C if all_classes else len(classes)
    cls = (torch.empty((1,), dtype=torch.int32, device=x.device) if all_classes
           else torch.tensor(classes, dtype=torch.int32, device=x.device))
    BLOCK_C, BLOCK_S = _class_blocks(C)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    g, p = (N, S) if per_image else (1, N * S)
    keys = torch.empty((g * K * p,), device=x.device, dtype=acc)
    key_strides = (K * S, S) if per_image else (S, N * S)
    cnt = torch.empty((N, n_blocks_s, K), device=x.device, dtype=torch.int32)
    t2 = t.select(1, 0)
    _lovasz_softmax_err_kernel[(N * n_blocks_s,)](
        x, t2, cls, keys, cnt, C, K, S, n_blocks_s, *x.stride(), *t2.stride(), *key_strides,
        int(0 if ignore_index is None else ignore_index),
        HAS_IGNORE=ignore_index is not None, ALL_CLASSES=all_classes, FROM_LOGITS=from_logits,
        ACC=tl_acc(x.dtype), BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S,
    )
    err, perm = torch.sort(keys.view(g * K, p), dim=1, descending=True, stable=True)
    gts = cnt.sum(1, dtype=torch.int32) if per_image else cnt.sum((0, 1), dtype=torch.int32).view(1, K)
    loss = _walk(err, perm, t2, cls, gts.reshape(-1), K, S, ignore_index, False, all_classes)
    return loss.view(g, K), gts, err, perm


def lovasz_hinge_backward(grad, d, perm, x):
    """dL/dx for x (N, 1, S): the scatter of grad[g] * d through the permutation."""
    N, _, S = x.shape
    dx = torch.empty_like(x)
    seg, p = d.shape
    BLOCK, num_warps = block_for(p)
    n_blocks = triton.cdiv(p, BLOCK)
    coef = grad.to(d.dtype).reshape(seg).contiguous()
    _lovasz_scatter_kernel[(seg * n_blocks,)](
        d, perm, coef, coef, dx, p, S, 1, n_blocks, *dx.stride(),
        ALL_CLASSES=True, BLOCK=BLOCK, num_warps=num_warps,
    )
    return dx


def lovasz_softmax_backward(grad, d, perm, x, classes, from_logits):
    """dL/dx for x (N, C, S): scatter grad[g, k] * d to dL/dp[n, cls[k], s], then (from
    logits) the softmax Jacobian. Classes not listed get dL/dp = 0."""
    N, C, S = x.shape
    seg, p = d.shape
    all_classes = classes is None
    K = C if all_classes else len(classes)
    cls = (torch.empty((1,), dtype=torch.int32, device=x.device) if all_classes
           else torch.tensor(classes, dtype=torch.int32, device=x.device))
    coef = grad.to(d.dtype).reshape(seg).contiguous()
    if from_logits:
        out = (torch.empty if all_classes else torch.zeros)((N, C, S), device=x.device, dtype=d.dtype)
    else:
        out = torch.empty_like(x) if all_classes else torch.zeros_like(x)
    BLOCK, num_warps = block_for(p)
    n_blocks = triton.cdiv(p, BLOCK)
    _lovasz_scatter_kernel[(seg * n_blocks,)](
        d, perm, coef, cls, out, p, S, K, n_blocks, *out.stride(),
        ALL_CLASSES=all_classes, BLOCK=BLOCK, num_warps=num_warps,
    )
    if not from_logits:
        return out
    dx = torch.empty_like(x)
    BLOCK_C, BLOCK_S = _class_blocks(C)
    n_blocks_s = triton.cdiv(S, BLOCK_S)
    _lovasz_softmax_bwd_kernel[(N * n_blocks_s,)](
        x, out, dx, C, S, n_blocks_s, *x.stride(), *dx.stride(),
        ACC=tl_acc(x.dtype), BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S,
    )
    return dx


# ---- ahead-of-time compile variants --------------------------------------------

def _aot_variants():
    specs = []
    for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp16", tl.float32), ("fp64", tl.float64)):
        accty = "*fp64" if acc == tl.float64 else "*fp32"
        specs.append(aot_spec(_lovasz_hinge_err_kernel, dict(HAS_IGNORE=True, ACC=acc, BLOCK=1024),
                              x_ptr=f"*{dt}", t_ptr="*u8", key_ptr=accty, cnt_ptr="*i32",
                              ignore_index="fp32", margin_neg="fp32", margin_pos="fp32"))
        specs.append(aot_spec(_lovasz_softmax_err_kernel,
                              dict(HAS_IGNORE=True, ALL_CLASSES=False, FROM_LOGITS=True, ACC=acc,
                                   BLOCK_C=32, BLOCK_S=128),
                              x_ptr=f"*{dt}", t_ptr="*i64", cls_ptr="*i32", key_ptr=accty, cnt_ptr="*i32"))
        specs.append(aot_spec(_lovasz_walk_kernel,
                              dict(HINGE=False, HAS_IGNORE=True, ALL_CLASSES=False, ACC=acc, BLOCK=1024),
                              err_ptr=accty, perm_ptr="*i64", t_ptr="*i64", cls_ptr="*i32", gts_ptr="*i32",
                              carry_ptr="*i32", part_ptr=accty))
        specs.append(aot_spec(_lovasz_scatter_kernel, dict(ALL_CLASSES=False, BLOCK=1024),
                              d_ptr=accty, perm_ptr="*i64", coef_ptr=accty, cls_ptr="*i32", out_ptr=f"*{dt}"))
        specs.append(aot_spec(_lovasz_softmax_bwd_kernel, dict(ACC=acc, BLOCK_C=32, BLOCK_S=128),
                              x_ptr=f"*{dt}", gp_ptr=accty, dx_ptr=f"*{dt}"))
    # the hinge walk / count (float target) and the softmax paths with probabilities in
    specs.append(aot_spec(_lovasz_walk_kernel,
                          dict(HINGE=True, HAS_IGNORE=True, ALL_CLASSES=True, ACC=tl.float32, BLOCK=1024),
                          perm_ptr="*i64", t_ptr="*fp32", cls_ptr="*i32", gts_ptr="*i32", carry_ptr="*i32",
                          ignore_index="fp32"))
    specs.append(aot_spec(_lovasz_count_kernel, dict(HINGE=True, HAS_IGNORE=True, ALL_CLASSES=True, BLOCK=1024),
                          perm_ptr="*i64", t_ptr="*u8", cls_ptr="*i32", cnt_ptr="*i32", ignore_index="fp32"))
    specs.append(aot_spec(_lovasz_count_kernel, dict(HINGE=False, HAS_IGNORE=True, ALL_CLASSES=False, BLOCK=1024),
                          perm_ptr="*i64", t_ptr="*u8", cls_ptr="*i32", cnt_ptr="*i32"))
    specs.append(aot_spec(_lovasz_softmax_err_kernel,
                          dict(HAS_IGNORE=False, ALL_CLASSES=True, FROM_LOGITS=False, ACC=tl.float32,
                               BLOCK_C=2, BLOCK_S=2048),
                          x_ptr="*bf16", t_ptr="*u8", cls_ptr="*i32", cnt_ptr="*i32"))
    # int64 sizes and strides (tensors past 2^31 elements)
    big = dict(P="i64", S="i64", n_chunks="i64", chunk="i64", stride_tn="i64", stride_ts="i64")
    specs.append(aot_spec(_lovasz_walk_kernel,
                          dict(HINGE=False, HAS_IGNORE=False, ALL_CLASSES=True, ACC=tl.float32, BLOCK=1024),
                          perm_ptr="*i64", t_ptr="*i64", cls_ptr="*i32", gts_ptr="*i32", carry_ptr="*i32",
                          K="i64", ignore_index="i64", **big))
    specs.append(aot_spec(_lovasz_count_kernel, dict(HINGE=False, HAS_IGNORE=False, ALL_CLASSES=True, BLOCK=1024),
                          perm_ptr="*i64", t_ptr="*i64", cls_ptr="*i32", cnt_ptr="*i32", K="i64",
                          ignore_index="i64", **big))
    specs.append(aot_spec(_lovasz_scatter_kernel, dict(ALL_CLASSES=True, BLOCK=1024),
                          perm_ptr="*i64", cls_ptr="*i32", out_ptr="*bf16", P="i64", S="i64", K="i64",
                          n_blocks="i64", stride_on="i64", stride_oc="i64", stride_os="i64"))
    specs.append(aot_spec(_lovasz_hinge_err_kernel,
                          dict(HAS_IGNORE=False, ACC=tl.float32, BLOCK=2048, stride_xs=1, stride_ts=1),
                          divisible=("S", "stride_xn", "stride_tn"), x_ptr="*bf16", t_ptr="*fp32",
                          cnt_ptr="*i32", S="i64", n_blocks_s="i64", stride_xn="i64", stride_tn="i64",
                          ignore_index="fp32", margin_neg="fp32", margin_pos="fp32"))
    # the common fast path: rows whose length is a multiple of 16, stride-1 pixels
    specs.append(aot_spec(_lovasz_walk_kernel,
                          dict(HINGE=True, HAS_IGNORE=False, ALL_CLASSES=True, ACC=tl.float32, BLOCK=1024,
                               stride_ts=1),
                          divisible=("P", "S", "chunk", "stride_tn"), perm_ptr="*i64", t_ptr="*fp32",
                          cls_ptr="*i32", gts_ptr="*i32", carry_ptr="*i32", ignore_index="fp32"))
    specs.append(aot_spec(_lovasz_scatter_kernel, dict(ALL_CLASSES=True, BLOCK=1024),
                          divisible=("P", "S", "stride_on", "stride_oc"), perm_ptr="*i64", cls_ptr="*i32"))
    specs.append(aot_spec(_lovasz_softmax_err_kernel,
                          dict(HAS_IGNORE=True, ALL_CLASSES=True, FROM_LOGITS=True, ACC=tl.float32,
                               BLOCK_C=32, BLOCK_S=128, stride_xs=1, stride_ts=1),
                          divisible=("S", "stride_xn", "stride_xc", "stride_tn", "stride_kn", "stride_kk"),
                          x_ptr="*bf16", t_ptr="*i64", cls_ptr="*i32", cnt_ptr="*i32"))
    specs.append(aot_spec(_lovasz_softmax_err_kernel,
                          dict(HAS_IGNORE=True, ALL_CLASSES=True, FROM_LOGITS=True, ACC=tl.float32,
                               BLOCK_C=32, BLOCK_S=128),
                          x_ptr="*fp32", t_ptr="*i64", cls_ptr="*i32", cnt_ptr="*i32", S="i64",
                          n_blocks_s="i64", stride_xn="i64", stride_xc="i64", stride_xs="i64",
                          stride_tn="i64", stride_ts="i64", stride_kn="i64", stride_kk="i64"))
    specs.append(aot_spec(_lovasz_softmax_bwd_kernel, dict(ACC=tl.float32, BLOCK_C=32, BLOCK_S=128),
                          x_ptr="*fp32", gp_ptr="*fp32", dx_ptr="*fp32", S="i64", n_blocks_s="i64",
                          stride_xn="i64", stride_xc="i64", stride_xs="i64", stride_dn="i64",
                          stride_dc="i64", stride_ds="i64"))
    return specs


AOT_SPECS = _aot_variants()
