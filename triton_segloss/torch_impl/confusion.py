"""PyTorch path of the confusion-matrix / label-count histogram; mirrors ``kernels/confusion.py``."""

from __future__ import annotations

import torch


def confusion_partials(x, t, num_classes, mode, ignore_index):
    """Same contract as ``kernels.confusion.confusion_partials``; one (1, n_bins) int64 row.

    The argmax is ``max(dim=1).indices``: the same first-maximum and NaN rules as
    ``torch.argmax``, and 3-4x faster on CPU. Bins are int32 when they fit. On CPU
    ``torch.bincount`` does the histogram; on other devices ``index_add_``
    (``bincount`` there reads its input's maximum back to the host).
    """
    C = int(num_classes)
    n_bins = C if mode == 2 else C * C
    idx = torch.int32 if n_bins < 2**31 - 1 else torch.int64
    t = t.reshape(-1)
    valid = (t >= 0) & (t < C)
    if ignore_index is not None:
        valid &= t != ignore_index
    t = t.to(idx)
    if mode == 0:
        b = t * C + x.max(dim=1).indices.reshape(-1).to(idx)
    elif mode == 1:
        pred = x.reshape(-1)
        valid &= (pred >= 0) & (pred < C)
        b = t * C + pred.to(idx)
    else:
        b = t
    if t.device.type == "cpu":
        counts = torch.bincount(torch.where(valid, b, n_bins), minlength=n_bins + 1)[:n_bins]
    else:
        counts = torch.zeros(n_bins, dtype=torch.int64, device=t.device)
        counts.index_add_(0, torch.where(valid, b, 0).to(torch.int64), valid.to(torch.int64))
    return counts.unsqueeze(0)
