import os

import pytest
import torch
import torch.nn.functional as F

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager, sparse_mapping, upstream_not_one, \
    value_and_grad
from reference import ce as ref
from triton_segloss.ce.ops import CEOptions, ce as ce_op

# (logits shape): 2D, 3D, one pixel, odd sizes, no spatial dims
SHAPES = [(2, 4, 7, 5), (2, 3, 4, 5, 3), (1, 3, 1, 1), (2, 5, 37, 41), (6, 4)]


def _labels(logits_shape, ignore=None, p_ignore=0.25):
    n, c = logits_shape[:2]
    t = torch.randint(0, c, (n, *logits_shape[2:]))
    if ignore is not None:
        t[torch.rand(t.shape) < p_ignore] = ignore
    return t


OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"ignore_index": 255},
    {"weight": "w"},
    {"pixel_weight": "m"},
    {"balance": True},
    {"balance": True, "reduction": "none", "ignore_index": 255},
    {"weight": "w", "pixel_weight": "m", "label_smoothing": 0.2, "ignore_index": 255},
    {"balance": True, "weight": "w", "pixel_weight": "m", "label_smoothing": 0.3, "reduction": "sum"},
]


def _materialise(opts, x):
    """Replace the placeholders "w" (class weights) and "m" (pixel weights) with tensors for ``x``."""
    out = dict(opts)
    if out.get("weight") == "w":
        out["weight"] = torch.rand(x.shape[1]) + 0.2
    if out.get("pixel_weight") == "m":
        out["pixel_weight"] = torch.rand(x.shape[0], *x.shape[2:]) * 2
    return out


def _id(o):
    return "-".join(f"{k}={v}" if k in ("reduction", "ignore_index") else k for k, v in o.items()) or "plain"


# every option on a 2D batch; a representative few on 3D, one pixel and no spatial dims
CASES = [(SHAPES[0], o) for o in OPTIONS] + [(s, OPTIONS[i]) for s in (SHAPES[1], SHAPES[2], SHAPES[4])
                                              for i in (0, 2, 8, 9)]


@pytest.mark.parametrize("shape,opts", CASES, ids=lambda v: _id(v) if isinstance(v, dict) else str(v))
def test_matches_reference(backend, shape, opts):
    x = torch.randn(shape) * 3
    t = _labels(shape, opts.get("ignore_index"))
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one,
                         **_materialise(opts, x))


@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[2], OPTIONS[9]], ids=_id)
def test_odd_size_with_upstream_gradient(backend, opts):
    x = torch.randn(SHAPES[3])
    t = _labels(SHAPES[3], opts.get("ignore_index"))
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one,
                         **_materialise(opts, x))


@pytest.mark.parametrize("opts", [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1}, {"label_smoothing": 0.15},
    {"weight": True, "label_smoothing": 0.25, "ignore_index": 2}, {"weight": True, "reduction": "sum"},
    {"weight": True, "reduction": "none", "label_smoothing": 0.5},
], ids=str)
def test_equals_torch_cross_entropy(backend, opts):
    # wherever the options overlap, the value and gradient are torch's (fp64: to rounding)
    x = torch.randn(3, 5, 6, 7, dtype=torch.float64) * 2
    t = torch.randint(0, 5, (3, 6, 7))
    kw = dict(opts)
    if kw.get("weight"):
        kw["weight"] = torch.rand(5, dtype=torch.float64) + 0.1
    compare_to_reference(tsl.cross_entropy, F.cross_entropy, x, t, upstream=upstream_not_one, **kw)


@pytest.mark.parametrize("opts", OPTIONS, ids=_id)
def test_many_classes_sweep_in_chunks(backend, opts):
    # C = 70 > 64: the kernels sweep the classes in two chunks with an online log-sum-exp; the forward
    # writes the per-pixel statistics the backward reads instead of sweeping twice
    x = torch.randn(2, 70, 3, 5) * 4
    t = _labels(x.shape, opts.get("ignore_index"))
    t[0, 0, 0] = 69
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one,
                         **_materialise(opts, x))


