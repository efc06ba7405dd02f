"""PyTorch path of the cross-entropy family: the same functions and contract as ``kernels.py``.

``log_softmax`` once over the class dim, the label term by ``gather`` (no one-hot
tensor), the balanced class weights from a class histogram made with
``index_add_`` on the device (``bincount`` would read its input's maximum back to
the host on CUDA; on the CPU, where that read is free, it is used). On the CPU one
``aminmax`` of the labels tells whether every pixel is valid; then no mask is formed
and nothing is masked. The backward is one ``softmax`` whose output becomes the
gradient in place: the label slot is zeroed, the class sum of what is left is
``1 - p_y`` without cancellation, one broadcast multiply by the per-pixel scale
and a scatter of ``-(1 - p_y)`` times that scale into the label slot; every other
op works on per-pixel (N, 1, S) maps, a C-th of the logits' size.
"""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype


def _labels(x, t, o):
    """(labels for gathers, in [0, C); valid mask, or None when every pixel is valid), (N, 1, S).

    On the CPU one ``aminmax`` (reading it costs no device sync there) tells whether every label
    lies in [0, C) with ``ignore_index`` outside the labels' range; then no mask is formed and
    the ops below skip their masking."""
    C = x.shape[1]
    y = t.to(torch.int64)
    ii = o.ignore_index
    if y.device.type == "cpu" and y.numel():
        lo, hi = (int(v) for v in torch.aminmax(y))
        if 0 <= lo and hi < C and (ii is None or not lo <= ii <= hi):
            return y, None
    yc = y.clamp(0, C - 1)
    valid = yc == y  # in [0, C)
    if ii is not None:
        valid &= y != ii
    return yc, valid


def _balanced(w, y, valid, C, acc):
    """w'_c / N_c with N_c the valid pixels labelled c, and 0 for a class absent from the batch."""
    if valid is None:  # CPU only (see _labels): bincount reads its maximum on the host
        counts = torch.bincount(y.reshape(-1), minlength=C).to(acc)
    else:
        counts = torch.zeros(C, dtype=acc, device=y.device).index_add_(0, y.reshape(-1), valid.reshape(-1).to(acc))
    w = torch.ones(C, dtype=acc, device=y.device) if w is None else w.to(acc)
    return torch.where(counts > 0, w / counts.clamp_min(1), 0.0)


def _number(v):
    """A 0-d tensor as a Python number on the CPU (free there; elsewhere it stays a tensor, no sync)."""
    return float(v) if isinstance(v, torch.Tensor) and v.dim() == 0 and v.device.type == "cpu" else v


def _class_sum(p, wc):
    """sum_c w_c p_c over the class dim, (N, 1, S) (w_c = 1 when ``wc`` is None)."""
    if wc is None:
        return p.sum(1, keepdim=True)
    return torch.einsum("ncs,c->ns", p, wc).unsqueeze(1)


def _mean(sl, swt, acc, device):
    """(loss, scale): sum / total weight and 1 / total weight, both 0 when the total weight is 0."""
    nz = swt != 0
    den = torch.where(nz, swt, 1.0)
    return torch.where(nz, sl / den, 0.0), torch.where(nz, 1.0 / den, 0.0)


def forward(x, t, w, pw, o):
    """Same contract as ``kernels.forward``."""
    acc = acc_dtype(x.dtype)
    C = x.shape[1]
    eps = o.label_smoothing
    y, valid = _labels(x, t, o)
    wc = None if w is None else w.to(acc)
    if o.balance:
        wc = _balanced(w, y, valid, C, acc)
    extra = [] if wc is None or not o.balance else [wc]
    logp = torch.log_softmax(x, dim=1, dtype=None if x.dtype == acc else acc)  # fp16/bf16 widened in the kernel
    nll = logp.gather(1, y).neg_()  # (N, 1, S)
    wy = None if wc is None else wc[y]
    loss = nll if wy is None else nll.mul_(wy)
    if eps > 0:
        loss = loss.mul_(1.0 - eps).sub_(_class_sum(logp, wc), alpha=eps / C)
    del logp
    wt = wy
    if pw is not None:
        m = pw.to(acc)
        loss = loss * m
        wt = m.expand_as(loss) if wt is None else wt * m
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    if o.reduction == "none":
        coef = torch.cat([torch.ones(1, dtype=acc, device=x.device)] + extra) if o.balance else loss.new_empty((0,))
        return loss[:, 0], coef
    sl = loss.sum()
    if o.reduction == "mean":
        if wt is None:
            swt = valid.sum(dtype=acc) if valid is not None else torch.full((), float(loss.numel()), dtype=acc,
                                                                             device=x.device)
        else:
            swt = (wt if valid is None else torch.where(valid, wt, 0.0)).sum()
        total, scale = _mean(sl, swt, acc, x.device)
    else:
        total, scale = sl, torch.ones((), dtype=acc, device=x.device)
    return total, torch.cat([scale.reshape(1)] + extra)


def backward(g, coef, x, t, w, pw, o):
    """Same contract as ``kernels.backward``:
    dl/dx_c = m [(1 - eps) w_y (p_c - [c == y]) + eps / C (W p_c - w_c)]."""
    acc = acc_dtype(x.dtype)
    C = x.shape[1]
    eps = o.label_smoothing
    y, valid = _labels(x, t, o)
    wc = coef[1:] if o.balance else (None if w is None else w.to(acc))
    # per pixel (N, 1, S): s = m * upstream * the finisher's scale, 0 where not valid
    s = g.to(acc).unsqueeze(1) if o.reduction == "none" else coef[0] * g.to(acc)
    if pw is not None:
        s = s * pw.to(acc)
    if valid is not None:
        s = torch.where(valid, s, 0.0)
    a = s if wc is None else s * wc[y]  # the factor of p_c - [c == y]
    if eps > 0:
        a = a * (1.0 - eps)
    a = _number(a)
    p = torch.softmax(x, dim=1, dtype=None if x.dtype == acc else acc)  # becomes the gradient in place
    py = p.gather(1, y) if eps > 0 else None
    p.scatter_(1, y, 0.0)
    q = p.sum(1, keepdim=True)  # 1 - p_y as the sum of the other classes: no cancellation where p_y ~ 1
    if eps > 0:
        b = s * (eps / C)  # eps / C (W p_c - w_c) per unit m g
        wv = torch.ones(C, dtype=acc, device=x.device) if wc is None else wc
        wsum = wv.sum()
        p.mul_(a + b * wsum).addcmul_(b, wv.view(1, -1, 1), value=-1.0)
        at_y = b * (wsum * py - wv[y]) - a * q
    else:
        p.mul_(a)
        at_y = q.mul_(-a)
    p.scatter_(1, y, at_y)
    if valid is not None:
        p.masked_fill_(~valid, 0.0)  # 0, not 0 * p, where not valid (a NaN logit there stays out)
    if p.dtype == x.dtype and p.stride() == x.stride():
        return p
    out = torch.empty_like(x)  # the logits' layout, as the kernels and the fake promise
    return out.copy_(p)
