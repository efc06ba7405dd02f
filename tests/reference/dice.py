"""Eager references for the soft-overlap (Dice) family.

Written for obviousness: float64, explicit one-hot targets, loops over images
and classes, Python branches for the documented special cases, autograd for
the gradient. Never imported by the library.

Documented conventions the references restate:
* a class with P + T == 0 in a (pooled) image scores 1 (loss 0);
* a denominator below ``eps`` is clamped to ``eps``;
* ``reduction="mean"`` with ``class_weight`` is sum(cw * L) / (images * sum(cw)).
"""

import math

import torch
import torch.nn.functional as F


# ---- shared pieces -------------------------------------------------------------

def probs_targets(logits, target, mode, ignore_index=None, from_logits=True):
    """(p, t, valid) as float64 (N, C, *spatial) tensors; multiclass targets one-hot encoded here."""
    x = logits.double()
    n, c = x.shape[:2]
    if mode == "multiclass":
        labels = target.long().reshape((n,) + tuple(x.shape[2:]))
        valid = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
        onehot = F.one_hot(torch.where(valid, labels, 0), c).movedim(-1, 1).double()
        valid = valid.unsqueeze(1).expand_as(x)
        p = torch.softmax(x, 1) if from_logits else x
        return p, onehot * valid, valid
    t = target.double().reshape(x.shape)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    p = torch.sigmoid(x) if from_logits else x
    return p, t, valid


def weight_map(weight, shape):
    if weight is None:
        return torch.ones(shape, dtype=torch.float64)
    w = weight.double()
    if tuple(w.shape) == (shape[0], *shape[2:]):
        w = w.unsqueeze(1)  # an (N, *spatial) map: the same weight for every class
    return w.expand(shape)


def soft_intersection(p, t, w, squared=False):
    """MONAI's soft_label intersection (smp's, linear): (||p|| + ||t|| - ||p - t||) / 2 in the
    weighted L1 norm, or with squared L2 norms when ``squared``."""
    if squared:
        return ((w * p * p).sum() + (w * t * t).sum() - (w * (p - t) ** 2).sum()) / 2
    return ((w * p).sum() + (w * t).sum() - (w * (p - t).abs()).sum()) / 2


def overlap(p, t, w, kind, squared=False, alpha=0.5, beta=0.5, soft_label=False):
    """(numerator without smooth, denominator without smooth, P + T) of one (image, class) slice."""
    if squared:
        P, T = (w * p * p).sum(), (w * t * t).sum()
    else:
        P, T = (w * p).sum(), (w * t).sum()
    if soft_label:
        inter = soft_intersection(p, t, w, squared)
        if kind == "dice":
            return 2 * inter, P + T, P + T
        if kind == "jaccard":
            return inter, P + T - inter, P + T
        return inter, inter + alpha * (P - inter) + beta * (T - inter), P + T
    inter = (w * p * t).sum()
    if kind == "dice":
        return 2 * inter, P + T, P + T
    if kind == "jaccard":
        union = P + T - inter if squared else (w * (p + t - p * t)).sum()
        return inter, union, P + T
    fp = (w * p * (1 - t)).sum()  # tversky, linear sums only in the references
    fn = (w * (1 - p) * t).sum()
    return inter, inter + alpha * fp + beta * fn, P + T


def ratio(num, den, total, smooth_num, smooth_den, eps):
    if float(total.detach()) == 0.0:
        return num * 0 + 1.0  # empty in target and prediction: score 1, no gradient
    d = den + smooth_den
    if float(d.detach()) < eps:
        d = d * 0 + eps
    return (num + smooth_num) / d


def reduce(losses, cw, reduction):
    """losses: (rows, classes); cw: (classes,)."""
    if reduction == "none":
        return losses * cw
    if reduction == "sum":
        return (losses * cw).sum()
    return (losses * cw).sum() / (losses.shape[0] * cw.sum())


def _rows(p, t, w, valid, per_image):
    """[(p, t, w) per image, or one pooled entry], flattened per class: each (C, K)."""
    c = p.shape[1]
    w = w * valid
    flat = [a.movedim(1, 0).reshape(c, a.shape[0], -1) for a in (p, t, w)]  # (C, N, S)
    if per_image:
        return [tuple(a[:, i] for a in flat) for i in range(p.shape[0])]
    return [tuple(a.reshape(c, -1) for a in flat)]


