"""Focal family: ``tsl.focal_loss`` sigmoid (torchvision's formula) and softmax (seed 004's
FocalLoss, fixed), against MONAI, Kornia and smp."""

from . import eager
from .common import Case, compiled, make_labels, make_mask, peer, tsl_fn

FAMILY = "focal"
SMP = "segmentation_models_pytorch.losses"


def _monai_sigmoid(m):
    return m.losses.FocalLoss(gamma=2.0, alpha=0.25, reduction="mean")


def _monai_softmax(m):
    loss = m.losses.FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True, reduction="mean")
    return lambda x, t: loss(x, t.unsqueeze(1))


def cases():
    return [
        Case(FAMILY, "multilabel", make_mask, {
            "tsl": tsl_fn("focal_loss", mode="multilabel", alpha=0.25, gamma=2.0),
            "eager": lambda: eager.focal_sigmoid_torchvision,
            "torch_compile": compiled(lambda: eager.focal_sigmoid_torchvision),
            "monai": peer("monai", _monai_sigmoid),
            "kornia": peer("kornia", lambda k: lambda x, t: k.losses.binary_focal_loss_with_logits(
                x, t, alpha=0.25, gamma=2.0, reduction="mean")),
            "smp": peer(SMP, lambda m: m.FocalLoss("multilabel", alpha=0.25, gamma=2.0)),
        }),
        Case(FAMILY, "multiclass", make_labels, {
            "tsl": tsl_fn("focal_loss", mode="multiclass", alpha=None, gamma=2.0),
            "eager": lambda: eager.focal_softmax_seed004,
            "torch_compile": compiled(lambda: eager.focal_softmax_seed004),
            "monai": peer("monai", _monai_softmax),
            "kornia": peer("kornia", lambda k: lambda x, t: k.losses.focal_loss(
                x, t, alpha=None, gamma=2.0, reduction="mean")),
            "smp": peer(SMP, lambda m: m.FocalLoss("multiclass", gamma=2.0)),
        }, note="int64 labels"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
