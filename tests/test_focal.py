import os

import pytest
import torch
import torch.nn.functional as F

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager, sparse_mapping, upstream_not_one, value_and_grad
from reference import focal as ref
from tolerances import assert_grad, assert_value
from triton_segloss.focal.ops import SigmoidFocalOptions, SoftmaxFocalOptions, focal_sigmoid, focal_softmax


def _mask(shape, p=0.4):
    return (torch.rand(shape) < p).float()


def _labels(n, c, *spatial):
    return torch.randint(0, c, (n, *spatial))


def _sigmoid(x, t, **kw):
    return tsl.focal_loss(x, t, mode="binary" if x.shape[1] == 1 else "multilabel", **kw)


def _softmax(x, y, **kw):
    return tsl.focal_loss(x, y, mode="multiclass", **kw)


# ---- binary / multilabel: torchvision's sigmoid_focal_loss -----------------------

SIGMOID_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"gamma": 0.0},
    {"gamma": 0.5, "alpha": None},
    {"gamma": 3.0, "alpha": -1},
    {"alpha": 0.6, "ignore_index": 255.0},
    {"ignore_index": 255.0, "reduction": "none", "gamma": 1.5},
]


@pytest.mark.parametrize("shape", [(2, 1, 7, 5), (1, 3, 4, 5, 3)])
@pytest.mark.parametrize("opts", SIGMOID_OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "plain")
def test_sigmoid_matches_torchvision_formula(backend, shape, opts):
    x = torch.randn(shape) * 3
    t = _mask(shape)
    if "ignore_index" in opts:
        t[torch.rand(shape) < 0.3] = 255.0
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, x, t, upstream=upstream_not_one, **opts)


def test_one_pixel(backend):
    x = torch.randn(1, 1, 1, 1) * 3
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, x, _mask(x.shape), upstream=upstream_not_one)
    x = torch.randn(1, 4, 1, 1) * 3
    compare_to_reference(_softmax, ref.softmax_focal_loss, x, _labels(1, 4, 1, 1), alpha=[0.1, 0.2, 0.3, 0.4],
                         upstream=upstream_not_one)


def test_sigmoid_odd_size_soft_targets_and_target_without_channel(backend):
    x = torch.randn(2, 1, 37, 41) * 2
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, x, torch.rand(2, 1, 37, 41), upstream=upstream_not_one)
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, x[:, :, :5, :6], torch.rand(2, 5, 6), gamma=0.7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_gamma_zero_is_bce(backend, dtype):
    x = (torch.randn(2, 3, 6, 7) * 4).to(dtype)
    t = _mask(x.shape)
    loss, grad = value_and_grad(lambda a: _sigmoid(a, t, gamma=0.0, alpha=None), x)
    want, want_grad = value_and_grad(lambda a: F.binary_cross_entropy_with_logits(a, t.double()), x.double())
    assert_value(loss, want, dtype)
    assert_grad(grad, want_grad, dtype)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_extreme_logits_are_finite_and_right(backend, gamma):
    x = torch.tensor([-1e4, -100.0, -30.0, -5.0, 0.0, 5.0, 30.0, 100.0, 1e4] * 2).view(1, 1, 18)
    t = torch.tensor([1.0] * 9 + [0.0] * 9).view(1, 1, 18)
    loss, grad = value_and_grad(_sigmoid, x, t, gamma=gamma, reduction="none")
    want, want_grad = value_and_grad(ref.sigmoid_focal_loss, x.double(), t, gamma=gamma, reduction="none")
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    # atol 1e-15: at |x| = 30 the float64 reference itself forms 1 - p_t ~ 1e-13 with an error of
    # ulp(1) ~ 2e-16, i.e. ~1e-3 relative; everything else is compared at rel 1e-5
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=1e-15)
    # where (1 - p_t) underflows to 0 in float64 too, autograd of (1 - p_t)^gamma is 0 * inf = nan for
    # gamma < 1; the true limit there is 0 (the gradient is ~ (1 - p_t)^(1 + gamma))
    finite = torch.isfinite(want_grad)
    assert (grad[~finite] == 0).all()
    torch.testing.assert_close(grad[finite].double(), want_grad[finite], rtol=1e-5, atol=1e-15)