def region_loss(logits, target, kind="dice", mode="binary", smooth=0.0, eps=1e-7, squared=False,
                per_image=False, weight=None, class_weight=None, classes=None, ignore_index=None,
                from_logits=True, log_loss=False, reduction="mean", alpha=0.5, beta=0.5, gamma=1.0,
                soft_label=False):
    p, t, valid = probs_targets(logits, target, mode, ignore_index, from_logits)
    w = weight_map(weight, p.shape)
    c = p.shape[1]
    classes = list(range(c)) if classes is None else list(classes)
    cw = torch.ones(c, dtype=torch.float64) if class_weight is None else torch.as_tensor(class_weight).double()
    out = []
    for pr, tr, wr in _rows(p, t, w, valid, per_image):
        row = []
        for k in classes:
            num, den, total = overlap(pr[k], tr[k], wr[k], kind, squared, alpha, beta, soft_label)
            score = ratio(num, den, total, smooth, smooth, eps)
            if log_loss:
                row.append(-torch.log(torch.clamp(score, min=eps)))
            elif gamma != 1.0:
                d = 1 - score
                row.append(d ** gamma if float(d.detach()) > 0 else d * 0)
            else:
                row.append(1 - score)
        out.append(torch.stack(row))
    return reduce(torch.stack(out), cw[classes], reduction)


def dice_loss(logits, target, **kw):
    return region_loss(logits, target, "dice", **kw)


def jaccard_loss(logits, target, **kw):
    return region_loss(logits, target, "jaccard", **kw)


def tversky_loss(logits, target, alpha=0.5, beta=0.5, gamma=1.0, **kw):
    return region_loss(logits, target, "tversky", alpha=alpha, beta=beta, gamma=gamma, **kw)


def generalized_dice_loss(logits, target, mode="binary", smooth=0.0, eps=1e-7, squared=False, per_image=False,
                          weight=None, class_weight=None, classes=None, ignore_index=None, from_logits=True,
                          log_loss=False, reduction="mean", weight_type="square", soft_label=False):
    """MONAI's GeneralizedDiceLoss restated: class weights 1/T^2 from the target sums, an
    infinite weight replaced by the largest finite one of the same row."""
    p, t, valid = probs_targets(logits, target, mode, ignore_index, from_logits)
    w = weight_map(weight, p.shape)
    c = p.shape[1]
    classes = list(range(c)) if classes is None else list(classes)
    cw = torch.ones(c, dtype=torch.float64) if class_weight is None else torch.as_tensor(class_weight).double()
    out = []
    for pr, tr, wr in _rows(p, t, w, valid, per_image):
        inter, psum, tsum = [], [], []
        for k in classes:
            pk = pr[k] * pr[k] if squared else pr[k]
            tk = tr[k] * tr[k] if squared else tr[k]
            inter.append(soft_intersection(pr[k], tr[k], wr[k], squared) if soft_label
                         else (wr[k] * pr[k] * tr[k]).sum())
            psum.append((wr[k] * pk).sum())
            tsum.append((wr[k] * tk).sum())
        inter, psum, tsum = torch.stack(inter), torch.stack(psum), torch.stack(tsum)
        ground = tsum.detach()
        gw = {"square": 1 / ground ** 2, "simple": 1 / ground, "uniform": torch.ones_like(ground)}[weight_type]
        infs = torch.isinf(gw)
        gw = torch.where(infs, torch.zeros_like(gw), gw)
        gw = torch.where(infs, gw.max(), gw) * cw[classes]
        num = 2 * (gw * inter).sum()
        den = (gw * (psum + tsum)).sum()
        score = ratio(num, den, den, smooth, smooth, eps)
        out.append(-torch.log(torch.clamp(score, min=eps)) if log_loss else 1 - score)
    losses = torch.stack(out)
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


# ---- pixel terms ---------------------------------------------------------------

def bce_elementwise(logits, target, ignore_index=None, weight=None):
    x = logits.double()
    t = target.double().reshape(x.shape)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none") * weight_map(weight, x.shape)
    return torch.where(valid, loss, torch.zeros_like(loss)), valid


def sigmoid_focal_elementwise(logits, target, alpha=0.25, gamma=2.0, ignore_index=None, weight=None):
    """torchvision.ops.sigmoid_focal_loss restated (reduction none)."""
    x = logits.double()
    t = target.double().reshape(x.shape)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None and alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    loss = loss * weight_map(weight, x.shape)
    return torch.where(valid, loss, torch.zeros_like(loss)), valid


