"""Cross-entropy family: ``tsl.cross_entropy`` against seed 001's ``cross_entropy2d`` (pytorch-fcn)
and torch's fused ``F.cross_entropy``; the balanced variant against seed 003's ``BalancedBCELoss``."""

import torch.nn.functional as F

from . import eager
from .common import Case, compiled, make_labels, tsl_fn

FAMILY = "ce"


def cases():
    return [
        Case(FAMILY, "plain", make_labels, {
            "tsl": tsl_fn("cross_entropy"),
            "eager": lambda: eager.cross_entropy2d_seed001,
            "torch_compile": compiled(lambda: eager.cross_entropy2d_seed001),
            "torch_native": lambda: F.cross_entropy,
        }, note="int64 labels"),
        Case(FAMILY, "balanced", make_labels, {
            "tsl": tsl_fn("cross_entropy", balance=True),
            "eager": lambda: eager.balanced_ce_seed003,
            "torch_compile": compiled(lambda: eager.balanced_ce_seed003),
        }, note="int64 labels; inverse-frequency class weights from the target"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
