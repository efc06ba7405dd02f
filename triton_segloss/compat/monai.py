"""MONAI (1.6) segmentation losses on triton_segloss's fused kernels.

Same class names, constructor signatures, defaults, input conventions and output shapes as
``monai.losses``: ``input`` is ``(B, C, *spatial)``; ``target`` is either a one-hot / mask
tensor shaped like ``input`` or, with ``to_onehot_y=True``, a ``(B, 1, *spatial)`` tensor of
labels (float, as MONAI's transforms give them: turned into int64 by one ``.long()``).

How the activations map (MONAI applies them before the loss, we fuse them):

* ``sigmoid=True`` -> the sigmoid modes (``binary`` for C == 1, ``multilabel`` for masks),
  fused; with label targets the sigmoid is applied first (one op) and the labels are read
  by ``mode="multiclass", from_logits=False``: never one-hot encoded.
* ``softmax=True`` -> ``mode="multiclass"`` (fused softmax) with label targets; with one-hot
  targets the softmax is one op and the sums come from ``mode="multilabel",
  from_logits=False`` (exact, soft targets included).
* ``other_act`` (any callable) -> applied, then ``from_logits=False``; no activation ->
  ``from_logits=False`` (the input must then hold probabilities in [0, 1]).

Options whose MONAI semantics the core cannot express raise ``NotImplementedError`` naming
the option (docs/MIGRATION.md lists them). Losses come back in float32 (float64 for float64
inputs).
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from triton_segloss import functional as F
from ._patch import has_option, need

__all__ = ["DiceLoss", "DiceCELoss", "DiceFocalLoss", "GeneralizedDiceLoss", "TverskyLoss", "FocalLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(r) -> str:
    r = getattr(r, "value", r)
    if r not in _REDUCTIONS:
        raise ValueError(f'Unsupported reduction: {r}, available options are ["mean", "sum", "none"].')
    return r


def _check_act(sigmoid, softmax, other_act):
    if other_act is not None and not callable(other_act):
        raise TypeError(f"other_act must be None or callable but is {type(other_act).__name__}.")
    if int(sigmoid) + int(softmax) + int(other_act is not None) > 1:
        raise ValueError("Incompatible values: more than 1 of [sigmoid=True, softmax=True, other_act is not None].")


def _values(w) -> Optional[Union[float, tuple]]:
    """A weight option as Python numbers (a constant: made a device table once by the core)."""
    if w is None:
        return None
    if isinstance(w, Tensor):
        w = w.detach().cpu()
        return float(w) if w.dim() == 0 else tuple(float(v) for v in w.reshape(-1))
    if isinstance(w, (int, float)):
        return float(w)
    return tuple(float(v) for v in w)


def _reload_values(module: nn.Module, buffer: str) -> None:
    """Keep ``module._weight`` (the weight as Python numbers, a constant for the kernels) equal to the
    buffer after ``load_state_dict``, as MONAI's forward reads its buffer: a loaded checkpoint decides
    the loss. (Values are read once at load time, never per step.)"""
    def hook(mod, incompatible_keys):
        mod._weight = _values(getattr(mod, buffer))

    module.register_load_state_dict_post_hook(hook)


def _labels(target: Tensor) -> Tensor:
    """MONAI's (B, 1, *spatial) float labels as int64 (the one extra op of label targets)."""
    return target if target.dtype in (torch.int64, torch.int32, torch.uint8) else target.long()