def softmax_pixel(logits, target, kind="ce", class_w=None, gamma=2.0, ignore_index=None, weight=None,
                  label_smoothing=0.0):
    """Per-pixel CE (kind "ce") or softmax focal (kind "focal") loss and the per-pixel class
    weight of the label; pixel weight = the weight map at the label's channel. CE with label
    smoothing eps (torch's ``cross_entropy``): ``(1 - eps) cw_y (-log p_y) + eps / C sum_c cw_c (-log p_c)``."""
    x = logits.double()
    n, c = x.shape[:2]
    labels = target.long().reshape((n,) + tuple(x.shape[2:]))
    valid = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    safe = torch.where(valid, labels, 0)
    logp_all = torch.log_softmax(x, 1)
    logp = logp_all.gather(1, safe.unsqueeze(1)).squeeze(1)
    cw = torch.ones(c, dtype=torch.float64) if class_w is None else torch.as_tensor(class_w).double()
    if kind == "ce":
        wshape = (1, c) + (1,) * (x.dim() - 2)
        loss = (1 - label_smoothing) * cw[safe] * -logp - label_smoothing / c * (logp_all * cw.view(wshape)).sum(1)
    else:
        loss = -((1 - logp.exp()) ** gamma) * logp * cw[safe]
    pw = weight_map(weight, x.shape).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = loss * pw
    zero = torch.zeros_like(loss)
    return torch.where(valid, loss, zero), torch.where(valid, cw[safe], zero)


# ---- combos --------------------------------------------------------------------

def bce_dice_loss(logits, target, lambda_bce=1.0, lambda_dice=1.0, mode="binary", weight=None,
                  ignore_index=None, reduction="mean", per_image=False, **dice_kw):
    bce, valid = bce_elementwise(logits, target, ignore_index, weight)
    dice = dice_loss(logits, target, mode=mode, weight=weight, ignore_index=ignore_index,
                     reduction="none" if reduction == "none" else reduction, per_image=per_image, **dice_kw)
    if reduction == "none":
        n = bce.shape[0]
        per = bce.reshape(n, -1).sum(1) / valid.reshape(n, -1).sum(1).clamp(min=1)
        cw = dice_kw.get("class_weight")
        return lambda_bce * per + lambda_dice * _row_mean(dice, cw, dice_kw.get("classes"), logits.shape[1])
    b = bce.sum() if reduction == "sum" else bce.sum() / max(int(valid.sum()), 1)
    return lambda_bce * b + lambda_dice * dice


def _row_mean(none_losses, cw, classes, c):
    cw = torch.ones(c, dtype=torch.float64) if cw is None else torch.as_tensor(cw).double()
    if classes is not None:
        cw = cw[list(classes)]
    return none_losses.sum(1) / cw.sum()


def ce_dice_loss(logits, target, lambda_ce=1.0, lambda_dice=1.0, ce_weight=None, weight=None,
                 ignore_index=None, reduction="mean", per_image=False, label_smoothing=0.0, **dice_kw):
    ce, cwp = softmax_pixel(logits, target, "ce", ce_weight, ignore_index=ignore_index, weight=weight,
                            label_smoothing=label_smoothing)
    dice = dice_loss(logits, target, mode="multiclass", weight=weight, ignore_index=ignore_index,
                     reduction=reduction, per_image=per_image, **dice_kw)
    if reduction == "none":
        n = ce.shape[0]
        per = ce.reshape(n, -1).sum(1) / cwp.reshape(n, -1).sum(1).clamp(min=1e-30)
        return lambda_ce * per + lambda_dice * _row_mean(dice, dice_kw.get("class_weight"),
                                                         dice_kw.get("classes"), logits.shape[1])
    c_term = ce.sum() if reduction == "sum" else ce.sum() / cwp.sum().clamp(min=1e-30)
    return lambda_ce * c_term + lambda_dice * dice


