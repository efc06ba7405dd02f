"""PyTorch path of the confusion-matrix family: the same function and contract as ``kernels.py``.

The argmax is ``max(dim=1).indices``: the same first-maximum and NaN rules as
``torch.argmax``, and 3-4x faster on CPU. Bins are int32 when they fit. On CPU
``torch.bincount`` does the histogram; on other devices ``index_add_``
(``bincount`` there reads its input's maximum back to the host).
"""

from __future__ import annotations

import torch


def forward(x, t, o):
    """Same contract as ``kernels.forward``."""
    C = int(o.num_classes)
    n_bins = C * C
    idx = torch.int32 if n_bins < 2**31 - 1 else torch.int64
    t = t.reshape(-1)
    valid = (t >= 0) & (t < C)
    if o.ignore_index is not None:
        valid &= t != o.ignore_index
    if x.is_floating_point():
        pred = x.max(dim=1).indices.reshape(-1)
    else:
        pred = x.reshape(-1)
        valid &= (pred >= 0) & (pred < C)
    b = t.to(idx) * C + pred.to(idx)
    if t.device.type == "cpu":
        counts = torch.bincount(torch.where(valid, b, n_bins), minlength=n_bins + 1)[:n_bins]
    else:
        counts = torch.zeros(n_bins, dtype=torch.int64, device=t.device)
        counts.index_add_(0, torch.where(valid, b, 0).to(torch.int64), valid.to(torch.int64))
    return counts.view(C, C)