@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.2, "weight": "w"}, {"reduction": "none"}], ids=_id)
def test_many_classes_large_logits(backend, opts):
    # logits of magnitude ~1000 and C = 150: lse = mx + log d kept in two parts, 1 - p_y from the other
    # classes' sum and the smoothing sum as non-negative terms, so nothing cancels
    x = torch.randn(2, 150, 2, 3, dtype=torch.float64) * 1000
    x[:, 7] += 2000  # class 7 dominates: p_7 ~ 1 exactly where the label is 7
    t = torch.randint(0, 150, (2, 2, 3))
    t[0, 0] = 7
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one,
                         **_materialise(opts, x))
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x.float(), t, upstream=upstream_not_one,
                         **_materialise(opts, x))


def test_single_class_and_empty_spatial_are_errors():
    # C = 1: a softmax over one class is constant (torch returns 0 and a zero gradient, which trains
    # nothing); the library says so instead (README, bad-input table)
    with pytest.raises(ValueError, match=r"C = 1.*needs C >= 2"):
        tsl.cross_entropy(torch.randn(2, 1, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits has no pixels: shape \(2, 3, 0, 4\)"):
        tsl.cross_entropy(torch.randn(2, 3, 0, 4), torch.zeros(2, 0, 4, dtype=torch.long), balance=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("opts", [{}, {"reduction": "none"}, {"balance": True, "label_smoothing": 0.1}], ids=_id)
def test_dtypes(backend, dtype, opts):
    x = (torch.randn(2, 3, 8, 9) * 4).to(dtype)
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, _labels(x.shape), upstream=upstream_not_one,
                         **opts)


def test_fp16_loss_is_fp32_and_does_not_overflow(backend):
    # fp16 holds at most 65504: a sum of per-pixel losses beyond that stays finite in fp32
    x = torch.full((1, 2, 64, 64), -30.0, dtype=torch.float16)
    x[:, 1] = 30.0
    t = torch.zeros(1, 64, 64, dtype=torch.long)  # every pixel wrong by 60 nats: sum = 245760
    loss = tsl.cross_entropy(x, t, reduction="sum")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ref.cross_entropy(x, t, reduction="sum").float())
    assert F.cross_entropy(x.float(), t, reduction="sum").to(torch.float16).isinf()  # what fp16 would give


@pytest.mark.parametrize("tdtype", [torch.int32, torch.uint8])
def test_target_dtypes_and_channel_dim(backend, tdtype):
    x = torch.randn(2, 4, 6, 7)
    t = _labels(x.shape)
    want = ref.cross_entropy(x, t)
    torch.testing.assert_close(tsl.cross_entropy(x, t.to(tdtype)).double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tsl.cross_entropy(x, t.unsqueeze(1)).double(), want, rtol=1e-5, atol=1e-6)
    # uint8 labels with 255 ignored
    t8 = t.to(torch.uint8)
    t8[0, 0] = 255
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t8, ignore_index=255)


def test_layouts_channels_last_and_sliced(backend):
    base = torch.randn(2, 4, 10, 12)
    t = _labels(base.shape, 255)
    cl = base.to(memory_format=torch.channels_last)
    _, grad = compare_to_reference(tsl.cross_entropy, ref.cross_entropy, cl, t, ignore_index=255,
                                   label_smoothing=0.1, upstream=upstream_not_one)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    big = torch.randn(2, 4, 20, 25)
    sliced = big[:, :, ::2, 1:13]
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, sliced, t, ignore_index=255)
    t_sliced = torch.randint(0, 4, (2, 20, 24))[:, ::2, ::2]
    m = torch.rand(1, 10, 1).expand(2, 10, 12)  # stride-0 pixel weights
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, base, t_sliced, pixel_weight=m,
                         upstream=upstream_not_one)


def test_pixel_weight_shapes(backend):
    x = torch.randn(2, 3, 5, 6)
    t = _labels(x.shape)
    m = torch.rand(2, 5, 6)
    want = tsl.cross_entropy(x, t, pixel_weight=m)
    for same in (m.unsqueeze(1), m.to(torch.float64)):
        torch.testing.assert_close(tsl.cross_entropy(x, t, pixel_weight=same), want)
    for broadcast in (torch.rand(5, 6), torch.rand(2, 1, 6), torch.rand(6)):
        compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, pixel_weight=broadcast)
    # a boolean map selects pixels: the mean over the selected pixels
    sel = torch.rand(2, 5, 6) < 0.5
    torch.testing.assert_close(tsl.cross_entropy(x, t, pixel_weight=sel).double(),
                               F.cross_entropy(x.double(), t, reduction="none")[sel].mean(), rtol=1e-5, atol=1e-6)


