"""Soft-overlap (Dice) family: Dice, Jaccard, Tversky, generalized Dice and the fused
BCE + Dice, CE + Dice and Dice + focal combos.

Every loss here is one custom op (``triton_segloss::dice``, see ``ops.py``): one read
of the inputs gives five sums per (image n, class c)::

    I = sum w p t,   P = sum w p,   T = sum w t   (P = sum w p^2, T = sum w t^2 when squared)
    L = sum w l (the combos' pixel term),   n = valid pixels

and one finisher turns them into the loss and the gradient coefficients; the
backward is one more pass over the inputs. Three launches per training step.

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
* ``process_group`` (a ``torch.distributed`` group, e.g. ``torch.distributed.group.WORLD``;
  None: no sync) pools the batch across the ranks: the per-class sums of every rank's shard
  are all-reduced before the ratio, so every rank gets the loss of the whole global batch
  (``per_image=False`` only; shards may differ in size). The backward all-reduces the
  upstream gradient: each rank's logits gradient is ``world_size`` times the derivative of
  the global loss with respect to its shard, so DDP's averaging gives exactly the
  single-process gradient of the whole batch.
* Losses come back in float32 (float64 for float64 logits); the gradient has the
  logits' dtype and layout.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.dist import group_name
from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_binary_values, check_label_values, check_logits, check_probabilities, check_reduction,
    finite_float, multiclass_target_ns, pixel_map_ncs, shape_str,
)

from .ops import DiceOptions, device_table, dice

__all__ = [
    "dice_loss", "jaccard_loss", "tversky_loss", "generalized_dice_loss",
    "bce_dice_loss", "ce_dice_loss", "dice_focal_loss", "mcc_loss",
]

MODES = ("binary", "multiclass", "multilabel")

ClassWeight = Union[Sequence[float], Tensor, None]


# ---- argument checks, then the op ---------------------------------------------------------------

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
    if multiclass and not v.is_integer():
        raise ValueError(f"ignore_index must be an integer label for mode='multiclass', got {ignore_index!r}")
    return v


def _weight_ncs(logits: Tensor, weight: Optional[Tensor]) -> Optional[Tensor]:
    if isinstance(weight, Tensor) and weight.dim() == logits.dim() - 1 and \
            tuple(weight.shape) == (logits.shape[0], *logits.shape[2:]):
        weight = weight.unsqueeze(1)  # an (N, *spatial) map: one weight per pixel, every class
    return pixel_map_ncs(logits, weight, "weight")


def _class_index(classes, c: int) -> Optional[tuple]:
    if classes is None:
        return None
    if isinstance(classes, Tensor):
        classes = classes.tolist()
    try:
        idx = tuple(int(k) for k in classes)
    except (TypeError, ValueError):
        raise TypeError(f"classes must be a sequence of class indices, got {classes!r}") from None
    bad = [k for k in idx if not 0 <= k < c]
    if bad or not idx:
        raise ValueError(f"classes must be non-empty indices in [0, {c}) for logits with C={c}, got {classes!r}")
    if len(set(idx)) != len(idx):
        raise ValueError(f"classes must not repeat a class, got {classes!r}")
    return idx


def _class_vector(v, c: int, name: str, logits: Tensor) -> tuple[Optional[Tensor], Optional[tuple]]:
    """A length-C per-class vector (class_weight, ce_weight, alpha): (tensor, None) for a tensor,
    read in place by the kernels; (None, values) for a sequence (a device copy is cached per value)."""
    if v is None:
        return None, None
    if isinstance(v, Tensor):
        if v.device != logits.device:
            raise ValueError(f"{name} is on {v.device} but logits is on {logits.device}; move them to the same device")
        if v.is_complex():
            raise TypeError(f"{name} must be a real tensor, got dtype {v.dtype}")
        if tuple(v.shape) != (c,):
            raise ValueError(f"{name} must have shape ({c},) (one value per class), got {shape_str(v)}")
        return (v.view(torch.uint8) if v.dtype == torch.bool else v), None
    try:
        values = tuple(float(a) for a in v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers or a tensor, got {v!r}") from None
    if len(values) != c:
        raise ValueError(f"{name} must have shape ({c},) (one value per class), got ({len(values)})")
    return None, values


def _smooth_eps(smooth, eps) -> tuple[float, float]:
    smooth = finite_float(smooth, "smooth")
    eps = finite_float(eps, "eps")
    if smooth < 0 or eps < 0:
        raise ValueError(f"smooth and eps must be >= 0, got smooth={smooth}, eps={eps}")
    return smooth, eps


def _run(logits: Tensor, target: Tensor, *, mode: str, weight=None, ignore_index=None, from_logits=True,
         classes=None, class_weight: ClassWeight = None, pixel_class_weight: ClassWeight = None,
         pixel_class_weight_name: str = "ce_weight", pos_weight=None, process_group=None, **options) -> Tensor:
    """Checks the inputs, builds the options and runs the op: the loss in its layout (``ops.out_shape``)."""
    check_logits(logits)
    group = group_name(process_group)
    if group is not None and options.get("per_image", False):
        raise ValueError("process_group pools the batch across ranks and needs per_image=False; per-image losses "
                         "need no sync (DDP's gradient averaging already matches the whole batch's mean)")
    _check_mode(mode, logits)
    multiclass = mode == "multiclass"
    n, c = logits.shape[:2]
    ig = _ignore(ignore_index, multiclass)
    if multiclass:
        t = multiclass_target_ns(logits, target)
        check_label_values(target, c, None if ig is None else int(ig))
    else:
        t = binary_target_ncs(logits, target)
        check_binary_values(target, ig)
    if options.get("pixel", "none") != "none" and not from_logits:
        raise ValueError("the fused pixel term (BCE / CE / focal) needs logits: from_logits must be True")
    if not from_logits:
        check_probabilities(logits)
    w = _weight_ncs(logits, weight)
    idx = _class_index(classes, c)
    cw, cw_list = _class_vector(class_weight, c, "class_weight", logits)
    pw, pw_list = _class_vector(pixel_class_weight, c, pixel_class_weight_name, logits)
    pb, pb_value = _pos_weight(pos_weight, c, logits)
    opts = DiceOptions(multiclass=multiclass, from_logits=bool(from_logits), ignore_index=ig, classes=idx,
                       class_weight_list=cw_list, pixel_class_weight_list=pw_list, pos_weight_value=pb_value,
                       process_group=group, **options)
    loss, _ = dice(as_ncs(logits, n, c), t, w, cw, pw, pb, opts)
    return loss


def _pos_weight(pos_weight, c: int, logits: Tensor) -> tuple[Optional[Tensor], float]:
    """BCE's pos_weight: a number (an option) or a length-C vector (a tensor read in place; a
    sequence is cached on the device once per value)."""
    if pos_weight is None:
        return None, 1.0
    if not isinstance(pos_weight, (Tensor, list, tuple)):
        return None, finite_float(pos_weight, "pos_weight")
    if isinstance(pos_weight, Tensor) and pos_weight.dim() == 0:
        raise TypeError("pos_weight must be a number or a length-C vector; pass a 0-d tensor as float(pos_weight)")
    t, values = _class_vector(pos_weight, c, "pos_weight", logits)
    return (t if t is not None else device_table(values, logits.device, torch.float64)), 1.0


def _lambdas(**lambdas) -> dict:
    out = {k: finite_float(v, k) for k, v in lambdas.items()}
    bad = {k: v for k, v in out.items() if v < 0}
    if bad:
        raise ValueError(f"the lambdas must be >= 0, got {bad}")
    return out


def _region(kind, logits, target, *, mode, smooth, eps, reduction, smooth_dr=None, zero_absent=False,
            average="macro", normalize_class_weight=True, **kw) -> Tensor:
    check_reduction(reduction)
    smooth, eps = _smooth_eps(smooth, eps)
    if smooth_dr is None:
        sd = smooth
    else:
        sd = finite_float(smooth_dr, "smooth_dr")
        if sd < 0:
            raise ValueError(f"smooth_dr must be >= 0 (or None: the same as smooth), got {smooth_dr}")
    if average not in ("macro", "micro"):
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    if kind == "generalized" and (zero_absent or average != "macro"):
        raise ValueError("generalized_dice_loss pools the classes with its own weights: zero_absent and "
                         "average='micro' do not apply")
    return _run(logits, target, mode=mode, kind=kind, smooth_num=smooth, smooth_den=sd, eps=eps,
                reduction=reduction, zero_absent=bool(zero_absent), micro=average == "micro",
                normalize_class_weight=bool(normalize_class_weight), **kw)


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
    smooth_dr: Optional[float] = None,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    soft_label: bool = False,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
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
        weight: per-pixel map (see the module notes). class_weight: length-C class weights
            (a sequence, or a tensor that gets no gradient).
        classes: class indices to keep (e.g. ``range(1, C)`` to leave out background).
        ignore_index: target value (binary/multilabel) or label (multiclass) to ignore.
        from_logits: False when ``logits`` already holds probabilities (seed 003).
        log_loss: ``-log(max(dice, eps))`` instead of ``1 - dice``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(N or 1, len(classes))``).
        soft_label: soft (non 0/1) targets: ``I = sum w min(p, t) = (P + T - sum w |p - t|) / 2``
            (MONAI's ``soft_label``, smp's intersection); the same as ``sum w p t`` for 0/1 targets
            and for ``squared`` (then ``(P + T - sum w (p - t)^2) / 2``). Binary and multilabel.
        process_group: pool the batch across the ranks of this ``torch.distributed`` group
            (``per_image=False``; see the module notes). None: this rank's batch only.

    Empty classes (``P + T == 0``) score 1: loss 0 with zero gradient, for any ``smooth``.

    Example:
        >>> import torch, triton_segloss as tsl
        >>> x = torch.full((1, 1, 2, 2), 20.0)
        >>> float(tsl.dice_loss(x, torch.ones(1, 1, 2, 2))) < 1e-6
        True
    """
    return _region("dice", logits, target, mode=mode, smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, from_logits=from_logits, log_loss=bool(log_loss),
                   reduction=reduction, smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight, soft_label=bool(soft_label),
                   process_group=process_group)


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
    smooth_dr: Optional[float] = None,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    soft_label: bool = False,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - (I + smooth) / max(P + T - I + smooth, eps)``.

    Same arguments and conventions as :func:`dice_loss`; with ``smooth=0``,
    ``jaccard = dice / (2 - dice)``. Empty classes score 1 (loss 0, zero gradient).
    """
    return _region("jaccard", logits, target, mode=mode, smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, from_logits=from_logits, log_loss=bool(log_loss),
                   reduction=reduction, smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight, soft_label=bool(soft_label),
                   process_group=process_group)


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
    smooth_dr: Optional[float] = None,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    soft_label: bool = False,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
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
    return _region("tversky", logits, target, mode=mode, smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, from_logits=from_logits, log_loss=bool(log_loss),
                   reduction=reduction, alpha=alpha, beta=beta, gamma=gamma, smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight, soft_label=bool(soft_label),
                   process_group=process_group)


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
    smooth_dr: Optional[float] = None,
    soft_label: bool = False,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
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
    return _region("generalized", logits, target, mode=mode, smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, from_logits=from_logits, log_loss=bool(log_loss),
                   reduction=reduction, weight_type=weight_type, smooth_dr=smooth_dr, soft_label=bool(soft_label),
                   process_group=process_group)


# ---- fused combos ------------------------------------------------------------------------------

def _check_combo(reduction: str, per_image: bool, lambdas: dict) -> dict:
    check_reduction(reduction)
    if reduction == "none" and not per_image:
        raise ValueError("reduction='none' of a combined loss returns one value per image and needs per_image=True")
    return _lambdas(**lambdas)


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
    smooth_dr: Optional[float] = None,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    pos_weight: Union[float, Sequence[float], Tensor, None] = None,
    label_smoothing: float = 0.0,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
) -> Tensor:
    """``lambda_bce * BCE + lambda_dice * Dice`` from one read of the logits per pass (albu's BCEDice).

    BCE is the sigmoid cross entropy weighted by ``weight``, summed over every channel and
    divided by the number of non-ignored elements (``"mean"``; 0 when all are ignored) or
    summed (``"sum"``). Dice is :func:`dice_loss` with the same arguments (``classes`` and
    ``class_weight`` apply to the Dice term only). ``mode``: ``"binary"`` or ``"multilabel"``.
    ``reduction="none"`` (needs ``per_image=True``) returns ``(N,)``: each image's mean BCE
    plus its class-averaged Dice. ``pos_weight`` (a number or a length-C vector, one per
    channel) and ``label_smoothing`` (targets pulled to ``t (1 - ls) + ls / 2``) act on the BCE
    term only, as in :func:`bce_with_logits`:
    ``l = pos_weight s log(1 + e^-x) + (1 - s) log(1 + e^x)``. The lambdas must be >= 0.
    """
    label_smoothing = finite_float(label_smoothing, "label_smoothing")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    lam = _check_combo(reduction, per_image, {"lambda_bce": lambda_bce, "lambda_dice": lambda_dice})
    if mode not in ("binary", "multilabel"):
        raise ValueError(f"bce_dice_loss needs mode 'binary' or 'multilabel', got {mode!r}; "
                         f"use ce_dice_loss for multiclass")
    return _region("dice", logits, target, mode=mode, smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, log_loss=bool(log_loss), reduction=reduction, pixel="xent",
                   lambda_pixel=lam["lambda_bce"], lambda_region=lam["lambda_dice"], pos_weight=pos_weight,
                   label_smoothing=label_smoothing, smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight,
                   process_group=process_group)


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
    smooth_dr: Optional[float] = None,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    label_smoothing: float = 0.0,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
) -> Tensor:
    """``lambda_ce * CE + lambda_dice * Dice`` for integer labels; one softmax serves both terms.

    CE: per pixel ``-log softmax(x)_y`` times the pixel ``weight`` (at the label's channel)
    times ``ce_weight[y]``; ``"mean"`` divides by ``sum ce_weight[y]`` over non-ignored
    pixels (torch's ``cross_entropy`` semantics; 0 when all are ignored), ``"sum"`` sums.
    Dice: :func:`dice_loss` with ``mode="multiclass"`` and the same arguments.
    ``reduction="none"`` (needs ``per_image=True``) returns ``(N,)``. ``label_smoothing`` ``eps``
    (CE term only, torch's ``cross_entropy(label_smoothing=)`` and MONAI's ``DiceCELoss``):
    ``(1 - eps) ce_weight[y] (-log p_y) + eps / C sum_c ce_weight[c] (-log p_c)`` per pixel, the
    same denominator.
    """
    lam = _check_combo(reduction, per_image, {"lambda_ce": lambda_ce, "lambda_dice": lambda_dice})
    label_smoothing = finite_float(label_smoothing, "label_smoothing")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    return _region("dice", logits, target, mode="multiclass", smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, log_loss=bool(log_loss), reduction=reduction, pixel="xent",
                   pixel_class_weight=ce_weight, pixel_weighs_count=True, lambda_pixel=lam["lambda_ce"],
                   lambda_region=lam["lambda_dice"], label_smoothing=label_smoothing, smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight,
                   process_group=process_group)


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
    smooth_dr: Optional[float] = None,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    focal_use_softmax: bool = True,
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
) -> Tensor:
    """``lambda_dice * Dice + lambda_focal * Focal`` from one read of the logits per pass (MONAI's DiceFocal).

    Focal, binary/multilabel: torchvision's sigmoid focal loss
    ``alpha_t (1 - p_t)^gamma BCE`` with ``alpha_t = alpha t + (1 - alpha)(1 - t)``;
    ``alpha=None`` or negative disables it. Multiclass: ``-alpha_y (1 - p_y)^gamma log p_y``
    with ``alpha`` a number (the same for every class), a length-C sequence, or None (1).
    The focal term is weighted by ``weight`` and averaged over non-ignored elements
    (``"mean"``; MONAI's softmax focal also divides by C) or summed. Dice: :func:`dice_loss`
    with the same arguments. ``reduction="none"`` (needs ``per_image=True``) returns ``(N,)``.
    ``focal_use_softmax=False`` (multiclass): the focal term is torchvision's sigmoid focal loss
    of every channel against the one-hot channels of the labels (``alpha`` a number or None),
    ``"mean"`` over non-ignored pixels x C, as MONAI's ``DiceFocalLoss(use_softmax=False)``;
    the Dice term keeps the softmax. The lambdas must be >= 0.
    """
    lam = _check_combo(reduction, per_image, {"lambda_dice": lambda_dice, "lambda_focal": lambda_focal})
    gamma = finite_float(gamma, "gamma")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    class_alpha = None
    scalar_alpha = None
    sfocal = mode == "multiclass" and not focal_use_softmax
    if sfocal:
        if isinstance(alpha, (Tensor, list, tuple)):
            raise TypeError("alpha must be a number or None with focal_use_softmax=False")
        scalar_alpha = None if alpha is None else finite_float(alpha, "alpha")
    elif mode == "multiclass":
        if alpha is not None and not isinstance(alpha, (Tensor, list, tuple)):
            a = finite_float(alpha, "alpha")
            scalar_alpha = None if a < 0 else a  # the same alpha for every class: a scale of the term
        else:
            class_alpha = alpha
    elif alpha is not None:
        if isinstance(alpha, (Tensor, list, tuple)):
            raise TypeError(f"alpha must be a number or None for mode={mode!r} (per-class alpha is multiclass only)")
        scalar_alpha = finite_float(alpha, "alpha")
    return _region("dice", logits, target, mode=mode, smooth=smooth, eps=eps, squared=bool(squared),
                   per_image=bool(per_image), weight=weight, class_weight=class_weight, classes=classes,
                   ignore_index=ignore_index, log_loss=bool(log_loss), reduction=reduction, pixel="sfocal" if sfocal else "focal",
                   focal_alpha=scalar_alpha, focal_gamma=gamma, pixel_class_weight=class_alpha,
                   pixel_class_weight_name="alpha", lambda_pixel=lam["lambda_focal"],
                   lambda_region=lam["lambda_dice"], smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight,
                   process_group=process_group)


def mcc_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    eps: float = 1e-5,
    per_image: bool = False,
    class_weight: ClassWeight = None,
    classes: Optional[Sequence[int]] = None,
    ignore_index: Optional[float] = None,
    from_logits: bool = True,
    zero_absent: bool = False,
    average: str = "macro",
    normalize_class_weight: bool = True,
    reduction: str = "mean",
    process_group: Optional["torch.distributed.ProcessGroup"] = None,
) -> Tensor:
    """Matthews correlation loss ``1 - MCC`` of the soft confusion counts (smp's ``MCCLoss``)::

        TP = I + eps,  FP = P - I + eps,  FN = T - I + eps,  TN = n - P - T + I + eps
        MCC = (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))

    per (row, class) from the same sums as :func:`dice_loss` (n: the valid pixels of the row).
    smp's ``MCCLoss`` is ``mcc_loss(probs, target, from_logits=False)`` in binary mode with the
    batch pooled (smp takes probabilities). A class's MCC is 0 (loss 1, zero gradient) where the
    product under the root is 0 (possible only with ``eps=0``). There is no empty-class rule
    (with eps > 0 an empty class has a finite MCC); ``zero_absent`` sets the loss of classes
    absent from the target to 0. Other arguments as in :func:`dice_loss`.
    """
    eps = finite_float(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _region("mcc", logits, target, mode=mode, smooth=0.0, eps=eps, per_image=bool(per_image),
                   class_weight=class_weight, classes=classes, ignore_index=ignore_index, from_logits=from_logits,
                   reduction=reduction, zero_absent=zero_absent, average=average,
                   normalize_class_weight=normalize_class_weight,
                   process_group=process_group)


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
    w.r.t. ``logits`` (the two elements of one op output ``[bce, dice_loss]``).
    """
    sn = finite_float(smooth_num, "smooth_num")
    sd = finite_float(smooth_den, "smooth_den")
    out = _run(logits, target, mode="binary", weight=weight, ignore_index=ignore_index, w_pow_i=2, w_pow_pt=2,
               pixel="xent", kind="dice", smooth_num=sn, smooth_den=sd, eps=0.0, per_image=True, split=True)
    bce, dice_term = out.unbind(0)  # one stack in backward (two indexed views would cost three ops)
    return bce, dice_term
