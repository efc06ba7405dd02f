"""The Dice family's options for smp / MONAI users (names.md): smooth_dr, zero_absent,
average="micro", normalize_class_weight, BCE pos_weight / label_smoothing in bce_dice_loss,
focal_use_softmax=False in dice_focal_loss, negative lambdas, and mcc_loss.

Every value and gradient is compared with the float64 references in tests/reference/dice.py
(explicit confusion counts, loops), and with smp / MONAI where they compute the same thing."""

import importlib.util
import os
import sys
import types

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
import triton_segloss as tsl  # noqa: E402
from checks import compare_to_reference, compiled_matches_eager, upstream_not_one  # noqa: E402
from reference import dice as ref  # noqa: E402
from test_dice import make_target  # noqa: E402
from triton_segloss.dice import mcc_loss  # noqa: E402

FNS = {"dice": tsl.dice_loss, "jaccard": tsl.jaccard_loss, "tversky": tsl.tversky_loss, "mcc": mcc_loss}
SHAPES = {"binary": (2, 1, 5, 6), "multilabel": (2, 3, 4, 5), "multiclass": (2, 4, 5, 4)}
CW = {"binary": [2.0], "multilabel": [1.0, 2.0, 0.5], "multiclass": [0.5, 1.0, 2.0, 1.5]}
OPTIONS = [
    {"smooth": 1.0, "smooth_dr": 0.25},
    {"zero_absent": True, "per_image": True, "reduction": "none"},
    {"average": "micro", "class_weight": "cw"},
    {"average": "micro", "per_image": True, "reduction": "none", "zero_absent": True},
    {"normalize_class_weight": False, "class_weight": "cw", "per_image": True},
]


def _case(kind, mode, opts):
    opts = dict(opts)
    if opts.get("class_weight") == "cw":
        opts["class_weight"] = CW[mode]
    extra = {"alpha": 0.3, "beta": 0.7} if kind == "tversky" else {}
    if kind == "mcc":
        if "smooth" in opts:
            return None
        extra = {"eps": 1e-5}
    return opts, extra


@pytest.mark.parametrize("oi", range(len(OPTIONS)))
@pytest.mark.parametrize("kind", list(FNS))
@pytest.mark.parametrize("mode", list(SHAPES))
def test_options_match_reference(backend, mode, kind, oi):
    case = _case(kind, mode, OPTIONS[oi])
    if case is None:
        pytest.skip("mcc_loss has no smooth")
    opts, extra = case
    torch.manual_seed(oi)
    # MCC in float64: its gradient d mcc / dI = n / D is large next to the result, and the softmax chain
    # rule p (a - sum p a) cancels it in float32 (4e-7 absolute against the 1e-7 of GRAD[float32]).
    x = torch.randn(SHAPES[mode], dtype=torch.float64 if kind == "mcc" else torch.float32) * 2
    t = make_target(mode, x.shape)
    compare_to_reference(FNS[kind], lambda a, b, **kw: ref.option_region_loss(a, b, kind=kind, **kw), x, t,
                         mode=mode, upstream=upstream_not_one, **opts, **extra)


def test_micro_dice_is_uniform_generalized_dice(backend):
    """Pooling the classes' sums before the ratio is generalized Dice with weight 1 (an identity)."""
    x = torch.randn(2, 4, 5, 4)
    y = make_target("multiclass", x.shape)
    a = tsl.dice_loss(x, y, mode="multiclass", average="micro", per_image=True, reduction="none")
    b = tsl.generalized_dice_loss(x, y, mode="multiclass", weight_type="uniform", per_image=True, reduction="none")
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pos_weight", [None, 3.0, [1.0, 2.0, 0.5], "tensor"])
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_bce_dice_pos_weight_label_smoothing(backend, pos_weight, ls):
    x = torch.randn(2, 3, 5, 4) * 2
    t = make_target("multilabel", x.shape)
    if pos_weight == "tensor":
        pos_weight = torch.tensor([0.5, 1.5, 4.0])
    compare_to_reference(
        lambda a, b: tsl.bce_dice_loss(a, b, mode="multilabel", lambda_dice=0.0, pos_weight=pos_weight,
                                       label_smoothing=ls),
        lambda a, b: ref.bce_pos_weight_smoothed(a, b, pos_weight, ls), x, t, upstream=upstream_not_one)
    # the BCE family computes the same term
    pw = pos_weight
    want = tsl.bce_with_logits(x, t, pos_weight=pw if not isinstance(pw, list) else torch.tensor(pw),
                               label_smoothing=ls)
    got = tsl.bce_dice_loss(x, t, mode="multilabel", lambda_dice=0.0, pos_weight=pos_weight, label_smoothing=ls)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bce_dice_sum_with_dice(backend):
    x = torch.randn(2, 1, 6, 5)
    t = make_target("binary", x.shape)
    got = tsl.bce_dice_loss(x, t, pos_weight=2.0, label_smoothing=0.1, lambda_bce=0.7, lambda_dice=0.3)
    want = 0.7 * ref.bce_pos_weight_smoothed(x, t, 2.0, 0.1) + 0.3 * ref.dice_loss(x, t)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.25, None])
