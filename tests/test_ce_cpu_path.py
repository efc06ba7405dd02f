"""The PyTorch path's CPU-only form of cross entropy (``ce/torch_impl.py``) that test_ce.py reaches
with few options: the shift by the label's logit giving way to the max where the other classes'
exponentials would grow too large (a gap over ~44 nats), next to pixels that would keep the label's
shift, with every option."""

import pytest
import torch

import triton_segloss as tsl
from checks import compare_to_reference, upstream_not_one
from reference import ce as ref
from triton_segloss.ce import torch_impl

SHAPE = (3, 4, 30, 25)

OPTIONS = [
    {},
    {"reduction": "none"},
    {"ignore_index": 255, "weight": "w", "label_smoothing": 0.2},
    {"balance": True, "pixel_weight": "m", "reduction": "sum"},
    {"balance": True, "ignore_index": 255, "label_smoothing": 0.1, "reduction": "none"},
]


def _case(shape, opts, gap):
    x = torch.randn(shape) * 3
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    if opts.get("ignore_index") is not None:
        t[torch.rand(t.shape) < 0.2] = opts["ignore_index"]
    if gap:  # a few pixels of the last image with a class far above the label's logit
        t[-1, :2, :3] = 1
        x[-1, 0, :2, :3] = gap
    kw = dict(opts)
    if kw.get("weight") == "w":
        kw["weight"] = torch.rand(shape[1]) + 0.2
    if kw.get("pixel_weight") == "m":
        kw["pixel_weight"] = torch.rand(shape[0], *shape[2:]) * 2
    return x, t, kw


@pytest.mark.parametrize("gap", [0.0, 60.0, 200.0], ids=["label-shift", "max-shift", "max-shift-overflow"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(map(str, o)) or "plain")
def test_both_shifts_match_reference(gap, opts):
    x, t, kw = _case(SHAPE, opts, gap)
    with tsl.use_backend("torch"):
        compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one, **kw)


def test_the_shift_taken():
    x = torch.randn(2, 3, 5)
    y = torch.randint(0, 3, (2, 1, 5))
    assert torch_impl._shifted_exp(x, y, None, torch.float32)[2] is None  # s = x_y: u_y = 0
    x[1, 0, 2], y[1, 0, 2] = 50.0, 1
    _, d, uy, _ = torch_impl._shifted_exp(x, y, None, torch.float32, others=True)
    assert uy is not None and uy[1, 0, 2] < -40  # s = max x
    torch.testing.assert_close(d + uy.exp(), torch.exp(x - x.amax(1, keepdim=True)).sum(1, keepdim=True))


def test_gradcheck_fp64_max_shift():
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    x[0, 2, 0, 0] = 80.0  # e^80 > 2^64: the max shift
    t = torch.randint(0, 3, (2, 2, 3))
    t[0, 0, 0] = 0
    x.requires_grad_(True)
    w = torch.rand(3, dtype=torch.float64) + 0.1
    with tsl.use_backend("torch"):
        for kw in ({"reduction": "none", "balance": True}, {"weight": w, "label_smoothing": 0.1}):
            assert torch.autograd.gradcheck(lambda a: tsl.cross_entropy(a, t, **kw), (x,), fast_mode=True)
