"""Metrics: ``tsl.metrics.confusion_matrix`` (fused argmax + histogram) against seed 001's
``_fast_hist`` in torch (argmax, then bincount). Forward only."""

from . import eager
from .common import Case, make_labels, tsl_fn

FAMILY = "metrics"


def _seed001(x, t):
    return eager.confusion_seed001(x, t, x.shape[1])


def cases():
    return [
        Case(FAMILY, "confusion_matrix", make_labels, {
            "tsl": tsl_fn("metrics.confusion_matrix", extra=lambda x: {"num_classes": x.shape[1]}),
            "eager": lambda: _seed001,
        }, backward=False, note="int64 labels; int64 (C, C) result"),
    ]


if __name__ == "__main__":
    from .__main__ import main

    main(family=FAMILY)