class _Overlap(nn.Module):
    """What MONAI's DiceLoss / TverskyLoss / GeneralizedDiceLoss share: the activation and
    target routing, include_background, batch, smooth_nr / smooth_dr."""

    def _route(self, input: Tensor, target: Tensor, *, allow_ignore=True):
        """(x, target, kwargs) for a Dice-family core function."""
        name = type(self).__name__
        c = input.shape[1]
        if self.softmax and c == 1:
            warnings.warn("single channel prediction, `softmax=True` ignored.", stacklevel=3)
        labels = self.to_onehot_y and c > 1
        if self.to_onehot_y and c == 1:
            warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=3)
        kw = {}
        x = input
        if labels:
            target = _labels(target)
            kw["mode"] = "multiclass"
            if self.softmax:
                kw["from_logits"] = True
            else:
                x = torch.sigmoid(x) if self.sigmoid else (self.other_act(x) if self.other_act else x)
                kw["from_logits"] = False
        else:
            if target.shape != input.shape:
                raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) from input "
                                 f"({tuple(input.shape)})")
            kw["mode"] = "binary" if c == 1 else "multilabel"
            if self.sigmoid:
                kw["from_logits"] = True
            else:
                if self.softmax and c > 1:
                    x = torch.softmax(x, 1)
                elif self.other_act is not None:
                    x = self.other_act(x)
                kw["from_logits"] = False
        ii = getattr(self, "ignore_index", None)
        if ii is not None:
            if not labels and c > 1:
                raise NotImplementedError(f"{name}: ignore_index with one-hot targets (MONAI masks the pixels "
                                          f"of channel ignore_index) is not expressible; pass label targets "
                                          f"with to_onehot_y=True")
            kw["ignore_index"] = ii
        if not self.include_background:
            if c == 1:
                warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=3)
            else:
                kw["classes"] = tuple(range(1, c))
        kw["per_image"] = not self.batch
        if self.soft_label:
            need(name, self._fn(), "soft_label", "soft_label=True")
            kw["soft_label"] = True
        return x, target, kw

    def _none_shape(self, loss: Tensor, input: Tensor) -> Tensor:
        return loss.reshape(tuple(loss.shape) + (1,) * (input.dim() - 2))


