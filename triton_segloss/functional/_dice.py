"""Soft-overlap (Dice) family: Dice, Jaccard, Tversky, generalized Dice and the fused
BCE + Dice, CE + Dice and Dice + focal combos.

Every loss here reads the inputs once (``triton_segloss::dice_sums``) to get five
sums per (image n, class c)::

    I = sum w p t,   P = sum w p,   T = sum w t   (P = sum w p^2, T = sum w t^2 when squared)
    L = sum w l (the combos' pixel term),   n = valid pixels

and finishes from them with small torch code on (N, C) tensors. The backward is
one more pass over the inputs (``dice_sums_backward``).

Conventions shared by every function of the family:

* ``p`` is ``sigmoid(logits)`` per channel (``mode="binary"``, ``"multilabel"``) or
  ``softmax(logits, dim=1)`` (``"multiclass"``; the target holds integer labels, never
  one-hot encoded). ``from_logits=False``: ``logits`` already holds probabilities.
* ``smooth`` enters as ``(2 I + smooth) / (P + T + smooth)``; ``eps`` clamps the
  denominator from below: ``num / max(den, eps)``.
* **Empty classes.** A class with ``P + T == 0`` in an image (or in the pooled batch):
  absent from the target and from the prediction, or every pixel ignored, or zero
  weight, scores exactly 1 (loss 0, or 0 for ``log_loss``) with zero gradient, for
  every ``smooth`` including 0. A class absent from the target but predicted
  (``T == 0 < P``) is scored by the formula: with ``smooth == 0`` that is Dice 0
  (loss 1, zero gradient, as the math says); with ``smooth > 0`` it is
  ``smooth / (P + smooth)``, which pushes the false positives down. No NaN, ever.
* ``weight``: a per-pixel map broadcastable to ``logits`` (an ``(N, *spatial)`` map is
  read as one weight per pixel for every class). It multiplies every term of every sum.
* ``ignore_index``: pixels whose target equals it enter no sum and get zero gradient
  (multilabel: per element).
* ``per_image=False`` pools the batch: the sums are added over images before the
  ratio. ``classes``: the class indices to keep (default all).
* ``class_weight`` (length C): ``"mean"`` is ``sum(cw * loss) / (rows * sum(cw))``,
  ``"sum"`` is ``sum(cw * loss)``, ``"none"`` returns ``cw * loss``.
* ``reduction="none"`` returns ``(N, len(classes))`` per-image x per-class values, or
  ``(1, len(classes))`` when the batch is pooled (``per_image=False``).
* Losses come back in float32 (float64 for float64 logits); the gradient has the
  logits' dtype and layout.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .. import ops as _ops  # noqa: F401  (registers the custom ops)
from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_binary_values, check_label_values, check_logits, check_reduction,
    finite_float, multiclass_target_ns, pixel_map_ncs, shape_str,
)

__all__ = [
    "dice_loss", "jaccard_loss", "tversky_loss", "generalized_dice_loss",
    "bce_dice_loss", "ce_dice_loss", "dice_focal_loss",
]

MODES = ("binary", "multiclass", "multilabel")
PIXEL_NONE, PIXEL_XENT, PIXEL_FOCAL = 0, 1, 2
_TINY = 1e-30

ClassWeight = Union[Sequence[float], Tensor, None]


# ---- argument checks and the one pass over the inputs ----------------------------------------

def _check_mode(mode: str, logits: Tensor) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "binary" and logits.shape[1] != 1:
        raise ValueError(
            f"mode='binary' needs logits with one channel, got logits {shape_str(logits)}; "
            f"use mode='multilabel' (sigmoid per channel) or mode='multiclass' (softmax)"
        )


def _ignore(ignore_index, multiclass: bool):
    if ignore_index is None:
        return None
    v = finite_float(ignore_index, "ignore_index")
    if multiclass:
        if not v.is_integer():
            raise ValueError(f"ignore_index must be an integer label for mode='multiclass', got {ignore_index!r}")
        return int(v)
    return v


def _weight_ncs(logits: Tensor, weight: Optional[Tensor]) -> Optional[Tensor]:
    if isinstance(weight, Tensor) and weight.dim() == logits.dim() - 1 and \
            tuple(weight.shape) == (logits.shape[0], *logits.shape[2:]):
        weight = weight.unsqueeze(1)  # an (N, *spatial) map: one weight per pixel, every class
    return pixel_map_ncs(logits, weight, "weight")


def _sums(logits: Tensor, target: Tensor, *, mode: str, weight=None, ignore_index=None, from_logits=True,
          squared=False, signed=False, label_weight=None, w_pow=(1, 1), pixel=PIXEL_NONE, alpha=-1.0, gamma=0.0,
          hard=False, threshold=0.5) -> Tensor:
    """Checks the inputs and returns the (N, C, 5) sums ``[I, P, T, L, n]`` (differentiable)."""
    check_logits(logits)
    _check_mode(mode, logits)
    multiclass = mode == "multiclass"
    n, c = logits.shape[:2]
    ig = _ignore(ignore_index, multiclass)
    if multiclass:
        t = multiclass_target_ns(logits, target)
        check_label_values(target, c, ig)
    else:
        t = binary_target_ncs(logits, target)
        check_binary_values(target, ig)
    if pixel != PIXEL_NONE and not from_logits:
        raise ValueError("the fused pixel term (BCE / CE / focal) needs logits: from_logits must be True")
    w = _weight_ncs(logits, weight)
    lw = (1.0, 1.0) if label_weight is None else label_weight
    return torch.ops.triton_segloss.dice_sums(
        as_ncs(logits, n, c), t, w, multiclass, bool(from_logits), ig is not None, 0.0 if ig is None else float(ig),
        bool(squared), bool(signed), label_weight is not None, float(lw[0]), float(lw[1]), int(w_pow[0]),
        int(w_pow[1]), int(pixel), float(alpha), float(gamma), bool(hard), float(threshold),
    )


def _class_index(classes, c: int) -> Optional[list]:
    if classes is None:
        return None
    if isinstance(classes, Tensor):
        classes = classes.tolist()
    try:
        idx = [int(k) for k in classes]
    except (TypeError, ValueError):
        raise TypeError(f"classes must be a sequence of class indices, got {classes!r}") from None
    bad = [k for k in idx if not 0 <= k < c]
    if bad or not idx:
        raise ValueError(f"classes must be non-empty indices in [0, {c}) for logits with C={c}, got {classes!r}")
    return idx


def _vector(v, c: int, name: str, like: Tensor) -> Optional[Tensor]:
    """A length-C per-class vector (class_weight, ce_weight, alpha) as a tensor of the sums' dtype."""
    if v is None:
        return None
    if isinstance(v, Tensor):
        if v.device != like.device:
            raise ValueError(f"{name} is on {v.device} but logits is on {like.device}; move them to the same device")
        t = v.to(like.dtype)
    else:
        try:
            t = torch.as_tensor([float(a) for a in v], dtype=like.dtype, device=like.device)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a sequence of numbers or a tensor, got {v!r}") from None
    if tuple(t.shape) != (c,):
        raise ValueError(f"{name} must have shape ({c},) (one value per class), got {shape_str(t)}")
    return t


