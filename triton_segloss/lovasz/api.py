"""Public functions of the Lovász family: the Lovász hinge (binary) and Lovász-Softmax
(multiclass) losses of Berman et al. (2018)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from triton_segloss._core.validate import (
    as_ncs, binary_target_ncs, check_label_values, check_logits, check_probabilities, check_reduction, check_values_now,
    finite_float, multiclass_target_ns, pair, shape_str,
)

from .ops import LovaszHingeOptions, LovaszSoftmaxOptions, hinge_op, softmax_op

__all__ = ["lovasz_hinge", "lovasz_softmax"]


def _check_binary01(target: Tensor, ignore_index: Optional[float]) -> None:
    """The hinge needs a set: target values must be 0 or 1 (or ignore_index). Value check."""
    if target.dtype == torch.bool or not check_values_now(target) or target.numel() == 0:
        return
    bad = target.ne(0).logical_and_(target.ne(1))
    if ignore_index is not None:
        bad.logical_and_(target.ne(ignore_index))
    if bool(bad.any()):
        v = target[bad].flatten()[:4].tolist()
        extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise ValueError(
            f"target must hold 0 or 1{extra} for lovasz_hinge; found e.g. {v} in target "
            f"of shape {shape_str(target)}"
        )


def _int_or_none(x, name: str) -> Optional[int]:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or float(x) != int(x):
        raise TypeError(f"{name} must be an integer label or None, got {x!r}")
    return int(x)


def lovasz_hinge(
    logits: Tensor,
    target: Tensor,
    *,
    per_image: bool = True,
    ignore_index: Optional[float] = None,
    margin: Optional[Sequence[float]] = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary Lovász hinge: the Lovász extension of the Jaccard loss applied to hinge errors.

    Per pixel, with ``f`` the target (0 or 1) and ``m = margin[1] if f else margin[0]``
    (1 by default)::

        e = m - x * (2 f - 1)

    Each segment (one image with ``per_image``, else the whole batch) sorts its errors in
    decreasing order and returns ``sum_i relu(e_i) g_i``, ``g`` the Jaccard differences of
    Alg. 1 of Berman et al.; ignored pixels are dropped from the segment.

    Args:
        logits: ``(N, 1, *spatial)`` float16/bfloat16/float32/float64, any strides.
        target: ``(N, 1, *spatial)`` or ``(N, *spatial)`` mask of 0 and 1 (float, bool or integer).
        per_image: one segment per image (Berman's default) or one for the whole batch.
        ignore_index: pixels whose target equals it get no loss and zero gradient.
        margin: ``(m_neg, m_pos)``, the hinge margin of background and foreground pixels
            (seed 000 uses ``(1, 5)``).
        reduction: ``"mean"`` (over images with ``per_image``: Berman's mean, an image with
            every pixel ignored counts as 0), ``"sum"``, or ``"none"``: the per-image
            losses ``(N,)`` with ``per_image``, else the batch loss (0-d).

    A segment with no foreground still has a loss (its largest positive error); a segment
    with every pixel ignored has loss 0. Ties between errors are broken by pixel order (a
    stable sort), so the gradient is the same every run. Returns float32 (float64 for
    float64 logits); the gradient has the logits' dtype and layout.

    Example:
        >>> import torch, triton_segloss as tsl
        >>> x = torch.tensor([[[2.0, -1.0, 0.5]]])
        >>> tsl.lovasz_hinge(x, torch.tensor([[[1.0, 0.0, 1.0]]]))
        tensor(0.2500)
    """
    check_logits(logits)
    check_reduction(reduction)
    if logits.shape[1] != 1:
        raise ValueError(
            f"lovasz_hinge is binary: logits must have shape (N, 1, *spatial), got {shape_str(logits)}"
        )
    t = binary_target_ncs(logits, target)
    if ignore_index is not None:
        ignore_index = finite_float(ignore_index, "ignore_index")
    _check_binary01(target, ignore_index)
    opts = LovaszHingeOptions(per_image=bool(per_image), ignore_index=ignore_index,
                              margin=None if margin is None else pair(margin, "margin"), reduction=reduction)
    n = logits.shape[0]
    loss, _, _ = hinge_op(as_ncs(logits, n, 1), t, opts)
    return loss


def _classes_arg(classes, c: int) -> tuple[Optional[tuple], bool]:
    """(the listed classes or None for every class, only the present ones)."""
    if isinstance(classes, str):
        if classes not in ("present", "all"):
            raise ValueError(f"classes must be 'present', 'all' or a list of class indices, got {classes!r}")
        return None, classes == "present"
    if isinstance(classes, Tensor):
        classes = classes.tolist()
    try:
        listed = tuple(int(k) for k in classes)
    except (TypeError, ValueError):
        raise TypeError(f"classes must be 'present', 'all' or a list of class indices, got {classes!r}") from None
    if not listed:
        raise ValueError("classes must name at least one class, got an empty list")
    bad = [k for k in listed if not 0 <= k < c]
    if bad:
        raise ValueError(f"classes must lie in [0, {c}) for logits with C={c}; got {bad}")
    return listed, False


