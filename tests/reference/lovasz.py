"""Eager references for the Lovász family: Berman et al.'s algorithm restated plainly.

One image (or the whole batch) and one class at a time, in float64, with
``torch.sort``; autograd gives the gradient. Restated from seeds 002/004
(Berman's ``lovasz_losses.py``) and seed 000 (the margin hinge), not copied
from the kernels.

Ties: the sorts are stable, so equal errors stay in pixel order. The value of
the Lovász extension does not depend on how ties are ordered; its
(sub)gradient does, and a stable order is the tie rule the library uses too.
"""

import torch
import torch.nn.functional as F


def lovasz_grad(fg_sorted):
    """Alg. 1 of Berman et al.: the gradient of the Lovász extension of the Jaccard
    loss with respect to the errors sorted in decreasing order."""
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def _sort_desc(errors):
    return torch.sort(errors, descending=True, stable=True)


def berman_mean(values):
    """Berman's ``mean``: the mean of a list, 0 for an empty list."""
    values = list(values)
    if not values:
        return torch.zeros((), dtype=torch.float64)
    return sum(values) / len(values)


# ---- binary: the Lovász hinge ------------------------------------------------

def lovasz_hinge_flat(logits, labels, margin=(1.0, 1.0)):
    """One segment: logits and {0, 1} labels of its (non-ignored) pixels, flattened."""
    if labels.numel() == 0:
        return logits.sum() * 0.0  # only ignored pixels: loss 0, gradient 0
    fg = labels.double()
    signs = 2.0 * fg - 1.0
    m = fg * (margin[1] - margin[0]) + margin[0]
    errors = m - logits * signs
    errors_sorted, perm = _sort_desc(errors)
    return torch.dot(F.relu(errors_sorted), lovasz_grad(fg[perm]))


def lovasz_hinge(logits, target, per_image=True, ignore_index=None, margin=None, reduction="mean"):
    """The API's ``lovasz_hinge``: logits (N, 1, *) (or (N, *)), a {0, 1} target.

    ``"none"``: the per-image losses (N,) with ``per_image``, else the batch loss (0-d).
    """
    margin = (1.0, 1.0) if margin is None else margin
    n = logits.shape[0]
    x = logits.reshape(n, -1)
    t = target.reshape(n, -1).double()
    segments = [(x[i], t[i]) for i in range(n)] if per_image else [(x.reshape(-1), t.reshape(-1))]
    losses = []
    for xs, ts in segments:
        keep = torch.ones_like(ts, dtype=torch.bool) if ignore_index is None else ts != ignore_index
        losses.append(lovasz_hinge_flat(xs[keep], ts[keep], margin))
    v = torch.stack(losses)
    if reduction == "none":
        return v if per_image else v[0]
    if reduction == "sum":
        return v.sum()
    return v.mean()


def berman_lovasz_hinge(logits, labels, per_image=True, ignore=None):
    """Berman's ``lovasz_hinge(logits [B, H, W], labels [B, H, W], per_image, ignore)``."""
    if per_image:
        return berman_mean(lovasz_hinge_flat(*_flatten_binary(x.unsqueeze(0), y.unsqueeze(0), ignore))
                           for x, y in zip(logits, labels))
    return lovasz_hinge_flat(*_flatten_binary(logits, labels, ignore))


def _flatten_binary(scores, labels, ignore):
    scores, labels = scores.reshape(-1), labels.reshape(-1)
    if ignore is None:
        return scores, labels
    keep = labels != ignore
    return scores[keep], labels[keep]


def seed000_weighted_lovasz(logit_pixel, truth_pixel, margin=(1, 5)):
    """Seed 000's ``criterion_pixel`` with its ``lovasz_loss``: the hinge with margin
    ``m = truth * (margin[1] - margin[0]) + margin[0]`` per image, then the mean over images."""
    b = len(logit_pixel)
    logit = logit_pixel.reshape(b, -1)
    truth = truth_pixel.reshape(b, -1).double()
    losses = []
    for i in range(b):
        m = truth[i] * (margin[1] - margin[0]) + margin[0]
        sign = 2.0 * truth[i] - 1.0
        hinge, perm = _sort_desc(m - logit[i] * sign)
        losses.append(torch.dot(F.relu(hinge), lovasz_grad(truth[i][perm])))
    return torch.stack(losses).mean()