def _smooth_eps(smooth, eps) -> tuple[float, float]:
    smooth = finite_float(smooth, "smooth")
    eps = finite_float(eps, "eps")
    if smooth < 0 or eps < 0:
        raise ValueError(f"smooth and eps must be >= 0, got smooth={smooth}, eps={eps}")
    return smooth, eps


# ---- finishing on (N, C) tensors --------------------------------------------------------------

def _pooled(sums: Tensor, idx: Optional[list], per_image: bool) -> tuple[Tensor, Tensor, Tensor]:
    """I, P, T as (rows, classes): rows = images, or 1 pooled row."""
    if idx is not None:
        sums = sums[:, idx]
    if not per_image:
        sums = sums.sum(0, keepdim=True)
    return sums[..., 0], sums[..., 1], sums[..., 2]


def _ratio(num: Tensor, den: Tensor, total: Tensor, eps: float) -> Tensor:
    """num / max(den, eps); exactly 1 (zero gradient) where total == 0; 0 where the clamped den is 0."""
    empty = total == 0
    den = den.clamp_min(eps)
    ok = (den > 0) & ~empty
    safe = torch.where(ok, den, torch.ones_like(den))
    return torch.where(empty, torch.ones_like(num), torch.where(ok, num / safe, torch.zeros_like(num)))


def _score(kind: str, inter: Tensor, psum: Tensor, tsum: Tensor, smooth_num: float, smooth_den: float, eps: float,
           alpha: float = 0.5, beta: float = 0.5) -> Tensor:
    if kind == "dice":
        num, den = 2 * inter + smooth_num, psum + tsum + smooth_den
    elif kind == "jaccard":
        num, den = inter + smooth_num, psum + tsum - inter + smooth_den
    else:  # tversky: false positives P - I, false negatives T - I
        num = inter + smooth_num
        den = inter + alpha * (psum - inter) + beta * (tsum - inter) + smooth_den
    return _ratio(num, den, psum + tsum, eps)