def test_sigmoid_small_gamma_near_confident_pixels_keeps_relative_accuracy(backend):
    # 1 - p_t between 1.5e-8 and 7e-3 (where the float64 reference is still exact to ~1e-8):
    # the gradient is tiny, compare it with no absolute slack
    x = torch.linspace(5.0, 18.0, 40).view(1, 1, 40)
    t = torch.ones(1, 1, 40)
    for gamma in (0.25, 0.5, 2.0):
        loss, grad = value_and_grad(_sigmoid, x, t, gamma=gamma, reduction="none")
        want, want_grad = value_and_grad(ref.sigmoid_focal_loss, x.double(), t, gamma=gamma, reduction="none")
        torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)
        torch.testing.assert_close(grad.double(), want_grad, rtol=1e-5, atol=0)


# ---- multiclass: softmax focal ------------------------------------------------------

SOFTMAX_OPTIONS = [
    {},
    {"reduction": "sum", "alpha": None},
    {"reduction": "none"},
    {"gamma": 0.0, "alpha": None},
    {"gamma": 0.5, "alpha": [0.1, 0.5, 1.0, 2.0]},
    {"gamma": 3.5, "alpha": -1.0, "ignore_index": 255},
    {"alpha": [0.3, 0.2, 0.4, 0.1], "ignore_index": -100, "reduction": "none"},
]


@pytest.mark.parametrize("shape", [(2, 4, 7, 5), (1, 4, 3, 4, 3)])
@pytest.mark.parametrize("opts", SOFTMAX_OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "plain")
def test_softmax_matches_reference(backend, shape, opts):
    x = torch.randn(shape) * 3
    y = _labels(shape[0], shape[1], *shape[2:])
    if "ignore_index" in opts:
        y[torch.rand(y.shape) < 0.3] = opts["ignore_index"]
    compare_to_reference(_softmax, ref.softmax_focal_loss, x, y, upstream=upstream_not_one, **opts)


@pytest.mark.parametrize("opts", SOFTMAX_OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "plain")
def test_softmax_many_classes_every_option(backend, opts):
    # C = 21 > 16: two class chunks; the forward writes the per-pixel statistics the backward reads
    kw = dict(opts)
    if isinstance(kw.get("alpha"), list):
        kw["alpha"] = (torch.rand(21) + 0.1).tolist()
    x = torch.randn(2, 21, 5, 3) * 3
    x[:, 4, 0] += 40.0  # p_4 ~ 1 on a row: q ~ 0 where the label is 4
    y = _labels(2, 21, 5, 3)
    y[:, 0, :2] = 4
    if "ignore_index" in kw:
        y[torch.rand(y.shape) < 0.3] = kw["ignore_index"]
    compare_to_reference(_softmax, ref.softmax_focal_loss, x, y, upstream=upstream_not_one, **kw)
    compare_to_reference(_softmax, ref.softmax_focal_loss, x.double(), y, upstream=upstream_not_one, **kw)


