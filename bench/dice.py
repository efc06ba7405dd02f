"""Dice family: ``tsl.dice_loss`` binary (seed 003's per-image Dice on sigmoid) and multiclass
(seed 004's one-hot Dice on softmax, per class over the batch), against MONAI, Kornia and smp."""

from . import eager
from .common import Case, binary_shape, compiled, make_labels, make_mask, peer, tsl_fn

FAMILY = "dice"
SMP = "segmentation_models_pytorch.losses"


def _monai_multiclass(m):
    loss = m.losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)
    return lambda x, t: loss(x, t.unsqueeze(1))


def _monai_binary(m):
    loss = m.losses.DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
    return lambda x, t: loss(x, t)


def cases():
    return [
        Case(FAMILY, "binary", make_mask, {
            "tsl": tsl_fn("dice_loss", mode="binary", smooth=1.0, per_image=True),
            "eager": lambda: eager.dice_binary_seed003,
            "torch_compile": compiled(lambda: eager.dice_binary_seed003),
            "monai": peer("monai", _monai_binary),
            "smp": peer(SMP, lambda m: m.DiceLoss("binary", from_logits=True, smooth=1.0)),
        }, shape=binary_shape),
        Case(FAMILY, "multiclass", make_labels, {
            "tsl": tsl_fn("dice_loss", mode="multiclass", smooth=1.0),
            "eager": lambda: eager.dice_multiclass_seed004,
            "torch_compile": compiled(lambda: eager.dice_multiclass_seed004),
            "monai": peer("monai", _monai_multiclass),
            "kornia": peer("kornia", lambda k: k.losses.dice_loss),
            "smp": peer(SMP, lambda m: m.DiceLoss("multiclass", from_logits=True, smooth=1.0)),
        }, note="int64 labels; kornia: 2D only"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