def _to_loss(score: Tensor, log_loss: bool, gamma: float, eps: float) -> Tensor:
    if log_loss:
        return -torch.log(score.clamp_min(max(eps, _TINY)))
    d = 1 - score
    if gamma == 1.0:
        return d
    pos = d > 0  # (1 - score)^gamma, 0 at a perfect score, with a finite gradient for any gamma
    return torch.where(pos, torch.where(pos, d, torch.ones_like(d)) ** gamma, torch.zeros_like(d))


def _reduce(loss: Tensor, cw: Optional[Tensor], reduction: str) -> Tensor:
    if cw is not None:
        loss = loss * cw
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if cw is None:
        return loss.mean()
    return loss.sum() / (loss.shape[0] * cw.sum()).clamp_min(_TINY)


def _row_mean(loss: Tensor, cw: Optional[Tensor]) -> Tensor:
    """Per-row (image) class average of ``_reduce(..., "none")`` values."""
    if cw is None:
        return loss.mean(1)
    return loss.sum(1) / cw.sum().clamp_min(_TINY)


def _region(kind, logits, target, *, mode, smooth, eps, squared, per_image, weight, class_weight, classes,
            ignore_index, from_logits, log_loss, reduction, alpha=0.5, beta=0.5, gamma=1.0, pixel=PIXEL_NONE,
            focal_alpha=-1.0, focal_gamma=0.0):
    """(region loss reduced, sums, kept class index, class weights of the kept classes)."""
    check_reduction(reduction)
    smooth, eps = _smooth_eps(smooth, eps)
    sums = _sums(logits, target, mode=mode, weight=weight, ignore_index=ignore_index, from_logits=from_logits,
                 squared=squared, pixel=pixel, alpha=focal_alpha, gamma=focal_gamma)
    c = logits.shape[1]
    idx = _class_index(classes, c)
    cw = _vector(class_weight, c, "class_weight", sums)
    if cw is not None and idx is not None:
        cw = cw[idx]
    inter, psum, tsum = _pooled(sums, idx, per_image)
    score = _score(kind, inter, psum, tsum, smooth, smooth, eps, alpha, beta)
    return _reduce(_to_loss(score, log_loss, gamma, eps), cw, reduction), sums, cw


# ---- the region losses -------------------------------------------------------------------------

def dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    from_logits: bool = True,
    log_loss: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Soft Dice loss ``1 - (2 I + smooth) / max(P + T + smooth, eps)`` per (image, class).

    Args:
        logits: ``(N, C, *spatial)`` float16/bfloat16/float32/float64, any strides.
        target: binary: ``(N, 1, *spatial)`` or ``(N, *spatial)`` mask (float soft labels,
            bool or integer); multilabel: a mask shaped like ``logits``; multiclass: integer
            labels ``(N, *spatial)`` (int64/int32/uint8), never one-hot encoded.
        mode: ``"binary"`` (C == 1, sigmoid), ``"multilabel"`` (sigmoid per channel) or
            ``"multiclass"`` (softmax over C).
        smooth, eps: ``(2 I + smooth) / max(P + T + smooth, eps)``.
        squared: denominators ``sum p^2 + sum t^2`` (V-Net / seed 000).
        per_image: ratio per image (True) or of the sums pooled over the batch (False).
        weight: per-pixel map (see the module notes). class_weight: length-C class weights.
        classes: class indices to keep (e.g. ``range(1, C)`` to leave out background).
        ignore_index: target value (binary/multilabel) or label (multiclass) to ignore.
        from_logits: False when ``logits`` already holds probabilities (seed 003).
        log_loss: ``-log(max(dice, eps))`` instead of ``1 - dice``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(N or 1, len(classes))``).

    Empty classes (``P + T == 0``) score 1: loss 0 with zero gradient, for any ``smooth``.
    """
    return _region("dice", logits, target, mode=mode, smooth=smooth, eps=eps, squared=squared, per_image=per_image,
                   weight=weight, class_weight=class_weight, classes=classes, ignore_index=ignore_index,
                   from_logits=from_logits, log_loss=log_loss, reduction=reduction)[0]


def jaccard_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    from_logits: bool = True,
    log_loss: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - (I + smooth) / max(P + T - I + smooth, eps)``.

    Same arguments and conventions as :func:`dice_loss`; with ``smooth=0``,
    ``jaccard = dice / (2 - dice)``. Empty classes score 1 (loss 0, zero gradient).
    """
    return _region("jaccard", logits, target, mode=mode, smooth=smooth, eps=eps, squared=squared,
                   per_image=per_image, weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, from_logits=from_logits, log_loss=log_loss, reduction=reduction)[0]