def test_balance_is_the_mean_of_class_means(backend):
    # balance=True with "mean": each present class's mean loss, averaged over present classes
    x = torch.randn(2, 4, 9, 9)
    t = _labels(x.shape)
    t[t == 2] = 1  # class 2 absent
    per_pixel = F.cross_entropy(x.double(), t, reduction="none")
    class_means = [per_pixel[t == c].mean() for c in (0, 1, 3)]
    want = torch.stack(class_means).mean()
    torch.testing.assert_close(tsl.cross_entropy(x, t, balance=True).double(), want, rtol=1e-5, atol=1e-6)
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, balance=True, label_smoothing=0.2)


def test_all_pixels_ignored_is_zero_with_zero_gradient(backend):
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    t = torch.full((2, 5, 5), 255)
    for kw in ({}, {"reduction": "sum"}, {"balance": True}, {"pixel_weight": torch.rand(2, 5, 5)},
               {"label_smoothing": 0.1, "weight": torch.rand(3)}):
        loss = tsl.cross_entropy(x, t, ignore_index=255, **kw)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.count_nonzero(g) == 0
    assert F.cross_entropy(x, t, ignore_index=255).isnan()  # torch's mean here


def test_zero_pixel_weights_give_zero(backend):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = _labels(x.shape)
    loss = tsl.cross_entropy(x, t, pixel_weight=torch.zeros(2, 4, 4))
    (g,) = torch.autograd.grad(loss, x)
    assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_extreme_logits_are_finite(backend):
    x = torch.tensor([[-1e4, 0.0, 1e4], [100.0, -100.0, 0.0], [1e4, 1e4, 1e4]]).T.reshape(1, 3, 3)
    t = torch.tensor([[0, 1, 2]])
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, label_smoothing=0.1)
    # a large common offset: nll is computed from logit differences, not from lse - x_y
    y = torch.randn(2, 4, 5, 5) + 3e4
    compare_to_reference(tsl.cross_entropy, ref.cross_entropy, y, _labels(y.shape))


def test_gradcheck_fp64(backend):
    # fast_mode: the analytical gradient against finite differences along random directions
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    t = _labels(x.shape, ignore=-100, p_ignore=0.2)
    w = torch.rand(3, dtype=torch.float64) + 0.1
    m = torch.rand(2, 2, 3, dtype=torch.float64)
    for kw in ({"reduction": "none", "balance": True}, {"weight": w, "pixel_weight": m, "label_smoothing": 0.1}):
        assert torch.autograd.gradcheck(lambda a: tsl.cross_entropy(a, t, **kw), (x,), fast_mode=True)


def test_opcheck(backend):
    x = torch.randn(2, 3, 20, requires_grad=True)
    t = torch.randint(0, 3, (2, 1, 20))
    t[0, 0, :4] = -100
    w = torch.rand(3) + 0.1
    m = torch.rand(2, 1, 4, 5).expand(2, 1, 4, 5).reshape(2, 1, 20)
    cases = [
        ((x, t, w, m), CEOptions(ignore_index=-100, label_smoothing=0.1, reduction="none")),
        ((x, t, None, m), CEOptions(balance=True, reduction="sum")),
        ((x, t, w, None), CEOptions(balance=True, ignore_index=-100, label_smoothing=0.2)),
        ((x, t, None, m), CEOptions(weight_values=(0.5, 1.0, 2.0), balance=True, ignore_index=-100,
                                    label_smoothing=0.1, reduction="none")),
        ((x, t, None, None), CEOptions(weight_values=(0.5, 1.0, 2.0), ignore_index=-100)),
    ]
    # more classes than one chunk: the forward's per-pixel statistics are an output the backward reads
    xw = torch.randn(2, 70, 20, requires_grad=True)
    tw = torch.randint(0, 70, (2, 1, 20))
    cases += [((xw, tw, None, m), CEOptions(label_smoothing=0.1)),
              ((xw, tw, None, None), CEOptions(balance=True, reduction="none"))]
    for tensors, o in cases:
        torch.library.opcheck(ce_op.forward_op, (*tensors, *o))
    # the backward op has no derivative of its own (no double backward): check it on plain tensors
    g = torch.randn(2, 20)
    for (xx, *rest), o in cases:
        xd = xx.detach()
        _, coef, stats = ce_op.forward_op(xd, *rest, *o)
        assert stats.shape == ((2, 3, 20) if xd.shape[1] > 64 else (0,))
        grad = g if o.reduction == "none" else g[0, 0]
        torch.library.opcheck(ce_op.backward_op, (grad, coef, stats, xd, *rest, *o))


