"""Eager references for the metrics: seed 001's numpy histogram and scores, Berman's IoUs (seed 004)."""

import numpy as np


def fast_hist(label_true, label_pred, n_class):
    """Seed 001's _fast_hist: bincount of n * true + pred over pixels with 0 <= true < n."""
    mask = (label_true >= 0) & (label_true < n_class)
    return np.bincount(n_class * label_true[mask].astype(int) + label_pred[mask],
                       minlength=n_class ** 2).reshape(n_class, n_class)


def label_accuracy_score(label_trues, label_preds, n_class):
    """Seed 001's label_accuracy_score: (overall acc, mean class acc, mean IU, fw IU)."""
    hist = np.zeros((n_class, n_class))
    for lt, lp in zip(label_trues, label_preds):
        hist += fast_hist(np.asarray(lt).flatten(), np.asarray(lp).flatten(), n_class)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.diag(hist).sum() / hist.sum()
        acc_cls = np.diag(hist) / hist.sum(axis=1)
        acc_cls = np.nanmean(acc_cls) if not np.all(np.isnan(acc_cls)) else np.nan
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
        mean_iu = np.nanmean(iu) if not np.all(np.isnan(iu)) else np.nan
        freq = hist.sum(axis=1) / hist.sum()
    fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    return acc, acc_cls, mean_iu, fwavacc


def per_class_iou_dice(hist):
    """IoU and Dice per class of a confusion matrix (rows true), NaN where undefined."""
    hist = np.asarray(hist, dtype=np.float64)
    d = np.diag(hist)
    r, c = hist.sum(1), hist.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return d / (r + c - d), 2 * d / (r + c)


def _mean(values, empty=0):
    values = list(values)
    return sum(values) / len(values) if values else empty


def iou_binary(preds, labels, EMPTY=1.0, ignore=None, per_image=True):
    """Berman's iou_binary (seed 004), restated over numpy arrays."""
    if not per_image:
        preds, labels = (preds,), (labels,)
    ious = []
    for pred, label in zip(preds, labels):
        pred, label = np.asarray(pred), np.asarray(label)
        not_ignored = np.ones(label.shape, bool) if ignore is None else label != ignore
        intersection = ((label == 1) & (pred == 1)).sum()
        union = ((label == 1) | ((pred == 1) & not_ignored)).sum()
        ious.append(EMPTY if not union else float(intersection) / float(union))
    return 100 * _mean(ious)


def iou(preds, labels, C, EMPTY=1.0, ignore=None, per_image=False):
    """Berman's iou (seed 004), restated over numpy arrays: per-class IoU, mean across images."""
    if not per_image:
        preds, labels = (preds,), (labels,)
    ious = []
    for pred, label in zip(preds, labels):
        pred, label = np.asarray(pred), np.asarray(label)
        not_ignored = np.ones(label.shape, bool) if ignore is None else label != ignore
        per_class = []
        for i in range(C):
            if i != ignore:
                intersection = ((label == i) & (pred == i)).sum()
                union = ((label == i) | ((pred == i) & not_ignored)).sum()
                per_class.append(EMPTY if not union else float(intersection) / float(union))
        ious.append(per_class)
    return 100 * np.array([_mean(v) for v in zip(*ious)])
