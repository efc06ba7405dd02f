"""PyTorch path of the Lovász family: the same functions and contract as ``kernels.py``.

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

from triton_segloss._core.cache import device_values
from triton_segloss._core.validate import acc_dtype


def _count_dtype(acc: torch.dtype, p: int) -> torch.dtype:
    """Float dtype of the walk's running counts: exact integers up to 2^24 in float32."""
    return torch.float64 if acc == torch.float64 or p > 2**24 else torch.float32


def _walk(err: Tensor, fg: Tensor, bg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Value per row, d (see kernels.py) in sorted order and the foreground count per row, from
    the sorted errors (SEG, P) and the sorted foreground / valid-background flags as 0/1 floats
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
    value = torch.linalg.vecdot(err.clamp_min(0.0), lg, dim=1)
    d = w.mul_(err > 0).to(err.dtype)  # g [e > 0] (-1 on foreground, +1 on background)
    return value, d, gts.view(-1)


def _unsort(d: Tensor, perm: Tensor) -> Tensor:
    """d at each element's own position within its segment."""
    return torch.empty_like(d).scatter_(1, perm, d)


def _finish(v: Tensor, gts: Tensor, mult, pos, kl: int, present: bool, reduction: str, none_shape, cw=None):
    """(loss, coef): the finisher of ``kernels._lovasz_finish`` on the (G, K) segment values;
    ``cw``: the (K,) class weight of each column or None."""
    g = v.shape[0]
    w = (gts.view(v.shape) > 0).to(v.dtype) if present else torch.ones_like(v)
    if cw is not None:
        w = w * cw.to(v.dtype)
    if reduction == "none":
        vals = v * w
        return (vals if pos is None else vals[:, pos]).reshape(none_shape), w.reshape(-1)
    c = w if mult is None else w * mult.to(v.dtype)
    if reduction == "mean":
        if present or cw is not None:
            denom = c.sum(1, keepdim=True)
            denom = torch.where(denom > 0, denom, torch.ones_like(denom))
        else:
            denom = float(kl)
        c = c / denom / g
    return (v * c).sum(), c.reshape(-1)


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


def _columns(o, c: int, device):
    """(K, KL, cls (K,) or None, mult (K,) or None, pos (KL,) or None) of the class option."""
    if o.classes is None:
        return c, c, None, None, None
    classes = [int(k) for k in o.classes]
    uniq = sorted(set(classes))
    col = {k: i for i, k in enumerate(uniq)}
    cls = torch.tensor(uniq, dtype=torch.long, device=device)
    mult = torch.tensor([classes.count(k) for k in uniq], dtype=torch.long, device=device)
    pos = torch.tensor([col[k] for k in classes], dtype=torch.long, device=device)
    return len(uniq), len(classes), cls, mult, pos


def hinge_forward(x, t, o):
    """Same contract as ``kernels.hinge_forward``."""
    N, _, S = x.shape
    acc = acc_dtype(x.dtype)
    xs = x.reshape(N, S).to(acc)
    tf = t.reshape(N, S).to(acc)
    fg = tf > 0.5
    keep = None
    if o.ignore_index is not None:
        keep = tf != o.ignore_index
        fg &= keep
    fgf = fg.to(acc)
    margin_neg, margin_pos = (1.0, 1.0) if o.margin is None else o.margin
    # e = m - x (2 f - 1), m = margin_neg + (margin_pos - margin_neg) f
    e = torch.rsub(fgf, 1.0, alpha=2.0).mul_(xs).add_(fgf, alpha=margin_pos - margin_neg).add_(margin_neg)
    if keep is not None:
        e = torch.where(keep, e, float("-inf"))  # ignored pixels sort last
    g, p = (N, S) if o.per_image else (1, N * S)
    err, perm = torch.sort(e.view(g, p), dim=1, descending=True, stable=True)
    cd = _count_dtype(acc, p)
    if keep is None:
        fg_s = fgf.to(cd).view(g, p).gather(1, perm)
        bg_s = torch.rsub(fg_s, 1.0)
    else:
        code = fg.to(torch.int8).add_(keep.to(torch.int8))  # 2 foreground, 1 background, 0 ignored
        fg_s, bg_s = _flags(code.view(g, p).gather(1, perm), cd)
    value, d, gts = _walk(err, fg_s, bg_s)
    loss, coef = _finish(value.view(g, 1), gts, None, None, 1, False, o.reduction, (N,) if o.per_image else ())
    return loss, coef, _unsort(d, perm)


def softmax_forward(x, t, o):
    """Same contract as ``kernels.softmax_forward``."""
    N, C, S = x.shape
    acc = acc_dtype(x.dtype)
    xa = x.to(acc)
    prob = _softmax(xa) if o.from_logits else xa
    lab = t.reshape(N, S)
    valid = None if o.ignore_index is None else lab != o.ignore_index
    lab_c = lab.long().clamp(0, C - 1)
    K, KL, cls, mult, pos = _columns(o, C, x.device)
    if cls is None:
        cls = torch.arange(C, device=x.device)
        keys = prob.clone(memory_format=torch.contiguous_format) if prob is x else prob.contiguous()
        col = lab_c
        listed = valid
    else:
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
    if not o.from_logits:
        keys.abs_()
    if valid is not None:
        keys = torch.where(valid.unsqueeze(1), keys, float("-inf"))  # ignored pixels sort last
    if o.per_image:
        g, p = N, S
        rows = keys.view(N * K, S)
    else:
        g, p = 1, N * S
        rows = keys.transpose(0, 1).reshape(K, N * S)
    err, perm = torch.sort(rows, dim=1, descending=True, stable=True)
    # the label of each sorted element, gathered through the permutation (narrow labels,
    # ignored ones as -1), compared with its row's class
    small = torch.int16 if C < 2**15 else torch.int32
    # a label outside [0, C) (value checks off) counts as neither class, like an ignored pixel
    known = (lab >= 0) & (lab < C)
    lab_w = torch.where(known if valid is None else known & valid, lab, -1).to(small)
    if o.per_image:
        lab_s = lab_w.gather(1, perm.view(N, K * S)).view(g, K, p)
    else:
        lab_s = lab_w.reshape(1, p).expand(K, p).gather(1, perm).view(g, K, p)
    cd = _count_dtype(acc, p)
    fg = torch.eq(lab_s, cls.to(small).view(1, K, 1), out=torch.empty((g, K, p), dtype=cd, device=x.device))
    bg = torch.ge(lab_s, 0, out=torch.empty((g, K, p), dtype=cd, device=x.device)).sub_(fg)
    value, d, gts = _walk(err, fg.view(g * K, p), bg.view(g * K, p))
    present = o.classes is None and o.only_present
    cw = None
    if o.class_weight is not None:
        cw = device_values(tuple(o.class_weight), x.device, acc)
        cw = cw if o.classes is None else cw[cls]
    loss, coef = _finish(value.view(g, K), gts, mult, pos, KL, present, o.reduction,
                         (N, KL) if o.per_image else (KL,), cw)
    return loss, coef, _unsort(d, perm)


def _upstream(g: Tensor, coef: Tensor, o, rows: int, k: int, pos) -> Tensor:
    """(rows, K): coef times the upstream gradient of each segment."""
    c = coef.view(rows, k)
    if o.reduction != "none":
        return c * g.to(c.dtype)
    gl = g.to(c.dtype).reshape(rows, -1)
    if pos is not None:  # a listed class collects the gradient of each of its entries
        gl = torch.zeros_like(c).index_add_(1, pos, gl)
    return c * gl


def hinge_backward(g, coef, d, x, t, o):
    """Same contract as ``kernels.hinge_backward``."""
    rows = d.shape[0]
    dx = d * _upstream(g, coef, o, rows, 1, None)
    return torch.empty_like(x).copy_(dx.view(x.shape))


def softmax_backward(g, coef, d, x, t, o):
    """Same contract as ``kernels.softmax_backward``."""
    N, C, S = x.shape
    K, _, cls, _, pos = _columns(o, C, x.device)
    rows = N if o.per_image else 1
    gk = d.view(rows, K, -1) * _upstream(g, coef, o, rows, K, pos).unsqueeze(2)
    # rows are (n, k) per image, or (k,) over the batch
    gk = gk.view(N, K, S) if o.per_image else gk.view(K, N, S).transpose(0, 1)
    if cls is None:
        gp = gk
    else:
        gp = d.new_zeros((N, C, S))
        gp.index_copy_(1, cls, gk)
    if o.from_logits:
        prob = _softmax(x.to(d.dtype))
        # the softmax Jacobian, p * (dL/dp - sum_c p_c dL/dp_c), as torch's fused kernel computes it
        gp = torch._softmax_backward_data(gp.contiguous(), prob, 1, prob.dtype)
    return torch.empty_like(x).copy_(gp)
