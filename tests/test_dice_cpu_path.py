"""The Dice family's PyTorch path on CPU: its shortcuts give what the general forms give.

The finisher of a small CPU table runs on Python floats (``torch_impl._finish_f``), the softmax of
logits inside the exponent range skips the max (``_exp_sum``), labels that are all classes skip the
masks (``_fast_labels``): each against the general torch form or the float64 reference.
"""

import itertools

import pytest
import torch

import triton_segloss as tsl
from checks import compare_to_reference, upstream_not_one, value_and_grad
from reference import dice as ref
from triton_segloss._core import tape
from triton_segloss.dice import torch_impl as ti
from triton_segloss.dice.ops import DiceOptions


@pytest.fixture(autouse=True)
def _torch_backend():
    with tsl.use_backend("torch"):
        yield


def _sums(n, c, multiclass):
    """(N, C, 5) float64 sums with an empty class (P + T == 0), a class absent from the target
    (T == 0) and an image with no valid pixel's count in one class."""
    i = torch.rand(n, c, dtype=torch.float64) * 5
    p = i + torch.rand(n, c, dtype=torch.float64) * 5
    t = i + torch.rand(n, c, dtype=torch.float64) * 5
    t[0, 1] = 0.0
    i[0, 1] = 0.0
    i[-1, 0] = p[-1, 0] = t[-1, 0] = 0.0
    lsum = torch.rand(n, c, dtype=torch.float64) * 3
    k = torch.randint(1, 9, (n, c)).double()
    if not multiclass:
        k = k.amax(1, keepdim=True).expand(n, c)
    return torch.stack([i, p, t, lsum, k], -1).contiguous()


FINISH_OPTIONS = [
    {},
    {"kind": "jaccard", "per_image": True, "reduction": "none"},
    {"kind": "tversky", "alpha": 0.3, "beta": 0.7, "gamma": 1.5, "reduction": "sum"},
    {"kind": "tversky", "alpha": 0.7, "beta": 0.3, "gamma": 0.75, "per_image": True},
    {"log_loss": True, "smooth_num": 1.0, "smooth_den": 1.0, "classes": (2, 0)},
    {"score": True, "reduction": "none", "classes": (1, 2)},
    {"zero_absent": True, "per_image": True, "class_weight_list": (0.5, 2.0, 1.0)},
    {"normalize_class_weight": False, "class_weight_list": (0.5, 2.0, 1.0), "classes": (0, 1)},
    {"eps": 10.0},  # the clamp holds for some classes
    {"pixel": "xent", "multiclass": True},
    {"pixel": "xent", "multiclass": True, "pixel_class_weight_list": (1.0, 0.2, 3.0), "pixel_weighs_count": True,
     "lambda_pixel": 0.3, "lambda_region": 2.0, "per_image": True},
    {"pixel": "xent", "pixel_reduction": "sum", "class_weight_list": (1.0, 0.0, 2.0)},
    {"pixel": "focal", "multiclass": True, "focal_alpha": 0.25, "focal_gamma": 2.0},
    {"pixel": "sfocal", "multiclass": True, "focal_gamma": 2.0},
]