def test_softmax_many_classes_odd_size_and_absent_class(backend):
    # C = 21 takes more than one class chunk in the kernel; class 0 never appears
    x = torch.randn(2, 21, 9, 7) * 2
    y = torch.randint(1, 21, (2, 9, 7))
    alpha = torch.rand(21).tolist()
    compare_to_reference(_softmax, ref.softmax_focal_loss, x, y, alpha=alpha, upstream=upstream_not_one)
    compare_to_reference(_softmax, ref.softmax_focal_loss, torch.randn(1, 3, 37, 41), torch.randint(0, 3, (1, 37, 41)),
                         gamma=1.0, reduction="none", upstream=upstream_not_one)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_gamma_zero_is_cross_entropy(backend, dtype):
    # against torch's cross entropy evaluated in float64 (in float32 torch forms p_y - 1 with
    # cancellation, ~1e-3 relative off where p_y ~ 1; the kernels write it as -sum_{k != y} p_k)
    x = (torch.randn(2, 5, 6, 7) * 4).to(dtype)
    y = _labels(2, 5, 6, 7)
    y[0, 0] = 255
    w = [0.5, 1.0, 2.0, 0.1, 1.5]
    loss, grad = value_and_grad(lambda a: _softmax(a, y, gamma=0.0, alpha=w, ignore_index=255, reduction="sum"), x)
    w64 = torch.tensor(w, dtype=torch.float64)
    want, want_grad = value_and_grad(
        lambda a: F.cross_entropy(a, y, weight=w64, ignore_index=255, reduction="sum"), x.double())
    assert_value(loss, want, dtype)
    assert_grad(grad, want_grad, dtype)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_extreme_logits_are_finite_and_right(backend, gamma):
    x = torch.tensor([[1e4, 0.0, -1e4], [30.0, -30.0, 0.0], [0.0, 90.0, -90.0], [5.0, 4.0, 3.0]]).T.reshape(1, 3, 4)
    y = torch.tensor([[0, 0, 0, 2]])
    loss, grad = value_and_grad(_softmax, x, y, gamma=gamma, reduction="none")
    want, want_grad = value_and_grad(ref.softmax_focal_loss, x.double(), y, gamma=gamma, reduction="none")
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    # see the sigmoid test: the float64 reference's log-sum-exp at logits 30 loses ~1e-3 relative
    # of a loss of 1e-13; nan in float64 autograd where the limit is 0
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=1e-15)
    finite = torch.isfinite(want_grad)
    assert (grad[~finite] == 0).all()
    torch.testing.assert_close(grad[finite].double(), want_grad[finite], rtol=1e-5, atol=1e-15)


def test_softmax_small_gamma_near_confident_pixels_keeps_relative_accuracy(backend):
    margin = torch.linspace(4.0, 20.0, 30)
    x = torch.stack([margin, torch.zeros(30), -margin / 2]).view(1, 3, 30)
    y = torch.zeros(1, 30, dtype=torch.long)
    for gamma in (0.25, 0.5, 2.0):
        loss, grad = value_and_grad(_softmax, x, y, gamma=gamma, reduction="none")
        want, want_grad = value_and_grad(ref.softmax_focal_loss, x.double(), y, gamma=gamma, reduction="none")
        torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)
        torch.testing.assert_close(grad.double(), want_grad, rtol=1e-5, atol=0)


@pytest.mark.parametrize("tdtype", [torch.int32, torch.uint8])
def test_softmax_label_dtypes_and_channel_dim(backend, tdtype):
    x = torch.randn(2, 3, 5, 6)
    y = _labels(2, 3, 5, 6)
    want = ref.softmax_focal_loss(x, y)
    torch.testing.assert_close(_softmax(x, y.to(tdtype)).double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_softmax(x, y.unsqueeze(1)).double(), want, rtol=1e-5, atol=1e-6)


def test_alpha_as_tensor(backend):
    x = torch.randn(2, 3, 5, 6)
    y = _labels(2, 3, 5, 6)
    a = [0.2, 0.3, 0.5]
    torch.testing.assert_close(_softmax(x, y, alpha=torch.tensor(a)), _softmax(x, y, alpha=a))


# ---- shared: dtypes, layouts, empty cases, gradcheck, opcheck, compile ------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(backend, dtype):
    x = (torch.randn(2, 3, 6, 5) * 3).to(dtype)
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, x, _mask(x.shape), upstream=upstream_not_one)
    compare_to_reference(_softmax, ref.softmax_focal_loss, x, _labels(2, 3, 6, 5), alpha=[0.2, 0.3, 0.5],
                         upstream=upstream_not_one)


def test_layouts_channels_last_and_sliced(backend):
    base = torch.randn(2, 3, 10, 12)
    y = _labels(2, 3, 10, 12)
    t = _mask(base.shape)
    cl = base.to(memory_format=torch.channels_last)
    _, grad = compare_to_reference(_softmax, ref.softmax_focal_loss, cl, y, alpha=[1.0, 2.0, 0.5])
    assert grad.is_contiguous(memory_format=torch.channels_last)
    _, grad = compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, cl, t.to(memory_format=torch.channels_last))
    assert grad.is_contiguous(memory_format=torch.channels_last)
    big = torch.randn(2, 3, 20, 25)
    sliced = big[:, :, ::2, 1:13]
    compare_to_reference(_softmax, ref.softmax_focal_loss, sliced, y, upstream=upstream_not_one)
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, sliced, t[:, :, :, :], upstream=upstream_not_one)
    compare_to_reference(_softmax, ref.softmax_focal_loss, base, y[:1].expand(2, 10, 12))