class DiceLoss(_Overlap):
    """MONAI's ``DiceLoss``: ``1 - (2 I + smooth_nr) / (P + T + smooth_dr)`` per (image, class)
    (per class of the pooled batch with ``batch=True``); ``jaccard=True``:
    ``1 - (2 I + smooth_nr) / (2 (P + T - I) + smooth_dr)``, i.e. our Jaccard with ``smooth``
    and ``smooth_dr`` halved. ``weight`` multiplies the class losses and ``"mean"`` divides by
    rows x classes (``normalize_class_weight=False``). ``reduction="none"``: ``(B, C, 1, ...)``,
    ``(C, 1, ...)`` with ``batch=True``. On :func:`triton_segloss.dice_loss` /
    :func:`triton_segloss.jaccard_loss`; extra ops: the ``.long()`` of label targets, the
    activation where it cannot be fused (see the module notes)."""

    def __init__(self, include_background: bool = True, to_onehot_y: bool = False, sigmoid: bool = False,
                 softmax: bool = False, other_act: Optional[Callable] = None, squared_pred: bool = False,
                 jaccard: bool = False, reduction: str = "mean", smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False,
                 weight: Union[Sequence[float], float, int, Tensor, None] = None, soft_label: bool = False,
                 ignore_index: Optional[int] = None) -> None:
        super().__init__()
        _check_act(sigmoid, softmax, other_act)
        self.reduction = _reduction(reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.squared_pred = squared_pred
        self.jaccard = jaccard
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = batch
        self.ignore_index = ignore_index
        self.register_buffer("class_weight", None if weight is None else torch.as_tensor(weight))
        self._weight = _values(weight)
        _reload_values(self, "class_weight")
        if isinstance(self._weight, tuple) and min(self._weight) < 0 or \
                isinstance(self._weight, float) and self._weight < 0:
            raise ValueError("the value/values of the `weight` should be no less than 0.")
        self.soft_label = soft_label

    def _fn(self):
        return F.jaccard_loss if self.jaccard else F.dice_loss

    def _class_weight(self, c: int, kw: dict):
        """MONAI's weight (length of the kept classes, or a number) as our length-C class_weight."""
        w = self._weight
        k = c if self.include_background or c == 1 else c - 1
        if w is None or k == 1:
            return
        if isinstance(w, float):
            w = (w,) * k
        if len(w) != k:
            raise ValueError("The length of the `weight` sequence should be the same as the number of classes. "
                             "If `include_background=False`, the weight should not include the background "
                             "category class 0.")
        kw["class_weight"] = w if k == c else (0.0,) + tuple(w)
        need(type(self).__name__, self._fn(), "normalize_class_weight", "weight")
        kw["normalize_class_weight"] = False

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        x, t, kw = self._route(input, target)
        fn = self._fn()
        h = 0.5 if self.jaccard else 1.0
        if self.smooth_nr != self.smooth_dr:
            need(type(self).__name__, fn, "smooth_dr", "smooth_nr != smooth_dr")
            kw["smooth_dr"] = h * self.smooth_dr
        self._class_weight(input.shape[1], kw)
        loss = fn(x, t, smooth=h * self.smooth_nr, eps=0.0, squared=bool(self.squared_pred),
                  reduction=self.reduction, **kw)
        if self.reduction == "none":
            return self._none_shape(loss[0] if self.batch else loss, input)
        return loss


class TverskyLoss(_Overlap):
    """MONAI's ``TverskyLoss``: ``1 - (I + smooth_nr) / (I + alpha FP + beta FN + smooth_dr)``
    on :func:`triton_segloss.tversky_loss`; ``reduction="none"`` returns ``(B, C)`` (``(C,)``
    with ``batch=True``), as MONAI does. Extra ops as for :class:`DiceLoss`."""

    def __init__(self, include_background: bool = True, to_onehot_y: bool = False, sigmoid: bool = False,
                 softmax: bool = False, other_act: Optional[Callable] = None, alpha: float = 0.5,
                 beta: float = 0.5, reduction: str = "mean", smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 batch: bool = False, soft_label: bool = False, ignore_index: Optional[int] = None) -> None:
        super().__init__()
        _check_act(sigmoid, softmax, other_act)
        self.reduction = _reduction(reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = batch
        self.soft_label = soft_label
        self.ignore_index = ignore_index

    def _fn(self):
        return F.tversky_loss

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        x, t, kw = self._route(input, target)
        if self.smooth_nr != self.smooth_dr:
            need(type(self).__name__, F.tversky_loss, "smooth_dr", "smooth_nr != smooth_dr")
            kw["smooth_dr"] = self.smooth_dr
        loss = F.tversky_loss(x, t, alpha=self.alpha, beta=self.beta, smooth=self.smooth_nr, eps=0.0,
                              reduction=self.reduction, **kw)
        if self.reduction == "none" and self.batch:
            return loss[0]
        return loss


class GeneralizedDiceLoss(_Overlap):
    """MONAI's ``GeneralizedDiceLoss`` (Sudre et al.) on :func:`triton_segloss.generalized_dice_loss`:
    ``1 - (2 sum_c w_c I_c + smooth_nr) / (sum_c w_c (P_c + T_c) + smooth_dr)`` per image (or
    the pooled batch), ``w`` from the target (``w_type``), an absent class taking the row's
    largest weight. ``reduction="none"``: ``(B, 1, 1, ...)``, ``(1, 1, ...)`` with ``batch``."""

    def __init__(self, include_background: bool = True, to_onehot_y: bool = False, sigmoid: bool = False,
                 softmax: bool = False, other_act: Optional[Callable] = None, w_type: str = "square",
                 reduction: str = "mean", smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 batch: bool = False, soft_label: bool = False) -> None:
        super().__init__()
        _check_act(sigmoid, softmax, other_act)
        self.reduction = _reduction(reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.w_type = str(getattr(w_type, "value", w_type))
        if self.w_type not in ("square", "simple", "uniform"):
            raise ValueError(f"w_type must be 'square', 'simple' or 'uniform', got {w_type!r}")
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = batch
        self.soft_label = soft_label

    def _fn(self):
        return F.generalized_dice_loss

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        x, t, kw = self._route(input, target)
        if self.smooth_nr != self.smooth_dr:
            need(type(self).__name__, F.generalized_dice_loss, "smooth_dr", "smooth_nr != smooth_dr")
            kw["smooth_dr"] = self.smooth_dr
        loss = F.generalized_dice_loss(x, t, smooth=self.smooth_nr, eps=0.0, weight_type=self.w_type,
                                       reduction=self.reduction, **kw)
        if self.reduction == "none":
            return loss.reshape((loss.shape[0],) + (1,) * (input.dim() - 1 - int(self.batch)))
        return loss


class FocalLoss(nn.Module):
    """MONAI's ``FocalLoss`` (``use_softmax=False``: sigmoid focal per channel, MONAI's default;
    ``True``: softmax focal) on :func:`triton_segloss.focal_loss`.

    MONAI's ``"mean"`` divides by every element of ``(B, C, *spatial)`` (C included), but with
    ``ignore_index`` by the non-ignored *pixels*; ``"sum"`` is the sum of the per-(image,
    class) spatial means. Both are rescalings of ours: folded into the softmax form's
    per-class alpha, or one extra op (``* C``, ``/ spatial size``). A per-class ``alpha`` in the
    sigmoid form (MONAI: ``alpha_c`` on positives, 1 on negatives), ``"sum"`` with
    ``ignore_index``, and ``"none"`` of the softmax form (MONAI returns ``(B, C, *spatial)``)
    are not expressible.
    """

    def __init__(self, include_background: bool = True, to_onehot_y: bool = False, gamma: float = 2.0,
                 alpha: Union[float, Sequence[float], None] = None,
                 weight: Union[Sequence[float], float, int, Tensor, None] = None, reduction: str = "mean",
                 use_softmax: bool = False, ignore_index: Optional[int] = None) -> None:
        super().__init__()
        self.reduction = _reduction(reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else (float(alpha) if isinstance(alpha, (int, float)) else
                                                 torch.as_tensor(alpha))
        self.weight = weight
        self.register_buffer("class_weight", None if weight is None else torch.as_tensor(weight))
        self._weight = _values(weight)
        _reload_values(self, "class_weight")
        self.use_softmax = use_softmax
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        name = type(self).__name__
        fn = F.focal_loss
        c = input.shape[1]
        labels = self.to_onehot_y and c > 1
        bg = self.include_background or c == 1
        red = self.reduction
        ii = self.ignore_index
        if ii is not None and red == "sum":
            raise NotImplementedError(f"{name}: reduction='sum' with ignore_index (MONAI normalises each image "
                                      f"by its own count) is not expressible")
        if ii is not None and not labels and c > 1:
            raise NotImplementedError(f"{name}: ignore_index with one-hot targets is not expressible; pass label "
                                      f"targets with to_onehot_y=True")
        spatial = input[0, 0].numel()
        if self.use_softmax:
            if not labels:
                raise NotImplementedError(f"{name}: use_softmax=True with one-hot targets is not expressible (our "
                                          f"softmax focal reads integer labels); use to_onehot_y=True")
            if not bg:
                raise NotImplementedError(f"{name}: use_softmax=True with include_background=False (MONAI's "
                                          f"softmax over the foreground channels only) is not expressible")
            if red == "none":
                raise NotImplementedError(f"{name}: reduction='none' with use_softmax=True (MONAI's (B, C, ...) "
                                          f"map) is not expressible")
            a = self.alpha
            a = None if a is None else (
                (1.0 - a,) + (a,) * (c - 1) if isinstance(a, float) else tuple(float(v) for v in a.reshape(-1)))
            w = self._weight
            if w is not None:
                w = (w,) * c if isinstance(w, float) else w
                if len(w) != c:
                    raise ValueError(f"The number of class_weight ({len(w)}) must match the number of output "
                                     f"channels ({c}).")
            # MONAI's "mean" divides by B * C * S (no ignore_index) or the valid pixels; "sum" by S per (b, c)
            scale = 1.0 / c if (red == "mean" and ii is None) else 1.0
            per = [scale * (1.0 if a is None else a[k]) * (1.0 if w is None else w[k]) for k in range(c)]
            alpha = per[0] if len(set(per)) == 1 else per
            loss = fn(input, _labels(target), mode="multiclass", alpha=alpha, gamma=self.gamma, ignore_index=ii,
                      reduction=red)
            return loss / spatial if red == "sum" else loss
        # sigmoid focal per channel
        if self.alpha is not None and not isinstance(self.alpha, float):
            raise NotImplementedError(f"{name}: a per-class alpha with use_softmax=False (MONAI: alpha_c on "
                                      f"positives, 1 on negatives) is not expressible")
        kw = dict(alpha=self.alpha, gamma=self.gamma)
        x = input
        if labels:
            if not bg:
                raise NotImplementedError(f"{name}: to_onehot_y with include_background=False and "
                                          f"use_softmax=False is not expressible")
            need(name, fn, "use_softmax", "the sigmoid focal on label targets (to_onehot_y=True)")
            kw.update(mode="multiclass", use_softmax=False, ignore_index=ii)
            target = _labels(target)
            k = c
        else:
            if target.shape != input.shape:
                raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) from input "
                                 f"({tuple(input.shape)})")
            if not bg:
                x, target = input[:, 1:], target[:, 1:]  # views
            k = x.shape[1]
            kw.update(mode="binary" if k == 1 else "multilabel", ignore_index=ii)
        w = self._weight
        if w is not None:
            if isinstance(w, tuple) and k == 1:
                raise ValueError("Per-class class_weight is not supported for single-channel outputs.")
            need(name, fn, "class_weight", "weight")
            kw["class_weight"] = w
        if red == "none":
            if labels:
                raise NotImplementedError(f"{name}: reduction='none' with label targets (MONAI's (B, C, ...) map) "
                                          f"is not expressible")
            return fn(x, target, reduction="none", **kw)
        if red == "sum":
            return fn(x, target, reduction="sum", **kw) / spatial
        loss = fn(x, target, reduction="mean", **kw)
        return loss * k if ii is not None else loss


def _check_lambdas(**lam):
    for k, v in lam.items():
        if v < 0.0:
            raise ValueError(f"{k} should be no less than 0.0.")


def _check_target(input: Tensor, target: Tensor):
    if input.dim() != target.dim():
        raise ValueError(f"the number of dimensions for input and target should be the same, got shape "
                         f"{tuple(input.shape)} and {tuple(target.shape)}. if target is not one-hot encoded, "
                         f"please provide a tensor with shape B1H[WD].")
    if target.shape[1] != 1 and target.shape[1] != input.shape[1]:
        raise ValueError(f"number of channels for target is neither 1 (without one-hot encoding) nor the same as "
                         f"input, got shape {tuple(input.shape)} and {tuple(target.shape)}.")


class DiceCELoss(nn.Module):
    """MONAI's ``DiceCELoss``: ``lambda_dice * Dice + lambda_ce * CE`` (BCE for C == 1) from one
    fused pass: :func:`triton_segloss.ce_dice_loss` (``softmax=True, to_onehot_y=True``, label
    targets: one ``.long()``) or :func:`triton_segloss.bce_dice_loss` (C == 1, ``sigmoid=True``).
    ``weight`` is the CE class weight and the Dice class weight (MONAI drops ``weight[0]`` for
    the Dice term without background; ours indexes by class, so it is the same vector).
    MONAI runs CE on the raw logits whatever the Dice activation: combinations where the two
    disagree (no activation, other_act, sigmoid with C > 1) and one-hot targets with C > 1 (a
    CE with probability targets) are not expressible; so is ``jaccard=True`` (no fused
    Jaccard + CE)."""

    def __init__(self, include_background: bool = True, to_onehot_y: bool = False, sigmoid: bool = False,
                 softmax: bool = False, other_act: Optional[Callable] = None, squared_pred: bool = False,
                 jaccard: bool = False, reduction: str = "mean", smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False, weight: Optional[Tensor] = None,
                 lambda_dice: float = 1.0, lambda_ce: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        _check_act(sigmoid, softmax, other_act)
        reduction = getattr(reduction, "value", reduction)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"Unsupported reduction: {reduction}, available options are ['mean', 'sum'].")
        _check_lambdas(lambda_dice=lambda_dice, lambda_ce=lambda_ce)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.squared_pred = squared_pred
        self.jaccard = jaccard
        self.reduction = reduction
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = batch
        self.register_buffer("weight", weight)
        self._weight = _values(weight)
        _reload_values(self, "weight")
        self.lambda_dice = float(lambda_dice)
        self.lambda_ce = float(lambda_ce)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        name = type(self).__name__
        _check_target(input, target)
        if self.jaccard:
            raise NotImplementedError(f"{name}: jaccard=True (Jaccard + CE) has no fused core loss")
        c = input.shape[1]
        kw = dict(smooth=self.smooth_nr, eps=0.0, squared=bool(self.squared_pred), per_image=not self.batch,
                  reduction=self.reduction)
        if c == 1:
            if not self.sigmoid:
                raise NotImplementedError(f"{name}: C == 1 needs sigmoid=True (MONAI's BCE reads logits, its Dice "
                                          f"the activated input)")
            fn = F.bce_dice_loss
            if self.weight is not None:
                need(name, fn, "pos_weight", "weight (the BCE pos_weight for C == 1)")
                kw["pos_weight"] = self.weight
            lam = dict(lambda_bce=self.lambda_ce, lambda_dice=self.lambda_dice)
            t = target
            kw["mode"] = "binary"
        else:
            if not (self.softmax and self.to_onehot_y):
                raise NotImplementedError(f"{name}: C > 1 needs softmax=True and to_onehot_y=True (label targets); "
                                          f"MONAI's CE with one-hot targets or a non-softmax Dice is not "
                                          f"expressible as one fused loss")
            fn = F.ce_dice_loss
            lam = dict(lambda_ce=self.lambda_ce, lambda_dice=self.lambda_dice)
            t = _labels(target)
            if self._weight is not None:
                w = self._weight
                kw["ce_weight"] = w
                if self.include_background or c > 2:  # MONAI ignores the Dice weight of one kept class
                    kw["class_weight"] = w
                    need(name, fn, "normalize_class_weight", "weight")
                    kw["normalize_class_weight"] = False
            if not self.include_background:
                kw["classes"] = tuple(range(1, c))
            if self.label_smoothing:
                need(name, fn, "label_smoothing", "label_smoothing")
                kw["label_smoothing"] = self.label_smoothing
        if self.smooth_nr != self.smooth_dr:
            need(name, fn, "smooth_dr", "smooth_nr != smooth_dr")
            kw["smooth_dr"] = self.smooth_dr
        return fn(input, t, **lam, **kw)


class DiceFocalLoss(nn.Module):
    """MONAI's ``DiceFocalLoss``: ``lambda_dice * Dice + lambda_focal * Focal`` (MONAI's focal is the
    sigmoid focal per channel) from one fused pass, :func:`triton_segloss.dice_focal_loss`:
    masks with ``sigmoid=True`` (``binary`` / ``multilabel``; without background both terms
    read the ``[:, 1:]`` views), or labels with ``to_onehot_y=True, softmax=True``
    (``mode="multiclass", focal_use_softmax=False``: the sigmoid focal on the one-hot channels,
    never materialised). Only ``reduction="mean"``; ``weight``, ``jaccard``, and the other
    activation combinations are not expressible yet."""

    def __init__(self, include_background: bool = True, to_onehot_y: bool = False, sigmoid: bool = False,
                 softmax: bool = False, other_act: Optional[Callable] = None, squared_pred: bool = False,
                 jaccard: bool = False, reduction: str = "mean", smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False, gamma: float = 2.0,
                 weight: Union[Sequence[float], float, int, Tensor, None] = None, lambda_dice: float = 1.0,
                 lambda_focal: float = 1.0, alpha: Optional[float] = None) -> None:
        super().__init__()
        _check_act(sigmoid, softmax, other_act)
        self.reduction = _reduction(reduction)
        _check_lambdas(lambda_dice=lambda_dice, lambda_focal=lambda_focal)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.squared_pred = squared_pred
        self.jaccard = jaccard
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = batch
        self.gamma = float(gamma)
        self.register_buffer("class_weight", None if weight is None else torch.as_tensor(weight))
        self.lambda_dice = float(lambda_dice)
        self.lambda_focal = float(lambda_focal)
        self.alpha = None if alpha is None else float(alpha)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        name = type(self).__name__
        _check_target(input, target)
        fn = F.dice_focal_loss
        if self.jaccard:
            raise NotImplementedError(f"{name}: jaccard=True (Jaccard + focal) has no fused core loss")
        if self.class_weight is not None:
            raise NotImplementedError(f"{name}: weight (class weights of both terms) is not expressible yet")
        if self.reduction != "mean":
            raise NotImplementedError(f"{name}: reduction={self.reduction!r} (MONAI's focal 'sum' of spatial "
                                      f"means, or the (B, C, ...) 'none' map) is not expressible")
        c = input.shape[1]
        kw = dict(alpha=self.alpha, gamma=self.gamma, smooth=self.smooth_nr, eps=0.0,
                  squared=bool(self.squared_pred), per_image=not self.batch, lambda_dice=self.lambda_dice,
                  lambda_focal=self.lambda_focal, reduction="mean")
        if self.smooth_nr != self.smooth_dr:
            need(name, fn, "smooth_dr", "smooth_nr != smooth_dr")
            kw["smooth_dr"] = self.smooth_dr
        if self.to_onehot_y and c > 1:
            if not self.softmax or not self.include_background:
                raise NotImplementedError(f"{name}: label targets need softmax=True and include_background=True")
            need(name, fn, "focal_use_softmax", "the sigmoid focal on label targets")
            return fn(input, _labels(target), mode="multiclass", focal_use_softmax=False, **kw)
        if not self.sigmoid:
            raise NotImplementedError(f"{name}: one-hot / mask targets need sigmoid=True (MONAI's focal is a "
                                      f"sigmoid on the logits)")
        if target.shape != input.shape:
            raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) from input "
                             f"({tuple(input.shape)})")
        x, t = (input, target) if self.include_background or c == 1 else (input[:, 1:], target[:, 1:])
        return fn(x, t, mode="binary" if x.shape[1] == 1 else "multilabel", **kw)
