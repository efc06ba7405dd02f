"""Lovász family: ``tsl.lovasz_hinge`` (per image) and ``tsl.lovasz_softmax`` against Berman's
reference code (seeds 002 / 004: a Python loop over images or classes, one sort each), Kornia and smp."""

from . import eager
from .common import Case, binary_shape, compiled, make_labels, make_mask, peer, tsl_fn

FAMILY = "lovasz"
SMP = "segmentation_models_pytorch.losses"


def cases():
    return [
        Case(FAMILY, "hinge", make_mask, {
            "tsl": tsl_fn("lovasz_hinge", per_image=True),
            "eager": lambda: eager.lovasz_hinge_berman,
            "torch_compile": compiled(lambda: eager.lovasz_hinge_berman),
            "kornia": peer("kornia", lambda k: lambda x, t: k.losses.lovasz_hinge_loss(x, t[:, 0])),
            "smp": peer(SMP, lambda m: m.LovaszLoss("binary", per_image=True)),
        }, shape=binary_shape, note="binary fp32 mask; kornia: 2D only"),
        Case(FAMILY, "softmax", make_labels, {
            "tsl": tsl_fn("lovasz_softmax"),
            "eager": lambda: eager.lovasz_softmax_berman,
            "torch_compile": compiled(lambda: eager.lovasz_softmax_berman),
            "kornia": peer("kornia", lambda k: k.losses.lovasz_softmax_loss),
            "smp": peer(SMP, lambda m: m.LovaszLoss("multiclass", per_image=False)),
        }, note="int64 labels, classes='present', per_image=False"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
