"""PyTorch path of the cross-entropy family: the same functions and contract as ``kernels.py``.

``log_softmax`` once over the class dim, the label term by ``gather`` (no one-hot
tensor), the balanced class weights from a class histogram made with
``index_add_`` on the device (``bincount`` would read its input's maximum back to
the host on CUDA).
"""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype


def _labels(x, t, o):
    """(labels clamped into [0, C) for gathers, valid mask), both (N, 1, S)."""
    C = x.shape[1]
    y = t.to(torch.int64)
    valid = (y >= 0) & (y < C)
    if o.ignore_index is not None:
        valid &= y != o.ignore_index
    return torch.where(valid, y, 0), valid


def _balanced(w, y, valid, C, acc):
    """w'_c / N_c with N_c the valid pixels labelled c, and 0 for a class absent from the batch."""
    counts = torch.zeros(C, dtype=acc, device=y.device).index_add_(0, y.reshape(-1), valid.reshape(-1).to(acc))
    w = torch.ones(C, dtype=acc, device=y.device) if w is None else w.to(acc)
    return torch.where(counts > 0, w / counts.clamp_min(1), 0.0)


def forward(x, t, w, pw, o):
    """Same contract as ``kernels.forward``."""
    acc = acc_dtype(x.dtype)
    C = x.shape[1]
    eps = o.label_smoothing
    y, valid = _labels(x, t, o)
    wc = None if w is None else w.to(acc)
    if o.balance:
        wc = _balanced(w, y, valid, C, acc)
    logp = torch.log_softmax(x.to(acc), dim=1)
    nll = -logp.gather(1, y)  # (N, 1, S)
    wy = None if wc is None else wc[y]
    loss = (1.0 - eps) * nll if wy is None else (1.0 - eps) * wy * nll
    if eps > 0:
        smooth = -logp.sum(1, keepdim=True) if wc is None else -(logp * wc.view(1, -1, 1)).sum(1, keepdim=True)
        loss = loss + (eps / C) * smooth
    wt = torch.ones_like(nll) if wy is None else wy
    if pw is not None:
        m = pw.to(acc)
        loss = loss * m
        wt = wt * m
    loss = torch.where(valid, loss, 0.0)
    extra = [] if wc is None or not o.balance else [wc]
    if o.reduction == "none":
        coef = torch.cat([torch.ones(1, dtype=acc, device=x.device)] + extra) if o.balance else loss.new_empty((0,))
        return loss[:, 0], coef
    sl = loss.sum()
    if o.reduction == "mean":
        swt = torch.where(valid, wt, 0.0).sum()
        nz = swt != 0
        den = torch.where(nz, swt, 1.0)
        total, scale = torch.where(nz, sl / den, 0.0), torch.where(nz, 1.0 / den, 0.0)
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
    p = torch.softmax(x.to(acc), dim=1)
    # p - [c == y] without a one-hot tensor; at c == y it is -sum_{c != y} p_c (1 - p_y would cancel)
    one_minus_py = p.scatter(1, y, 0.0).sum(1, keepdim=True)
    grad = p.scatter(1, y, -one_minus_py)
    grad = grad * ((1.0 - eps) if wc is None else (1.0 - eps) * wc[y])
    if eps > 0:
        wv = torch.ones(C, dtype=acc, device=x.device) if wc is None else wc
        grad = grad + (eps / C) * (wv.sum() * p - wv.view(1, -1, 1))
    scale = g.to(acc).unsqueeze(1) if o.reduction == "none" else coef[0] * g.to(acc)
    if pw is not None:
        scale = scale * pw.to(acc)
    dx = torch.where(valid, grad * scale, 0.0)
    out = torch.empty_like(x)  # the logits' layout, as the kernels and the fake promise
    return out.copy_(dx)