def _class_weight_arg(cw, c: int) -> Optional[tuple]:
    """The class weights as a tuple of C finite floats >= 0 (an option: cached on the device)."""
    if cw is None:
        return None
    if isinstance(cw, Tensor):
        if cw.device.type != "cpu":
            raise TypeError(
                f"class_weight must be a sequence of numbers or a CPU tensor (reading a {cw.device} tensor "
                f"would synchronise the device), got a tensor on {cw.device}"
            )
        cw = cw.tolist()
    try:
        values = tuple(finite_float(v, "class_weight") for v in cw)
    except TypeError:
        raise TypeError(f"class_weight must be a sequence of numbers, got {cw!r}") from None
    if len(values) != c:
        raise ValueError(f"class_weight must have shape ({c},) (one value per class), got ({len(values)},)")
    if any(v < 0 for v in values):
        raise ValueError(f"class_weight must be >= 0, got {values}")
    return values


def lovasz_softmax(
    logits: Tensor,
    target: Tensor,
    *,
    classes: Union[str, Sequence[int]] = "present",
    per_image: bool = False,
    ignore_index: Optional[int] = None,
    from_logits: bool = True,
    reduction: str = "mean",
    class_weight: Optional[Sequence[float]] = None,
) -> Tensor:
    """Lovász-Softmax: the Lovász extension of each class's Jaccard loss on ``|f_c - p_c|``.

    With ``p = softmax(logits)`` over C (or ``logits`` themselves when ``from_logits=False``)
    and ``f_c = [target == c]``, each segment (one image with ``per_image``, else the whole
    batch) and class sorts ``e = |f_c - p_c|`` in decreasing order and gives
    ``sum_i e_i g_i`` (Alg. 1 of Berman et al.); ignored pixels are dropped.

    Args:
        logits: ``(N, C, *spatial)`` logits (probabilities in [0, 1] with
            ``from_logits=False``), float16/bfloat16/float32/float64, any strides.
        target: integer labels ``(N, *spatial)`` (int64, int32 or uint8).
        classes: ``"present"``: average over the classes that occur in the segment's
            non-ignored pixels (a segment with none gives 0); ``"all"``: over all C;
            or a list of class indices (a class listed twice counts twice).
        per_image: Berman's ``per_image``: the mean over images of each image's loss
            (an image with every pixel ignored counts as 0), else one batch segment.
        ignore_index: label of pixels that get no loss and zero gradient.
        from_logits: apply the softmax (True) or take probabilities (False).
        reduction: ``"mean"``: Berman's loss, the class mean per segment then the mean over
            images. ``"none"``: the per-(image, class) values, ``(N, K)`` with ``per_image``
            else ``(K,)``: K = C for "present"/"all" (absent classes are 0 under "present"),
            else the listed classes in the given order. ``"sum"``: the sum of those values.
        class_weight: length-C non-negative weights of the class losses (a sequence, or a CPU
            tensor). ``"mean"``: each segment gives ``sum(cw_c * loss_c) / sum(cw_c)`` over the
            classes it counts (the present ones, all, or the listed entries; 0 when that sum is
            0), then the mean over images as without weights; ``"none"``/``"sum"``: the
            values ``cw_c * loss_c`` and their sum.

    Ties are broken by pixel order (a stable sort). Returns float32 (float64 for float64
    logits); the gradient has the logits' dtype and layout.

    Example:
        >>> import torch, triton_segloss as tsl
        >>> x = torch.tensor([[[4.0, -4.0], [-4.0, 4.0]]])  # (N, C, S) = (1, 2, 2)
        >>> round(tsl.lovasz_softmax(x, torch.tensor([[0, 1]])).item(), 4)
        0.0003
    """
    check_logits(logits)
    check_reduction(reduction)
    n, c = logits.shape[:2]
    t = multiclass_target_ns(logits, target)
    ignore_index = _int_or_none(ignore_index, "ignore_index")
    check_label_values(target, c, ignore_index)
    if not from_logits:
        check_probabilities(logits)
    listed, only_present = _classes_arg(classes, c)
    opts = LovaszSoftmaxOptions(classes=listed, only_present=only_present, per_image=bool(per_image),
                                ignore_index=ignore_index, from_logits=bool(from_logits), reduction=reduction,
                                class_weight=_class_weight_arg(class_weight, c))
    loss, _, _ = softmax_op(as_ncs(logits, n, c), t, opts)
    return loss
