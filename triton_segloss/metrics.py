"""Segmentation metrics (``triton_segloss.metrics``): the confusion-matrix family's public
functions, re-exported from :mod:`triton_segloss.confusion`.

``confusion_matrix`` (a fused argmax + histogram), ``scores`` (pixel accuracy, IoU,
Dice, ... of a matrix) and ``ConfusionMatrix`` (a streaming accumulator that sums
counts across ``torch.distributed`` ranks).
"""

from .confusion import ConfusionMatrix, confusion_matrix, scores

__all__ = ["confusion_matrix", "scores", "ConfusionMatrix"]
