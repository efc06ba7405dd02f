import pytest
import torch

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager, upstream_not_one
from reference import bce as ref

SHAPES = [(2, 1, 7, 5), (2, 3, 4, 5, 3), (1, 1, 1, 1), (3, 2, 37, 41)]


def _mask(shape, p=0.4):
    return (torch.rand(shape) < p).float()


OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"balance": (0.25, 0.75)},
    {"balance": (0.25, 0.75), "reduction": "none"},
    {"label_smoothing": 0.1},
    {"pos_weight": 3.0},
    {"ignore_index": 255.0},
    {"ignore_index": 255.0, "reduction": "sum", "balance": (0.4, 0.6)},
]


@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_matches_reference(backend, shape, opts):
    x = torch.randn(shape) * 3
    t = _mask(shape)
    if "ignore_index" in opts:
        t[torch.rand(shape) < 0.3] = 255.0
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t, upstream=upstream_not_one, **opts)


@pytest.mark.parametrize("opts", OPTIONS[:4], ids=lambda o: "-".join(o) or "plain")
def test_odd_size_with_upstream_gradient(backend, opts):
    x = torch.randn(SHAPES[3])
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, _mask(SHAPES[3]),
                         upstream=upstream_not_one, **opts)


def test_weight_maps_broadcast(backend):
    x = torch.randn(2, 3, 6, 5)
    t = _mask(x.shape)
    for w in (torch.rand(2, 3, 6, 5), torch.rand(2, 1, 6, 5), torch.rand(6, 5), torch.rand(3, 1, 1)):
        compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t, weight=w, upstream=upstream_not_one)


def test_per_channel_pos_weight(backend):
    x = torch.randn(2, 3, 6, 5)
    t = _mask(x.shape)
    pw = torch.tensor([1.0, 2.0, 5.0])
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t, pos_weight=pw)


def test_binary_target_without_channel_dim_and_soft_labels(backend):
    x = torch.randn(3, 1, 9, 8)
    for t in (torch.rand(3, 9, 8), torch.rand(3, 1, 9, 8)):
        compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t, label_smoothing=0.05)


@pytest.mark.parametrize("tdtype", [torch.bool, torch.uint8, torch.float16, torch.int64])
def test_target_dtypes(backend, tdtype):
    x = torch.randn(2, 1, 6, 7)
    t = torch.rand(2, 1, 6, 7) < 0.5
    got = tsl.bce_with_logits(x, t.to(tdtype))
    want = ref.bce_with_logits(x, t.double())
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("opts", [{}, {"reduction": "none"}, {"balance": (0.25, 0.75)}], ids=str)
def test_dtypes(backend, dtype, opts):
    x = (torch.randn(2, 2, 8, 9) * 4).to(dtype)
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, _mask(x.shape),
                         upstream=upstream_not_one, **opts)


def test_layouts_channels_last_and_sliced(backend):
    base = torch.randn(2, 3, 10, 12)
    t = _mask(base.shape)
    want = tsl.bce_with_logits(base, t, reduction="none")
    cl = base.to(memory_format=torch.channels_last)
    loss, grad = compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, cl, t)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(tsl.bce_with_logits(cl, t.to(memory_format=torch.channels_last), reduction="none"), want)
    big = torch.randn(2, 3, 20, 25)
    sliced = big[:, :, ::2, 1:13]
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, sliced, t, upstream=upstream_not_one)
    expanded_t = _mask((1, 3, 10, 12)).expand(2, 3, 10, 12)
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, base, expanded_t)


def test_all_pixels_ignored_is_zero_with_zero_gradient(backend):
    x = torch.randn(2, 1, 5, 5, requires_grad=True)
    t = torch.full((2, 1, 5, 5), 255.0)
    for kw in ({}, {"reduction": "sum"}, {"balance": (0.25, 0.75)}):
        loss = tsl.bce_with_logits(x, t, ignore_index=255, **kw)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_balance_with_an_empty_side(backend):
    x = torch.randn(2, 1, 5, 5)
    t = torch.zeros(2, 1, 5, 5)
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t, balance=(0.25, 0.75))


def test_extreme_logits_are_finite(backend):
    x = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4]).view(1, 1, 5)
    t = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0]).view(1, 1, 5)
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t)


def test_gradcheck_fp64(backend):
    x = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(2, 2, 3, 4, dtype=torch.float64)
    t_ign = t.clone()
    t_ign[0, 0, 0] = -1
    w = torch.rand(2, 1, 3, 4, dtype=torch.float64)
    for kw in ({}, {"reduction": "none"}, {"balance": (0.3, 0.7)}):
        assert torch.autograd.gradcheck(lambda a: tsl.bce_with_logits(a, t, **kw), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda a: tsl.bce_with_logits(a, t_ign, ignore_index=-1, weight=w), (x,))