def test_compile_fullgraph(backend):
    x = torch.randn(2, 3, 6, 6)
    t = _labels(x.shape, 255)
    compiled_matches_eager(tsl.cross_entropy, x, t, ignore_index=255)
    opts = {"reduction": "none", "balance": True, "ignore_index": 255, "label_smoothing": 0.1}
    module = tsl.CrossEntropyLoss(**opts)
    compiled_matches_eager(lambda a, b: module(a, b).sum(), x, t)
    m = torch.rand(2, 6, 6)
    compiled_matches_eager(lambda a, b: tsl.cross_entropy(a, b, pixel_weight=m, weight=torch.ones(3), ignore_index=255,
                                                          reduction="sum"), x, t)


@pytest.mark.parametrize("opts", [
    {}, {"reduction": "none", "balance": True},
    {"weight": [1.0, 2.0, 0.5], "label_smoothing": 0.1, "reduction": "sum"},
    {"balance": True, "pixel_weight": True, "label_smoothing": 0.2},
    {"reduction": "none", "weight": True, "pixel_weight": True},
], ids=_id)
def test_compile_dynamic(backend, opts):
    # dynamic=True: symbolic sizes reach the api and the op; no graph break, no recompile for a new size
    from torch._dynamo.utils import counters

    kw = dict(opts, ignore_index=255)
    use_m = kw.pop("pixel_weight", False)
    if kw.get("weight") is True:
        kw["weight"] = torch.tensor([0.3, 1.0, 2.0])

    def fn(a, b, m):
        return tsl.cross_entropy(a, b, pixel_weight=m if use_m else None, **kw)

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    for shape in ((2, 3, 6, 7), (3, 3, 9, 5), (4, 3, 5, 11)):  # no size 1: dynamo specialises it
        x = torch.randn(shape)
        t = _labels(shape, 255)
        m = torch.rand(shape[0], *shape[2:])
        outs = []
        for f in (compiled, fn):
            xx = x.detach().requires_grad_(True)
            loss = f(xx, t, m)
            (g,) = torch.autograd.grad(loss, xx, upstream_not_one(loss))
            outs.append((loss.detach(), g))
        torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-6, atol=1e-7)
    assert counters["stats"]["unique_graphs"] == 1


def test_out_of_range_labels_are_skipped_when_unchecked(backend, monkeypatch):
    # value checks off (as on CUDA by default): labels outside [0, C) count like ignored pixels,
    # also in the balance histogram
    import triton_segloss._core.validate as validate

    monkeypatch.setattr(validate, "check_values_now", lambda t: False)
    x = torch.randn(2, 3, 5, 6)
    t = _labels(x.shape, 255)
    bad = t.clone()
    bad[0, 0, :3] = 3
    bad[1, 2, 1] = -7
    bad[1, 4, :] = 100
    ok = torch.where((bad < 0) | (bad >= 3), 255, bad)
    for kw in ({}, {"reduction": "none"}, {"balance": True}, {"balance": True, "reduction": "none",
                                                             "label_smoothing": 0.1},
               {"weight": [1.0, 2.0, 3.0], "reduction": "sum"}):
        want, want_g = value_and_grad(tsl.cross_entropy, x, ok, ignore_index=255, upstream=upstream_not_one, **kw)
        got, got_g = value_and_grad(tsl.cross_entropy, x, bad, ignore_index=255, upstream=upstream_not_one, **kw)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(got_g, want_g, rtol=0, atol=0)


def test_several_tiles_per_program_and_finisher_steps(monkeypatch):
    # small caps: programs sweep several tiles, the balance finisher steps over rows and classes
    from triton_segloss.ce import kernels

    monkeypatch.setattr(kernels, "MAX_PARTIAL_ROWS", 2)
    monkeypatch.setattr(kernels, "FINISH_ROWS", 2)
    monkeypatch.setattr(kernels, "FINISH_CLASSES", 2)
    x = torch.randn(2, 3, 40, 50) * 2  # 2 tiles per image
    t = _labels(x.shape, 255)
    m = torch.rand(2, 40, 50)
    with tsl.use_backend("triton"):
        for opts in ({}, {"balance": True}, {"balance": True, "label_smoothing": 0.1, "pixel_weight": m,
                                             "weight": torch.rand(3) + 0.2, "reduction": "sum"},
                     {"balance": True, "reduction": "none", "label_smoothing": 0.3},
                     {"label_smoothing": 0.1, "weight": [0.5, 1.0, 2.0], "pixel_weight": m}):
            compare_to_reference(tsl.cross_entropy, ref.cross_entropy, x, t, upstream=upstream_not_one,
                                 ignore_index=255, **opts)
        y = torch.randn(2, 70, 9, 11)  # more classes than one chunk: the per-class partials add up in memory
        for opts in ({"balance": True, "label_smoothing": 0.1}, {"balance": True, "reduction": "none"}):
            compare_to_reference(tsl.cross_entropy, ref.cross_entropy, y, _labels(y.shape), upstream=upstream_not_one,
                                 **opts)


