"""PyTorch path of the Lovász family; mirrors ``kernels/lovasz.py`` (same launchers, same buffers).

One ``torch.sort`` over every segment at once, then the walk as vectorised
cumulative sums over the sorted rows: no Python loop over images or classes,
and no one-hot tensor (the label of each sorted element is gathered through
the permutation and compared with its row's class).

The sort dominates on CPU, so the rest is written in few, cheap passes:
0/1 flags as floats and arithmetic instead of ``torch.where``, the same
closed form of the Jaccard differences as the Triton walk (no cancellation),
and counts in float32 (exact below 2^24 elements per segment; float64 past that).
"""

from __future__ import annotations

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype


def _acc(dtype: torch.dtype) -> torch.dtype:
    return acc_dtype(dtype)


def _count_dtype(acc: torch.dtype, p: int) -> torch.dtype:
    """Float dtype of the walk's running counts: exact integers up to 2^24 in float32."""
    return torch.float64 if acc == torch.float64 or p > 2**24 else torch.float32


def _walk(err: Tensor, fg: Tensor, bg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Loss per row, d (see kernels/lovasz.py) and the foreground count per row, from the
    sorted errors (SEG, P) and the sorted foreground / valid-background flags as 0/1 floats
    (ignored pixels are neither). ``bg`` is overwritten."""
    cf = fg.cumsum(1)
    gts = cf[:, -1:].clone()
    u = bg.cumsum(1).add_(gts)  # U_i = gts + cb_i
    # g_i = (U_i on foreground, I_i = gts - cf_i on background) / (U_{i-1} U_i), with
    # U_{i-1} = U_i - bg_i. The denominator is a product of counts: >= 1 unless it is 0
    den = torch.sub(u, bg).mul_(u).clamp_min_(1.0)
    # U_{i-1} = 0 only at the first pixel (the first valid one: ignored pixels sort last) of a
    # row without foreground: there J jumps from J_0 = 0 to 1, so g = 1 (the formula gives 0)
    first = (gts[:, 0] == 0).to(bg.dtype).mul_(bg[:, 0])
    # w = g * (-1 on foreground, +1 on background): foreground and background are disjoint
    w = bg.mul_(torch.sub(gts, cf)).addcmul_(fg, u, value=-1.0).div_(den)
    w[:, 0] += first
    lg = w.abs().to(err.dtype)
    loss = torch.linalg.vecdot(err.clamp_min(0.0), lg, dim=1)
    d = w.mul_(err > 0).to(err.dtype)  # g [e > 0] (-1 on foreground, +1 on background)
    return loss, d, gts.view(-1)


def _softmax(x: Tensor) -> Tensor:
    """softmax over dim 1 in three passes (on CPU about twice as fast as F.softmax over a
    non-innermost dim); the result is a new contiguous tensor."""
    e = torch.sub(x, x.amax(1, keepdim=True), out=torch.empty(x.shape, dtype=x.dtype, device=x.device)).exp_()
    return e.div_(e.sum(1, keepdim=True))


def _flags(code_s: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(foreground, valid background) as 0/1 floats from sorted codes: 2, 1 and 0 (ignored)."""
    fg = torch.eq(code_s, 2, out=torch.empty(code_s.shape, dtype=dtype, device=code_s.device))
    bg = torch.eq(code_s, 1, out=torch.empty(code_s.shape, dtype=dtype, device=code_s.device))
    return fg, bg


def lovasz_hinge_forward(x, t, per_image, ignore_index, margin_neg, margin_pos):
    """Same contract as ``kernels.lovasz.lovasz_hinge_forward``."""
    N, _, S = x.shape
    acc = _acc(x.dtype)
    xs = x.reshape(N, S).to(acc)
    tf = t.reshape(N, S).to(acc)
    fg = tf > 0.5
    keep = None
    if ignore_index is not None:
        keep = tf != ignore_index
        fg &= keep
    fgf = fg.to(acc)
    # e = m - x (2 f - 1), m = margin_neg + (margin_pos - margin_neg) f
    e = torch.rsub(fgf, 1.0, alpha=2.0).mul_(xs).add_(fgf, alpha=margin_pos - margin_neg).add_(margin_neg)
    if keep is not None:
        e = torch.where(keep, e, float("-inf"))  # ignored pixels sort last
    g, p = (N, S) if per_image else (1, N * S)
    err, perm = torch.sort(e.view(g, p), dim=1, descending=True, stable=True)
    cd = _count_dtype(acc, p)
    if keep is None:
        fg_s = fgf.to(cd).view(g, p).gather(1, perm)
        bg_s = torch.rsub(fg_s, 1.0)
    else:
        code = fg.to(torch.int8).add_(keep.to(torch.int8))  # 2 foreground, 1 background, 0 ignored
        fg_s, bg_s = _flags(code.view(g, p).gather(1, perm), cd)
    loss, d, _ = _walk(err, fg_s, bg_s)
    return loss, d, perm


def lovasz_softmax_forward(x, t, classes, per_image, ignore_index, from_logits):
    """Same contract as ``kernels.lovasz.lovasz_softmax_forward``."""
    N, C, S = x.shape
    acc = _acc(x.dtype)
    xa = x.to(acc)
    prob = _softmax(xa) if from_logits else xa
    lab = t.reshape(N, S)
    valid = None if ignore_index is None else lab != ignore_index
    lab_c = lab.long().clamp(0, C - 1)
    if classes is None:
        K = C
        cls = torch.arange(C, device=x.device)
        keys = prob.clone(memory_format=torch.contiguous_format) if prob is x else prob.contiguous()
        col = lab_c
        listed = valid
    else:
        K = len(classes)
        cls = torch.tensor(classes, dtype=torch.long, device=x.device)
        keys = prob.index_select(1, cls)
        kidx = torch.full((C,), -1, dtype=torch.long, device=x.device)
        kidx[cls] = torch.arange(K, device=x.device)
        col = kidx[lab_c]
        listed = (col >= 0) & (lab == cls[col.clamp_min(0)])
        if valid is not None:
            listed &= valid
        col = col.clamp_min(0)
    # e = |[label == c] - p_c| without a one-hot: flip the labelled column of each pixel
    col = col.unsqueeze(1)
    p_lab = keys.gather(1, col)
    flipped = 1.0 - p_lab
    keys.scatter_(1, col, flipped if listed is None else torch.where(listed.unsqueeze(1), flipped, p_lab))
    if not from_logits:
        keys.abs_()
    if valid is not None:
        keys = torch.where(valid.unsqueeze(1), keys, float("-inf"))  # ignored pixels sort last
    if per_image:
        g, p = N, S
        rows = keys.view(N * K, S)
    else:
        g, p = 1, N * S
        rows = keys.transpose(0, 1).reshape(K, N * S)
    err, perm = torch.sort(rows, dim=1, descending=True, stable=True)
    # the label of each sorted element, gathered through the permutation (narrow labels,
    # ignored ones as -1), compared with its row's class
    small = torch.int16 if C < 2**15 else torch.int32
    lab_w = lab.to(small) if valid is None else torch.where(valid, lab, -1).to(small)
    if per_image:
        lab_s = lab_w.gather(1, perm.view(N, K * S)).view(g, K, p)
    else:
        lab_s = lab_w.reshape(1, p).expand(K, p).gather(1, perm).view(g, K, p)
    cd = _count_dtype(acc, p)
    fg = torch.eq(lab_s, cls.to(small).view(1, K, 1), out=torch.empty((g, K, p), dtype=cd, device=x.device))
    if valid is None:
        bg = torch.rsub(fg, 1.0)
    else:
        bg = torch.ge(lab_s, 0, out=torch.empty((g, K, p), dtype=cd, device=x.device)).sub_(fg)
    loss, d, gts = _walk(err, fg.view(g * K, p), bg.view(g * K, p))
    return loss.view(g, K), gts.to(torch.int32).view(g, K), d, perm


def lovasz_hinge_backward(grad, d, perm, x):
    """Same contract as ``kernels.lovasz.lovasz_hinge_backward``."""
    N, _, S = x.shape
    vals = d * grad.to(d.dtype).view(-1, 1)
    dx = torch.empty_like(vals).scatter_(1, perm, vals)
    return dx.view(N, 1, S).to(x.dtype)


def lovasz_softmax_backward(grad, d, perm, x, classes, from_logits):
    """Same contract as ``kernels.lovasz.lovasz_softmax_backward``."""
    N, C, S = x.shape
    seg, p = d.shape
    vals = d * grad.to(d.dtype).reshape(seg, 1)
    K = C if classes is None else len(classes)
    gk = torch.empty_like(vals).scatter_(1, perm, vals)
    # rows are (n, k) per image, or (k,) over the batch (the same memory when N == 1)
    gk = gk.view(N, K, S) if p == S else gk.view(K, N, S).transpose(0, 1).contiguous()
    if classes is None:
        gp = gk
    else:
        gp = d.new_zeros((N, C, S))
        gp.index_copy_(1, torch.tensor(classes, dtype=torch.long, device=x.device), gk)
    if not from_logits:
        return gp.to(x.dtype)
    prob = _softmax(x.to(d.dtype))
    # the softmax Jacobian, p * (dL/dp - sum_c p_c dL/dp_c), as torch's fused kernel computes it
    return torch._softmax_backward_data(gp, prob, 1, prob.dtype).to(x.dtype)