def test_all_pixels_ignored_is_zero_with_zero_gradient(backend):
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    for kw in ({}, {"reduction": "sum"}):
        loss = _softmax(x, torch.full((2, 5, 5), 7), ignore_index=7, **kw)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.count_nonzero(g) == 0
        loss = _sigmoid(x, torch.full((2, 3, 5, 5), 255.0), ignore_index=255, **kw)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_no_foreground_image(backend):
    x = torch.randn(2, 1, 6, 6)
    t = _mask(x.shape)
    t[1] = 0
    compare_to_reference(_sigmoid, ref.sigmoid_focal_loss, x, t, upstream=upstream_not_one)


def test_gradcheck_fp64(backend):
    # small: gradcheck runs the forward twice per input element (interpreted kernels: ~ms each)
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    t[0, 0, 0, 0] = -1
    y = torch.randint(0, 3, (1, 2, 2))
    y[0, 0, 0] = -1
    assert torch.autograd.gradcheck(lambda a: _sigmoid(a, t, ignore_index=-1), (x,))
    assert torch.autograd.gradcheck(lambda a: _sigmoid(a, t.clamp(min=0), gamma=0.5, reduction="none"), (x,))
    for kw in ({"ignore_index": -1}, {"gamma": 0.5, "alpha": [0.2, 1.0, 3.0], "ignore_index": -1, "reduction": "none"}):
        assert torch.autograd.gradcheck(lambda a: _softmax(a, y, **kw), (x,))


def test_opcheck(backend):
    x = torch.randn(2, 3, 8, requires_grad=True)
    t = _mask((2, 3, 8))
    t[0, 0, :2] = 1.0
    y = torch.randint(0, 3, (2, 1, 8))
    y[0, 0, 0] = -100
    a = torch.tensor([0.2, 0.3, 0.5])
    g = torch.randn(2, 3, 8)
    xw = torch.randn(2, 21, 8, requires_grad=True)
    yw = torch.randint(0, 21, (2, 1, 8))
    sig_cases = [
        ((x, t, None, None), SigmoidFocalOptions()),
        ((x, t, None, None), SigmoidFocalOptions(alpha=None, gamma=0.5, ignore_index=1.0, reduction="none")),
        ((x, t, None, None), SigmoidFocalOptions(alpha=0.6, gamma=0.0, reduction="sum")),
    ]
    soft_cases = [
        ((x, y, None, None), SoftmaxFocalOptions(alpha=0.25, gamma=0.0, ignore_index=-100, reduction="sum")),
        ((x, y, a, None), SoftmaxFocalOptions(gamma=0.5, ignore_index=1, reduction="none")),
        ((x, y, None, None), SoftmaxFocalOptions(class_alpha=(0.2, 0.3, 0.5), ignore_index=-100, reduction="mean")),
        # more classes than one chunk: the forward's per-pixel statistics are an output the backward reads
        ((xw, yw, None, None), SoftmaxFocalOptions(gamma=1.5, reduction="none")),
        ((xw, yw, None, None), SoftmaxFocalOptions(ignore_index=-100)),
    ]
    for op, cases, gmap in ((focal_sigmoid, sig_cases, g), (focal_softmax, soft_cases, g[:, 0])):
        for tensors, opts in cases:
            torch.library.opcheck(op.forward_op, (*tensors, *opts))
            tensors = (tensors[0].detach(),) + tensors[1:]
            saved = op.forward_op(*tensors, *opts)[1:]  # coef (and the softmax op's stats)
            grad = gmap if opts.reduction == "none" else g[0, 0, 0]
            torch.library.opcheck(op.backward_op, (grad, *saved, *tensors, *opts))


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_compile_fullgraph(backend, mode):
    x = torch.randn(2, 1 if mode == "binary" else 3, 6, 6)
    if mode == "binary":
        t, opts = _mask(x.shape), {"ignore_index": 255, "gamma": 0.5}
    else:
        t, opts = _labels(2, 3, 6, 6), {"alpha": [0.2, 0.3, 0.5], "ignore_index": 255}
    module = tsl.FocalLoss(mode=mode, **opts)  # calls the functional: one compile covers both
    compiled_matches_eager(lambda a, b: module(a, b), x, t)
    compiled_matches_eager(lambda a, b: tsl.focal_loss(a, b, mode=mode, reduction="none").sum(), x, t)


