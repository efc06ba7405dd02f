"""Custom op of the metrics: the fused argmax + histogram confusion matrix.

No autograd: the counts are integers. Imported by ``triton_segloss.metrics``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _dispatch


@torch.library.custom_op("triton_segloss::confusion_matrix", mutates_args=())
def confusion_matrix(
    x: Tensor,
    target: Tensor,
    num_classes: int,
    from_logits: bool,
    has_ignore: bool,
    ignore_index: int,
) -> Tensor:
    """int64 (C, C) counts, rows = true class, columns = predicted class.

    ``x``: logits (N, C, S) (``from_logits``) or predicted labels (N, 1, S); ``target``: (N, 1, S).
    """
    impl = _dispatch.impl("confusion", target.device)
    part = impl.confusion_partials(x, target, num_classes, 0 if from_logits else 1,
                                   ignore_index if has_ignore else None)
    return part.sum(0, dtype=torch.int64).view(num_classes, num_classes)


@confusion_matrix.register_fake
def _(x, target, num_classes, from_logits, has_ignore, ignore_index):
    return target.new_empty((num_classes, num_classes), dtype=torch.int64)
