"""BCE family: ``tsl.bce_with_logits`` against seed 001's ``BCELoss2d`` (torch's own fused BCE)
and seed 000's balanced BCE (0.25 / 0.75 over positives / negatives)."""

from . import eager
from .common import Case, binary_shape, compiled, make_mask, peer, tsl_fn

FAMILY = "bce"


def cases():
    return [
        Case(FAMILY, "multilabel", make_mask, {
            "tsl": tsl_fn("bce_with_logits"),
            "eager": lambda: eager.bce_seed001,
            "torch_compile": compiled(lambda: eager.bce_seed001),
            "smp": peer("segmentation_models_pytorch.losses", lambda m: m.SoftBCEWithLogitsLoss()),
        }, note="fp32 mask (N, C, ...); eager = nn.BCEWithLogitsLoss on flat views (seed 001)"),
        Case(FAMILY, "balanced", make_mask, {
            "tsl": tsl_fn("bce_with_logits", balance=(0.25, 0.75)),
            "eager": lambda: eager.bce_balanced_seed000,
            "torch_compile": compiled(lambda: eager.bce_balanced_seed000),
        }, shape=binary_shape, note="binary mask; eager = seed 000's weighted BCE"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