def test_opcheck(backend):
    from triton_segloss.bce.ops import BCEOptions, bce

    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    t = _mask(x.shape)
    w = torch.rand(2, 1, 4, 5).expand(2, 3, 4, 5).reshape(2, 3, 20)
    pw = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1).expand(2, 3, 20)
    x3, t3 = x.reshape(2, 3, 20), t.reshape(2, 3, 20)
    cases = [
        ((x3, t3, None, None), BCEOptions()),
        ((x3, t3, w, pw), BCEOptions(ignore_index=255.0, label_smoothing=0.1, reduction="none")),
        ((x3, t3, None, None), BCEOptions(pos_weight=2.0, balance=(0.25, 0.75), reduction="sum")),
        ((x3, t3, None, None), BCEOptions(balance=(0.25, 0.75), reduction="none")),
    ]
    for tensors, o in cases:
        torch.library.opcheck(bce.forward_op, (*tensors, *o))
    # the backward op has no derivative of its own (no double backward): check it on plain tensors
    g = torch.randn(2, 3, 20)
    for tensors, o in cases:
        tensors = (tensors[0].detach(),) + tensors[1:]
        coef = bce(*tensors, o)[1]
        grad = g if o.reduction == "none" else g[0, 0, 0]
        torch.library.opcheck(bce.backward_op, (grad, coef, *tensors, *o))


@pytest.mark.parametrize("opts", [{}, {"reduction": "none"}, {"balance": (0.25, 0.75), "ignore_index": 255}], ids=str)
def test_compile_fullgraph(backend, opts):
    x = torch.randn(2, 1, 6, 6)
    t = _mask(x.shape)
    fn = tsl.bce_with_logits if opts.get("reduction") != "none" else (lambda a, b, **k: tsl.bce_with_logits(a, b, **k).sum())
    compiled_matches_eager(fn, x, t, **opts)
    module = tsl.BCEWithLogitsLoss(**opts)
    compiled_matches_eager(lambda a, b: module(a, b).sum(), x, t)


def test_deterministic(backend):
    x = torch.randn(4, 3, 33, 35)
    t = _mask(x.shape)
    bitwise_deterministic(tsl.bce_with_logits, x, t, balance=(0.25, 0.75))
    bitwise_deterministic(tsl.bce_with_logits, x, t, weight=torch.rand(4, 1, 33, 35))


def test_module_matches_functional(backend):
    x = torch.randn(2, 1, 5, 5)
    t = _mask(x.shape)
    m = tsl.BCEWithLogitsLoss(pos_weight=2.0, reduction="sum")
    torch.testing.assert_close(m(x, t), tsl.bce_with_logits(x, t, pos_weight=2.0, reduction="sum"))
    with pytest.raises(TypeError, match="unexpected argument"):
        tsl.BCEWithLogitsLoss(smoth=1)


# ---- bad input -------------------------------------------------------------

def test_shape_mismatch_names_argument_and_shapes():
    with pytest.raises(ValueError, match=r"target.*\(2, 1, 4, 4\).*\(2, 1, 4, 5\)"):
        tsl.bce_with_logits(torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 5))


def test_integer_logits_is_type_error():
    with pytest.raises(TypeError, match="logits must be a floating tensor"):
        tsl.bce_with_logits(torch.ones(2, 1, 4, 4, dtype=torch.int64), torch.rand(2, 1, 4, 4))


@pytest.mark.parametrize("bad", [1.5, -0.2, float("nan")])
def test_target_out_of_range(bad):
    t = torch.rand(2, 1, 4, 4)
    t[1, 0, 2, 2] = bad
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\]"):
        tsl.bce_with_logits(torch.randn(2, 1, 4, 4), t)


def test_ignore_index_values_are_allowed():
    t = torch.rand(2, 1, 4, 4)
    t[0, 0, 0, 0] = 255
    assert torch.isfinite(tsl.bce_with_logits(torch.randn(2, 1, 4, 4), t, ignore_index=255))


def test_mismatched_devices():
    x = torch.randn(2, 1, 4, 4)
    t = torch.rand(2, 1, 4, 4, device="meta")
    with pytest.raises(ValueError, match="target is on meta but logits is on cpu"):
        tsl.bce_with_logits(x, t)


def test_weight_that_does_not_broadcast():
    with pytest.raises(ValueError, match=r"weight of shape \(3, 4\) does not broadcast to logits \(2, 1, 4, 4\)"):
        tsl.bce_with_logits(torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4), weight=torch.rand(3, 4))


def test_bad_options():
    x, t = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="reduction"):
        tsl.bce_with_logits(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        tsl.bce_with_logits(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="balance"):
        tsl.bce_with_logits(x, t, balance=(0.25,))


def test_value_checks_skip_while_compiling():
    # an out-of-range target does not raise inside a compiled graph (the check would sync)
    t = torch.rand(2, 1, 4, 4)
    t[0, 0, 0, 0] = 2.0
    f = torch.compile(tsl.bce_with_logits, fullgraph=True)
    assert torch.isfinite(f(torch.randn(2, 1, 4, 4), t))


def test_fp64_scalars_are_not_rounded_to_fp32(backend):
    # 0.1 and 0.3 are not fp32-representable: passed as fp32 kernel arguments they would
    # shift an fp64 loss by ~1e-8 relative, far outside the fp64 tolerance (1e-10)
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64) * 3
    t = _mask(x.shape)
    compare_to_reference(tsl.bce_with_logits, ref.bce_with_logits, x, t, label_smoothing=0.1, pos_weight=0.3,
                         upstream=upstream_not_one)