@pytest.mark.parametrize("opts", FINISH_OPTIONS, ids=range(len(FINISH_OPTIONS)))
@pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan"])
def test_torch_small_finisher_matches_tensor_finisher(opts, nan):
    o = DiceOptions(**opts)
    sums = _sums(3, 3, o.multiclass)
    if nan:
        sums[1, 2, 1] = float("nan")  # a NaN logit's prediction sum
    assert ti._small_finish(o, sums)
    cw = None if o.class_weight_list is None else torch.tensor(o.class_weight_list, dtype=torch.float64)
    pw = None if o.pixel_class_weight_list is None else torch.tensor(o.pixel_class_weight_list, dtype=torch.float64)
    loss, coef = ti._finish(sums, cw, pw, o)
    loss_f, coef_f = ti._finish_f(sums, cw, pw, o)
    loss_f = torch.tensor(loss_f, dtype=torch.float64)
    coef_f = torch.tensor(coef_f, dtype=torch.float64).expand_as(coef)
    assert loss_f.shape == loss.shape
    torch.testing.assert_close(loss_f, loss, rtol=1e-12, atol=1e-15, equal_nan=True)
    torch.testing.assert_close(coef_f, coef, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_torch_small_finisher_takes_a_class_weight_tensor():
    o = DiceOptions(multiclass=True, per_image=True)
    sums = _sums(2, 3, True)
    for cw in (torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1, 0, 1], dtype=torch.uint8)):
        loss, coef = ti._finish(sums, cw, None, o)
        loss_f, coef_f = ti._finish_f(sums, cw, None, o)
        torch.testing.assert_close(torch.tensor(loss_f, dtype=torch.float64), loss, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(torch.tensor(coef_f, dtype=torch.float64), coef, rtol=1e-12, atol=1e-15)


def test_torch_large_tables_and_other_finishers_keep_the_tensor_finisher():
    big = torch.rand(1, ti._SMALL + 1, 5, dtype=torch.float64)
    assert not ti._small_finish(DiceOptions(multiclass=True), big)
    small = torch.rand(2, 3, 5, dtype=torch.float64)
    for o in (DiceOptions(kind="generalized"), DiceOptions(kind="mcc"), DiceOptions(micro=True),
              DiceOptions(split=True, pixel="xent"), DiceOptions(pixel="xent", reduction="none", per_image=True)):
        assert not ti._small_finish(o, small)


LOSSES = [
    ("dice", lambda x, y, **k: tsl.dice_loss(x, y, mode="multiclass", **k),
     lambda x, y, **k: ref.dice_loss(x, y, mode="multiclass", **k)),
    ("ce_dice", tsl.ce_dice_loss, ref.ce_dice_loss),
]


def test_torch_forward_matches_tensor_finisher(monkeypatch):
    # the whole step with the small finisher against the same step with the tensor finisher
    x = torch.randn(3, 4, 5, 6)
    y = torch.randint(0, 4, (3, 5, 6))
    t = (torch.rand(3, 1, 5, 6) < 0.4).float()
    calls = [(x[:, :1], lambda a: tsl.dice_loss(a, t)),
             (x[:, :1], lambda a: tsl.tversky_loss(a, t, alpha=0.3, beta=0.7, gamma=1.5)),
             (x, lambda a: tsl.dice_loss(a, y, mode="multiclass", per_image=True, reduction="none", classes=[3, 1])),
             (x, lambda a: tsl.ce_dice_loss(a, y, ce_weight=[1.0, 0.5, 2.0, 1.0])),
             (x, lambda a: tsl.jaccard_loss(a, y, mode="multiclass", log_loss=True, class_weight=[1.0, 2.0, 0.0, 1.0]))]
    for xs, fn in calls:
        out = []
        for small in (ti._SMALL, -1):
            monkeypatch.setattr(ti, "_SMALL", small)
            a = xs.clone().requires_grad_()
            loss = fn(a)
            (g,) = torch.autograd.grad(loss, a, upstream_not_one(loss))
            out.append((loss, g))
        torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, fn, reference", LOSSES, ids=[c[0] for c in LOSSES])
@pytest.mark.parametrize("scale", [1.0, 40.0], ids=["in_range", "large"])
@pytest.mark.parametrize("labels", ["int64", "uint8", "ignore_absent", "ignore_present"])
@pytest.mark.parametrize("opts", [{}, {"squared": True, "per_image": True}])
def test_torch_multiclass_fast_path(name, fn, reference, scale, labels, opts):
    x = torch.randn(3, 5, 6, 7) * scale
    y = torch.randint(0, 5, (3, 6, 7))
    kw = dict(opts)
    if labels == "uint8":
        y = y.to(torch.uint8)
    elif labels.startswith("ignore"):
        kw["ignore_index"] = 255
        if labels == "ignore_present":
            y[torch.rand(y.shape) < 0.25] = 255
    assert (ti._exp_sum(x.flatten(2))[2] is None) == (scale == 1.0)  # the max is skipped in range only
    compare_to_reference(lambda a: fn(a, y, **kw), lambda a: reference(a, y, **kw), x, upstream=upstream_not_one)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_half_logits(dtype):
    # one chunk whose float32 gradient is copied once into the logits' dtype
    x = torch.randn(2, 4, 5, 6).to(dtype)
    y = torch.randint(0, 4, (2, 5, 6))
    t = (torch.rand(2, 1, 5, 6) < 0.4).float()
    compare_to_reference(lambda a: tsl.dice_loss(a, y, mode="multiclass"),
                         lambda a: ref.dice_loss(a, y, mode="multiclass"), x)
    compare_to_reference(lambda a: tsl.dice_loss(a, t), lambda a: ref.dice_loss(a, t), x[:, :1])


@pytest.mark.parametrize("loss", ["dice", "ce_dice"])
def test_torch_multiclass_gradcheck(loss):
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (2, 3, 4))
    fn = (lambda a: tsl.dice_loss(a, y, mode="multiclass")) if loss == "dice" else (lambda a: tsl.ce_dice_loss(a, y))
    assert torch.autograd.gradcheck(fn, (x,))


