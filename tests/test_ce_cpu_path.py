"""The PyTorch path's CPU-only form of cross entropy (``ce/torch_impl.py``) that test_ce.py reaches
with few options: the shift by the label's logit giving way to the max where the other classes'
exponentials would grow too large (a gap over ~44 nats), next to pixels that would keep the label's
shift, with every option."""

import math

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_class_exponentials_stay_normal_numbers(dtype):
    """``_core.shifted_exp.exp_`` (CE's and softmax focal's CPU exponentials) never hands torch's exp
    an argument whose result is not a normal number (its slow path, 4-20x): arguments are clamped to
    [log of the smallest normal, log of the largest finite] first. In range it is torch.exp bit for
    bit; below, the result is the clamp's e^lo, an absolute change under 1.7e-38 (fp32)."""
    from triton_segloss._core.shifted_exp import _EXP_LIMITS, exp_

    info = torch.finfo(dtype)
    lo, hi = _EXP_LIMITS[dtype]
    assert math.exp(lo) >= info.tiny and math.exp(hi) <= info.max  # the limits' own claim, in double
    big = 1e4
    u = torch.tensor([float("-inf"), -big, -750.0, -120.0, -87.5, -87.0, -1.0, 0.0, 3.0, 50.0, 88.5, 800.0, big,
                      float("inf")], dtype=dtype)
    e = exp_(u.clone())
    assert bool((e >= info.tiny).all()) and bool(torch.isfinite(e).all())  # normal, positive, finite
    inside = (u >= lo) & (u <= hi)
    assert torch.equal(e[inside], u[inside].exp())
    assert bool((e[u.exp() < info.tiny] < 2 * info.tiny).all())  # below: the clamp's floor e^lo
    assert bool((e[u > hi] > 1e38).all())  # above: still huge (the caller's d >= 2^64 test sees it)
    assert torch.isnan(exp_(torch.tensor([float("nan")], dtype=dtype))).all()


@pytest.mark.parametrize("opts", OPTIONS[:3], ids=lambda o: "-".join(map(str, o)) or "plain")
def test_very_confident_logits_match_reference(opts):
    """Label logits 120 above the rest (every other class's e^(x_c - x_y) under the smallest normal
    fp32 number) and a few pixels the other way: loss and gradient as the reference's."""
    x, t, kw = _case(SHAPE, opts, 0.0)
    x = x.scatter_add(1, t.clamp(0, SHAPE[1] - 1).unsqueeze(1), torch.full((SHAPE[0], 1, *SHAPE[2:]), 120.0))
    x[0, :, :2, :2] = torch.tensor([0.0, 100.0, -100.0, 0.0]).view(4, 1, 1)
    with tsl.use_backend("torch"):
        compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one, **kw)