def test_dice_focal_sigmoid_on_labels(backend, alpha):
    x = torch.randn(2, 4, 5, 4) * 2
    y = make_target("multiclass", x.shape)
    compare_to_reference(
        lambda a, b: tsl.dice_focal_loss(a, b, mode="multiclass", lambda_dice=0.0, focal_use_softmax=False,
                                         alpha=alpha, gamma=2.0),
        lambda a, b: ref.onehot_sigmoid_focal(a, b, alpha, 2.0), x, y, upstream=upstream_not_one)
    got = tsl.dice_focal_loss(x, y, mode="multiclass", focal_use_softmax=False, alpha=alpha, lambda_dice=0.4)
    want = 0.4 * ref.dice_loss(x, y, mode="multiclass") + ref.onehot_sigmoid_focal(x, y, alpha, 2.0)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_bad_options():
    x = torch.randn(2, 3, 4, 4)
    y = make_target("multiclass", x.shape)
    t = make_target("multilabel", x.shape)
    with pytest.raises(ValueError, match="lambda"):
        tsl.bce_dice_loss(x, t, mode="multilabel", lambda_bce=-1.0)
    with pytest.raises(ValueError, match="lambda"):
        tsl.ce_dice_loss(x, y, lambda_dice=-0.5)
    with pytest.raises(ValueError, match="lambda"):
        tsl.dice_focal_loss(x, y, mode="multiclass", lambda_focal=-2.0)
    with pytest.raises(ValueError, match="average"):
        tsl.dice_loss(x, y, mode="multiclass", average="weighted")
    with pytest.raises(ValueError, match="smooth_dr"):
        tsl.dice_loss(x, y, mode="multiclass", smooth_dr=-1.0)
    with pytest.raises(TypeError, match="zero_absent"):  # generalized Dice pools the classes itself
        tsl.generalized_dice_loss(x, y, mode="multiclass", zero_absent=True)
    with pytest.raises(ValueError, match="label_smoothing"):
        tsl.bce_dice_loss(x, t, mode="multilabel", label_smoothing=1.5)
    with pytest.raises(ValueError, match="pos_weight"):
        tsl.bce_dice_loss(x, t, mode="multilabel", pos_weight=[1.0, 2.0])
    with pytest.raises(TypeError, match="alpha"):
        tsl.dice_focal_loss(x, y, mode="multiclass", focal_use_softmax=False, alpha=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="eps"):
        mcc_loss(x[:, :1], t[:, :1], eps=-1.0)


def test_gradcheck_fp64(backend):
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    y = make_target("multiclass", x.shape)
    t = make_target("multilabel", x.shape).double()
    assert torch.autograd.gradcheck(lambda a: mcc_loss(a, y, mode="multiclass", per_image=True), (x,))
    assert torch.autograd.gradcheck(lambda a: tsl.jaccard_loss(a, t, mode="multilabel", average="micro",
                                                               class_weight=[1.0, 2.0, 0.5]), (x,))
    assert torch.autograd.gradcheck(lambda a: tsl.bce_dice_loss(a, t, mode="multilabel", pos_weight=[1.0, 3.0, 0.5],
                                                                label_smoothing=0.1), (x,))
    assert torch.autograd.gradcheck(lambda a: tsl.dice_focal_loss(a, y, mode="multiclass", focal_use_softmax=False),
                                    (x,))


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph(backend, dynamic):
    x = torch.randn(2, 3, 4, 4)
    y = make_target("multiclass", x.shape)
    torch._dynamo.reset()
    fn = torch.compile(lambda a, b: mcc_loss(a, b, mode="multiclass", average="micro") +
                       tsl.dice_focal_loss(a, b, mode="multiclass", focal_use_softmax=False, zero_absent=True),
                       fullgraph=True, dynamic=dynamic, backend="aot_eager")
    xa = x.clone().requires_grad_(True)
    got = fn(xa, y)
    (g,) = torch.autograd.grad(got, xa)
    xb = x.clone().requires_grad_(True)
    want = mcc_loss(xb, y, mode="multiclass", average="micro") + \
        tsl.dice_focal_loss(xb, y, mode="multiclass", focal_use_softmax=False, zero_absent=True)
    (gw,) = torch.autograd.grad(want, xb)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g, gw, rtol=1e-6, atol=1e-7)


