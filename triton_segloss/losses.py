"""``nn.Module`` forms of the losses.

Every module has an explicit constructor: the keyword arguments of its functional, with the
same names and defaults (``mode`` first and positional where the functional has one, so
``DiceLoss("multiclass")`` works), visible to :func:`inspect.signature`, IDEs and
jsonargparse / LightningCLI. Construction checks the options that do not depend on the
input (mode, reduction, smoothing, exponents, ...) and raises the functional's own
``ValueError`` / ``TypeError`` there, not at the first forward; what depends on the input
(a class-weight length against C, a weight map against the logits' shape) is checked by the
functional at ``forward``.

Tensor options -- class weights, per-class alpha, ``pos_weight``, ``ce_weight``, pixel
weight maps -- are registered as persistent buffers, as ``nn.CrossEntropyLoss`` does with its
``weight``: they are in ``state_dict`` and follow ``.to()``, ``.cuda()``, ``.double()``. A
sequence of numbers given for one of them becomes a float64 buffer (the Python floats
exactly; ``.float()`` / ``.to(dtype)`` cast it like any floating buffer), so a module in
float64 gives the functional's float64 value. Other options are plain attributes, read at
every ``forward``. ``forward(logits, target)`` calls the functional with them.
"""

import inspect
from numbers import Real
from typing import Literal, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ._core.validate import check_reduction, finite_float, pair
from .bce import bce_with_logits
from .boundary import boundary_bce_dice_loss
from .ce import cross_entropy
from .dice import (
    bce_dice_loss, ce_dice_loss, dice_focal_loss, dice_loss, generalized_dice_loss, jaccard_loss, mcc_loss,
    tversky_loss,
)
from .focal import focal_loss
from .lovasz import lovasz_hinge, lovasz_softmax
from .ncut import ncut_loss
from .hausdorff import boundary_loss, dice_boundary_loss, hausdorff_dt_loss
from .cldice import cldice_loss, dice_cldice_loss

__all__ = [
    "BCEWithLogitsLoss", "DiceLoss", "GeneralizedDiceLoss", "JaccardLoss", "TverskyLoss", "FocalLoss",
    "LovaszHingeLoss", "LovaszSoftmaxLoss", "CrossEntropyLoss", "BCEDiceLoss", "CEDiceLoss", "DiceFocalLoss",
    "BoundaryBCEDiceLoss", "NCutLoss", "MCCLoss",
    "HausdorffDTLoss", "BoundaryLoss", "DiceBoundaryLoss", "ClDiceLoss", "DiceClDiceLoss",
]

try:  # a type for process_group= (torch builds without torch.distributed have no ProcessGroup)
    from torch.distributed import ProcessGroup
except ImportError:  # pragma: no cover
    ProcessGroup = object

Mode = Literal["binary", "multiclass", "multilabel"]
SigmoidMode = Literal["binary", "multilabel"]
Reduction = Literal["mean", "sum", "none"]
WeightType = Literal["square", "simple", "uniform"]
#: a per-class vector: a sequence of C numbers or a (C,) tensor
ClassWeight = Union[Sequence[float], Tensor, None]
#: focal alpha: a number (None or negative disables it), or one value per class
Alpha = Union[float, Sequence[float], Tensor, None]
Average = Literal["macro", "micro"]

MODES = ("binary", "multiclass", "multilabel")


# ---- option checks: the functionals' own rules and messages, for what needs no input -----------

def _mode(mode, modes=MODES) -> str:
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    return mode


def _reduction(reduction) -> str:
    check_reduction(reduction)
    return reduction


def _smooth_eps(smooth, eps) -> None:
    s, e = finite_float(smooth, "smooth"), finite_float(eps, "eps")
    if s < 0 or e < 0:
        raise ValueError(f"smooth and eps must be >= 0, got smooth={s}, eps={e}")


def _gamma(gamma) -> None:
    g = finite_float(gamma, "gamma")
    if g < 0:
        raise ValueError(f"gamma must be >= 0, got {g}")


def _region_ignore(ignore_index, mode: str) -> None:
    """The Dice family's rule: a finite number; an integer label in multiclass."""
    if ignore_index is None:
        return
    v = finite_float(ignore_index, "ignore_index")
    if mode == "multiclass" and not v.is_integer():
        raise ValueError(f"ignore_index must be an integer label for mode='multiclass', got {ignore_index!r}")


def _int_label(ignore_index, name: str = "ignore_index") -> None:
    """The CE family's rule: an int or None."""
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"{name} must be an int or None, got {ignore_index!r}")


def _classes(classes) -> Optional[tuple]:
    """The Dice family's class subset, as a tuple (the range against C is checked at forward)."""
    if classes is None:
        return None
    if isinstance(classes, Tensor):
        classes = classes.tolist()
    try:
        idx = tuple(int(k) for k in classes)
    except (TypeError, ValueError):
        raise TypeError(f"classes must be a sequence of class indices, got {classes!r}") from None
    if len(set(idx)) != len(idx):
        raise ValueError(f"classes must not repeat a class, got {classes!r}")
    return idx


def _lambdas(reduction: str, per_image: bool, **lambdas) -> None:
    """The combos' rule: finite weights >= 0; ``reduction="none"`` needs ``per_image``."""
    if reduction == "none" and not per_image:
        raise ValueError("reduction='none' of a combined loss returns one value per image and needs per_image=True")
    values = {k: finite_float(v, k) for k, v in lambdas.items()}
    bad = {k: v for k, v in values.items() if v < 0}
    if bad:
        raise ValueError(f"the lambdas must be >= 0, got {bad}")


