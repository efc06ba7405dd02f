"""Dice / Jaccard / Tversky / generalized Dice and the family's op (``triton_segloss::dice``)."""

import pytest
import torch

import triton_segloss as tsl
from checks import (bitwise_deterministic, compare_to_reference, compiled_matches_eager, sparse_mapping, upstream_not_one,
                    value_and_grad)
from reference import dice as ref
from triton_segloss.dice import bce_dice_terms
from triton_segloss.dice.ops import DiceOptions, dice

KINDS = {
    "dice": (tsl.dice_loss, ref.dice_loss, {}),
    "jaccard": (tsl.jaccard_loss, ref.jaccard_loss, {}),
    "tversky": (tsl.tversky_loss, ref.tversky_loss, {"alpha": 0.3, "beta": 0.7}),
    "focal_tversky": (tsl.tversky_loss, ref.tversky_loss, {"alpha": 0.7, "beta": 0.3, "gamma": 1.5}),
    "generalized": (tsl.generalized_dice_loss, ref.generalized_dice_loss, {}),
}


def make_target(mode, shape, ignore=None):
    """A target with an image that has no foreground and a class absent from an image."""
    n, c = shape[:2]
    if mode == "multiclass":
        y = torch.randint(0, c, (n, *shape[2:]))
        y[0][y[0] == c - 1] = 0  # class C-1 absent from image 0
        y[-1] = 0  # the last image is all background
        if ignore is not None:
            y[torch.rand(y.shape) < 0.25] = ignore
        return y
    t = (torch.rand(shape) < 0.4).float()
    t[-1] = 0  # the last image has no foreground
    if c > 1:
        t[0, 1] = 0  # channel 1 absent from image 0
    if ignore is not None:
        t[torch.rand(shape) < 0.25] = ignore
    return t


CASES = [  # (mode, shape)
    ("binary", (2, 1, 7, 5)),
    ("multilabel", (2, 3, 4, 5, 3)),
    ("multiclass", (3, 4, 6, 5)),
    ("multiclass", (2, 3, 3, 4, 5)),
]
OPTIONS = [
    {},
    {"per_image": True, "reduction": "none"},
    {"smooth": 1.0, "squared": True, "reduction": "sum"},
    {"weight": "map", "per_image": True, "ignore_index": 255},
    {"class_weight": "cw", "classes": [0, 1], "log_loss": True},
]


def resolve(opts, mode, shape):
    opts = dict(opts)
    if opts.get("weight") == "map":
        opts["weight"] = torch.rand(shape[0], 1, *shape[2:]) + 0.2
    if opts.get("class_weight") == "cw":
        opts["class_weight"] = torch.linspace(0.5, 2.0, shape[1]).tolist()
        if shape[1] == 1:
            opts["classes"] = [0]
    return opts


# Dice with every option; the other kinds share its kernel and differ only in the finishing
# code, so they run a plain and a weighted/ignored/per-image case.
MATRIX = [("dice", i) for i in range(len(OPTIONS))] + [(k, i) for k in list(KINDS)[1:] for i in (0, 3, 4)]


@pytest.mark.parametrize("kind,oi", MATRIX, ids=[f"{k}-{i}" for k, i in MATRIX])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{len(c[1]) - 2}d")
def test_matches_reference(backend, kind, case, oi):
    mode, shape = case
    fn, rfn, extra = KINDS[kind]
    opts = resolve(OPTIONS[oi], mode, shape)
    if kind == "focal_tversky" and opts.get("log_loss"):
        opts.pop("log_loss")
    if kind in ("tversky", "focal_tversky") and opts.get("squared"):
        opts.pop("squared")  # the reference writes FP/FN explicitly, for linear sums
    if kind == "generalized" and "classes" in opts:
        opts.pop("classes")
    x = torch.randn(shape) * 2
    t = make_target(mode, shape, opts.get("ignore_index"))
    compare_to_reference(fn, rfn, x, t, mode=mode, upstream=upstream_not_one, **extra, **opts)


