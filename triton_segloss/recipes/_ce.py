"""Seed recipes of the cross-entropy family, the metrics and NCut (seeds 001, 003, 004)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._validate import acc_dtype
from .. import metrics
from ..functional import cross_entropy
from ..functional import ncut_loss as _ncut_loss

__all__ = ["cross_entropy2d", "balanced_bce_loss", "label_accuracy_score", "iou_binary", "iou", "ncut_loss"]


def cross_entropy2d(input: Tensor, target: Tensor, weight=None, size_average: bool = True) -> Tensor:
    """Seed 001's ``cross_entropy2d``: softmax cross entropy over the pixels whose label is
    ``>= 0`` (every negative label is ignored), summed with the class ``weight``, and divided
    by the number of those pixels when ``size_average`` -- a pixel count, not torch's sum of
    weights.

    Differs from the seed where the seed fails: when every label is negative the seed
    returns NaN (0 / 0); this returns 0.
    """
    if target.dtype != torch.uint8:  # uint8 has no negative labels
        target = target.clamp_min(-1)
    loss = cross_entropy(input, target, weight=weight, ignore_index=-1, reduction="sum")
    if size_average:
        loss = loss / (target >= 0).sum().clamp_min(1)
    return loss


def balanced_bce_loss(output: Tensor, target: Tensor) -> Tensor:
    """Seed 003's ``BalancedBCELoss(target)(output, target)``: class weights
    ``1 / (#{target == k} + 1e-6)`` for k = 0, 1, then torch's weighted mean cross entropy
    over the two classes of ``output`` ``(B, 2, H, W)``. The counts stay on the device.
    """
    if output.dim() < 2 or output.shape[1] != 2:
        raise ValueError(
            f"balanced_bce_loss takes two-class logits (B, 2, *spatial), like the seed's two weights; "
            f"got output of shape {tuple(output.shape)}"
        )
    acc = acc_dtype(output.dtype)
    counts = torch.stack([(target == 0).sum(), (target == 1).sum()]).to(acc)
    return cross_entropy(output, target, weight=1.0 / (counts + 1e-6))


def _labels(x) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
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
        cm = metrics.confusion_matrix(p, t, n_class)
        hist = cm if hist is None else hist + cm
    if hist is None:
        hist = torch.zeros((n_class, n_class), dtype=torch.int64)
    s = metrics.scores(hist)
    return tuple(np.float64(s[k].item()) for k in ("pixel_acc", "mean_acc", "miou", "fwiou"))


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
    cm = metrics.confusion_matrix(pred, label, C + 1, ignore_index=ignore).double()
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
        cm = metrics.confusion_matrix((pred == 1).to(torch.int64), lab, 2).double()
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
    return 100 * np.array([_berman_mean(v) for v in zip(*ious)])


def ncut_loss(labels: Tensor, inputs: Tensor, radius: int = 5, sigma_1: float = 4, sigma_2: float = 10) -> Tensor:
    """Seed 003's ``NCutLoss2D(radius, sigma_1, sigma_2).forward(labels, inputs)``: the soft
    normalized cut of class probabilities ``labels`` (B, K, H, W) over raw images ``inputs``
    (B, Cin, H, W), in the seed's running form (class-mean pixel weights; the seed builds
    its spatial kernel but does not use it, so ``radius`` and ``sigma_1`` have no effect).
    """
    return _ncut_loss(labels, inputs, radius=radius, sigma_spatial=sigma_1, sigma_value=sigma_2)
