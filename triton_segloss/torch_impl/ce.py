"""PyTorch path of the fused softmax cross entropy; mirrors ``kernels/ce.py``."""

from __future__ import annotations

import torch

from triton_segloss._core.validate import acc_dtype


def _prep(x, t, w, ignore_index):
    """(acc dtype, logits in acc, labels clamped into [0, C) for gathers, valid mask, w_y)."""
    acc = acc_dtype(x.dtype)
    C = x.shape[1]
    y = t.to(torch.int64)  # (N, 1, S)
    valid = (y >= 0) & (y < C)
    if ignore_index is not None:
        valid &= y != ignore_index
    y = torch.where(valid, y, 0)
    wy = None if w is None else w.to(acc)[y]
    return acc, x.to(acc), y, valid, wy


def ce_forward(x, t, w, pw, ignore_index, label_smoothing, store_loss):
    """Same contract as ``kernels.ce.ce_forward``; the partials come back as one (1, 2) row."""
    acc, x, y, valid, wy = _prep(x, t, w, ignore_index)
    logp = torch.log_softmax(x, dim=1)
    nll = -logp.gather(1, y)  # (N, 1, S)
    loss = (1.0 - label_smoothing) * nll if wy is None else (1.0 - label_smoothing) * wy * nll
    wt = torch.ones_like(nll) if wy is None else wy
    if label_smoothing > 0:
        smooth = -logp.sum(1, keepdim=True) if w is None else -(logp * w.to(acc).view(1, -1, 1)).sum(1, keepdim=True)
        loss = loss + (label_smoothing / x.shape[1]) * smooth
    if pw is not None:
        m = pw.to(acc)
        loss = loss * m
        wt = wt * m
    loss = torch.where(valid, loss, 0.0)
    wt = torch.where(valid, wt, 0.0)
    part = torch.stack([loss.sum(), wt.sum()]).unsqueeze(0)
    return (loss[:, 0] if store_loss else None), part


def ce_backward(x, t, w, pw, g_map, coef, ignore_index, label_smoothing):
    """Same contract as ``kernels.ce.ce_backward``."""
    dtype = x.dtype
    C = x.shape[1]
    acc, x, y, valid, wy = _prep(x, t, w, ignore_index)
    p = torch.softmax(x, dim=1)
    # p - [c == y] without a one-hot tensor; at c == y it is -sum_{c != y} p_c (1 - p_y would cancel)
    one_minus_py = p.scatter(1, y, 0.0).sum(1, keepdim=True)
    onehot_grad = p.scatter(1, y, -one_minus_py)
    a = (1.0 - label_smoothing) if wy is None else (1.0 - label_smoothing) * wy
    g = a * onehot_grad
    if label_smoothing > 0:
        wc = torch.ones(C, dtype=acc, device=x.device) if w is None else w.to(acc)
        g = g + (label_smoothing / C) * (wc.sum() * p - wc.view(1, -1, 1))
    scale = coef.to(acc).reshape(())
    if pw is not None:
        scale = scale * pw.to(acc)
    if g_map is not None:
        scale = scale * g_map.to(acc)
    dx = torch.where(valid, g * scale, 0.0)
    return dx.to(dtype)