def test_deterministic(backend):
    x = torch.randn(3, 5, 20, 30)  # several programs per image: partials summed in a fixed order
    t = _labels(x.shape, 255)
    bitwise_deterministic(tsl.cross_entropy, x, t, ignore_index=255, balance=True, label_smoothing=0.1,
                          pixel_weight=torch.rand(3, 20, 30))


def test_module_matches_functional(backend):
    x = torch.randn(2, 3, 5, 5)
    t = _labels(x.shape)
    m = tsl.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(m(x, t), tsl.cross_entropy(x, t, label_smoothing=0.1, reduction="sum"))


def test_backends_agree():
    x = torch.randn(3, 4, 11, 13)
    t = _labels(x.shape, 255)
    kw = dict(balance=True, pixel_weight=torch.rand(3, 11, 13), label_smoothing=0.1, ignore_index=255)
    with tsl.use_backend("triton"):
        a = tsl.cross_entropy(x, t, **kw)
    with tsl.use_backend("torch"):
        b = tsl.cross_entropy(x, t, **kw)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ---- bad input -------------------------------------------------------------

def test_target_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*spatial\) = \(2, 4, 4\).*\(2, 4, 5\)"):
        tsl.cross_entropy(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long))


def test_float_target_is_type_error():
    with pytest.raises(TypeError, match="target must hold integer class labels"):
        tsl.cross_entropy(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4))


def test_label_out_of_range():
    t = torch.zeros(2, 4, 4, dtype=torch.long)
    t[1, 2, 2] = 3
    with pytest.raises(ValueError, match=r"target labels must lie in \[0, 3\).*found e.g. \[3\]"):
        tsl.cross_entropy(torch.randn(2, 3, 4, 4), t)
    t[1, 2, 2] = -100
    assert torch.isfinite(tsl.cross_entropy(torch.randn(2, 3, 4, 4), t))


def test_bad_weights():
    x, t = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(3,\).*got weight \(4\)"):
        tsl.cross_entropy(x, t, weight=torch.ones(4))
    with pytest.raises(TypeError, match="weight must be a floating tensor"):
        tsl.cross_entropy(x, t, weight=torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pixel_weight of shape \(3, 4\) does not broadcast to \(N, \*spatial\)"):
        tsl.cross_entropy(x, t, pixel_weight=torch.rand(3, 4))
    with pytest.raises(ValueError, match="pixel_weight is on meta but logits is on cpu"):
        tsl.cross_entropy(x, t, pixel_weight=torch.rand(2, 4, 4, device="meta"))
    torch.testing.assert_close(tsl.cross_entropy(x, t, weight=[1.0, 2.0, 3.0]),
                               tsl.cross_entropy(x, t, weight=torch.tensor([1.0, 2.0, 3.0])))


def test_bad_options():
    x, t = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="reduction"):
        tsl.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        tsl.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index"):
        tsl.cross_entropy(x, t, ignore_index=2.5)
    with pytest.raises(TypeError, match="balance"):
        tsl.cross_entropy(x, t, balance=(0.3, 0.7))
    with pytest.raises(TypeError, match="unexpected argument"):
        tsl.CrossEntropyLoss(wieght=None)


def test_value_checks_skip_while_compiling():
    # an out-of-range label does not raise inside a compiled graph (the check would sync); it is skipped
    t = torch.zeros(2, 4, 4, dtype=torch.long)
    t[0, 0, 0] = 7
    f = torch.compile(tsl.cross_entropy, fullgraph=True)
    x = torch.randn(2, 3, 4, 4)
    t_ok = t.clone()
    t_ok[0, 0, 0] = -100
    torch.testing.assert_close(f(x, t), tsl.cross_entropy(x, t_ok))


