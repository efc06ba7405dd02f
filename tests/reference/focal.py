"""Eager references for the focal family (float64, autograd for gradients)."""

import torch
import torch.nn.functional as F


def _reduce(loss, valid, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    n = int(valid.sum())
    return loss.sum() / n if n else loss.sum() * 0


def _per_class(v, ndim):
    """A per-class sequence / tensor as a float64 (1, C, 1, ...) tensor."""
    return torch.as_tensor(v, dtype=torch.float64).reshape(1, -1, *([1] * (ndim - 2)))


def _is_seq(v):
    return isinstance(v, (list, tuple, torch.Tensor))


def _bce(x, t, from_logits):
    """Elementwise BCE: with logits (torch's fused form), or on probabilities with logs clamped at -100."""
    if from_logits:
        return F.binary_cross_entropy_with_logits(x, t, reduction="none")
    log_p = torch.clamp(torch.log(x), min=-100)
    log_1mp = torch.clamp(torch.log1p(-x), min=-100)
    return -(t * log_p + (1 - t) * log_1mp)


def sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, ignore_index=None, reduction="mean",
                       class_weight=None, from_logits=True):
    """torchvision.ops.sigmoid_focal_loss restated (torchvision is not installed here)::

        p = sigmoid(x); ce = BCE_with_logits(x, t)
        p_t = p t + (1 - p)(1 - t);  loss = ce (1 - p_t)^gamma
        if alpha >= 0: loss *= alpha t + (1 - alpha)(1 - t)

    plus ignore_index (ignored pixels: no loss) and "mean" over non-ignored pixels. A per-class
    ``alpha`` (sequence / tensor of length C) uses alpha[c] in channel c; ``class_weight``
    multiplies channel c by w_c (a number: every channel). ``from_logits=False``: ``logits`` holds
    p itself and BCE clamps its logs at -100 (torch's binary_cross_entropy).
    """
    x = logits.double()
    t = target.double().reshape(x.shape)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    p = torch.sigmoid(x) if from_logits else x
    ce = _bce(x, t, from_logits)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if _is_seq(alpha):
        a = _per_class(alpha, x.dim())
        loss = (a * t + (1 - a) * (1 - t)) * loss
    elif alpha is not None and alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    if _is_seq(class_weight):
        loss = loss * _per_class(class_weight, x.dim())
    elif class_weight is not None:
        loss = loss * class_weight
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    return _reduce(loss, valid, reduction)


def one_vs_rest_focal_loss(logits, target, alpha=0.25, gamma=2.0, ignore_index=None, reduction="mean",
                           class_weight=None, from_logits=True):
    """Multiclass labels (N, *spatial) turned into an explicit float64 one-hot (N, C, *spatial), then the
    sigmoid focal loss above per channel; ignored (and out-of-range) pixels drop out of all C channels,
    "mean" divides by the kept pixels times C."""
    x = logits.double()
    c = x.shape[1]
    y = target.long()
    keep = (y >= 0) & (y < c)
    if ignore_index is not None:
        keep &= y != ignore_index
    onehot = F.one_hot(torch.where(keep, y, torch.zeros_like(y)), c).movedim(-1, 1).double()
    marked = torch.where(keep.unsqueeze(1), onehot, torch.full_like(onehot, -7.0))  # -7: a channel ignore mark
    return sigmoid_focal_loss(x, marked, alpha=alpha, gamma=gamma, ignore_index=-7.0, reduction=reduction,
                              class_weight=class_weight, from_logits=from_logits)


def softmax_focal_loss(logits, target, alpha=0.25, gamma=2.0, ignore_index=None, reduction="mean",
                       class_weight=None, from_logits=True):
    """Softmax focal loss on integer labels: ``-w_y a_y (1 - p_y)^gamma log p_y`` per pixel.

    ``a_y`` is ``alpha[y]`` for a per-class sequence, ``alpha`` for a number >= 0, 1 for
    None or a negative number; ``w_y`` is ``class_weight[y]`` (a number: every class). "none"
    gives the (N, *spatial) map. ``from_logits=False``: ``logits`` holds the softmax
    probabilities, ``log p_y`` clamped at -100.
    """
    x = logits.double()
    y = target.long()
    valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    y = torch.where(valid, y, torch.zeros_like(y))
    if from_logits:
        logp_t = F.log_softmax(x, dim=1).gather(1, y.unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
    else:
        p_t = x.gather(1, y.unsqueeze(1)).squeeze(1)
        logp_t = torch.clamp(torch.log(p_t), min=-100)
    loss = -((1 - p_t) ** gamma) * logp_t
    if _is_seq(alpha):
        loss = loss * torch.as_tensor(alpha, dtype=torch.float64)[y]
    elif alpha is not None and alpha >= 0:
        loss = loss * alpha
    if _is_seq(class_weight):
        loss = loss * torch.as_tensor(class_weight, dtype=torch.float64)[y]
    elif class_weight is not None:
        loss = loss * class_weight
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    return _reduce(loss, valid, reduction)


def seed004_focal_loss(output, target, alpha=None, beta=2):
    """Seed 004's FocalLoss as its evident intent, restated.

    The seed builds ``nn.CrossEntropyLoss(reduction=None, weght=alpha)`` (two typos) and
    returns ``loss.sum`` (the method, not its value); it takes ``pi = exp(-CE)`` of the
    *weighted* CE, which is ``p_y ** alpha_y``, and its own comment says that ``pi`` should
    be the class probability for the loss to be the focal loss. The intent restated:
    per pixel ``alpha_y * (1 - p_y) ** beta * (-log p_y)``, CE's default ignore_index
    (-100) contributing nothing, summed.
    """
    x = output.double()
    w = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float64)
    ce_weighted = F.cross_entropy(x, target.long(), weight=w, reduction="none")  # alpha_y * -log p_y
    p = torch.exp(-F.cross_entropy(x, target.long(), reduction="none"))  # p_y (not p_y ** alpha_y)
    return (ce_weighted * (1 - p) ** beta).sum()


def seed004_focal_loss_literal(output, target, beta=2):
    """The seed's own arithmetic with no class weights (``pi = exp(-CE)``); equals the intent then."""
    log_pi = F.cross_entropy(output.double(), target.long(), reduction="none")
    pi = torch.exp(-log_pi)
    return (log_pi * (1 - pi) ** beta).sum()