# ---- multiclass: Lovász-Softmax ----------------------------------------------

def lovasz_softmax_flat_values(probas, labels, classes="present"):
    """One segment: probas (P, C), labels (P,) of its non-ignored pixels.

    Returns (values, kept): the Lovász extension of each listed class, and whether
    the class enters Berman's mean ("present" drops classes absent from the segment;
    they get value 0 here). With no pixels every value is 0 (Berman returns 0).
    """
    c_total = probas.shape[1]
    class_list = list(range(c_total)) if classes in ("present", "all") else list(classes)
    if c_total == 1 and len(class_list) > 1:
        raise ValueError("Sigmoid output possible only with 1 class")
    values, kept = [], []
    for c in class_list:
        fg = (labels == c).double()
        if classes == "present" and fg.sum() == 0:
            values.append(probas.sum() * 0.0)
            kept.append(False)
            continue
        if labels.numel() == 0:
            values.append(probas.sum() * 0.0)
            kept.append(True)
            continue
        class_pred = probas[:, 0] if c_total == 1 else probas[:, c]
        errors = (fg - class_pred).abs()
        errors_sorted, perm = _sort_desc(errors)
        values.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
        kept.append(True)
    return values, kept


def _flatten_probas(probas, labels, ignore):
    c = probas.shape[1]
    probas = probas.movedim(1, -1).reshape(-1, c)
    labels = labels.reshape(-1)
    if ignore is None:
        return probas, labels
    keep = labels != ignore
    return probas[keep], labels[keep]


def lovasz_softmax(logits, target, classes="present", per_image=False, ignore_index=None, from_logits=True,
                   reduction="mean", class_weight=None):
    """The API's ``lovasz_softmax``: logits (N, C, *), labels (N, *).

    ``"mean"``: Berman's loss (mean over the kept classes of each segment, then over
    images). ``"none"``: each segment's per-class values, (N, K) with ``per_image``
    else (K,), K the listed classes (C for "present"/"all"; absent classes are 0
    under "present"). ``"sum"``: the sum of the ``"none"`` values.
    """
    p = F.softmax(logits.double(), dim=1) if from_logits else logits.double()
    n = p.shape[0]
    if per_image:
        segments = [_flatten_probas(p[i:i + 1], target[i:i + 1], ignore_index) for i in range(n)]
    else:
        segments = [_flatten_probas(p, target, ignore_index)]
    class_list = list(range(p.shape[1])) if classes in ("present", "all") else list(classes)
    rows, means = [], []
    for probas, labels in segments:
        values, kept = lovasz_softmax_flat_values(probas, labels, classes)
        if class_weight is None:
            rows.append(torch.stack(values))
            means.append(berman_mean(v for v, k in zip(values, kept) if k))
            continue
        # weighted: each counted class's loss times its weight, over the sum of those weights
        w = [float(class_weight[c]) for c in class_list]
        rows.append(torch.stack([wc * v for wc, v in zip(w, values)]))
        num = sum((wc * v for wc, v, k in zip(w, values, kept) if k), probas.sum() * 0.0)
        den = sum(wc for wc, k in zip(w, kept) if k)
        means.append(num / den if den > 0 else num * 0.0)
    if reduction == "none":
        return torch.stack(rows) if per_image else rows[0]
    if reduction == "sum":
        return torch.stack(rows).sum()
    return berman_mean(means)


def berman_lovasz_softmax(probas, labels, classes="present", per_image=False, ignore=None):
    """Berman's ``lovasz_softmax(probas [B, C, H, W] (or [B, H, W] for one sigmoid
    channel), labels [B, H, W], classes, per_image, ignore)``."""
    if probas.dim() == labels.dim():
        probas = probas.unsqueeze(1)
    if per_image:
        return berman_mean(_softmax_flat_mean(*_flatten_probas(p.unsqueeze(0), y.unsqueeze(0), ignore), classes)
                           for p, y in zip(probas, labels))
    return _softmax_flat_mean(*_flatten_probas(probas, labels, ignore), classes)


def _softmax_flat_mean(probas, labels, classes):
    values, kept = lovasz_softmax_flat_values(probas, labels, classes)
    return berman_mean(v for v, k in zip(values, kept) if k)
