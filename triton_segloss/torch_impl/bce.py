"""PyTorch path of the fused BCE family; mirrors ``kernels/bce.py``.

The elementwise loss is torch's own fused ``binary_cross_entropy_with_logits``
(one vectorised pass, stable for any logit); ignore masks and per-pixel weights
go in as its ``weight``, a smoothed target as its target. The backward is the
hand-derived gradient with in-place ops, so it allocates one input-sized buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import acc_dtype


def _acc(x):
    return acc_dtype(x.dtype)


def _smoothed(t, acc, label_smoothing):
    t = t.to(acc)
    if label_smoothing:
        return t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return t


def bce_forward(x, t, w, pw, pos_weight_value, ignore_index, label_smoothing, balance, store_loss):
    """Same contract as ``kernels.bce.bce_forward``; the partials come back as one (1, 4) row."""
    acc = _acc(x)
    valid = None if ignore_index is None else t != ignore_index
    weight = None if w is None else w.to(acc)
    if valid is not None:
        weight = valid.to(acc) if weight is None else weight * valid
    if pw is None and pos_weight_value != 1.0:
        pw = torch.tensor(pos_weight_value, dtype=acc, device=x.device)
    ts = _smoothed(t, acc, label_smoothing)
    if valid is not None:
        ts = torch.where(valid, ts, 0.0)  # an ignore value (e.g. 255) must not reach the formula
    xa = x.to(acc)
    if store_loss or balance:
        loss = F.binary_cross_entropy_with_logits(xa, ts, weight=weight,
                                                  pos_weight=None if pw is None else pw.to(acc), reduction="none")
        if balance:
            tv = t.to(acc)
            pos = tv > 0.5
            neg = tv < 0.5
            if valid is not None:
                pos &= valid
                neg &= valid
            part = torch.stack([
                torch.where(pos, loss, 0.0).sum(), torch.where(neg, loss, 0.0).sum(),
                pos.sum().to(acc), neg.sum().to(acc),
            ])
        else:
            part = torch.stack([loss.sum(), loss.new_zeros(()), _count(valid, t, acc), loss.new_zeros(())])
        return (loss if store_loss else None), part.unsqueeze(0)
    total = F.binary_cross_entropy_with_logits(xa, ts, weight=weight,
                                               pos_weight=None if pw is None else pw.to(acc), reduction="sum")
    zero = total.new_zeros(())
    return None, torch.stack([total, zero, _count(valid, t, acc), zero]).unsqueeze(0)


def _count(valid, t, acc):
    if valid is None:
        return torch.full((), float(t.numel()), dtype=acc, device=t.device)
    return valid.sum().to(acc)


def bce_backward(x, t, w, pw, g_map, coef, pos_weight_value, ignore_index, label_smoothing, balance):
    """Same contract as ``kernels.bce.bce_backward``:
    dl/dx = w [(1 - s) sigma - pw s (1 - sigma)] = w [sigma - s] when pw == 1."""
    dtype = x.dtype
    acc = _acc(x)
    ts = _smoothed(t, acc, label_smoothing)
    dx = torch.sigmoid(x.to(acc))
    if pw is None and pos_weight_value == 1.0:
        dx.sub_(ts)
    else:
        p = pos_weight_value if pw is None else pw.to(acc)
        dx = dx * (1.0 - ts) - p * ts * (1.0 - dx)
    if w is not None:
        dx.mul_(w.to(acc))
    if balance:
        tv = t.to(acc)
        dx.mul_(torch.where(tv > 0.5, coef[0], torch.where(tv < 0.5, coef[1], 0.0)))
    else:
        dx.mul_(coef[0])
    if g_map is not None:
        dx.mul_(g_map.to(acc))
    if ignore_index is not None:
        dx.masked_fill_(t == ignore_index, 0.0)
    return dx.to(dtype)