@pytest.mark.parametrize("kind", ["dice", "jaccard", "generalized"])
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_probabilities_in(backend, kind, mode):
    fn, rfn, _ = KINDS[kind]
    shape = (2, 1, 9, 8) if mode == "binary" else (2, 3, 9, 8)
    x = torch.rand(shape) if mode == "binary" else torch.softmax(torch.randn(shape), 1)
    compare_to_reference(fn, rfn, x, make_target(mode, shape), mode=mode, from_logits=False, smooth=1.0,
                         per_image=True, upstream=upstream_not_one)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_odd_sizes(backend, mode):
    for shape in ((1, 1, 1, 1), (3, 1, 37, 41)) if mode == "binary" else ((1, 2, 1, 1), (2, 5, 37, 41)):
        x = torch.randn(shape)
        compare_to_reference(tsl.dice_loss, ref.dice_loss, x, make_target(mode, shape), mode=mode,
                             per_image=True, upstream=upstream_not_one)


def test_generalized_weight_types(backend):
    shape = (2, 4, 6, 5)
    x, y = torch.randn(shape), make_target("multiclass", shape)
    for wt in ("simple", "uniform"):
        compare_to_reference(tsl.generalized_dice_loss, ref.generalized_dice_loss, x, y, mode="multiclass",
                             weight_type=wt, per_image=True, class_weight=[1.0, 2.0, 0.5, 1.0],
                             reduction="none", upstream=upstream_not_one)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_generalized_pooled_none(backend, mode):
    # one pooled row, shape (1,), for a batch of 3: every image's sums feed that one element
    shape = (3, 1, 5, 4) if mode == "binary" else (3, 4, 5, 4)
    x = torch.randn(shape)
    compare_to_reference(tsl.generalized_dice_loss, ref.generalized_dice_loss, x, make_target(mode, shape),
                         mode=mode, per_image=False, reduction="none", upstream=lambda l: torch.full_like(l, -1.7))


# ---- algebraic identities ---------------------------------------------------------------

@pytest.mark.parametrize("mode,shape", [("binary", (3, 1, 6, 7)), ("multiclass", (2, 4, 5, 6))])
def test_identities(backend, mode, shape):
    x, t = torch.randn(shape), make_target(mode, shape)
    kw = dict(mode=mode, per_image=True, reduction="none", weight=torch.rand(shape[0], *shape[2:]))
    dice = tsl.dice_loss(x, t, **kw)
    torch.testing.assert_close(tsl.tversky_loss(x, t, alpha=0.5, beta=0.5, **kw), dice, rtol=1e-6, atol=1e-7)
    d = 1 - dice
    torch.testing.assert_close(1 - tsl.jaccard_loss(x, t, **kw), d / (2 - d), rtol=1e-6, atol=1e-7)
    # uniform generalized Dice of one class is that class's Dice
    one = tsl.generalized_dice_loss(x, t, weight_type="uniform", classes=[1 if mode == "multiclass" else 0], **kw)
    torch.testing.assert_close(one, dice[:, 1 if mode == "multiclass" else 0], rtol=1e-6, atol=1e-7)


