"""Boundary family: ``tsl.boundary_bce_dice_loss`` (seed 001's CombinedLoss) against seed 001's
``combined_loss``: avg-pool boundary weights, weighted BCE + weighted soft Dice."""

from . import eager
from .common import Case, binary_shape, compiled, make_mask, tsl_fn

FAMILY = "boundary"


def _kernel_size(x):
    return {"kernel_size": eager.seed001_kernel_size(x.shape[2])}


def _seed001(x, t):
    return eager.boundary_bce_dice_seed001(x, t, eager.seed001_kernel_size(x.shape[2]))


def cases():
    return [
        Case(FAMILY, "bce_dice", make_mask, {
            "tsl": tsl_fn("boundary_bce_dice_loss", extra=_kernel_size),
            "eager": lambda: _seed001,
            "torch_compile": compiled(lambda: _seed001),
        }, shape=binary_shape, note="binary fp32 mask; kernel size from seed 001's table (else ~H / 12)"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
