"""Thin ``nn.Module`` wrappers: the constructor takes the functional's keyword
arguments, ``forward(logits, target)`` calls it."""

from __future__ import annotations

import inspect

from torch import nn

from . import functional as F


class _FunctionalLoss(nn.Module):
    _fn_name: str = ""

    def __init__(self, **kwargs):
        super().__init__()
        fn = getattr(F, self._fn_name)
        params = inspect.signature(fn).parameters
        allowed = [p for p in list(params)[2:]]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected argument(s) {unknown}; "
                f"{self._fn_name} accepts {allowed}"
            )
        self.kwargs = kwargs

    def forward(self, logits, target):
        return getattr(F, self._fn_name)(logits, target, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


def _module(name: str, fn_name: str, doc: str) -> type:
    return type(name, (_FunctionalLoss,), {"_fn_name": fn_name, "__doc__": doc, "__module__": __name__})


BCEWithLogitsLoss = _module("BCEWithLogitsLoss", "bce_with_logits", "Module form of :func:`bce_with_logits`.")
DiceLoss = _module("DiceLoss", "dice_loss", "Module form of :func:`dice_loss`.")
GeneralizedDiceLoss = _module(
    "GeneralizedDiceLoss", "generalized_dice_loss", "Module form of :func:`generalized_dice_loss`."
)
JaccardLoss = _module("JaccardLoss", "jaccard_loss", "Module form of :func:`jaccard_loss`.")
TverskyLoss = _module("TverskyLoss", "tversky_loss", "Module form of :func:`tversky_loss`.")
FocalLoss = _module("FocalLoss", "focal_loss", "Module form of :func:`focal_loss`.")
LovaszHingeLoss = _module("LovaszHingeLoss", "lovasz_hinge", "Module form of :func:`lovasz_hinge`.")
LovaszSoftmaxLoss = _module("LovaszSoftmaxLoss", "lovasz_softmax", "Module form of :func:`lovasz_softmax`.")
CrossEntropyLoss = _module("CrossEntropyLoss", "cross_entropy", "Module form of :func:`cross_entropy`.")
BCEDiceLoss = _module("BCEDiceLoss", "bce_dice_loss", "Module form of :func:`bce_dice_loss`.")
CEDiceLoss = _module("CEDiceLoss", "ce_dice_loss", "Module form of :func:`ce_dice_loss`.")
DiceFocalLoss = _module("DiceFocalLoss", "dice_focal_loss", "Module form of :func:`dice_focal_loss`.")
BoundaryBCEDiceLoss = _module(
    "BoundaryBCEDiceLoss", "boundary_bce_dice_loss", "Module form of :func:`boundary_bce_dice_loss`."
)
NCutLoss = _module("NCutLoss", "ncut_loss", "Module form of :func:`ncut_loss`; ``forward(probs, image)``.")

__all__ = [
    "BCEWithLogitsLoss", "DiceLoss", "GeneralizedDiceLoss", "JaccardLoss", "TverskyLoss", "FocalLoss", "LovaszHingeLoss",
    "LovaszSoftmaxLoss", "CrossEntropyLoss", "BCEDiceLoss", "CEDiceLoss", "DiceFocalLoss",
    "BoundaryBCEDiceLoss", "NCutLoss",
]
