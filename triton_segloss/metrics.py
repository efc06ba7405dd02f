"""Segmentation metrics (``triton_segloss.metrics``): the confusion-matrix family's public
functions, re-exported from :mod:`triton_segloss.confusion`.

``confusion_matrix`` (a fused argmax + histogram), ``scores`` (pixel accuracy, IoU,
Dice, ... of a matrix) and ``ConfusionMatrix`` (a streaming accumulator that sums
counts across ``torch.distributed`` ranks), ``ConfusionMatrixMetric`` (the same as a
``torchmetrics.Metric``, when torchmetrics is installed), and the surface metrics of
:mod:`triton_segloss.surface` (Hausdorff distance, average surface distance, surface Dice).
"""

from .confusion import ConfusionMatrix, confusion_matrix, scores
from .surface import hausdorff_distance, surface_dice, surface_distance

__all__ = ["confusion_matrix", "scores", "ConfusionMatrix", "ConfusionMatrixMetric",
           "hausdorff_distance", "surface_distance", "surface_dice"]


def __getattr__(name):
    # a torchmetrics.Metric, defined on first use so that importing the package needs no torchmetrics
    if name == "ConfusionMatrixMetric":
        from .confusion.metric import ConfusionMatrixMetric
        return ConfusionMatrixMetric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