def test_torch_exp_sum_edges():
    # NaN and logits past the range take the max-shifted form: NaN stays NaN, large logits stay finite
    for v, finite in ((float("nan"), False), (1e4, True), (-1e4, True)):
        x = torch.randn(2, 3, 4)
        x[0, 1, 2] = v
        e, z, m = ti._exp_sum(x)
        assert m is not None
        p = e / z
        assert bool(torch.isfinite(p).all()) == finite
    for c in (2, 50):
        x = torch.full((1, c, 3), 63.0)
        assert (ti._exp_sum(x)[2] is None) == (63.0 + torch.tensor(float(c)).log().item() <= 64.0)


@pytest.mark.parametrize("name, fn, reference", LOSSES, ids=[c[0] for c in LOSSES])
def test_torch_multiclass_large_logits_and_loss_scale(name, fn, reference):
    # logits near the edge of the range without the max, times a GradScaler-like upstream gradient
    x = (torch.randn(2, 4, 5, 6) * 2.0 + 55.0).clamp(50.0, 62.0)
    x[:, 0] -= 110.0
    y = torch.randint(0, 4, (2, 5, 6))
    assert ti._exp_sum(x.flatten(2))[2] is None
    _, g = compare_to_reference(lambda a: fn(a, y), lambda a: reference(a, y), x, upstream=upstream_not_one)
    _, scaled = value_and_grad(lambda a: fn(a, y), x, upstream=lambda loss: torch.full_like(loss, 0.37 * 2.0 ** 24))
    assert torch.isfinite(scaled).all()  # a power of two scales every term exactly: no overflow, the same digits
    torch.testing.assert_close(scaled, g * 2.0 ** 24, rtol=1e-6, atol=1e-30)  # (atol: denormal digits)


def test_torch_upstream_shortcut_matches_general():
    for n, c, per_image in itertools.product((1, 3), (1, 4), (False, True)):
        o = DiceOptions(per_image=per_image)
        coef = torch.rand(n, c, 3)
        g = torch.tensor(0.37)
        fast = ti._upstream(g, coef, o, n, c, torch.float32)
        general = ti._upstream(g, coef, o._replace(classes=tuple(range(c))), n, c, torch.float32)  # (the index form)
        torch.testing.assert_close(fast[..., :2], general[..., :2], rtol=0, atol=0)