def tversky_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    from_logits: bool = True,
    log_loss: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Tversky loss ``(1 - TI)^gamma`` (focal Tversky for gamma != 1) with

        TI = (I + smooth) / max(I + alpha FP + beta FN + smooth, eps),  FP = P - I,  FN = T - I

    (``FP = sum w p (1 - t)``, ``FN = sum w (1 - p) t``; with ``squared`` the same
    P - I, T - I of the squared sums). ``alpha`` weighs false positives, ``beta`` false
    negatives; ``tversky(0.5, 0.5) == dice`` at ``smooth=0``. ``log_loss`` gives
    ``-log(TI)`` and needs ``gamma == 1``. Other arguments as in :func:`dice_loss`.
    ``(1 - TI)^gamma`` is taken as 0 with zero gradient at ``TI >= 1`` (finite for gamma < 1).
    """
    alpha, beta, gamma = (finite_float(v, k) for v, k in ((alpha, "alpha"), (beta, "beta"), (gamma, "gamma")))
    if alpha < 0 or beta < 0 or gamma <= 0:
        raise ValueError(f"tversky_loss needs alpha, beta >= 0 and gamma > 0, got {alpha}, {beta}, {gamma}")
    if log_loss and gamma != 1.0:
        raise ValueError(f"log_loss=True takes -log(TI) and cannot be combined with gamma={gamma}")
    return _region("tversky", logits, target, mode=mode, smooth=smooth, eps=eps, squared=squared,
                   per_image=per_image, weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, from_logits=from_logits, log_loss=log_loss, reduction=reduction,
                   alpha=alpha, beta=beta, gamma=gamma)[0]


def generalized_dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    from_logits: bool = True,
    log_loss: bool = False,
    reduction: str = "mean",
    weight_type: str = "square",
) -> Tensor:
    """Generalized Dice (Sudre et al. 2017; MONAI's ``GeneralizedDiceLoss``), one value per row:

        GD = 1 - (2 sum_c g_c I_c + smooth) / max(sum_c g_c (P_c + T_c) + smooth, eps)

    with ``g_c = class_weight_c / T_c^2`` (``weight_type="square"``; ``"simple"``: ``1 / T_c``,
    ``"uniform"``: 1) taken from the target, so constant for the gradient. As in MONAI, a
    class absent from the row's target (infinite weight) gets the row's largest finite
    weight. Rows are images (``per_image=True``) or the pooled batch. ``reduction="none"``
    returns ``(N,)`` or ``(1,)``. A row with ``sum_c g_c (P_c + T_c) == 0`` (e.g. no class
    present in its target) scores 1: loss 0, zero gradient. Other arguments as in
    :func:`dice_loss`.
    """
    if weight_type not in ("square", "simple", "uniform"):
        raise ValueError(f"weight_type must be 'square', 'simple' or 'uniform', got {weight_type!r}")
    check_reduction(reduction)
    smooth, eps = _smooth_eps(smooth, eps)
    sums = _sums(logits, target, mode=mode, weight=weight, ignore_index=ignore_index, from_logits=from_logits,
                 squared=squared)
    c = logits.shape[1]
    idx = _class_index(classes, c)
    cw = _vector(class_weight, c, "class_weight", sums)
    inter, psum, tsum = _pooled(sums, idx, per_image)
    ground = tsum.detach()
    absent = (ground == 0) & (weight_type != "uniform")  # where 1/T^2 (1/T) is infinite
    safe = torch.where(absent, torch.ones_like(ground), ground)
    gw = {"square": 1 / (safe * safe), "simple": 1 / safe, "uniform": torch.ones_like(safe)}[weight_type]
    gw = torch.where(absent, torch.zeros_like(gw), gw)
    gw = torch.where(absent, gw.amax(1, keepdim=True), gw)
    if cw is not None:
        gw = gw * (cw if idx is None else cw[idx])
    den = (gw * (psum + tsum)).sum(1)
    score = _ratio(2 * (gw * inter).sum(1) + smooth, den + smooth, den, eps)
    loss = _to_loss(score, log_loss, 1.0, eps)
    return _reduce(loss, None, reduction)


# ---- fused combos ------------------------------------------------------------------------------

def _pixel_reduce(term_sums: Tensor, counts: Tensor, reduction: str) -> Tensor:
    """Pixel-term sums and counts of shape (N, C) -> mean over counted pixels, sum, or per image."""
    if reduction == "sum":
        return term_sums.sum()
    if reduction == "none":
        return term_sums.sum(1) / counts.sum(1).clamp_min(_TINY)
    return term_sums.sum() / counts.sum().clamp_min(_TINY)


def _combo(region_none_or_reduced: Tensor, cw: Optional[Tensor], pixel: Tensor, lam_pixel: float,
           lam_region: float, reduction: str) -> Tensor:
    region = _row_mean(region_none_or_reduced, cw) if reduction == "none" else region_none_or_reduced
    return lam_pixel * pixel + lam_region * region


def _check_combo(reduction: str, per_image: bool, lambdas: dict) -> dict:
    check_reduction(reduction)
    if reduction == "none" and not per_image:
        raise ValueError("reduction='none' of a combined loss returns one value per image and needs per_image=True")
    return {k: finite_float(v, k) for k, v in lambdas.items()}


def bce_dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    lambda_bce: float = 1.0,
    lambda_dice: float = 1.0,
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    log_loss: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """``lambda_bce * BCE + lambda_dice * Dice`` from one read of the logits per pass (albu's BCEDice).

    BCE is the sigmoid cross entropy weighted by ``weight``, summed over every channel and
    divided by the number of non-ignored elements (``"mean"``; 0 when all are ignored) or
    summed (``"sum"``). Dice is :func:`dice_loss` with the same arguments (``classes`` and
    ``class_weight`` apply to the Dice term only). ``mode``: ``"binary"`` or ``"multilabel"``.
    ``reduction="none"`` (needs ``per_image=True``) returns ``(N,)``: each image's mean BCE
    plus its class-averaged Dice.
    """
    lam = _check_combo(reduction, per_image, {"lambda_bce": lambda_bce, "lambda_dice": lambda_dice})
    if mode not in ("binary", "multilabel"):
        raise ValueError(f"bce_dice_loss needs mode 'binary' or 'multilabel', got {mode!r}; "
                         f"use ce_dice_loss for multiclass")
    region, sums, cw = _region("dice", logits, target, mode=mode, smooth=smooth, eps=eps, squared=squared,
                               per_image=per_image, weight=weight, class_weight=class_weight, classes=classes,
                               ignore_index=ignore_index, from_logits=True, log_loss=log_loss,
                               reduction=reduction, pixel=PIXEL_XENT)
    bce = _pixel_reduce(sums[..., 3], sums[..., 4], reduction)
    return _combo(region, cw, bce, lam["lambda_bce"], lam["lambda_dice"], reduction)


def ce_dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    lambda_ce: float = 1.0,
    lambda_dice: float = 1.0,
    ce_weight: ClassWeight = None,
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[int] = None,
    log_loss: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """``lambda_ce * CE + lambda_dice * Dice`` for integer labels; one softmax serves both terms.

    CE: per pixel ``-log softmax(x)_y`` times the pixel ``weight`` (at the label's channel)
    times ``ce_weight[y]``; ``"mean"`` divides by ``sum ce_weight[y]`` over non-ignored
    pixels (torch's ``cross_entropy`` semantics; 0 when all are ignored), ``"sum"`` sums.
    Dice: :func:`dice_loss` with ``mode="multiclass"`` and the same arguments.
    ``reduction="none"`` (needs ``per_image=True``) returns ``(N,)``.
    """
    lam = _check_combo(reduction, per_image, {"lambda_ce": lambda_ce, "lambda_dice": lambda_dice})
    region, sums, cw = _region("dice", logits, target, mode="multiclass", smooth=smooth, eps=eps, squared=squared,
                               per_image=per_image, weight=weight, class_weight=class_weight, classes=classes,
                               ignore_index=ignore_index, from_logits=True, log_loss=log_loss,
                               reduction=reduction, pixel=PIXEL_XENT)
    cew = _vector(ce_weight, logits.shape[1], "ce_weight", sums)
    term, counts = sums[..., 3], sums[..., 4]
    if cew is not None:
        term, counts = term * cew, counts * cew
    ce = _pixel_reduce(term, counts, reduction)
    return _combo(region, cw, ce, lam["lambda_ce"], lam["lambda_dice"], reduction)


def dice_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    alpha: Union[float, Sequence[float], Tensor, None] = 0.25,
    gamma: float = 2.0,
    smooth: float = 0.0,
    eps: float = 1e-7,
    squared: bool = False,
    per_image: bool = False,
    weight: Optional[Tensor] = None,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    log_loss: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """``lambda_dice * Dice + lambda_focal * Focal`` from one read of the logits per pass (MONAI's DiceFocal).

    Focal, binary/multilabel: torchvision's sigmoid focal loss
    ``alpha_t (1 - p_t)^gamma BCE`` with ``alpha_t = alpha t + (1 - alpha)(1 - t)``;
    ``alpha=None`` or negative disables it. Multiclass: ``-alpha_y (1 - p_y)^gamma log p_y``
    with ``alpha`` a number (the same for every class), a length-C sequence, or None (1).
    The focal term is weighted by ``weight`` and averaged over non-ignored elements
    (``"mean"``; MONAI's softmax focal also divides by C) or summed. Dice: :func:`dice_loss`
    with the same arguments. ``reduction="none"`` (needs ``per_image=True``) returns ``(N,)``.
    """
    lam = _check_combo(reduction, per_image, {"lambda_dice": lambda_dice, "lambda_focal": lambda_focal})
    gamma = finite_float(gamma, "gamma")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    c = logits.shape[1] if isinstance(logits, Tensor) and logits.dim() >= 2 else 0
    class_alpha = None
    kernel_alpha = -1.0
    if mode == "multiclass":
        if alpha is not None and not isinstance(alpha, Tensor) and not isinstance(alpha, (list, tuple)):
            a = finite_float(alpha, "alpha")
            class_alpha = None if a < 0 else [a] * c
        else:
            class_alpha = alpha
    elif alpha is not None:
        if isinstance(alpha, (Tensor, list, tuple)):
            raise TypeError(f"alpha must be a number or None for mode={mode!r} (per-class alpha is multiclass only)")
        kernel_alpha = finite_float(alpha, "alpha")
    region, sums, cw = _region("dice", logits, target, mode=mode, smooth=smooth, eps=eps, squared=squared,
                               per_image=per_image, weight=weight, class_weight=class_weight, classes=classes,
                               ignore_index=ignore_index, from_logits=True, log_loss=log_loss,
                               reduction=reduction, pixel=PIXEL_FOCAL, focal_alpha=kernel_alpha, focal_gamma=gamma)
    term = sums[..., 3]
    ca = _vector(class_alpha, c, "alpha", sums)
    if ca is not None:
        term = term * ca
    focal = _pixel_reduce(term, sums[..., 4], reduction)
    return _combo(region, cw, focal, lam["lambda_focal"], lam["lambda_dice"], reduction)


# ---- internal interface for seed 001's boundary-weighted BCE + Dice ----------------------------

def bce_dice_terms(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Optional[Tensor] = None,
    smooth_num: float = 1.0,
    smooth_den: float = 1.0,
    ignore_index: Optional[float] = None,
) -> tuple[Tensor, Tensor]:
    """(bce, dice_loss) of binary logits ``(N, 1, *spatial)`` from one fused pass (internal).

        bce       = sum(w * l) / #non-ignored pixels          (l: BCE with logits; w = 1 if None)
        dice_loss = 1 - mean_n (2 sum w^2 p t + smooth_num) / (sum w^2 p + sum w^2 t + smooth_den)

    with p = sigmoid(logits). An image with ``sum w^2 p + sum w^2 t == 0`` scores 1. Seed
    001's SoftDiceLoss is ``smooth_num=2, smooth_den=1``. Both outputs are differentiable
    w.r.t. ``logits``.
    """
    sn = finite_float(smooth_num, "smooth_num")
    sd = finite_float(smooth_den, "smooth_den")
    sums = _sums(logits, target, mode="binary", weight=weight, ignore_index=ignore_index, w_pow=(2, 2),
                 pixel=PIXEL_XENT)
    bce = sums[..., 3].sum() / sums[..., 4].sum().clamp_min(1)
    inter, psum, tsum = sums[:, 0, 0], sums[:, 0, 1], sums[:, 0, 2]
    score = _ratio(2 * inter + sn, psum + tsum + sd, psum + tsum, 0.0)
    return bce, 1 - score.mean()
