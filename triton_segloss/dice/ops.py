"""The Dice family's custom op ``triton_segloss::dice`` (and ``dice_backward``).

``dice(logits, target, weight?, class_weight?, pixel_class_weight?, pos_weight?, options) -> (loss, coef)``

One pass over the pixels gives five sums per (image n, class c) ``[I, P, T, L, n]``
(intersection, prediction sum, target sum, the combos' pixel term, valid count);
one finisher turns them into the loss of every variant of the family and into
``coef`` (N, C, 3): ``dLoss/dI, dLoss/dP, dLoss/dL`` of each (n, c) per unit
upstream gradient (T and the counts do not depend on the logits). Each (n, c)
feeds one element of the loss (its row and class for ``"none"``), so the backward
multiplies the coefficients by the upstream gradient element they feed, read by
pointer (:func:`grad_layout`): no host sync anywhere.

``loss`` layouts (:func:`out_shape`): 0-d for ``"mean"``/``"sum"``; ``(R, K)``
per row and kept class for ``"none"`` (R = N per image, 1 pooled; K = kept
classes), ``(R,)`` for generalized Dice, ``(N,)`` for a combo; with ``split``
``[pixel term, region term(s)...]`` side by side (``bce_dice_terms``, recipes).

With ``process_group`` (the batch pooled across the ranks of a group, :mod:`triton_segloss._core.dist`)
the per-program partials are summed to one (C, 5) row, all-reduced, and finished into the same
loss on every rank; ``coef`` is then one row (1, C, 3) that serves every image, and the backward
first all-reduces the upstream gradient.

Per-class vectors given as tensors are op inputs (``class_weight``,
``pixel_class_weight``); given as Python sequences they are options, turned into
a device tensor once per (device, dtype, values) by :func:`device_table`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple, Optional

import torch

from triton_segloss._core.backend import select
from triton_segloss._core.dist import all_reduce_upstream
from triton_segloss._core.op import define_op
from triton_segloss._core.validate import acc_dtype

NSUMS = 5  # [I, P, T, L, n]
NCOEF = 3  # [dLoss/dI, dLoss/dP, dLoss/dL]
KINDS = ("dice", "jaccard", "tversky", "generalized", "mcc")
PIXEL_TERMS = ("none", "xent", "focal", "sfocal")  # xent: BCE (sigmoid) or CE (softmax); sfocal: sigmoid focal
# on the one-hot channels of integer labels (multiclass, focal_use_softmax=False)
WEIGHT_TYPES = ("square", "simple", "uniform")
TINY = 1e-30


class DiceOptions(NamedTuple):
    """Every option of the family, checked, as the op receives them."""

    # the pass over the pixels
    multiclass: bool = False  # softmax over C from integer labels (else sigmoid per channel)
    from_logits: bool = True  # False: the input already holds probabilities
    ignore_index: Optional[float] = None  # target value (binary/multilabel) or label (multiclass)
    squared: bool = False  # P = sum wp p^2, T = sum wp t^2
    signed: bool = False  # p, t -> 2p - 1, 2t - 1 (seed 000)
    label_weight: Optional[tuple[float, ...]] = None  # (at t = 0, at t = 1): om *= lw0 + (lw1 - lw0) t (seed 000)
    w_pow_i: int = 1  # the power (1 or 2) of the weight in I
    w_pow_pt: int = 1  # ... and in P, T
    pixel: str = "none"  # the combos' pixel term: "none", "xent" (BCE / CE) or "focal"
    focal_alpha: Optional[float] = None  # sigmoid: torchvision's alpha; softmax: a scale of the term
    focal_gamma: float = 0.0
    threshold: Optional[float] = None  # a hard prediction p -> [p > threshold] (a metric; zero gradient)
    # the finisher
    kind: str = "dice"  # "dice", "jaccard", "tversky" or "generalized"
    alpha: float = 0.5  # Tversky: weight of the false positives
    beta: float = 0.5  # Tversky: weight of the false negatives
    gamma: float = 1.0  # focal Tversky exponent: (1 - score)^gamma
    smooth_num: float = 0.0
    smooth_den: float = 0.0
    eps: float = 1e-7  # the denominator's lower clamp
    log_loss: bool = False  # -log(max(score, eps))
    score: bool = False  # the score itself instead of a loss (seed 001's DiceScore)
    weight_type: str = "square"  # generalized Dice class weights: 1 / T^2, 1 / T or 1
    per_image: bool = False  # rows are images (else the batch pooled)
    classes: Optional[tuple[int, ...]] = None  # the kept classes, in output order
    class_weight_list: Optional[tuple[float, ...]] = None  # length C (a tensor is the class_weight input)
    reduction: str = "mean"
    lambda_region: float = 1.0
    lambda_pixel: float = 1.0
    pixel_class_weight_list: Optional[tuple[float, ...]] = None  # CE weight / softmax focal alpha, length C
    pixel_weighs_count: bool = False  # CE: the mean divides by sum of the class weights of the pixels
    pixel_reduction: Optional[str] = None  # None: ``reduction``
    split: bool = False  # return [pixel term, region term(s)] instead of their weighted sum
    # options for smp / MONAI users (names.md)
    zero_absent: bool = False  # a class with T == 0 in its row: loss 0, zero gradient (still counted in the mean)
    micro: bool = False  # average="micro": the kept classes' sums (times class_weight) pooled before the ratio
    normalize_class_weight: bool = True  # False: "mean" = sum(cw l) / (rows * kept classes) (MONAI's weight)
    pos_weight_value: float = 1.0  # BCE's positive-term weight (a length-C tensor is the pos_weight input)
    label_smoothing: float = 0.0  # BCE: t -> t (1 - ls) + ls / 2; CE: torch's label smoothing (pixel term only)
    soft_label: bool = False  # I = sum w min(p, t) (soft targets; MONAI's soft_label, smp's intersection)
    process_group: Optional[str] = None  # the name of a process group: the pooled sums are all-reduced over it


# ---- layouts shared by both backends -------------------------------------------------------------

def rows(o: DiceOptions, n):
    return n if o.per_image else 1


def kept(o: DiceOptions, c):
    return c if o.classes is None else len(o.classes)


def one_per_row(o: DiceOptions) -> bool:
    """One region value per row (generalized Dice, or the kept classes pooled by average="micro")."""
    return o.kind == "generalized" or o.micro


def pixel_scale(o: DiceOptions, c) -> float:
    """A scale of the pixel term in the finisher: the softmax focal's single alpha; 1 / C for the
    per-channel sigmoid focal of integer labels (its mean is over pixels x C, as MONAI's)."""
    if o.multiclass and o.pixel == "focal" and o.focal_alpha is not None and o.focal_alpha >= 0:
        return o.focal_alpha
    if o.pixel == "sfocal" and pixel_reduction(o) != "sum":
        return 1.0 / c
    return 1.0


def pixel_reduction(o: DiceOptions) -> str:
    return o.reduction if o.pixel_reduction is None else o.pixel_reduction


def _region_numel(o: DiceOptions, n, c):
    if o.reduction != "none":
        return 1
    return rows(o, n) if one_per_row(o) else rows(o, n) * kept(o, c)


def out_shape(o: DiceOptions, n, c) -> tuple:
    """The loss layout (see the module docstring)."""
    if o.split:
        return (1 + _region_numel(o, n, c),)
    if o.reduction != "none":
        return ()
    if o.pixel != "none":
        return (n,)
    if one_per_row(o):
        return (rows(o, n),)
    return (rows(o, n), kept(o, c))


def grad_layout(g: torch.Tensor, o: DiceOptions, n, c) -> tuple[int, int, int, int, int]:
    """Where the backward finds the upstream gradient element that (n, c) feeds, in elements of ``g``:

        region (I, P):  g[off_r + r * stride_r + pos(c) * stride_c]   (r = n per image, else 0)
        pixel (L):      g[off_p + n * stride_p]

    with pos(c) the class's place among the kept classes. Strides come from ``g``
    itself, so an expanded (stride-0) upstream gradient is read in place.
    """
    st = g.stride()
    if o.split:
        s0 = st[0]
        if o.reduction != "none":
            return s0, 0, 0, 0, 0
        if one_per_row(o):
            return s0, s0, 0, 0, 0
        return s0, kept(o, c) * s0, s0, 0, 0
    if g.dim() == 0:
        return 0, 0, 0, 0, 0
    if g.dim() == 1:  # (N,) combo rows (region and pixel terms), or (R,) generalized rows
        return 0, st[0], 0, 0, (st[0] if o.pixel != "none" else 0)
    return 0, st[0], st[1], 0, 0


_TABLES: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_TABLES_LOCK = threading.Lock()
_TABLES_MAX = 256


def device_table(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``torch.tensor(values)`` on ``device``, made once per (device, dtype, values) and kept (LRU):
    a per-call host-to-device copy would synchronise on CUDA and break CUDA-graph capture."""
    key = (str(device), dtype, tuple(values))
    with _TABLES_LOCK:
        t = _TABLES.get(key)
        if t is not None:
            _TABLES.move_to_end(key)
            return t
    t = torch.tensor(list(values), dtype=dtype, device=device)
    with _TABLES_LOCK:
        _TABLES[key] = t
        while len(_TABLES) > _TABLES_MAX:
            _TABLES.popitem(last=False)
    return t


def class_positions(o: DiceOptions, c: int, device) -> Optional[torch.Tensor]:
    """int32 (C,): the place of class c among ``o.classes``, -1 where it is left out (None: all kept)."""
    if o.classes is None:
        return None
    pos = [-1] * c
    for i, k in enumerate(o.classes):
        pos[k] = i
    return device_table(tuple(pos), device, torch.int32)


def class_vector(t: Optional[torch.Tensor], values: Optional[tuple], device) -> Optional[torch.Tensor]:
    """A per-class vector: the tensor the user gave, or the cached device copy of the values."""
    if t is not None:
        return t
    if values is None:
        return None
    return device_table(values, device, torch.float64)


# ---- the op ------------------------------------------------------------------------------------

def _impl(device):
    if select(device) == "triton":
        from . import kernels

        return kernels
    from . import torch_impl

    return torch_impl


def _forward(logits, target, weight, class_weight, pixel_class_weight, pos_weight, o):
    return _impl(logits.device).forward(logits, target, weight, class_weight, pixel_class_weight, pos_weight, o)


def coef_rows(o: DiceOptions, n) -> int:
    """Rows of the coefficient table: one per image, or one for every image when the sums are
    pooled across ranks (the finisher sees only the global sums)."""
    return 1 if o.process_group is not None else n


def _fake(logits, target, weight, class_weight, pixel_class_weight, pos_weight, o):
    n, c = logits.shape[0], logits.shape[1]
    acc = acc_dtype(logits.dtype)
    return logits.new_empty(out_shape(o, n, c), dtype=acc), logits.new_empty((coef_rows(o, n), c, NCOEF), dtype=acc)


def _backward(grads, saved, logits, target, weight, class_weight, pixel_class_weight, pos_weight, o):
    (g,), (coef,) = grads, saved
    if o.process_group is not None:  # every rank's loss depends on every rank's logits
        g = all_reduce_upstream(g, o.process_group)
    return _impl(logits.device).backward(g, coef, logits, target, weight, class_weight, pixel_class_weight,
                                         pos_weight, o)


dice = define_op("dice", DiceOptions,
                 tensors=("logits", "target", "weight?", "class_weight?", "pixel_class_weight?", "pos_weight?"),
                 outputs=2,
                 forward=_forward, fake=_fake, backward=_backward, saved_outputs=(1,))