def _smooth_dr_average(smooth_dr, average) -> None:
    if smooth_dr is not None and finite_float(smooth_dr, "smooth_dr") < 0:
        raise ValueError(f"smooth_dr must be >= 0 (or None: the same as smooth), got {smooth_dr}")
    if average not in ("macro", "micro"):
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")


def _bool(v, name: str) -> None:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, Tensor)


def _vector(v, name: str) -> Union[Tensor, float, None]:
    """A tensor option: None, a number (kept as a float), a tensor (kept), or a sequence of
    numbers (a float64 tensor holding exactly those numbers)."""
    if v is None or isinstance(v, Tensor):
        return v
    if _is_number(v):
        return finite_float(v, name)
    if isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers or a tensor, got {v!r}")
    try:
        items = list(v)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of numbers or a tensor, got {v!r}") from None
    values = [finite_float(a, f"{name}[{i}]") for i, a in enumerate(items)]
    return torch.tensor(values, dtype=torch.float64)


def _pixel_map(v, name: str) -> Optional[Tensor]:
    if v is not None and not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(v).__name__}")
    return v


# ---- the base class --------------------------------------------------------------------------------

class _LossModule(nn.Module):
    """Base of the loss modules: options as attributes and buffers, ``forward`` calls the functional."""

    #: the functional this module calls (a staticmethod in each subclass)
    _functional = None

    def __new__(cls, *args, **kwargs):
        # An unknown keyword gets the list of known ones (a plain __init__ would say only "unexpected
        # keyword argument"); __init__ itself keeps its exact signature for inspect and IDEs.
        if kwargs:
            known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            unknown = [k for k in kwargs if k not in known]
            if unknown:
                raise TypeError(
                    f"{cls.__name__}() got unexpected argument(s) {unknown}; "
                    f"{cls._functional.__name__} accepts {known}"
                )
        return super().__new__(cls)

    def _store(self, options: dict, tensors: dict) -> None:
        """``options``: plain attributes; ``tensors``: buffers when they hold tensors (None keeps a
        buffer slot, so a tensor assigned later is a buffer too), plain attributes when numbers."""
        self._option_names = tuple(p for p in inspect.signature(type(self).__init__).parameters if p != "self")
        for name, value in options.items():
            setattr(self, name, value)
        for name, value in tensors.items():
            if value is None or isinstance(value, Tensor):
                self.register_buffer(name, value, persistent=True)
            else:
                setattr(self, name, value)
        missing = set(self._option_names) - set(options) - set(tensors)
        assert not missing, f"{type(self).__name__} does not store {sorted(missing)}"

    def options(self) -> dict:
        """The keyword arguments ``forward`` passes to the functional (buffers included)."""
        return {name: getattr(self, name) for name in self._option_names}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return type(self)._functional(logits, target, **self.options())

    def extra_repr(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        parts = []
        for name, value in self.options().items():
            if isinstance(value, Tensor):
                parts.append(f"{name}=Tensor(shape={tuple(value.shape)}, dtype={value.dtype})")
                continue
            default = params[name].default
            if value is default or (type(value) is type(default) and value == default):
                continue
            parts.append(f"{name}={value!r}")
        return ", ".join(parts)


# ---- BCE ---------------------------------------------------------------------------------------

class BCEWithLogitsLoss(_LossModule):
    """Fused sigmoid + binary cross entropy; arguments as :func:`~triton_segloss.bce_with_logits`.

    Args:
        weight: per-pixel weight map broadcastable to the logits (a buffer).
        pos_weight: weight of the positive term: a number, or a per-channel vector / map
            broadcastable to the logits (a buffer; a sequence becomes a float64 buffer).
        balance: ``(a, b)``: ``a * mean over positives + b * mean over negatives``.
        ignore_index: target value whose pixels get no loss and no gradient.
        label_smoothing: in [0, 1]; pulls the targets towards 1/2.
        reduction: ``"mean"`` (over non-ignored pixels), ``"sum"`` or ``"none"``.

    ``forward(logits, target)``: logits ``(N, C, *spatial)``, target a mask of their shape.
    """

    _functional = staticmethod(bce_with_logits)

    def __init__(
        self,
        *,
        weight: Optional[Tensor] = None,
        pos_weight: Union[float, Sequence[float], Tensor, None] = None,
        balance: Optional[Sequence[float]] = None,
        ignore_index: Optional[float] = None,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _reduction(reduction)
        if ignore_index is not None:
            finite_float(ignore_index, "ignore_index")
        ls = finite_float(label_smoothing, "label_smoothing")
        if not 0.0 <= ls <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {ls}")
        if balance is not None:
            balance = pair(balance, "balance")
        self._store(
            dict(balance=balance, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction),
            dict(weight=_pixel_map(weight, "weight"), pos_weight=_vector(pos_weight, "pos_weight")),
        )


# ---- Dice family -------------------------------------------------------------------------------

_REGION_ARGS = """
        mode: ``"binary"`` (one channel, sigmoid), ``"multilabel"`` (sigmoid per channel) or
            ``"multiclass"`` (softmax over C; the target holds integer labels).
        smooth: added to numerator and denominator of the ratio.
        eps: lower bound of the denominator.
        squared: denominators from ``sum p^2`` and ``sum t^2`` (V-Net) instead of the plain sums.
        per_image: one ratio per image (True) or one of the sums pooled over the batch (False).
        weight: per-pixel weight map broadcastable to the logits (a buffer).
        class_weight: one weight per class, a sequence or a ``(C,)`` tensor (a buffer).
        classes: the class indices to average over (default: all).
        ignore_index: target value (label in multiclass) whose pixels enter no sum.
        from_logits: False when the input already holds probabilities.
        log_loss: ``-log(score)`` instead of ``1 - score``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per image or pooled row, per class).
        smooth_dr: the denominator's smoothing (None: ``smooth``), MONAI's ``smooth_dr``.
        zero_absent: a class absent from the target gives loss 0 and no gradient (smp).
        average: ``"macro"`` (mean of the class losses) or ``"micro"`` (the sums pooled over
            the kept classes before the ratio).
        normalize_class_weight: ``"mean"`` divides by ``sum(class_weight)`` (True) or by the
            number of classes (False, MONAI's ``weight``)."""


def _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr=None, average="macro"):
    _mode(mode)
    _reduction(reduction)
    _smooth_eps(smooth, eps)
    _smooth_dr_average(smooth_dr, average)
    _region_ignore(ignore_index, mode)
    return _classes(classes)


class DiceLoss(_LossModule):
    __doc__ = """Soft Dice loss ``1 - (2 I + smooth) / max(P + T + smooth, eps)`` per (image, class);
    arguments as :func:`~triton_segloss.dice_loss`.

    Args:""" + _REGION_ARGS + """

    ``forward(logits, target)``: logits ``(N, C, *spatial)``; target a mask (binary,
    multilabel) or integer labels ``(N, *spatial)`` (multiclass).
    """

    _functional = staticmethod(dice_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
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
        reduction: Reduction = "mean",
        smooth_dr: Optional[float] = None,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        soft_label: bool = False,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        classes = _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr, average)
        self._store(
            dict(process_group=process_group, soft_label=soft_label, mode=mode, smooth=smooth, eps=eps, squared=squared, per_image=per_image, classes=classes,
                 ignore_index=ignore_index, from_logits=from_logits, log_loss=log_loss, reduction=reduction,
                 smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight),
            dict(weight=_pixel_map(weight, "weight"), class_weight=_vector(class_weight, "class_weight")),
        )


class JaccardLoss(_LossModule):
    __doc__ = """Soft Jaccard (IoU) loss ``1 - (I + smooth) / max(P + T - I + smooth, eps)``;
    arguments as :func:`~triton_segloss.jaccard_loss`.

    Args:""" + _REGION_ARGS + """

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(jaccard_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
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
        reduction: Reduction = "mean",
        smooth_dr: Optional[float] = None,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        soft_label: bool = False,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        classes = _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr, average)
        self._store(
            dict(process_group=process_group, soft_label=soft_label, mode=mode, smooth=smooth, eps=eps, squared=squared, per_image=per_image, classes=classes,
                 ignore_index=ignore_index, from_logits=from_logits, log_loss=log_loss, reduction=reduction,
                 smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight),
            dict(weight=_pixel_map(weight, "weight"), class_weight=_vector(class_weight, "class_weight")),
        )


class TverskyLoss(_LossModule):
    __doc__ = """Tversky loss ``(1 - TI)^gamma``, ``TI = (I + smooth) / max(I + alpha FP + beta FN + smooth, eps)``;
    arguments as :func:`~triton_segloss.tversky_loss`.

    Args:
        alpha: weight of the false positives ``P - I``.
        beta: weight of the false negatives ``T - I``.
        gamma: the focal-Tversky exponent (1: plain Tversky).""" + _REGION_ARGS + """

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(tversky_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
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
        reduction: Reduction = "mean",
        smooth_dr: Optional[float] = None,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        soft_label: bool = False,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        a, b, g = (finite_float(v, k) for v, k in ((alpha, "alpha"), (beta, "beta"), (gamma, "gamma")))
        if a < 0 or b < 0 or g <= 0:
            raise ValueError(f"tversky_loss needs alpha, beta >= 0 and gamma > 0, got {a}, {b}, {g}")
        if log_loss and g != 1.0:
            raise ValueError(f"log_loss=True takes -log(TI) and cannot be combined with gamma={g}")
        classes = _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr, average)
        self._store(
            dict(process_group=process_group, soft_label=soft_label, mode=mode, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, eps=eps, squared=squared,
                 per_image=per_image, classes=classes, ignore_index=ignore_index, from_logits=from_logits,
                 log_loss=log_loss, reduction=reduction,
                 smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight),
            dict(weight=_pixel_map(weight, "weight"), class_weight=_vector(class_weight, "class_weight")),
        )


class GeneralizedDiceLoss(_LossModule):
    __doc__ = """Generalized Dice (Sudre et al. 2017), one value per image or pooled row, class weights
    from the target; arguments as :func:`~triton_segloss.generalized_dice_loss`.

    Args:""" + _REGION_ARGS + """
        weight_type: class weights ``1 / T_c^2`` (``"square"``), ``1 / T_c`` (``"simple"``) or 1
            (``"uniform"``), times ``class_weight``.

    (``zero_absent``, ``average`` and ``normalize_class_weight`` do not apply here.)

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(generalized_dice_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
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
        reduction: Reduction = "mean",
        weight_type: WeightType = "square",
        smooth_dr: Optional[float] = None,
        soft_label: bool = False,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        if weight_type not in ("square", "simple", "uniform"):
            raise ValueError(f"weight_type must be 'square', 'simple' or 'uniform', got {weight_type!r}")
        classes = _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr)
        self._store(
            dict(process_group=process_group, soft_label=soft_label, mode=mode, smooth=smooth, eps=eps, squared=squared, per_image=per_image, classes=classes,
                 ignore_index=ignore_index, from_logits=from_logits, log_loss=log_loss, reduction=reduction,
                 weight_type=weight_type, smooth_dr=smooth_dr),
            dict(weight=_pixel_map(weight, "weight"), class_weight=_vector(class_weight, "class_weight")),
        )


_COMBO_ARGS = """
        smooth, eps, squared, per_image, weight, class_weight, classes, ignore_index, log_loss,
        smooth_dr, zero_absent, average, normalize_class_weight: those of :class:`DiceLoss`,
            for the Dice term (``weight`` and ``ignore_index`` for both terms).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image; needs ``per_image``)."""


class BCEDiceLoss(_LossModule):
    __doc__ = """``lambda_bce * BCE + lambda_dice * Dice`` from one read of the logits per pass;
    arguments as :func:`~triton_segloss.bce_dice_loss`.

    Args:
        mode: ``"binary"`` or ``"multilabel"``.
        lambda_bce: weight of the sigmoid cross-entropy term.
        lambda_dice: weight of the Dice term.
        pos_weight: the BCE's positive weight: a number or one per channel (a buffer).
        label_smoothing: the BCE's, in [0, 1] (targets pulled to 1/2).""" + _COMBO_ARGS + """

    ``forward(logits, target)``: logits ``(N, C, *spatial)``, target a mask of their shape.
    """

    _functional = staticmethod(bce_dice_loss)

    def __init__(
        self,
        mode: SigmoidMode = "binary",
        *,
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
        reduction: Reduction = "mean",
        smooth_dr: Optional[float] = None,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        pos_weight: Union[float, Sequence[float], Tensor, None] = None,
        label_smoothing: float = 0.0,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        ls = finite_float(label_smoothing, "label_smoothing")
        if not 0.0 <= ls <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {ls}")
        _reduction(reduction)
        _lambdas(reduction, per_image, lambda_bce=lambda_bce, lambda_dice=lambda_dice)
        if isinstance(pos_weight, Tensor) and pos_weight.dim() == 0:
            raise TypeError("pos_weight must be a number or a length-C vector; pass a 0-d tensor as float(pos_weight)")
        if mode not in ("binary", "multilabel"):
            raise ValueError(f"bce_dice_loss needs mode 'binary' or 'multilabel', got {mode!r}; "
                             f"use ce_dice_loss for multiclass")
        classes = _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr, average)
        self._store(
            dict(process_group=process_group, mode=mode, lambda_bce=lambda_bce, lambda_dice=lambda_dice, smooth=smooth, eps=eps, squared=squared,
                 per_image=per_image, classes=classes, ignore_index=ignore_index, log_loss=log_loss,
                 reduction=reduction,
                 smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight, label_smoothing=label_smoothing),
            dict(weight=_pixel_map(weight, "weight"), class_weight=_vector(class_weight, "class_weight"),
                 pos_weight=_vector(pos_weight, "pos_weight")),
        )


class CEDiceLoss(_LossModule):
    __doc__ = """``lambda_ce * CE + lambda_dice * Dice`` for integer labels, one softmax for both terms;
    arguments as :func:`~triton_segloss.ce_dice_loss`.

    Args:
        lambda_ce: weight of the cross-entropy term.
        lambda_dice: weight of the Dice term.
        ce_weight: the cross entropy's class weights, a sequence or a ``(C,)`` tensor (a buffer).
        label_smoothing: the cross entropy's, in [0, 1] (torch's ``cross_entropy`` semantics).""" \
        + _COMBO_ARGS + """

    ``forward(logits, target)``: logits ``(N, C, *spatial)``, integer labels ``(N, *spatial)``.
    """

    _functional = staticmethod(ce_dice_loss)

    def __init__(
        self,
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
        reduction: Reduction = "mean",
        smooth_dr: Optional[float] = None,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        label_smoothing: float = 0.0,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        _reduction(reduction)
        _lambdas(reduction, per_image, lambda_ce=lambda_ce, lambda_dice=lambda_dice)
        classes = _region_checks("multiclass", smooth, eps, ignore_index, reduction, classes, smooth_dr, average)
        ls = finite_float(label_smoothing, "label_smoothing")
        if not 0.0 <= ls <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {ls}")
        self._store(
            dict(process_group=process_group, lambda_ce=lambda_ce, lambda_dice=lambda_dice, smooth=smooth, eps=eps, squared=squared,
                 per_image=per_image, classes=classes, ignore_index=ignore_index, log_loss=log_loss,
                 reduction=reduction,
                 smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight, label_smoothing=label_smoothing),
            dict(ce_weight=_vector(ce_weight, "ce_weight"), weight=_pixel_map(weight, "weight"),
                 class_weight=_vector(class_weight, "class_weight")),
        )


class DiceFocalLoss(_LossModule):
    __doc__ = """``lambda_dice * Dice + lambda_focal * Focal`` from one read of the logits per pass;
    arguments as :func:`~triton_segloss.dice_focal_loss`.

    Args:
        mode: ``"binary"``, ``"multilabel"`` (sigmoid focal) or ``"multiclass"`` (softmax focal).
        lambda_dice: weight of the Dice term.
        lambda_focal: weight of the focal term.
        alpha: the focal balance: a number (None or negative disables it), or per class in
            multiclass (a sequence or ``(C,)`` tensor, a buffer).
        gamma: the focusing exponent, >= 0.""" + _COMBO_ARGS + """
        focal_use_softmax: multiclass: softmax focal (True) or sigmoid focal on the one-hot
            channels of the labels (False, MONAI's ``DiceFocalLoss(use_softmax=False)``).

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(dice_focal_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: Alpha = 0.25,
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
        reduction: Reduction = "mean",
        smooth_dr: Optional[float] = None,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        focal_use_softmax: bool = True,
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        _reduction(reduction)
        _lambdas(reduction, per_image, lambda_dice=lambda_dice, lambda_focal=lambda_focal)
        _gamma(gamma)
        if mode == "multiclass" and not focal_use_softmax and isinstance(alpha, (Tensor, list, tuple)):
            raise TypeError("alpha must be a number or None with focal_use_softmax=False")
        classes = _region_checks(mode, smooth, eps, ignore_index, reduction, classes, smooth_dr, average)
        self._store(
            dict(process_group=process_group, mode=mode, lambda_dice=lambda_dice, lambda_focal=lambda_focal, gamma=gamma, smooth=smooth, eps=eps,
                 squared=squared, per_image=per_image, classes=classes, ignore_index=ignore_index,
                 log_loss=log_loss, reduction=reduction,
                 smooth_dr=smooth_dr, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight, focal_use_softmax=focal_use_softmax),
            dict(alpha=_vector(alpha, "alpha"), weight=_pixel_map(weight, "weight"),
                 class_weight=_vector(class_weight, "class_weight")),
        )


class MCCLoss(_LossModule):
    """``1 - MCC`` of the soft confusion counts (smp's ``MCCLoss``); arguments as
    :func:`~triton_segloss.mcc_loss`.

    Args:
        mode: ``"binary"``, ``"multilabel"`` or ``"multiclass"``, as :class:`DiceLoss`.
        eps: added to each of TP, FP, FN, TN.
        per_image: one value per image (True) or of the sums pooled over the batch (False).
        class_weight: one weight per class, a sequence or a ``(C,)`` tensor (a buffer).
        classes: the class indices to average over (default: all).
        ignore_index: target value (label in multiclass) whose pixels enter no sum.
        from_logits: False when the input already holds probabilities (smp's input).
        zero_absent: a class absent from the target gives loss 0.
        average: ``"macro"`` or ``"micro"`` (the counts pooled over the kept classes).
        normalize_class_weight: ``"mean"`` divides by ``sum(class_weight)`` (True) or by the
            number of classes (False).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(mcc_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
        eps: float = 1e-5,
        per_image: bool = False,
        class_weight: ClassWeight = None,
        classes: Optional[Sequence[int]] = None,
        ignore_index: Optional[float] = None,
        from_logits: bool = True,
        zero_absent: bool = False,
        average: Average = "macro",
        normalize_class_weight: bool = True,
        reduction: Reduction = "mean",
        process_group: Optional[ProcessGroup] = None,
    ) -> None:
        super().__init__()
        if finite_float(eps, "eps") < 0:
            raise ValueError(f"eps must be >= 0, got {float(eps)}")
        classes = _region_checks(mode, 0.0, eps, ignore_index, reduction, classes, None, average)
        self._store(
            dict(process_group=process_group, mode=mode, eps=eps, per_image=per_image, classes=classes, ignore_index=ignore_index,
                 from_logits=from_logits, zero_absent=zero_absent, average=average,
                 normalize_class_weight=normalize_class_weight, reduction=reduction),
            dict(class_weight=_vector(class_weight, "class_weight")),
        )


# ---- focal -------------------------------------------------------------------------------------

class FocalLoss(_LossModule):
    """Focal loss (Lin et al.), sigmoid or softmax; arguments as :func:`~triton_segloss.focal_loss`.

    Args:
        mode: ``"binary"``, ``"multilabel"`` (sigmoid focal per element, torchvision's
            semantics) or ``"multiclass"`` (softmax focal on integer labels).
        alpha: a number (None or negative disables it), or one value per class (a sequence
            or ``(C,)`` tensor, a buffer), in every mode.
        gamma: the focusing exponent, >= 0 (0: plain cross entropy times alpha).
        ignore_index: target value (label in multiclass) whose pixels get no loss.
        reduction: ``"mean"`` (over non-ignored elements), ``"sum"`` or ``"none"``.
        class_weight: a multiplier of each class's loss: a number, or one per class (a
            sequence or ``(C,)`` tensor, a buffer); MONAI's ``FocalLoss(weight=)``.
        use_softmax: multiclass only: False for one-vs-rest sigmoid focal on the one-hot
            channels of the labels (smp's multiclass ``FocalLoss``).
        from_logits: False when the input already holds probabilities.

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(focal_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
        alpha: Alpha = 0.25,
        gamma: float = 2.0,
        ignore_index: Union[int, float, None] = None,
        reduction: Reduction = "mean",
        class_weight: Union[float, Sequence[float], Tensor, None] = None,
        use_softmax: bool = True,
        from_logits: bool = True,
    ) -> None:
        super().__init__()
        _reduction(reduction)
        _mode(mode)
        _gamma(gamma)
        _bool(use_softmax, "use_softmax")
        _bool(from_logits, "from_logits")
        if not use_softmax and mode != "multiclass":
            raise ValueError(f"use_softmax=False applies to mode='multiclass' only (mode={mode!r} is sigmoid already)")
        if _is_number(class_weight) and finite_float(class_weight, "class_weight") < 0:
            raise ValueError(f"class_weight must be >= 0, got {float(class_weight)}")
        if isinstance(class_weight, Sequence) and not isinstance(class_weight, str):
            if any(finite_float(a, f"class_weight[{i}]") < 0 for i, a in enumerate(class_weight)):
                raise ValueError(f"class_weight entries must be >= 0, got {list(class_weight)}")
        if mode == "multiclass" and isinstance(ignore_index, float) and not ignore_index.is_integer():
            raise ValueError(f"ignore_index must be an integer label for mode='multiclass', got {ignore_index}")
        if ignore_index is not None and mode != "multiclass":
            finite_float(ignore_index, "ignore_index")
        if isinstance(alpha, Sequence) and not isinstance(alpha, str):
            if any(finite_float(a, f"alpha[{i}]") < 0 for i, a in enumerate(alpha)):
                raise ValueError(f"alpha entries must be >= 0, got {list(alpha)}")
        alpha = _vector(alpha, "alpha")
        self._store(dict(mode=mode, gamma=gamma, ignore_index=ignore_index, reduction=reduction,
                         use_softmax=use_softmax, from_logits=from_logits),
                    dict(alpha=alpha, class_weight=_vector(class_weight, "class_weight")))


# ---- Lovász ------------------------------------------------------------------------------------

class LovaszHingeLoss(_LossModule):
    """Binary Lovász hinge (Berman et al. 2018); arguments as :func:`~triton_segloss.lovasz_hinge`.

    Args:
        per_image: one segment per image (True) or one for the whole batch.
        ignore_index: target value whose pixels are dropped from the segment.
        margin: ``(m_neg, m_pos)``, the hinge margins of background and foreground (default 1).
        reduction: ``"mean"`` (over images with ``per_image``), ``"sum"`` or ``"none"``.

    ``forward(logits, target)``: logits ``(N, 1, *spatial)``, a 0/1 mask.
    """

    _functional = staticmethod(lovasz_hinge)

    def __init__(
        self,
        *,
        per_image: bool = True,
        ignore_index: Optional[float] = None,
        margin: Optional[Sequence[float]] = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _reduction(reduction)
        if ignore_index is not None:
            finite_float(ignore_index, "ignore_index")
        if margin is not None:
            margin = pair(margin, "margin")
        self._store(dict(per_image=per_image, ignore_index=ignore_index, margin=margin, reduction=reduction), {})


class LovaszSoftmaxLoss(_LossModule):
    """Lovász-Softmax (Berman et al. 2018); arguments as :func:`~triton_segloss.lovasz_softmax`.

    Args:
        classes: ``"present"`` (the classes in the segment's target), ``"all"``, or a list of
            class indices.
        per_image: one segment per image (True) or one for the whole batch.
        ignore_index: label whose pixels are dropped.
        from_logits: apply the softmax (True) or take probabilities (False).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per segment and class).
        class_weight: non-negative weights of the class losses, one per class; kept as Python
            floats (not a buffer), as the functional takes them.

    ``forward(logits, target)``: logits ``(N, C, *spatial)``, integer labels ``(N, *spatial)``.
    """

    _functional = staticmethod(lovasz_softmax)

    def __init__(
        self,
        *,
        classes: Union[Literal["present", "all"], Sequence[int]] = "present",
        per_image: bool = False,
        ignore_index: Optional[int] = None,
        from_logits: bool = True,
        reduction: Reduction = "mean",
        class_weight: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        _reduction(reduction)
        if class_weight is not None:
            # kept as Python floats, not a buffer: lovasz_softmax caches them on the device per value
            # and refuses a CUDA tensor (reading it would synchronise)
            cw = class_weight.tolist() if isinstance(class_weight, Tensor) else class_weight
            try:
                class_weight = tuple(finite_float(v, "class_weight") for v in cw)
            except TypeError:
                raise TypeError(f"class_weight must be a sequence of numbers, got {cw!r}") from None
            if any(v < 0 for v in class_weight):
                raise ValueError(f"class_weight must be >= 0, got {class_weight}")
        if isinstance(classes, str):
            if classes not in ("present", "all"):
                raise ValueError(f"classes must be 'present', 'all' or a list of class indices, got {classes!r}")
        else:
            if isinstance(classes, Tensor):
                classes = classes.tolist()
            try:
                classes = tuple(int(k) for k in classes)
            except (TypeError, ValueError):
                raise TypeError(
                    f"classes must be 'present', 'all' or a list of class indices, got {classes!r}") from None
            if not classes:
                raise ValueError("classes must name at least one class, got an empty list")
        if ignore_index is not None and (
                isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, float))
                or float(ignore_index) != int(ignore_index)):
            raise TypeError(f"ignore_index must be an integer label or None, got {ignore_index!r}")
        self._store(dict(classes=classes, per_image=per_image, ignore_index=ignore_index, from_logits=from_logits,
                         reduction=reduction, class_weight=class_weight), {})


# ---- cross entropy -----------------------------------------------------------------------------

class CrossEntropyLoss(_LossModule):
    """Fused softmax cross entropy; arguments as :func:`~triton_segloss.cross_entropy`
    (``torch.nn.CrossEntropyLoss``'s ``weight``, ``ignore_index``, ``label_smoothing``).

    Args:
        weight: class weights, a sequence or a ``(C,)`` floating tensor (a buffer).
        pixel_weight: per-pixel weights broadcastable to ``(N, *spatial)`` (a buffer).
        balance: inverse-frequency class weights from each batch's target.
        ignore_index: label whose pixels get no loss (None: none).
        label_smoothing: in [0, 1], as in torch.
        reduction: ``"mean"`` (the weighted mean, torch's denominator), ``"sum"`` or ``"none"``.

    ``forward(logits, target)``: logits ``(N, C, *spatial)``, integer labels ``(N, *spatial)``.
    """

    _functional = staticmethod(cross_entropy)

    def __init__(
        self,
        *,
        weight: ClassWeight = None,
        pixel_weight: Optional[Tensor] = None,
        balance: bool = False,
        ignore_index: Optional[int] = -100,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _reduction(reduction)
        _int_label(ignore_index)
        ls = finite_float(label_smoothing, "label_smoothing")
        if not 0.0 <= ls <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {ls}")
        if not isinstance(balance, bool):
            raise TypeError(f"balance must be True or False, got {balance!r}")
        weight = _vector(weight, "weight")
        if _is_number(weight):
            raise TypeError(f"weight must be a tensor or a sequence of C numbers, got {weight!r}")
        if isinstance(weight, Tensor) and not weight.is_floating_point():
            raise TypeError(f"weight must be a floating tensor, got dtype {weight.dtype}")
        self._store(dict(balance=balance, ignore_index=ignore_index, label_smoothing=label_smoothing,
                         reduction=reduction),
                    dict(weight=weight, pixel_weight=_pixel_map(pixel_weight, "pixel_weight")))


# ---- boundary, NCut ----------------------------------------------------------------------------

class BoundaryBCEDiceLoss(_LossModule):
    """Seed 001's ``CombinedLoss``: boundary-weighted BCE + soft Dice; arguments as
    :func:`~triton_segloss.boundary_bce_dice_loss`.

    Args:
        kernel_size: odd box width of the boundary weights; None picks it from the height.
        log_dice: ``bce - log(1 - dice)`` instead of ``bce + dice``.

    ``forward(logits, target)``: binary logits ``(N, 1, H, W)`` or ``(N, 1, D, H, W)``, a 0/1 mask.
    """

    _functional = staticmethod(boundary_bce_dice_loss)

    def __init__(self, kernel_size: Optional[int] = None, *, log_dice: bool = False) -> None:
        super().__init__()
        if kernel_size is not None:
            if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
                raise TypeError(f"kernel_size must be an odd int or None, got {kernel_size!r}")
            if kernel_size < 1 or kernel_size % 2 == 0:
                raise ValueError(
                    f"kernel_size must be a positive odd int (avg_pool's padding k // 2 centres it), got {kernel_size}"
                )
        self._store(dict(kernel_size=kernel_size, log_dice=log_dice), {})


class NCutLoss(_LossModule):
    """Seed 003's soft normalized-cut loss (W-Net); arguments as :func:`~triton_segloss.ncut_loss`.

    Args:
        radius: half width of the spatial Gaussian (used with ``spatial_gaussian``).
        sigma_spatial: its standard deviation, > 0.
        sigma_value: the pixel-value Gaussian's scale, > 0.
        spatial_gaussian: use the form with the spatial filter (2D only).

    ``forward(probs, image)``: class probabilities ``(N, K, *spatial)`` and the raw image
    ``(N, CIN, *spatial)`` (no gradient to the image).
    """

    _functional = staticmethod(ncut_loss)

    def __init__(
        self,
        *,
        radius: int = 5,
        sigma_spatial: float = 4.0,
        sigma_value: float = 10.0,
        spatial_gaussian: bool = False,
    ) -> None:
        super().__init__()
        sv, ss = finite_float(sigma_value, "sigma_value"), finite_float(sigma_spatial, "sigma_spatial")
        if sv <= 0 or ss <= 0:
            raise ValueError(f"sigma_value and sigma_spatial must be > 0, got {sv} and {ss}")
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ValueError(f"radius must be an int >= 0, got {radius!r}")
        self._store(dict(radius=radius, sigma_spatial=sigma_spatial, sigma_value=sigma_value,
                         spatial_gaussian=spatial_gaussian), {})

    def forward(self, probs: Tensor, image: Tensor) -> Tensor:
        return ncut_loss(probs, image, **self.options())


# ---- distance-map losses (Hausdorff DT, boundary) ------------------------------------------------

def _spacing(spacing) -> None:
    if spacing is None:
        return
    values = [spacing] if _is_number(spacing) else list(spacing)
    if any(finite_float(v, "spacing") <= 0 for v in values):
        raise ValueError(f"spacing must be positive, got {spacing!r}")


class HausdorffDTLoss(_LossModule):
    """Distance-transform Hausdorff loss (Karimi & Salcudean 2019, as MONAI's
    ``HausdorffDTLoss``); arguments as :func:`~triton_segloss.hausdorff_dt_loss`.

    Args:
        mode: ``"binary"``, ``"multilabel"`` (sigmoid) or ``"multiclass"`` (softmax, integer labels).
        alpha: the exponent of the distance maps, >= 0.
        include_background: keep channel 0 (dropped when False and C > 1).
        per_image: ``"none"`` per image (True) or pooled over the batch (False).
        from_logits: False when the input already holds probabilities.
        spacing: voxel spacing of the distance maps (a number or one per spatial dim).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(hausdorff_dt_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
        alpha: float = 2.0,
        include_background: bool = False,
        per_image: bool = False,
        from_logits: bool = True,
        spacing: Optional[Sequence[float]] = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _mode(mode)
        _reduction(reduction)
        if finite_float(alpha, "alpha") < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        _spacing(spacing)
        self._store(dict(mode=mode, alpha=alpha, include_background=include_background, per_image=per_image,
                         from_logits=from_logits, spacing=spacing, reduction=reduction), {})


class BoundaryLoss(_LossModule):
    """Boundary loss (Kervadec et al. 2019): probabilities times the target's signed distance
    map; arguments as :func:`~triton_segloss.boundary_loss`.

    Args:
        mode: ``"multiclass"`` (softmax, integer labels), ``"binary"`` or ``"multilabel"`` (sigmoid).
        include_background: keep channel 0 (dropped when False and C > 1).
        per_image: ``"none"`` per image (True) or pooled over the batch (False).
        from_logits: False when the input already holds probabilities.
        spacing: voxel spacing of the distance maps (a number or one per spatial dim).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(boundary_loss)

    def __init__(
        self,
        mode: Mode = "multiclass",
        *,
        include_background: bool = False,
        per_image: bool = False,
        from_logits: bool = True,
        spacing: Optional[Sequence[float]] = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _mode(mode)
        _reduction(reduction)
        _spacing(spacing)
        self._store(dict(mode=mode, include_background=include_background, per_image=per_image,
                         from_logits=from_logits, spacing=spacing, reduction=reduction), {})


class DiceBoundaryLoss(_LossModule):
    """``(1 - alpha) * region + alpha * boundary`` (Kervadec et al.'s rebalancing); arguments as
    :func:`~triton_segloss.dice_boundary_loss`. Set ``module.alpha`` each epoch, e.g. from a
    :class:`~triton_segloss.BoundaryLossSchedule`.

    Args:
        mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
        alpha: the boundary term's weight in [0, 1].
        region: ``"generalized_dice"`` (the paper's) or ``"dice"``.
        include_background: keep channel 0 in the boundary term.
        from_logits: False when the input already holds probabilities.
        spacing: voxel spacing of the distance maps.

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(dice_boundary_loss)

    def __init__(
        self,
        mode: Mode = "multiclass",
        *,
        alpha: float,
        region: Literal["generalized_dice", "dice"] = "generalized_dice",
        include_background: bool = False,
        from_logits: bool = True,
        spacing: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        _mode(mode)
        if not 0.0 <= finite_float(alpha, "alpha") <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if region not in ("generalized_dice", "dice"):
            raise ValueError(f"region must be one of ('generalized_dice', 'dice'), got {region!r}")
        _spacing(spacing)
        self._store(dict(mode=mode, alpha=alpha, region=region, include_background=include_background,
                         from_logits=from_logits, spacing=spacing), {})


# ---- clDice ------------------------------------------------------------------------------------

def _cldice_checks(mode, iterations, smooth, eps, reduction) -> None:
    _mode(mode)
    _reduction(reduction)
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise TypeError(f"iterations must be an int, got {iterations!r}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    finite_float(smooth, "smooth")
    if finite_float(eps, "eps") <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")


class ClDiceLoss(_LossModule):
    """Soft clDice (Shit et al. 2021, as MONAI's ``SoftclDiceLoss``); arguments as
    :func:`~triton_segloss.cldice_loss`.

    Args:
        mode: ``"binary"``, ``"multilabel"`` (sigmoid) or ``"multiclass"`` (softmax, integer labels).
        iterations: soft-skeleton iterations.
        smooth: added to the numerators and denominators of Tprec and Tsens.
        eps: added to the denominator of the final ratio.
        include_background: keep channel 0 (as MONAI 1.6, default True).
        from_logits: False when the input already holds probabilities (MONAI's input).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per image).

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(cldice_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
        iterations: int = 3,
        smooth: float = 1.0,
        eps: float = 1e-4,
        include_background: bool = True,
        from_logits: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _cldice_checks(mode, iterations, smooth, eps, reduction)
        self._store(dict(mode=mode, iterations=iterations, smooth=smooth, eps=eps,
                         include_background=include_background, from_logits=from_logits, reduction=reduction), {})


class DiceClDiceLoss(_LossModule):
    """``(1 - alpha) * Dice + alpha * clDice`` (MONAI's ``SoftDiceclDiceLoss``); arguments as
    :func:`~triton_segloss.dice_cldice_loss`.

    Args:
        mode: ``"binary"``, ``"multilabel"`` or ``"multiclass"``.
        iterations: soft-skeleton iterations.
        alpha: the clDice term's weight.
        smooth: Dice and clDice smoothing.
        eps: added to the denominator of clDice's final ratio.
        include_background: keep channel 0.
        from_logits: False when the input already holds probabilities.
        reduction: ``"mean"`` or ``"sum"``.

    ``forward(logits, target)`` as :class:`DiceLoss`.
    """

    _functional = staticmethod(dice_cldice_loss)

    def __init__(
        self,
        mode: Mode = "binary",
        *,
        iterations: int = 3,
        alpha: float = 0.5,
        smooth: float = 1.0,
        eps: float = 1e-4,
        include_background: bool = True,
        from_logits: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _cldice_checks(mode, iterations, smooth, eps, reduction)
        finite_float(alpha, "alpha")
        self._store(dict(mode=mode, iterations=iterations, alpha=alpha, smooth=smooth, eps=eps,
                         include_background=include_background, from_logits=from_logits, reduction=reduction), {})


_SOFT_DOC = """
    ``soft_label``: soft (non 0/1) targets, intersection ``(P + T - sum w |p - t|) / 2``
    (MONAI's ``soft_label``, smp's form); the same as ``sum w p t`` for 0/1 targets.
    """
for _cls in (DiceLoss, JaccardLoss, TverskyLoss, GeneralizedDiceLoss):
    _cls.__doc__ += _SOFT_DOC

_GROUP_DOC = """
    ``process_group``: a ``torch.distributed`` group (e.g. ``torch.distributed.group.WORLD``)
    across whose ranks the batch is pooled (``per_image=False``): every rank gets the loss of
    the whole global batch, and DDP's gradient averaging gives the single-process gradient.
    None (default): this rank's batch only. Kept as a plain attribute (not in ``state_dict``).
    """
for _cls in (DiceLoss, JaccardLoss, TverskyLoss, GeneralizedDiceLoss, BCEDiceLoss, CEDiceLoss, DiceFocalLoss, MCCLoss):
    _cls.__doc__ += _GROUP_DOC
del _cls