# ---- class stride 2^30 ---------------------------------------------------------

CLASS_STRIDE = 2**30
CHUNK_STRIDE = 2**25  # 70 classes: classes 64.. (the second chunk) start past 2^31
SPARSE_NUMEL = 70 * CHUNK_STRIDE + 2**16  # > 2 * CLASS_STRIDE + 2**16 too


@pytest.fixture(scope="module")
def sparse_storage(tmp_path_factory):
    """A sparse memory-mapped float32 file of ~2.35e9 elements (9 GiB of address space, a few pages of disk)."""
    path = tmp_path_factory.mktemp("big_ce") / "sparse.bin"
    big = sparse_mapping(path, SPARSE_NUMEL)
    yield big
    del big
    os.unlink(path)



def _far_and_near(fn, x, t, **kw):
    """Loss and gradient of ``fn`` on the far view and on a small contiguous copy: the same bits."""
    near = x.detach().clone()
    out = []
    for v in (x, near):
        xv = v.detach().requires_grad_(True)
        loss = fn(xv, t, **kw)
        (g,) = torch.autograd.grad(loss, xv, upstream_not_one(loss))
        out.append((loss, g))
    (lf, gf), (ln, gn) = out
    assert torch.equal(lf, ln), (lf - ln).abs().max()
    assert torch.equal(gf, gn)


def test_class_stride_2_30(sparse_storage, in_place_interpreter):
    # class c of the logits starts c * 2^30 elements in: c * stride_xc overflows int32 from c = 2 on;
    # the class weights are a stride-2^30 view too (the finisher and both passes index them by class)
    S = 40
    x = sparse_storage.as_strided((1, 3, S), (3 * CLASS_STRIDE, CLASS_STRIDE, 1))
    x.copy_(torch.randn(1, 3, S) * 3)
    w = sparse_storage.as_strided((3,), (CLASS_STRIDE,), S + 8)
    w.copy_(torch.tensor([0.5, 1.0, 2.0]))
    t = torch.randint(0, 3, (1, S))
    t[0, :4] = 255
    m = torch.rand(1, S)
    with tsl.use_backend("triton"):
        for kw in ({}, {"reduction": "none"}, {"balance": True}, {"balance": True, "reduction": "none"},
                   {"label_smoothing": 0.1, "weight": w, "pixel_weight": m},
                   {"balance": True, "label_smoothing": 0.2, "weight": w, "reduction": "sum"}):
            _far_and_near(tsl.cross_entropy, x, t, ignore_index=255, **kw)
            if "weight" in kw:
                _far_and_near(tsl.cross_entropy, x, t, ignore_index=255, **dict(kw, weight=w.clone()))


def test_class_offsets_past_2_31_in_a_later_chunk(sparse_storage, in_place_interpreter):
    # 70 classes (two chunks of 64) at a class stride of 2^25: classes 64..69 start past 2^31
    stride = CHUNK_STRIDE
    S = 12
    x = sparse_storage.as_strided((1, 70, S), (70 * stride, stride, 1))
    x.copy_(torch.randn(1, 70, S) * 3)
    t = torch.randint(60, 70, (1, S))
    with tsl.use_backend("triton"):
        for kw in ({}, {"balance": True, "label_smoothing": 0.1}, {"balance": True, "reduction": "none"}):
            _far_and_near(tsl.cross_entropy, x, t, **kw)


@pytest.mark.parametrize("loss", ["cross_entropy", "focal multiclass"])
def test_compile_many_classes_statistics_output(backend, loss):
    # above one class tile the ops return per-pixel statistics: their fake's shape must match the
    # real output under fullgraph=True, also with dynamic sizes (no recompile for a new size)
    from torch._dynamo.utils import counters

    C = 70 if loss == "cross_entropy" else 21

    def fn(a, b):
        if loss == "cross_entropy":
            return tsl.cross_entropy(a, b, label_smoothing=0.1)
        return tsl.focal_loss(a, b, mode="multiclass")

    x = torch.randn(2, C, 5, 6)
    compiled_matches_eager(fn, x, _labels(x.shape))
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    for shape in ((2, C, 6, 7), (3, C, 9, 5)):
        x = torch.randn(shape)
        t = _labels(shape)
        got = value_and_grad(compiled, x, t)
        want = value_and_grad(fn, x, t)
        torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=1e-7)
    assert counters["stats"]["unique_graphs"] == 1
