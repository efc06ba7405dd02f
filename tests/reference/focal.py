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


def sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, ignore_index=None, reduction="mean"):
    """torchvision.ops.sigmoid_focal_loss restated (torchvision is not installed here)::

        p = sigmoid(x); ce = BCE_with_logits(x, t)
        p_t = p t + (1 - p)(1 - t);  loss = ce (1 - p_t)^gamma
        if alpha >= 0: loss *= alpha t + (1 - alpha)(1 - t)

    plus ignore_index (ignored pixels: no loss) and "mean" over non-ignored pixels.
    """
    x = logits.double()
    t = target.double().reshape(x.shape)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha is not None and alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    return _reduce(loss, valid, reduction)


def softmax_focal_loss(logits, target, alpha=0.25, gamma=2.0, ignore_index=None, reduction="mean"):
    """Softmax focal loss on integer labels: ``-a_y (1 - p_y)^gamma log p_y`` per pixel.

    ``a_y`` is ``alpha[y]`` for a per-class sequence, ``alpha`` for a number >= 0, 1 for
    None or a negative number. "none" gives the (N, *spatial) map.
    """
    x = logits.double()
    y = target.long()
    valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    y = torch.where(valid, y, torch.zeros_like(y))
    logp_t = F.log_softmax(x, dim=1).gather(1, y.unsqueeze(1)).squeeze(1)
    p_t = logp_t.exp()
    loss = -((1 - p_t) ** gamma) * logp_t
    if isinstance(alpha, (list, tuple, torch.Tensor)):
        loss = loss * torch.as_tensor(alpha, dtype=torch.float64)[y]
    elif alpha is not None and alpha >= 0:
        loss = loss * alpha
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
