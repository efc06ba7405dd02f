"""Seed recipes of the Lovász family: seed 000's margin hinge and Berman's functions (seeds 002/004)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from . import api as F

__all__ = ["weighted_lovasz", "lovasz_hinge", "lovasz_softmax"]


def weighted_lovasz(logit_pixel: Tensor, truth_pixel: Tensor, margin: Sequence[float] = (1, 5)) -> Tensor:
    """Seed 000's weighted Lovász (``criterion_pixel`` with its ``lovasz_loss``): per image,
    the Lovász hinge with margin ``margin[1]`` on foreground and ``margin[0]`` on background
    pixels, then the mean over images. ``truth_pixel`` must be a 0/1 mask (the seed's
    margin formula ``truth * (m1 - m0) + m0`` gives exactly these two margins on it).
    """
    b = len(logit_pixel)
    if logit_pixel.numel() != truth_pixel.numel():
        raise ValueError(
            f"logit_pixel and truth_pixel must have the same number of elements, got "
            f"{tuple(logit_pixel.shape)} and {tuple(truth_pixel.shape)}"
        )
    return F.lovasz_hinge(logit_pixel.reshape(b, 1, -1), truth_pixel.reshape(b, 1, -1),
                          per_image=True, margin=margin)


def lovasz_hinge(logits: Tensor, labels: Tensor, per_image: bool = True, ignore: Optional[float] = None) -> Tensor:
    """Berman's ``lovasz_hinge``: logits ``[B, H, W]``, binary labels ``[B, H, W]``, ``ignore``
    the void label. The mean over images with ``per_image`` (an image with only void pixels
    counts as 0, as in Berman's code)."""
    b = logits.shape[0]
    if logits.numel() != labels.numel():
        raise ValueError(
            f"logits and labels must have the same number of elements, got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    return F.lovasz_hinge(logits.reshape(b, 1, -1), labels.reshape(b, 1, -1), per_image=per_image,
                          ignore_index=ignore)


def lovasz_softmax(
    probas: Tensor,
    labels: Tensor,
    classes: Union[str, Sequence[int]] = "present",
    per_image: bool = False,
    ignore: Optional[int] = None,
) -> Tensor:
    """Berman's ``lovasz_softmax``: class probabilities ``[B, C, H, W]`` (not logits),
    labels ``[B, H, W]``; ``classes`` is ``'present'``, ``'all'`` or a list.

    ``[B, H, W]`` probabilities are one sigmoid channel (C = 1): each listed class ``c``
    uses ``|[label == c] - probas|``, as in Berman's code. Differences from that code,
    following its evident intent: with C = 1, ``'present'`` / ``'all'`` mean class 0
    (Berman's ``len(classes) > 1`` test raises for any string); an image whose pixels are
    all void gives 0 (Berman returns an empty tensor); one valid pixel works (Berman's
    ``nonzero().squeeze()`` drops its dim).
    """
    if probas.dim() == labels.dim():
        probas = probas.unsqueeze(1)
    if probas.shape[1] == 1:  # [B, H, W] or [B, 1, H, W]: Berman's sigmoid (C == 1) branch
        return _sigmoid_channel(probas, labels, classes, per_image, ignore)
    return F.lovasz_softmax(probas, labels, classes=classes, per_image=per_image, ignore_index=ignore,
                            from_logits=False)


def _sigmoid_channel(p: Tensor, labels: Tensor, classes, per_image: bool, ignore) -> Tensor:
    """Berman's C == 1 branch: errors ``|[label == c] - p|`` for the one listed class c,
    computed as class 1 of the two-channel probabilities ``[1 - p, p]``."""
    class_list = [0] if isinstance(classes, str) else [int(k) for k in classes]
    if len(class_list) != 1:
        raise ValueError(f"Sigmoid output possible only with 1 class; got classes={classes!r}")
    fg = labels == class_list[0]
    binary = fg.to(torch.int64)
    if ignore is not None:
        binary = torch.where(labels == ignore, -1, binary)
    q = torch.cat([1.0 - p, p], dim=1)
    values = F.lovasz_softmax(q, binary, classes=[1], per_image=per_image,
                              ignore_index=None if ignore is None else -1, from_logits=False, reduction="none")
    values = values.reshape(-1)  # (B,) per image, else (1,)
    if classes == "present":
        if ignore is not None:
            fg = fg & (labels != ignore)
        seen = fg.reshape(labels.shape[0], -1).any(1) if per_image else fg.any().reshape(1)
        values = values * seen.to(values.dtype)
    return values.mean()
