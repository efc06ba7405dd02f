"""PyTorch path of the fused BCE family; mirrors ``kernels/bce.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _prep(x, t, w, pw, pos_weight_value, ignore_index, label_smoothing):
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(acc)
    t = t.to(acc)
    valid = None if ignore_index is None else t != ignore_index
    ts = t * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else t
    pw = pos_weight_value if pw is None else pw.to(acc)
    w = None if w is None else w.to(acc)
    return acc, x, t, valid, ts, pw, w


def bce_forward(x, t, w, pw, pos_weight_value, ignore_index, label_smoothing, balance, store_loss):
    """Same contract as ``kernels.bce.bce_forward``; the partials come back as one (1, 4) row."""
    acc, x, t, valid, ts, pw, w = _prep(x, t, w, pw, pos_weight_value, ignore_index, label_smoothing)
    sp = F.softplus(x)
    loss = (1.0 - ts) * sp + pw * ts * (sp - x)
    if w is not None:
        loss = loss * w
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    if balance:
        pos = t > 0.5
        neg = t < 0.5
        if valid is not None:
            pos &= valid
            neg &= valid
        part = torch.stack([
            torch.where(pos, loss, 0.0).sum(), torch.where(neg, loss, 0.0).sum(),
            pos.sum().to(acc), neg.sum().to(acc),
        ])
    else:
        n_valid = valid.sum().to(acc) if valid is not None else torch.tensor(float(t.numel()), dtype=acc, device=t.device)
        zero = loss.new_zeros(())
        part = torch.stack([loss.sum(), zero, n_valid, zero])
    return (loss if store_loss else None), part.unsqueeze(0)


def bce_backward(x, t, w, pw, g_map, coef, pos_weight_value, ignore_index, label_smoothing, balance):
    """Same contract as ``kernels.bce.bce_backward``."""
    dtype = x.dtype
    acc, x, t, valid, ts, pw, w = _prep(x, t, w, pw, pos_weight_value, ignore_index, label_smoothing)
    sig = torch.sigmoid(x)
    dx = (1.0 - ts) * sig - pw * ts * (1.0 - sig)
    if w is not None:
        dx = dx * w
    if balance:
        scale = torch.where(t > 0.5, coef[0], torch.where(t < 0.5, coef[1], 0.0))
    else:
        scale = coef[0]
    if g_map is not None:
        scale = scale * g_map.to(acc)
    dx = dx * scale
    if valid is not None:
        dx = torch.where(valid, dx, 0.0)
    return dx.to(dtype)