@pytest.mark.parametrize("name, fn, reference", LOSSES, ids=[c[0] for c in LOSSES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_multiclass_layouts_agree(name, fn, reference, dtype):
    # the fast path makes the logits contiguous first: every layout sums in the same order (bitwise)
    x = (torch.randn(3, 21, 8, 9) * 3).to(dtype)
    y = torch.randint(0, 21, (3, 8, 9))
    wide = torch.zeros(3, 21, 8, 18, dtype=dtype)
    wide[..., ::2] = x
    for layout in (x.contiguous(memory_format=torch.channels_last), wide[..., ::2], x[:1].expand(x.shape)):
        got = value_and_grad(lambda a: fn(a, y), layout, upstream=upstream_not_one)
        want = value_and_grad(lambda a: fn(a, y), layout.contiguous(), upstream=upstream_not_one)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


# ---- the eager route's tape (``_core/tape.py``): the forward's per-pixel tensors replace the backward's recompute

def _soft(shape):
    return torch.rand(shape, dtype=torch.float64)


def _mask(shape):
    return (torch.rand(shape) < 0.4).double()


def _mask_ignored(shape):
    t = _mask(shape)
    t[torch.rand(shape) < 0.2] = -1.0
    return t


def _labels(shape):
    return torch.randint(0, shape[1], (shape[0], *shape[2:]))


def _labels_ignored(shape):
    y = _labels(shape)
    y[torch.rand(y.shape) < 0.2] = 255
    return y


def _probs(x):  # from_logits=False takes probabilities
    return x.sigmoid()


def _softmax(x):
    return x.softmax(1)


def _pixel_weight(shape):  # the same map on every call (both routes)
    return torch.rand(shape[0], 1, *shape[2:], dtype=torch.float64, generator=torch.Generator().manual_seed(1))


# (name, shape, target, input transform, loss): each takes another branch of the PyTorch path
TAPE_CASES = [
    ("binary", (2, 1, 6, 7), _mask, None, lambda a, t: tsl.dice_loss(a, t)),
    ("binary squared per_image none", (3, 1, 6, 7), _mask, None,
     lambda a, t: tsl.dice_loss(a, t, squared=True, per_image=True, reduction="none")),
    ("binary ignore smooth log", (2, 1, 6, 7), _mask_ignored, None,
     lambda a, t: tsl.dice_loss(a, t, ignore_index=-1, smooth=1.0, log_loss=True)),
    ("binary probabilities", (2, 1, 6, 7), _mask, _probs, lambda a, t: tsl.dice_loss(a, t, from_logits=False)),
    ("binary pixel weight", (2, 1, 6, 7), _mask, None,
     lambda a, t: tsl.dice_loss(a, t, weight=_pixel_weight(a.shape))),
    ("multilabel class weight sum", (2, 3, 6, 7), _mask, None,
     lambda a, t: tsl.dice_loss(a, t, mode="multilabel", class_weight=[1.0, 2.0, 0.5], reduction="sum")),
    ("multilabel many rows", (12, 3, 5, 6), _mask, None, lambda a, t: tsl.dice_loss(a, t, mode="multilabel")),
    ("binary soft label", (2, 1, 6, 7), _soft, None, lambda a, t: tsl.dice_loss(a, t, soft_label=True)),
    ("tversky focal", (2, 1, 6, 7), _mask, None, lambda a, t: tsl.tversky_loss(a, t, alpha=0.3, beta=0.7, gamma=1.5)),
    ("bce dice", (2, 1, 6, 7), _mask_ignored, None,
     lambda a, t: tsl.bce_dice_loss(a, t, ignore_index=-1, label_smoothing=0.1)),
    ("dice focal binary", (2, 1, 6, 7), _mask, None, lambda a, t: tsl.dice_focal_loss(a, t)),
    ("multiclass", (2, 4, 6, 7), _labels, None, lambda a, y: tsl.dice_loss(a, y, mode="multiclass")),
    ("multiclass squared per_image none", (2, 4, 6, 7), _labels, None,
     lambda a, y: tsl.dice_loss(a, y, mode="multiclass", squared=True, per_image=True, reduction="none")),
    ("multiclass ignore classes", (2, 4, 6, 7), _labels_ignored, None,
     lambda a, y: tsl.jaccard_loss(a, y, mode="multiclass", ignore_index=255, classes=[3, 1], log_loss=True)),
    ("multiclass pixel weight", (2, 4, 6, 7), _labels, None,
     lambda a, y: tsl.dice_loss(a, y, mode="multiclass", weight=_pixel_weight(a.shape))),
    ("multiclass probabilities", (2, 4, 6, 7), _labels, _softmax,
     lambda a, y: tsl.dice_loss(a, y, mode="multiclass", from_logits=False)),
    ("ce dice", (2, 4, 6, 7), _labels_ignored, None, lambda a, y: tsl.ce_dice_loss(a, y, ignore_index=255)),
    ("ce dice label smoothing", (2, 4, 6, 7), _labels, None,
     lambda a, y: tsl.ce_dice_loss(a, y, label_smoothing=0.1, ce_weight=[1.0, 0.5, 2.0, 1.0])),
    ("dice focal multiclass", (2, 4, 6, 7), _labels, None,
     lambda a, y: tsl.dice_focal_loss(a, y, mode="multiclass", per_image=True, reduction="none")),
    ("dice sigmoid focal multiclass", (2, 4, 6, 7), _labels, None,
     lambda a, y: tsl.dice_focal_loss(a, y, mode="multiclass", focal_use_softmax=False)),
]


def _case(name):
    _, shape, make, transform, fn = next(c for c in TAPE_CASES if c[0] == name)
    x = torch.randn(shape, dtype=torch.float64)
    return (x if transform is None else transform(x)), make(shape), fn


def _step(fn, x, t, retain=False):
    a = x.clone().requires_grad_()
    loss = fn(a, t)
    loss.backward(upstream_not_one(loss), retain_graph=retain)
    return a, loss


@pytest.mark.parametrize("name", [c[0] for c in TAPE_CASES])
def test_torch_tape_eager_route_equals_the_op_route(name, monkeypatch):
    # the eager route keeps the forward's tensors for the backward; the op route recomputes them: bitwise equal
    x, t, fn = _case(name)
    from triton_segloss._core import op as core_op
    taken = []
    real = tape.taken
    monkeypatch.setattr(tape, "taken", lambda tag: taken.append(real(tag)) or taken[-1])
    a, loss = _step(fn, x, t)
    assert taken and all(k is not None for k in taken)  # the eager backward used what the forward kept
    monkeypatch.setattr(core_op, "EAGER_FAST_PATH", False)
    taken.clear()
    b, loss_op = _step(fn, x, t)
    assert taken == [None] * len(taken)  # the op route keeps nothing
    assert torch.equal(loss, loss_op) and torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("name", ["binary", "binary ignore smooth log", "multilabel many rows", "multiclass",
                                  "multiclass squared per_image none", "ce dice", "multiclass pixel weight"])
def test_torch_tape_second_backward_recomputes(name):
    # kept tensors are handed over once (and may be overwritten): a retained graph's next backward recomputes
    x, t, fn = _case(name)
    a, loss = _step(fn, x, t, retain=True)
    first = a.grad.clone()
    a.grad = None
    loss.backward(upstream_not_one(loss))
    assert torch.equal(a.grad, first)


@pytest.mark.parametrize("name", ["binary", "multiclass"])
@pytest.mark.parametrize("chunk", [None, 64])
def test_torch_tape_keeps_only_for_a_gradient(name, chunk, monkeypatch):
    # under no_grad, or for logits without requires_grad, nothing is kept; several spatial chunks keep nothing
    x, t, fn = _case(name)
    if chunk is not None:
        monkeypatch.setattr(ti, "_CHUNK", chunk)
    kept = []
    real = tape.keep
    monkeypatch.setattr(tape, "keep", lambda tag, **k: (kept.append(tag), real(tag, **k)))
    with torch.no_grad():
        fn(x.clone().requires_grad_(), t)
    fn(x, t)
    assert kept == []
    a, loss = _step(fn, x, t)
    assert set(kept) == (set() if chunk else {"dice"})
    want = a.grad
    from triton_segloss._core import op as core_op
    monkeypatch.setattr(core_op, "EAGER_FAST_PATH", False)
    b, loss_op = _step(fn, x, t)
    assert torch.equal(loss, loss_op) and torch.equal(want, b.grad)