# ---- empty classes, ignored pixels --------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_class_absent_from_target_and_prediction_is_zero_loss(backend, kind, smooth):
    fn, rfn, extra = KINDS[kind]
    probs = torch.softmax(torch.randn(2, 3, 5, 4), 1)
    probs[:, 2] = 0  # class 2 is never predicted ...
    probs = probs / probs.sum(1, keepdim=True)
    y = torch.randint(0, 2, (2, 5, 4))  # ... and never labelled
    kw = dict(mode="multiclass", from_logits=False, smooth=smooth, per_image=True, **extra)
    loss, grad = compare_to_reference(fn, rfn, probs, y, reduction="none", **kw)
    if kind != "generalized":
        assert torch.all(loss[:, 2] == 0)
        assert torch.all(grad[:, 2] == 0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_all_pixels_ignored(backend, kind):
    fn, _, extra = KINDS[kind]
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    for mode, t in (("multiclass", torch.full((2, 4, 4), 255)), ("multilabel", torch.full((2, 3, 4, 4), 255.0))):
        for kw in ({}, {"per_image": True, "reduction": "sum"}, {"log_loss": kind != "focal_tversky"}):
            loss = fn(x, t, mode=mode, ignore_index=255, **extra, **kw)
            (g,) = torch.autograd.grad(loss, x)
            assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_smooth_zero_absent_in_target_is_finite(backend):
    # T == 0 < P with smooth=0: Dice 0, loss 1, zero gradient (the math), no NaN
    x = torch.randn(2, 1, 5, 5, requires_grad=True)
    t = torch.zeros(2, 1, 5, 5)
    loss = tsl.dice_loss(x, t, per_image=True, reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert torch.all(loss == 1) and torch.count_nonzero(g) == 0


# ---- dtypes, layouts -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_dtypes(backend, dtype, mode):
    shape = (2, 1, 8, 9) if mode == "binary" else (2, 5, 8, 9)
    x = (torch.randn(shape) * 3).to(dtype)
    compare_to_reference(tsl.dice_loss, ref.dice_loss, x, make_target(mode, shape), mode=mode, per_image=True,
                         upstream=upstream_not_one)


@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
def test_layouts_channels_last_sliced_expanded(backend, mode):
    shape = (2, 3, 10, 12)
    base = torch.randn(shape)
    t = make_target(mode, shape)
    cl = base.to(memory_format=torch.channels_last)
    _, grad = compare_to_reference(tsl.dice_loss, ref.dice_loss, cl, t, mode=mode)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    sliced = torch.randn(2, 3, 20, 25)[:, :, ::2, 1:13]
    compare_to_reference(tsl.dice_loss, ref.dice_loss, sliced, t, mode=mode, per_image=True,
                         upstream=upstream_not_one)
    w = torch.rand(1, 3, 1, 12).expand(shape)  # stride-0 per-class weight
    compare_to_reference(tsl.dice_loss, ref.dice_loss, base, t, mode=mode, weight=w)
    if mode == "multiclass":
        compare_to_reference(tsl.dice_loss, ref.dice_loss, base, t.int(), mode=mode)
        compare_to_reference(tsl.dice_loss, ref.dice_loss, base, t.to(torch.uint8).unsqueeze(1), mode=mode)
    else:
        compare_to_reference(tsl.dice_loss, ref.dice_loss, base, t.bool(), mode=mode)


# ---- bce_dice_terms (seed 001's boundary loss uses it) -------------------------------------

def _terms(x, t, **kw):
    return torch.stack(bce_dice_terms(x, t, **kw))


def _ref_terms(x, t, **kw):
    return torch.stack(ref.bce_dice_terms(x, t, **kw))


def test_bce_dice_terms(backend):
    x = torch.randn(3, 1, 9, 7) * 2
    t = make_target("binary", x.shape)
    w = torch.rand(3, 9, 7) * 3
    terms = lambda loss: torch.tensor([0.7, -1.3], dtype=loss.dtype)  # noqa: E731
    compare_to_reference(_terms, _ref_terms, x, t, weight=w, smooth_num=2.0, smooth_den=1.0, upstream=terms)
    compare_to_reference(_terms, _ref_terms, x, t, upstream=terms)
    t_ign = t.clone()
    t_ign[:, :, :2] = 255
    compare_to_reference(_terms, _ref_terms, x, t_ign, weight=w, ignore_index=255, smooth_num=0.0,
                         smooth_den=0.0, upstream=terms)


# ---- op contracts ---------------------------------------------------------------------------

def test_gradcheck_fp64(backend):
    kw64 = dict(dtype=torch.float64)
    x = torch.randn(2, 3, 3, 4, requires_grad=True, **kw64)
    y = make_target("multiclass", x.shape, ignore=255)
    t = torch.rand(2, 3, 3, 4, **kw64)
    w = torch.rand(2, 1, 3, 4, **kw64)
    checks = [
        lambda a: tsl.dice_loss(a, y, mode="multiclass", ignore_index=255, weight=w, squared=True),
        lambda a: tsl.tversky_loss(a, y, mode="multiclass", ignore_index=255, alpha=0.2, beta=0.8, gamma=1.3,
                                   per_image=True, reduction="none"),
        lambda a: tsl.generalized_dice_loss(a, y, mode="multiclass", ignore_index=255, smooth=0.1),
        lambda a: tsl.jaccard_loss(a, t, mode="multilabel", weight=w, log_loss=True, per_image=True),
        lambda a: torch.stack(bce_dice_terms(a[:, :1], t[:, :1], weight=w, smooth_num=2.0)),
    ]
    # fast mode (random directional derivatives) for all; the full Jacobian on a tiny slice for two
    for fn in checks:
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    small = x[:1, :, :2, :2].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: tsl.dice_loss(a, y[:1, :2, :2], mode="multiclass", squared=True,
                                                            ignore_index=255), (small,))
    assert torch.autograd.gradcheck(lambda a: tsl.jaccard_loss(a, t[:1, :, :2, :2], mode="multilabel"), (small,))


def _op_args(multiclass, n=2, c=3, s=20, weight=None, class_weight=None, pixel_class_weight=None, pos_weight=None,
             **over):
    """(tensors, options) of one ``dice`` op call on (N, C, S) views, as the public functions make them."""
    x = torch.randn(n, c, s)
    t = torch.randint(0, c, (n, 1, s)) if multiclass else (torch.rand(n, c, s) < 0.5).float()
    return (x, t, weight, class_weight, pixel_class_weight, pos_weight), DiceOptions(multiclass=multiclass, **over)


def test_opcheck(backend):
    w = torch.rand(2, 1, 20).expand(2, 3, 20)
    cases = [
        _op_args(False),
        _op_args(False, weight=w, squared=True, signed=True, label_weight=(0.2, 0.8), w_pow_i=2, w_pow_pt=2,
                 pixel="focal", focal_alpha=0.25, focal_gamma=2.0, kind="jaccard", log_loss=True),
        _op_args(True, weight=w, pixel="xent", pixel_class_weight=torch.tensor([1.0, 2.0, 0.5]),
                 pixel_weighs_count=True, per_image=True, reduction="none", classes=(2, 0),
                 class_weight_list=(1.0, 2.0, 3.0), lambda_pixel=0.3),
        _op_args(True, pixel="focal", focal_gamma=1.5, ignore_index=1.0, w_pow_i=2, kind="generalized",
                 class_weight=torch.tensor([0.5, 1.0, 2.0]), per_image=True, reduction="none"),
        _op_args(False, c=1, pixel="xent", w_pow_i=2, w_pow_pt=2, per_image=True, split=True, eps=0.0,
                 smooth_num=2.0, smooth_den=1.0),
        _op_args(False, kind="tversky", alpha=0.3, beta=0.7, gamma=1.5, classes=(1,), reduction="none"),
        # the options for smp / MONAI users: per-channel pos_weight and smoothing in BCE, MCC, micro, zero_absent
        _op_args(False, pixel="xent", pos_weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1,
                 zero_absent=True, normalize_class_weight=False, class_weight_list=(1.0, 2.0, 3.0)),
        _op_args(True, kind="mcc", eps=1e-5, micro=True, per_image=True, reduction="none"),
        _op_args(True, pixel="sfocal", focal_alpha=0.25, focal_gamma=2.0, kind="jaccard", micro=True,
                 zero_absent=True),
        # soft-label intersection (sigmoid kernels) and CE label smoothing (softmax kernels)
        _op_args(False, soft_label=True, kind="tversky", alpha=0.3, beta=0.7, weight=w),
        _op_args(True, pixel="xent", label_smoothing=0.2, pixel_class_weight=torch.tensor([1.0, 2.0, 0.5]),
                 pixel_weighs_count=True, ignore_index=1.0),
    ]
    for tensors, opts in cases:
        tensors[0].requires_grad_(True)
        torch.library.opcheck(dice.forward_op, (*tensors, *opts))
    for tensors, opts in cases:  # the backward op has no derivative of its own: plain tensors
        x = tensors[0].detach()
        loss, coef = dice.forward_op(x, *tensors[1:], *opts)
        g = torch.randn_like(loss)
        torch.library.opcheck(dice.backward_op, (g, coef, x, *tensors[1:], *opts))


def test_class_weight_tensor_gets_no_gradient(backend):
    """Per-class vectors reach the finisher kernel, which differentiates the logits only: a class
    weight that requires grad is refused with a clear error (define_op), not silently ignored."""
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = make_target("multiclass", x.shape)
    cw = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = tsl.dice_loss(x, y, mode="multiclass", class_weight=cw)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'class_weight'"):
        torch.autograd.grad(loss, (x, cw))
    ce_w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = tsl.ce_dice_loss(x, y, ce_weight=ce_w)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'pixel_class_weight'"):
        torch.autograd.grad(loss, (x, ce_w))
    # detached, the same tensor is a plain option: the same value as the list
    torch.testing.assert_close(tsl.dice_loss(x, y, mode="multiclass", class_weight=cw.detach()),
                               tsl.dice_loss(x, y, mode="multiclass", class_weight=[1.0, 2.0, 3.0]))


def compiled_matches_eager_aot(fn, logits, *args, **kwargs):
    """checks.compiled_matches_eager with the aot_eager backend: the same fullgraph Dynamo trace and
    AOT-autograd pass through the ops' fake kernels, without Inductor's C++ build (seconds per graph
    here). One test per file keeps Inductor (``dice_loss`` below)."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, *a: fn(x, *a, **kwargs), fullgraph=True, backend="aot_eager")
    loss, grad = value_and_grad(compiled, logits, *args)
    eager_loss, eager_grad = value_and_grad(fn, logits, *args, **kwargs)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-7)


REGION_FNS = [
    ("dice_loss", tsl.DiceLoss, {"mode": "multiclass", "ignore_index": 255, "per_image": True}),
    ("jaccard_loss", tsl.JaccardLoss, {"mode": "multiclass", "classes": [1, 2], "class_weight": [1.0, 2.0, 3.0]}),
    ("tversky_loss", tsl.TverskyLoss, {"mode": "multiclass", "alpha": 0.3, "beta": 0.7, "gamma": 1.5}),
    ("generalized_dice_loss", None, {"mode": "multiclass", "per_image": True}),
]


@pytest.mark.parametrize("name,module,opts", REGION_FNS, ids=[r[0] for r in REGION_FNS])
def test_compile_fullgraph(backend, name, module, opts):
    x = torch.randn(2, 3, 6, 6)
    y = make_target("multiclass", x.shape, ignore=255 if "ignore_index" in opts else None)
    check = compiled_matches_eager if name == "dice_loss" else compiled_matches_eager_aot
    check(getattr(tsl, name), x, y, **opts)
    if module is not None:
        m = module(**opts, reduction="none")
        check(lambda a, b: m(a, b).sum(), x, y)


def test_deterministic(backend):
    x = torch.randn(4, 5, 33, 35)
    y = make_target("multiclass", x.shape, ignore=255)
    bitwise_deterministic(tsl.dice_loss, x, y, mode="multiclass", ignore_index=255, weight=torch.rand(4, 33, 35))
    xb = torch.randn(4, 1, 33, 35)
    bitwise_deterministic(tsl.jaccard_loss, xb, make_target("binary", xb.shape), squared=True, per_image=True)


def test_backends_agree():
    x = torch.randn(3, 6, 17, 19)
    y = make_target("multiclass", x.shape)
    out = []
    for b in ("triton", "torch"):
        with tsl.use_backend(b):
            xx = x.clone().requires_grad_(True)
            loss = tsl.dice_loss(xx, y, mode="multiclass", per_image=True, squared=True)
            (g,) = torch.autograd.grad(loss, xx)
            out.append((loss, g))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-8)


def test_torch_path_chunks(monkeypatch):
    # the PyTorch path processes the spatial axis in chunks; several chunks give the same result
    from triton_segloss.dice import torch_impl as tdice
    x = torch.randn(2, 3, 7, 9)
    y = make_target("multiclass", x.shape, ignore=255)
    t = make_target("multilabel", x.shape)
    fns = [lambda a: tsl.dice_loss(a, y, mode="multiclass", ignore_index=255, squared=True),
           lambda a: tsl.dice_focal_loss(a, t, mode="multilabel")]
    with tsl.use_backend("torch"):
        for fn in fns:
            one = compare_to_reference(fn, fn, x)
            monkeypatch.setattr(tdice, "_CHUNK", 16)
            assert len(tdice._chunks(2, 3, 63)) > 5
            many = compare_to_reference(fn, fn, x)
            monkeypatch.undo()
            torch.testing.assert_close(one, many, rtol=1e-6, atol=1e-8)


def test_module_matches_functional(backend):
    x = torch.randn(2, 1, 5, 5)
    t = make_target("binary", x.shape)
    m = tsl.DiceLoss(smooth=1.0, per_image=True, reduction="sum")
    torch.testing.assert_close(m(x, t), tsl.dice_loss(x, t, smooth=1.0, per_image=True, reduction="sum"))
    with pytest.raises(TypeError, match="unexpected argument"):
        tsl.TverskyLoss(alhpa=0.3)


# ---- bad input --------------------------------------------------------------------------------

def test_bad_mode_and_channels():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        tsl.dice_loss(x, torch.rand(2, 3, 4, 4), mode="multi")
    with pytest.raises(ValueError, match=r"mode='binary' needs logits with one channel.*\(2, 3, 4, 4\)"):
        tsl.dice_loss(x, torch.rand(2, 3, 4, 4))


def test_multiclass_target_checks():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match="integer class labels"):
        tsl.dice_loss(x, torch.rand(2, 4, 4), mode="multiclass")
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*spatial\) = \(2, 4, 4\).*\(2, 4, 5\)"):
        tsl.dice_loss(x, torch.zeros(2, 4, 5, dtype=torch.long), mode="multiclass")
    y = torch.zeros(2, 4, 4, dtype=torch.long)
    y[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        tsl.dice_loss(x, y, mode="multiclass")
    y[0, 0, 0] = 255
    with pytest.raises(ValueError, match="integer label"):
        tsl.dice_loss(x, y, mode="multiclass", ignore_index=2.5)


def test_binary_target_checks():
    with pytest.raises(ValueError, match=r"target.*\(2, 1, 4, 4\).*\(2, 1, 4, 5\)"):
        tsl.dice_loss(torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 5))
    t = torch.rand(2, 1, 4, 4)
    t[0, 0, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\]"):
        tsl.jaccard_loss(torch.randn(2, 1, 4, 4), t)


def test_bad_options():
    x, t = torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    kw = dict(mode="multilabel")
    with pytest.raises(ValueError, match=r"classes must be non-empty indices in \[0, 3\)"):
        tsl.dice_loss(x, t, classes=[0, 3], **kw)
    with pytest.raises(ValueError, match=r"class_weight must have shape \(3,\).*\(2\)"):
        tsl.dice_loss(x, t, class_weight=[1.0, 2.0], **kw)
    with pytest.raises(ValueError, match=r"weight of shape \(3, 4\) does not broadcast to logits \(2, 3, 4, 4\)"):
        tsl.dice_loss(x, t, weight=torch.rand(3, 4), **kw)
    with pytest.raises(ValueError, match="smooth and eps must be >= 0"):
        tsl.dice_loss(x, t, smooth=-1.0, **kw)
    with pytest.raises(ValueError, match="reduction"):
        tsl.dice_loss(x, t, reduction="avg", **kw)
    with pytest.raises(ValueError, match="log_loss=True.*gamma"):
        tsl.tversky_loss(x, t, gamma=2.0, log_loss=True, **kw)
    with pytest.raises(ValueError, match="weight_type"):
        tsl.generalized_dice_loss(x, t, weight_type="cube", **kw)
    with pytest.raises(TypeError, match="logits must be a floating tensor"):
        tsl.dice_loss(x.long(), t, **kw)


def test_value_checks_skip_while_compiling():
    y = torch.zeros(2, 4, 4, dtype=torch.long)
    y[0, 0, 0] = 7  # out of range: unchecked inside a compiled graph, and harmless (no class matches)
    f = torch.compile(lambda a, b: tsl.dice_loss(a, b, mode="multiclass"), fullgraph=True)
    assert torch.isfinite(f(torch.randn(2, 3, 4, 4), y))


# ---- class offsets past 2^31 elements (int64 class indices in every kernel with a class axis) -------

CLASS_STRIDE = 2**30


@pytest.fixture(scope="module")
def sparse_classes(tmp_path_factory):
    """A sparse file of 2^31 + 2^16 float32 elements (8 GiB of address space, a few pages of disk)."""
    pytest.importorskip("triton")
    path = tmp_path_factory.mktemp("big") / "classes.bin"
    numel = 2 * CLASS_STRIDE + 2**16
    big = sparse_mapping(path, numel)
    yield big
    del big
    path.unlink()



def _far_classes(big, s, offset=0):
    """(1, 3, s) view of the mapping whose class c starts at element c * 2^30: the int32 product
    cls * stride_c overflows at c = 2 (2^31)."""
    v = big.as_strided((1, 3, s), (3 * CLASS_STRIDE, CLASS_STRIDE, 1), offset)
    v.copy_(torch.randn(1, 3, s) * 3)
    return v


FAR = [
    ("dice_loss multilabel", tsl.dice_loss, "multilabel", {"per_image": True, "reduction": "none"}),
    ("dice_focal_loss multilabel", tsl.dice_focal_loss, "multilabel", {}),
    ("dice_loss multiclass", tsl.dice_loss, "multiclass", {"reduction": "none"}),
    ("ce_dice_loss", tsl.ce_dice_loss, "multiclass", {"ignore_index": 255}),
    ("dice_focal_loss multiclass", tsl.dice_focal_loss, "multiclass", {}),
]


@pytest.mark.parametrize("name,fn,mode,kw", FAR, ids=[f[0] for f in FAR])
def test_class_stride_2_30(sparse_classes, in_place_interpreter, name, fn, mode, kw):
    """Logits and weight map with a class stride of 2^30 elements give bitwise the values and
    gradients of small contiguous copies (sigmoid and softmax kernels, forward and backward)."""
    s = 40
    x = _far_classes(sparse_classes, s)
    w = _far_classes(sparse_classes, s, offset=s)
    w.copy_(torch.rand(1, 3, s) + 0.5)
    if mode == "multiclass":  # every class present (make_target empties the last image)
        t = torch.randint(0, 3, (1, s))
        t[0, :4] = 255 if "ignore_index" in kw else 0
    else:
        t = (torch.rand(1, 3, s) < 0.4).float()
    if mode != "multiclass":
        kw = dict(kw, mode=mode)
    elif fn is not tsl.ce_dice_loss:
        kw = dict(kw, mode=mode)
    out = []
    with tsl.use_backend("triton"):
        for xx, ww in ((x, w), (x.clone(), w.clone())):
            xg = xx.detach().requires_grad_(True)
            loss = fn(xg, t, weight=ww, **kw)
            (g,) = torch.autograd.grad(loss, xg, upstream_not_one(loss))
            out.append((loss, g))
    assert torch.equal(out[0][0], out[1][0])
    assert torch.equal(out[0][1], out[1][1])
    assert torch.isfinite(out[0][1]).all() and torch.count_nonzero(out[0][1]) > 0


# ---- labels outside [0, C) with value checks off -------------------------------------------------

@pytest.mark.parametrize("name", ["dice_loss", "ce_dice_loss", "dice_focal_loss"])
def test_out_of_range_labels_are_skipped_like_ignored(name, monkeypatch):
    """With value checks off (as on CUDA by default), a label outside [0, C) enters no sum and gets
    zero gradient, on both backends: the same as marking it ignored."""
    from triton_segloss._core import validate

    monkeypatch.setattr(validate, "check_values_now", lambda t: False)
    x = torch.randn(2, 3, 5, 6)
    y = make_target("multiclass", x.shape)
    bad = y.clone()
    bad[0, 1, :3] = 7
    bad[1, 0, 2] = -3
    ign = torch.where((bad < 0) | (bad >= 3), torch.full_like(bad, 255), bad)
    fn = getattr(tsl, name)
    kw = {} if name == "ce_dice_loss" else {"mode": "multiclass"}
    out = {}
    for b in ("triton", "torch"):
        with tsl.use_backend(b):
            out[b] = value_and_grad(fn, x, bad, per_image=True, reduction="none", **kw)
            want = value_and_grad(fn, x, ign, ignore_index=255, per_image=True, reduction="none", **kw)
        torch.testing.assert_close(out[b][0], want[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(out[b][1], want[1], rtol=1e-6, atol=1e-8)
        assert torch.count_nonzero(out[b][1][0, :, 1, :3]) == 0
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out["triton"][1], out["torch"][1], rtol=1e-5, atol=1e-8)


# ---- torch.compile(fullgraph=True, dynamic=True) on every public loss of the family -----------------

DYNAMIC = [
    ("dice_loss", "multiclass", {"mode": "multiclass", "classes": [2, 0], "class_weight": [1.0, 2.0, 3.0],
                                 "per_image": True, "reduction": "none"}),
    ("jaccard_loss", "multilabel", {"mode": "multilabel", "ignore_index": 255, "log_loss": True}),
    ("tversky_loss", "binary", {"alpha": 0.3, "beta": 0.7, "gamma": 1.5, "reduction": "sum"}),
    ("generalized_dice_loss", "multiclass", {"mode": "multiclass", "per_image": True, "reduction": "none"}),
    ("bce_dice_loss", "multilabel", {"mode": "multilabel", "weight": "map", "lambda_bce": 0.5}),
    ("ce_dice_loss", "multiclass", {"ce_weight": [1.0, 2.0, 0.5], "per_image": True, "reduction": "none"}),
    ("dice_focal_loss", "multiclass", {"mode": "multiclass", "alpha": 0.25, "ignore_index": 255}),
    ("dice_loss", "multilabel", {"mode": "multilabel", "soft_label": True}),  # the soft-label intersection
    ("ce_dice_loss", "multiclass", {"label_smoothing": 0.1, "ignore_index": 255}),  # CE label smoothing
]


@pytest.mark.parametrize("name,mode,opts", DYNAMIC, ids=[f"{d[0]}-{i}" for i, d in enumerate(DYNAMIC)])
def test_compile_dynamic_fullgraph(backend, name, mode, opts):
    """``torch.compile(fullgraph=True, dynamic=True)``: no graph break, the eager value and gradient,
    and a second input size runs through the same symbolic graph."""
    from torch._dynamo.testing import CompileCounterWithBackend

    fn = getattr(tsl, name)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(lambda a, b, **k: fn(a, b, **k), fullgraph=True, dynamic=True, backend=counter)
    frames = []
    for shape in ((2, 3, 6, 5), (3, 3, 7, 4)):
        shape = (shape[0], 1, *shape[2:]) if mode == "binary" else shape
        kw = dict(opts)
        if kw.get("weight") == "map":
            kw["weight"] = torch.rand(shape[0], *shape[2:]) + 0.2
        x = torch.randn(shape)
        t = make_target(mode, shape, ignore=kw.get("ignore_index"))
        loss, grad = value_and_grad(compiled, x, t, upstream=upstream_not_one, **kw)
        eager_loss, eager_grad = value_and_grad(fn, x, t, upstream=upstream_not_one, **kw)
        torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-7)
        frames.append(counter.frame_count)
    assert frames[0] == frames[1], f"recompiled for the second size: {frames} frames"
