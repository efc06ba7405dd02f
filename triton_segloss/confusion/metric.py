"""``ConfusionMatrixMetric``: the fused confusion matrix as a ``torchmetrics.Metric``.

torchmetrics is optional: this module imports it only when ``ConfusionMatrixMetric`` is
first looked up (a module ``__getattr__``), so ``import triton_segloss`` never needs it, and
the lookup without torchmetrics raises an ImportError that names it. The plain
:class:`~triton_segloss.confusion.ConfusionMatrix` needs nothing beyond torch.

The metric state is one int64 ``(C, C)`` matrix added with
``add_state("confmat", ..., dist_reduce_fx="sum")``: torchmetrics sums it over the ranks
of a process group at ``compute()`` (DDP), and Lightning's ``self.log(name, metric)`` calls
``update``/``compute``/``reset`` at the right times.
"""

from __future__ import annotations

__all__ = ["ConfusionMatrixMetric"]

_SCORES = ("pixel_acc", "mean_acc", "iou", "miou", "fwiou", "dice")
_cls = None


def _define():
    try:
        import torchmetrics
    except ImportError as e:  # pragma: no cover - exercised by a test that hides torchmetrics
        raise ImportError(
            "triton_segloss ConfusionMatrixMetric needs torchmetrics (pip install torchmetrics); "
            "triton_segloss.metrics.ConfusionMatrix works without it"
        ) from e

    from typing import Any, Optional, Union

    import torch
    from torch import Tensor

    from .api import _check_ignore_index, _check_num_classes, confusion_matrix, scores

    class ConfusionMatrixMetric(torchmetrics.Metric):
        """Streaming confusion matrix as a ``torchmetrics.Metric``, around the fused
        :func:`~triton_segloss.metrics.confusion_matrix` (argmax + histogram in one kernel,
        no host sync).

        Args:
            num_classes: C.
            ignore_index: label whose pixels are not counted (None: none).
            score: what ``compute()`` returns: None (default) the int64 ``(C, C)`` matrix
                ``cm[true, pred]`` summed over every ``update`` (and over the ranks under DDP);
                or one key of :func:`~triton_segloss.metrics.scores` -- ``"pixel_acc"``,
                ``"mean_acc"``, ``"miou"``, ``"fwiou"`` (0-d, what Lightning's ``self.log``
                takes), ``"iou"`` or ``"dice"`` (per class) -- as float64.
            **kwargs: torchmetrics' ``Metric`` options (``process_group``,
                ``dist_sync_on_step``, ``sync_on_compute``, ...).

        ``update(logits_or_pred, target)``: logits ``(N, C, *spatial)`` (their argmax is the
        prediction) or integer predictions shaped like the integer ``target``. Labels outside
        ``[0, C)`` are skipped, as in ``confusion_matrix``. ``scores()``: the whole dict of
        :func:`scores` of the current matrix.
        """

        is_differentiable = False
        higher_is_better: Optional[bool] = None
        full_state_update = False
        confmat: Tensor

        def __init__(self, num_classes: int, ignore_index: Optional[int] = None, *,
                     score: Optional[str] = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.num_classes = _check_num_classes(num_classes)
            self.ignore_index = _check_ignore_index(ignore_index)
            if score is not None and score not in _SCORES:
                raise ValueError(f"score must be None (the matrix) or one of {_SCORES}, got {score!r}")
            self.score = score
            c = self.num_classes
            self.add_state("confmat", default=torch.zeros(c, c, dtype=torch.int64), dist_reduce_fx="sum")

        def update(self, logits_or_pred: Tensor, target: Tensor) -> None:
            cm = confusion_matrix(logits_or_pred, target, self.num_classes, ignore_index=self.ignore_index)
            self.confmat += cm.to(self.confmat.device)

        def compute(self) -> Union[Tensor, dict]:
            if self.score is None:
                return self.confmat.clone()
            return scores(self.confmat)[self.score]

        def scores(self) -> dict:
            """:func:`~triton_segloss.metrics.scores` of the current (synced) matrix."""
            with self.sync_context():  # the counts of every rank, as compute() sees them
                return scores(self.confmat.clone())

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, ignore_index={self.ignore_index}, score={self.score!r}"

    ConfusionMatrixMetric.__module__ = __name__
    ConfusionMatrixMetric.__qualname__ = "ConfusionMatrixMetric"
    return ConfusionMatrixMetric


def __getattr__(name: str):
    global _cls
    if name == "ConfusionMatrixMetric":
        if _cls is None:
            _cls = _define()
        return _cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