def dice_focal_loss(logits, target, lambda_dice=1.0, lambda_focal=1.0, alpha=0.25, gamma=2.0, mode="binary",
                    weight=None, ignore_index=None, reduction="mean", per_image=False, **dice_kw):
    if mode == "multiclass":
        c = logits.shape[1]
        if alpha is None or (not isinstance(alpha, (list, tuple)) and alpha < 0):
            aw = None
        elif isinstance(alpha, (list, tuple)):
            aw = list(alpha)
        else:
            aw = [alpha] * c
        f, _ = softmax_pixel(logits, target, "focal", aw, gamma, ignore_index, weight)
        labels = target.reshape(f.shape)
        valid = torch.ones_like(f, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    else:
        f, valid = sigmoid_focal_elementwise(logits, target, alpha, gamma, ignore_index, weight)
    dice = dice_loss(logits, target, mode=mode, weight=weight, ignore_index=ignore_index,
                     reduction=reduction, per_image=per_image, **dice_kw)
    if reduction == "none":
        n = f.shape[0]
        per = f.reshape(n, -1).sum(1) / valid.reshape(n, -1).sum(1).clamp(min=1)
        return lambda_focal * per + lambda_dice * _row_mean(dice, dice_kw.get("class_weight"),
                                                            dice_kw.get("classes"), logits.shape[1])
    f_term = f.sum() if reduction == "sum" else f.sum() / max(int(valid.sum()), 1)
    return lambda_focal * f_term + lambda_dice * dice


def bce_dice_terms(logits, target, weight=None, smooth_num=1.0, smooth_den=1.0, ignore_index=None):
    """The brief's formula, one image at a time."""
    bce, valid = bce_elementwise(logits, target, ignore_index, weight)
    bce = bce.sum() / max(int(valid.sum()), 1)
    p, t, valid = probs_targets(logits, target, "binary", ignore_index)
    w = weight_map(weight, p.shape) * valid
    scores = []
    for i in range(p.shape[0]):
        w2 = w[i] ** 2
        num, den = 2 * (w2 * p[i] * t[i]).sum(), (w2 * p[i]).sum() + (w2 * t[i]).sum()
        scores.append(ratio(num, den, den, smooth_num, smooth_den, 0.0))
    return bce, 1 - torch.stack(scores).mean()


# ---- seeds, restated --------------------------------------------------------------

def seed000_weighted_soft_dice(logit_pixel, truth_pixel, weight=(0.2, 0.8)):
    b = len(logit_pixel)
    p = torch.sigmoid(logit_pixel.double()).view(b, -1)
    t = truth_pixel.double().view(b, -1)
    w = t * (weight[1] - weight[0]) + weight[0]
    p = w * (p * 2 - 1)
    t = w * (t * 2 - 1)
    inter = (p * t).sum(-1)
    union = (p * p).sum(-1) + (t * t).sum(-1)
    return (1 - 2 * inter / union).mean()


def seed001_soft_dice_loss(logits, labels):
    probs = torch.sigmoid(logits.double())
    num = labels.size(0)
    m1 = probs.view(num, -1)
    m2 = labels.double().view(num, -1)
    score = 2.0 * ((m1 * m2).sum(1) + 1) / (m1.sum(1) + m2.sum(1) + 1)
    return 1 - score.sum() / num


def seed001_weighted_soft_dice_loss(logits, labels, weights):
    probs = torch.sigmoid(logits.double())
    num = labels.size(0)
    w2 = weights.double().view(num, -1) ** 2
    m1 = probs.view(num, -1)
    m2 = labels.double().view(num, -1)
    score = 2.0 * ((w2 * m1 * m2).sum(1) + 1) / ((w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
    return 1 - score.sum() / num


def seed001_dice_score(logits, labels, threshold=0.5):
    probs = torch.sigmoid(logits.double())
    num = labels.size(0)
    pred = (probs.view(num, -1) > threshold).double()
    lab = labels.double().view(num, -1)
    inter = (pred * lab).sum(1)
    den = pred.sum(1) + lab.sum(1)
    score = [1.0 if float(d) == 0 else float(2 * i / d) for i, d in zip(inter, den)]  # seed: NaN when empty
    return torch.tensor(score, dtype=torch.float64).mean()


def seed001_albu_bce_dice_loss(input, target, weight=None, size_average=True):
    """albu's BCEDiceLoss: BCEWithLogitsLoss(weight) + 1 - dice_loss(sigmoid(input), target, weight)."""
    x = input.double()
    t = target.double()
    bce = F.binary_cross_entropy_with_logits(
        x, t, weight=None if weight is None else weight.double(), reduction="mean" if size_average else "sum")
    num = t.size(0)
    preds = torch.sigmoid(x).view(num, -1)
    trues = t.view(num, -1)
    if weight is not None:
        w = weight.double().expand_as(x).reshape(num, -1)
        preds = preds * w
        trues = trues * w
    scores = 2.0 * ((preds * trues).sum(1) + 1) / (preds.sum(1) + trues.sum(1) + 1)
    if size_average:
        return bce + 1 - torch.clamp(scores.sum() / num, 0.0, 1.0)
    return bce + 1 - scores


def seed003_binary_dice_loss(input, targets):
    n = targets.size(0)
    x = input.double().view(n, -1)
    t = targets.double().view(n, -1)
    eff = (2 * (x * t).sum(1) + 1) / (x.sum(1) + t.sum(1) + 1)
    return 1 - eff.sum() / n


def seed004_dice_loss(output, target, smooth=1.0, ignore_index=None):
    """Seed 004's DiceLoss with its typo fixed (target_flat is the one-hot target): softmax, one-hot,
    everything (batch and classes) pooled. Ignored pixels are left out of every sum."""
    p, t, valid = probs_targets(output, target, "multiclass", ignore_index)
    p = p * valid
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def seed004_ce_dice_loss(output, target, smooth=1.0, reduction="mean", ignore_index=255, weight=None):
    ce = F.cross_entropy(output.double(), target.long(), weight=None if weight is None else weight.double(),
                         reduction=reduction, ignore_index=ignore_index)
    return ce + seed004_dice_loss(output, target, smooth, ignore_index)


def finite(x):
    return all(math.isfinite(v) for v in x.detach().flatten().tolist())


# ---- the options for smp / MONAI users (names.md) --------------------------------

def option_region_loss(logits, target, kind="dice", mode="binary", smooth=0.0, smooth_dr=None, eps=1e-7,
                       per_image=False, class_weight=None, zero_absent=False, average="macro",
                       normalize_class_weight=True, reduction="mean", alpha=0.5, beta=0.5, from_logits=True):
    """Dice / Jaccard / Tversky / MCC with the new options, from first principles: loops over rows and
    classes, explicit counts TP = sum p t, FP = sum p (1 - t), FN = sum (1 - p) t, TN = sum (1 - p)(1 - t)."""
    p, t, valid = probs_targets(logits, target, mode, None, from_logits)
    c = p.shape[1]
    sd = smooth if smooth_dr is None else smooth_dr
    cw = torch.ones(c, dtype=torch.float64) if class_weight is None else torch.as_tensor(class_weight).double()
    rows = [(p[i:i + 1], t[i:i + 1]) for i in range(p.shape[0])] if per_image else [(p, t)]

    def score(tp, fp, fn, tn, total):
        if kind == "mcc":
            tp, fp, fn, tn = tp + eps, fp + eps, fn + eps, tn + eps
            return (tp * tn - fp * fn) / torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        if float(total.detach()) == 0.0:
            return tp * 0 + 1.0
        if kind == "dice":
            num, den = 2 * tp, 2 * tp + fp + fn
        elif kind == "jaccard":
            num, den = tp, tp + fp + fn
        else:
            num, den = tp, tp + alpha * fp + beta * fn
        d = den + sd
        if float(d.detach()) < eps:
            d = d * 0 + eps
        return (num + smooth) / d

    out = []
    for pr, tr in rows:
        counts = []
        for k in range(c):
            pk, tk = pr[:, k], tr[:, k]
            counts.append(torch.stack([(pk * tk).sum(), (pk * (1 - tk)).sum(), ((1 - pk) * tk).sum(),
                                       ((1 - pk) * (1 - tk)).sum(), tk.sum(), pk.sum() + tk.sum()]))
        counts = torch.stack(counts)  # (C, 6)
        if average == "micro":
            pooled = (cw[:, None] * counts).sum(0)
            s = score(*pooled[:4], pooled[5])
            loss = 1 - s
            if zero_absent and float(pooled[4].detach()) == 0:
                loss = loss * 0
            out.append(loss)
        else:
            row = []
            for k in range(c):
                loss = 1 - score(*counts[k, :4], counts[k, 5])
                if zero_absent and float(counts[k, 4].detach()) == 0:
                    loss = loss * 0
                row.append(loss)
            out.append(torch.stack(row))
    losses = torch.stack(out)
    if average == "micro":
        if reduction == "none":
            return losses
        return losses.sum() if reduction == "sum" else losses.mean()
    if reduction == "none":
        return losses * cw
    if reduction == "sum":
        return (losses * cw).sum()
    div = cw.sum() if normalize_class_weight else c
    return (losses * cw).sum() / (losses.shape[0] * div)


def bce_pos_weight_smoothed(logits, target, pos_weight=None, label_smoothing=0.0):
    """Mean BCE with a per-channel (or scalar) pos_weight and smoothed targets, by torch's own BCE."""
    x = logits.double()
    t = target.double().reshape(x.shape)
    s = t * (1 - label_smoothing) + label_smoothing / 2
    pw = None
    if pos_weight is not None:
        pw = torch.as_tensor(pos_weight, dtype=torch.float64)
        if pw.dim() == 1:
            pw = pw.view((1, -1) + (1,) * (x.dim() - 2))
    return F.binary_cross_entropy_with_logits(x, s, pos_weight=pw)


def onehot_sigmoid_focal(logits, labels, alpha=0.25, gamma=2.0):
    """torchvision's sigmoid focal loss of every channel against the one-hot labels, mean over pixels x C."""
    x = logits.double()
    t = F.one_hot(labels.long(), x.shape[1]).movedim(-1, 1).double()
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean()