BUDGET = {
    "mcc_loss multiclass micro": lambda x, t: mcc_loss(x, t, mode="multiclass", average="micro"),
    "dice_loss zero_absent normalize": lambda x, t: tsl.dice_loss(x, t, mode="multiclass", zero_absent=True,
                                                                  normalize_class_weight=False,
                                                                  class_weight=[1.0, 2.0, 1.0, 1.0]),
    "dice_focal sigmoid on labels": lambda x, t: tsl.dice_focal_loss(x, t, mode="multiclass",
                                                                     focal_use_softmax=False),
}


@pytest.mark.parametrize("name", list(BUDGET))
def test_launch_budget(name):
    from bench.launches import count_step

    x = torch.randn(2, 4, 8, 8)
    y = make_target("multiclass", x.shape)
    step = count_step(BUDGET[name], x, y)
    assert step.syncs == 0 and step.launches <= 4, (step.launches, step.forward.ops + step.backward.ops)


def test_launch_budget_bce_pos_weight():
    from bench.launches import count_step

    x = torch.randn(2, 3, 8, 8)
    t = make_target("multilabel", x.shape)
    pw = torch.tensor([1.0, 2.0, 3.0])
    step = count_step(lambda a, b: tsl.bce_dice_loss(a, b, mode="multilabel", pos_weight=pw, label_smoothing=0.1),
                      x, t)
    assert step.syncs == 0 and step.launches <= 4, (step.launches, step.forward.ops + step.backward.ops)


# ---- the peers ---------------------------------------------------------------------------------

def _smp_losses():
    if "segmentation_models_pytorch.losses" in sys.modules:
        return sys.modules["segmentation_models_pytorch.losses"]
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None:
        pytest.skip("segmentation_models_pytorch not installed")
    pkg = types.ModuleType("segmentation_models_pytorch")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("segmentation_models_pytorch", pkg)
    import segmentation_models_pytorch.losses as L

    return L


def test_mcc_matches_smp(backend):
    L = _smp_losses()
    x = torch.randn(3, 1, 6, 5, dtype=torch.float64) * 2
    t = make_target("binary", x.shape).double()
    p = torch.sigmoid(x)
    want = L.MCCLoss(eps=1e-5)(p, t)
    got = mcc_loss(p, t, eps=1e-5, from_logits=False)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    got_logits = mcc_loss(x, t, eps=1e-5)
    torch.testing.assert_close(got_logits, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["DiceLoss", "JaccardLoss"])
def test_zero_absent_matches_smp(backend, name):
    L = _smp_losses()
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    y = make_target("multiclass", x.shape)
    y[y == 2] = 0  # class 2 absent from the batch
    want = getattr(L, name)("multiclass", from_logits=True, smooth=0.5, eps=1e-7)(x, y)
    # this smp's Dice is its Tversky(0.5, 0.5): (I + s) / (I + FP / 2 + FN / 2 + s) = (2 I + 2 s) / (P + T + 2 s),
    # so its smooth s is our smooth 2 s; its Jaccard's smooth is ours
    fn, smooth = (tsl.dice_loss, 1.0) if name == "DiceLoss" else (tsl.jaccard_loss, 0.5)
    got = fn(x, y, mode="multiclass", smooth=smooth, eps=1e-7, zero_absent=True)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_tversky_zero_absent_matches_smp(backend):
    L = _smp_losses()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    t = make_target("multilabel", x.shape).double()
    t[:, 1] = 0
    want = L.TverskyLoss("multilabel", from_logits=True, smooth=0.0, eps=1e-7, alpha=0.3, beta=0.7)(x, t)
    got = tsl.tversky_loss(x, t, mode="multilabel", alpha=0.3, beta=0.7, zero_absent=True)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_weight_and_smooth_dr_match_monai(backend):
    monai = pytest.importorskip("monai.losses")
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    y = make_target("multiclass", x.shape)
    w = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    loss = monai.DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=0.5, smooth_dr=1e-3, batch=True, weight=w)
    want = loss(x, y.unsqueeze(1))
    got = tsl.dice_loss(x, y, mode="multiclass", smooth=0.5, smooth_dr=1e-3, class_weight=w,
                        normalize_class_weight=False)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_dice_focal_sigmoid_matches_monai(backend):
    monai = pytest.importorskip("monai.losses")
    import inspect

    if "use_softmax" not in inspect.signature(monai.DiceFocalLoss).parameters:
        pytest.skip("this MONAI's DiceFocalLoss has no use_softmax (its focal term is sigmoid on the one-hot)")
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    y = make_target("multiclass", x.shape)
    loss = monai.DiceFocalLoss(softmax=True, to_onehot_y=True, use_softmax=False, gamma=2.0, alpha=0.25,
                               smooth_nr=1e-5, smooth_dr=1e-5, batch=True, lambda_dice=0.6, lambda_focal=1.3)
    want = loss(x, y.unsqueeze(1))
    got = tsl.dice_focal_loss(x, y, mode="multiclass", focal_use_softmax=False, alpha=0.25, gamma=2.0,
                              smooth=1e-5, lambda_dice=0.6, lambda_focal=1.3)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)