COMPILE_CASES = [
    ("binary", {}),
    ("binary", {"alpha": None, "gamma": 0.5, "ignore_index": 255, "reduction": "none"}),
    ("multilabel", {"alpha": 0.6, "reduction": "sum"}),
    ("multiclass", {"alpha": [0.2, 0.3, 0.5], "ignore_index": 255}),
    ("multiclass", {"alpha": None, "gamma": 0.0, "reduction": "none"}),
    ("multiclass", {"alpha": 0.5, "gamma": 1.5, "reduction": "sum"}),
]


@pytest.mark.parametrize("mode,opts", COMPILE_CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}{w}" for k, w in v.items()) or "plain")
def test_compile_fullgraph_dynamic(backend, mode, opts):
    """dynamic=True: symbolic shapes through the api, the ops' fakes and autograd, no graph break."""
    torch._dynamo.reset()

    def fn(a, b):
        return tsl.focal_loss(a, b, mode=mode, **opts)

    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    c = 1 if mode == "binary" else 3
    for spatial in ((6, 6), (5, 7)):  # a second size runs the same symbolic graph
        x = torch.randn(2, c, *spatial) * 3
        t = _labels(2, c, *spatial) if mode == "multiclass" else _mask(x.shape)
        if "ignore_index" in opts:
            t[0, ..., 0] = 255
        loss, grad = value_and_grad(compiled, x, t, upstream=upstream_not_one)
        want, want_grad = value_and_grad(fn, x, t, upstream=upstream_not_one)
        torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-7)


def test_recipe_compile_fullgraph_dynamic(backend):
    """Seed 004's recipe (a per-class alpha list, ignore_index -100, sum) under dynamic=True."""
    torch._dynamo.reset()

    def fn(a, b):
        return tsl.recipes.focal_loss(a, b, alpha=[0.2, 0.3, 0.5], beta=2)

    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    for spatial in ((4, 6), (7, 3)):
        x = torch.randn(2, 3, *spatial)
        y = _labels(2, 3, *spatial)
        y[1, 0] = -100
        loss, grad = value_and_grad(compiled, x, y)
        want, want_grad = value_and_grad(fn, x, y)
        torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-7)


# ---- class stride 2^30: int64 class offsets -------------------------------------

CLASS_STRIDE = 2**30


@pytest.fixture(scope="module")
def class_stride_view(tmp_path_factory):
    """A (1, 3, S) float32 view with class stride 2^30: class 2 starts 2^31 elements (8 GiB) in, where
    an int32 ``c * stride_xc`` overflows. A sparse memory-mapped file: a few pages of disk."""
    s = 37
    path = tmp_path_factory.mktemp("classes") / "sparse.bin"
    numel = 2 * CLASS_STRIDE + 4096
    big = sparse_mapping(path, numel)
    x = big.as_strided((1, 3, s), (3 * CLASS_STRIDE, CLASS_STRIDE, 1))
    x.copy_(torch.randn(1, 3, s, generator=torch.Generator().manual_seed(3)) * 3)
    yield x
    del x, big
    os.unlink(path)



FAR_CASES = [
    ("multilabel", {}),
    ("multilabel", {"alpha": None, "gamma": 0.5, "ignore_index": 255, "reduction": "none"}),
    ("multiclass", {"alpha": [0.3, 0.7, 1.2], "ignore_index": 255}),
    ("multiclass", {"gamma": 0.5, "reduction": "none"}),
    ("multiclass", {"alpha": torch.tensor([0.4, 1.5, 0.8]), "reduction": "sum"}),
]


