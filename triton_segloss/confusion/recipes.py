"""Recipes of the confusion-matrix family: seed 001's ``label_accuracy_score``, Berman's ``iou_binary``
and ``iou`` (seed 004)."""

from __future__ import annotations

import torch
from torch import Tensor

from .api import confusion_matrix, scores

__all__ = ["label_accuracy_score", "iou_binary", "iou"]


def _labels(x) -> Tensor:
    if not isinstance(x, Tensor):
        import numpy as np  # the seed's label maps are numpy arrays (numpy is not a dependency)

        x = np.asarray(x)
    t = torch.as_tensor(x)
    return t if t.dtype in (torch.int64, torch.int32, torch.uint8) else t.to(torch.int64)


def label_accuracy_score(label_trues, label_preds, n_class):
    """Seed 001's ``label_accuracy_score``: ``(acc, acc_cls, mean_iu, fwavacc)`` as numpy
    floats, from the confusion matrix summed over the (true, pred) label-map pairs.

    Pixels whose true label is outside ``[0, n_class)`` are skipped, as in the seed;
    predicted labels outside it are skipped too (the seed's bincount would count them in
    another cell or fail).
    """
    hist = None
    for lt, lp in zip(label_trues, label_preds):
        t, p = _labels(lt).reshape(1, -1), _labels(lp).reshape(1, -1)
        cm = confusion_matrix(p, t, n_class)
        hist = cm if hist is None else hist + cm
    if hist is None:
        hist = torch.zeros((n_class, n_class), dtype=torch.int64)
    s = scores(hist)
    try:
        from numpy import float64  # the seed returns numpy floats
    except ImportError:  # numpy is not a dependency: plain floats then
        float64 = float
    return tuple(float64(s[k].item()) for k in ("pixel_acc", "mean_acc", "miou", "fwiou"))


def _berman_mean(values, empty=0):
    values = list(values)
    return sum(values) / len(values) if values else empty


def _per_image_ious(pred: Tensor, label: Tensor, C: int, ignore, EMPTY: float) -> list:
    """Berman's per-class IoU of one image through the confusion matrix.

    Berman: union_i = #(label == i) + #(pred == i and label != ignore) - intersection_i,
    counting labels and predictions outside [0, C) too. They go to an extra class C
    (the matrix is (C + 1, C + 1)); pixels labelled ``ignore`` are skipped.
    """
    label = label.reshape(1, -1).to(torch.int64)
    pred = pred.reshape(1, -1).to(torch.int64)
    outside_l = (label < 0) | (label >= C)
    if ignore is not None:
        outside_l &= label != ignore
    label = torch.where(outside_l, C, label)
    pred = torch.where((pred < 0) | (pred >= C), C, pred)
    cm = confusion_matrix(pred, label, C + 1, ignore_index=ignore).double()
    inter = cm.diagonal()[:C]
    union = cm.sum(1)[:C] + cm.sum(0)[:C] - inter
    ious = torch.where(union > 0, inter / union.clamp_min(1), EMPTY).tolist()
    return [v for i, v in enumerate(ious) if i != ignore]


def iou_binary(preds, labels, EMPTY=1.0, ignore=None, per_image=True):
    """Berman's ``iou_binary`` (seed 004): foreground (label 1) IoU in percent, averaged over
    images when ``per_image``; ``EMPTY`` for an image with an empty union."""
    if not per_image:
        preds, labels = (preds,), (labels,)
    ious = []
    for pred, label in zip(preds, labels):
        pred, label = _labels(pred), _labels(label)
        # IoU of class 1 with everything else as class 0 (ignore == 1 ignores nothing in Berman's code)
        ign = None if ignore == 1 else ignore
        lab = torch.where(label == 1, 1, 0)
        if ign is not None:
            lab = torch.where(label == ign, -1, lab)
        cm = confusion_matrix((pred == 1).to(torch.int64), lab, 2).double()
        inter = cm[1, 1]
        union = cm[1].sum() + cm[0, 1]
        ious.append(EMPTY if union.item() == 0 else (inter / union).item())
    return 100 * _berman_mean(ious)


def iou(preds, labels, C, EMPTY=1.0, ignore=None, per_image=False):
    """Berman's ``iou`` (seed 004): per-class IoU in percent (classes other than ``ignore``),
    averaged over images when ``per_image``; ``EMPTY`` for a class with an empty union."""
    if not per_image:
        preds, labels = (preds,), (labels,)
    ignore = None if ignore is None else int(ignore)
    ious = [_per_image_ious(_labels(p), _labels(lab), C, ignore, EMPTY) for p, lab in zip(preds, labels)]
    import numpy as np  # Berman's iou returns a numpy array (numpy is not a dependency of the package)

    return 100 * np.array([_berman_mean(v) for v in zip(*ious)])
