"""The PyTorch path's CPU-only form of the softmax focal loss (``focal/torch_impl.py`` on
``ce/torch_impl.py``'s shifted exponentials) that test_focal.py reaches with few options: the shift
by the label's logit giving way to the max where the other classes' exponentials would grow too
large (a gap over ~44 nats), next to pixels that would keep the label's shift, with every option."""

import pytest
import torch

import triton_segloss as tsl
from checks import compare_to_reference, upstream_not_one
from reference import focal as ref

SHAPE = (3, 4, 30, 25)

OPTIONS = [
    {"gamma": 2.0, "alpha": None},
    {"gamma": 0.0, "alpha": None, "reduction": "sum"},
    {"gamma": 0.5, "alpha": [0.1, 0.2, 0.3, 0.4], "ignore_index": 255},
    {"gamma": 1.0, "alpha": 0.25, "class_weight": [1.0, 2.0, 0.5, 1.5], "reduction": "none"},
    {"gamma": 3.0, "alpha": None, "class_weight": 0.5, "ignore_index": 255, "reduction": "none"},
]


def _focal(x, y, **kw):
    return tsl.focal_loss(x, y, mode="multiclass", **kw)


@pytest.mark.parametrize("gap", [0.0, 60.0, 200.0], ids=["label-shift", "max-shift", "max-shift-overflow"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_both_shifts_match_reference(gap, opts):
    x = torch.randn(SHAPE) * 3
    y = torch.randint(0, SHAPE[1], (SHAPE[0], *SHAPE[2:]))
    if opts.get("ignore_index") is not None:
        y[torch.rand(y.shape) < 0.2] = opts["ignore_index"]
    if gap:  # a few pixels of the last image with a class far above the label's logit
        y[-1, :2, :3] = 1
        x[-1, 0, :2, :3] = gap
    with tsl.use_backend("torch"):
        compare_to_reference(_focal, ref.softmax_focal_loss, x, y, upstream=upstream_not_one, **opts)


def test_gradcheck_fp64_max_shift():
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    x[0, 2, 0, 0] = 80.0  # e^80 > 2^64: the max shift
    y = torch.randint(0, 3, (2, 2, 3))
    y[0, 0, 0] = 0
    x.requires_grad_(True)
    with tsl.use_backend("torch"):
        for kw in ({"gamma": 2.0, "alpha": None, "reduction": "none"}, {"gamma": 0.5, "alpha": [0.2, 0.3, 0.5]}):
            assert torch.autograd.gradcheck(lambda a: _focal(a, y, **kw), (x,), fast_mode=True)