@pytest.mark.parametrize("mode,opts", FAR_CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}{w}" for k, w in v.items()) or "plain")
def test_class_stride_2_30(class_stride_view, in_place_interpreter, mode, opts):
    x = class_stride_view
    assert x.stride(1) == CLASS_STRIDE and x.stride(1) * (x.shape[1] - 1) >= 2**31
    gen = torch.Generator().manual_seed(4)
    s = x.shape[2]
    if mode == "multiclass":
        t = torch.randint(0, 3, (1, s), generator=gen)
    else:
        t = (torch.rand(1, 3, s, generator=gen) > 0.5).float()
    if "ignore_index" in opts:
        t[..., :3] = 255
    near = x.clone()
    with tsl.use_backend("triton"):
        far_loss, far_grad = value_and_grad(tsl.focal_loss, x, t, mode=mode, upstream=upstream_not_one, **opts)
        near_loss, near_grad = value_and_grad(tsl.focal_loss, near, t, mode=mode, upstream=upstream_not_one, **opts)
    assert torch.equal(far_loss, near_loss)
    assert torch.equal(far_grad, near_grad)
    if "ignore_index" not in opts:  # the far view's values are right, not only the same as near
        kw = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in opts.items()}
        ref_fn = ref.softmax_focal_loss if mode == "multiclass" else ref.sigmoid_focal_loss
        assert_value(far_loss, ref_fn(near.double(), t, **kw), torch.float32)


def test_deterministic(backend):
    x = torch.randn(2, 5, 17, 19)
    bitwise_deterministic(_softmax, x, _labels(2, 5, 17, 19), alpha=[0.1, 0.2, 0.3, 0.2, 0.2])
    bitwise_deterministic(_sigmoid, x, _mask(x.shape), gamma=0.5)


def test_module_matches_functional(backend):
    x = torch.randn(2, 3, 5, 5)
    y = _labels(2, 3, 5, 5)
    m = tsl.FocalLoss(mode="multiclass", gamma=1.0, reduction="sum")
    torch.testing.assert_close(m(x, y), _softmax(x, y, gamma=1.0, reduction="sum"))


# ---- bad input -------------------------------------------------------------

def test_bad_mode_and_shapes():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        tsl.focal_loss(x, torch.rand(2, 3, 4, 4), mode="multi")
    with pytest.raises(ValueError, match=r"mode='binary' needs logits with one channel.*\(2, 3, 4, 4\)"):
        tsl.focal_loss(x, torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"target.*\(2, 3, 4, 4\).*\(2, 3, 4, 5\)"):
        tsl.focal_loss(x, torch.rand(2, 3, 4, 5), mode="multilabel")
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*spatial\)"):
        tsl.focal_loss(x, torch.randint(0, 3, (2, 4, 5)), mode="multiclass")
    with pytest.raises(TypeError, match="integer class labels"):
        tsl.focal_loss(x, torch.rand(2, 4, 4), mode="multiclass")


def test_bad_values_and_options():
    x = torch.randn(2, 3, 4, 4)
    y = torch.randint(0, 3, (2, 4, 4))
    y[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        tsl.focal_loss(x, y, mode="multiclass")
    with pytest.raises(ValueError, match=r"alpha has 2 entries but logits \(2, 3, 4, 4\) have 3 classes"):
        tsl.focal_loss(x, y.clamp(max=2), mode="multiclass", alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        tsl.focal_loss(x, y.clamp(max=2), mode="multiclass", gamma=-1.0)
    with pytest.raises(ValueError, match=r"alpha has 2 entries but logits \(2, 3, 4, 4\) have 3 classes"):
        tsl.focal_loss(x, torch.rand(2, 3, 4, 4), mode="multilabel", alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\]"):
        tsl.focal_loss(x, torch.rand(2, 3, 4, 4) * 2, mode="multilabel")
    with pytest.raises(ValueError, match="reduction"):
        tsl.focal_loss(x, y.clamp(max=2), mode="multiclass", reduction="avg")
