"""Fused BCE + Dice, CE + Dice and Dice + focal: values, gradients, one read per pass."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import triton_segloss as tsl
from checks import (bitwise_deterministic, compare_to_reference, compiled_matches_eager, upstream_not_one,
                    value_and_grad)
from reference import dice as ref
from test_dice import compiled_matches_eager_aot, make_target

BCE_OPTS = [
    {},
    {"lambda_bce": 0.3, "lambda_dice": 2.0, "weight": "map", "ignore_index": 255},
    {"per_image": True, "reduction": "none", "smooth": 1.0},
    {"reduction": "sum", "squared": True, "log_loss": True},
    {"class_weight": "cw", "classes": [0, 2], "per_image": True},
]
CE_OPTS = [
    {},
    {"ce_weight": [1.0, 2.0, 0.5, 3.0], "ignore_index": 255, "lambda_ce": 0.7},
    {"per_image": True, "reduction": "none", "weight": "map", "ignore_index": 255},
    {"reduction": "sum", "classes": [1, 2, 3], "log_loss": True, "smooth": 0.5},
    {"class_weight": "cw", "squared": True, "lambda_dice": 3.0},
    {"label_smoothing": 0.1, "ce_weight": [1.0, 2.0, 0.5, 3.0], "ignore_index": 255, "weight": "map"},
    {"label_smoothing": 0.3, "per_image": True, "reduction": "none"},
    {"label_smoothing": 1.0, "reduction": "sum"},
]
FOCAL_OPTS = [
    {},
    {"alpha": None, "gamma": 0.0, "weight": "map"},
    {"alpha": 0.6, "gamma": 0.5, "ignore_index": 255, "per_image": True, "reduction": "none"},
    {"gamma": 3.0, "reduction": "sum", "lambda_focal": 2.0, "lambda_dice": 0.5},
    {"alpha": "per_class", "class_weight": "cw", "smooth": 1.0},
]


def resolve(opts, shape):
    opts = dict(opts)
    if opts.get("weight") == "map":
        opts["weight"] = torch.rand(shape[0], 1, *shape[2:]) + 0.2
    if opts.get("class_weight") == "cw":
        opts["class_weight"] = torch.linspace(0.5, 2.0, shape[1]).tolist()
    if opts.get("alpha") == "per_class":
        opts["alpha"] = torch.linspace(0.2, 0.8, shape[1]).tolist()
    return opts


@pytest.mark.parametrize("oi", range(len(BCE_OPTS)))
@pytest.mark.parametrize("mode,shape", [("binary", (2, 1, 7, 5)), ("multilabel", (2, 3, 4, 5, 3))])
def test_bce_dice(backend, oi, mode, shape):
    opts = resolve(BCE_OPTS[oi], shape)
    if mode == "binary" and "classes" in opts:
        opts["classes"] = [0]
        opts["class_weight"] = [2.0]
    x = torch.randn(shape) * 2
    t = make_target(mode, shape, opts.get("ignore_index"))
    compare_to_reference(tsl.bce_dice_loss, ref.bce_dice_loss, x, t, mode=mode, upstream=upstream_not_one, **opts)


@pytest.mark.parametrize("oi", range(len(CE_OPTS)))
@pytest.mark.parametrize("shape", [(3, 4, 6, 5), (2, 4, 3, 4, 5)], ids=["2d", "3d"])
def test_ce_dice(backend, oi, shape):
    opts = resolve(CE_OPTS[oi], shape)
    x = torch.randn(shape) * 2
    y = make_target("multiclass", shape, opts.get("ignore_index"))
    compare_to_reference(tsl.ce_dice_loss, ref.ce_dice_loss, x, y, upstream=upstream_not_one, **opts)


@pytest.mark.parametrize("oi", range(len(FOCAL_OPTS)))
@pytest.mark.parametrize("mode,shape", [("binary", (2, 1, 7, 5)), ("multilabel", (2, 3, 4, 5, 3)),
                                        ("multiclass", (3, 4, 6, 5))])
def test_dice_focal(backend, oi, mode, shape):
    opts = resolve(FOCAL_OPTS[oi], shape)
    if mode != "multiclass" and isinstance(opts.get("alpha"), list):
        opts["alpha"] = 0.4
    x = torch.randn(shape) * 2
    t = make_target(mode, shape, opts.get("ignore_index"))
    compare_to_reference(tsl.dice_focal_loss, ref.dice_focal_loss, x, t, mode=mode, upstream=upstream_not_one,
                         **opts)


def test_soft_labels_and_extreme_logits(backend):
    x = torch.tensor([-1e4, -80.0, -20.0, -1.0, 0.0, 1.0, 20.0, 80.0, 1e4]).view(1, 1, 9)
    t = torch.tensor([1.0, 0.0, 0.3, 1.0, 0.5, 0.0, 1.0, 0.0, 0.7]).view(1, 1, 9)
    for gamma in (0.0, 2.0):
        compare_to_reference(tsl.dice_focal_loss, ref.dice_focal_loss, x, t, gamma=gamma)
    compare_to_reference(tsl.bce_dice_loss, ref.bce_dice_loss, x, t)
    # gamma < 1: the reference's own gradient is NaN where 1 - p_t rounds to 0 (0^-0.5 * 0);
    # the kernels form 1 - p_t without cancellation and never raise it to gamma - 1
    loss, grad = value_and_grad(tsl.dice_focal_loss, x, t, gamma=0.5)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(loss.double(), ref.dice_focal_loss(x, t, gamma=0.5), rtol=1e-5, atol=1e-6)
    xm = torch.tensor([[30.0, -30.0, 0.0], [0.0, 0.0, 0.0], [-30.0, 30.0, 1.0]]).view(1, 3, 3)
    ym = torch.tensor([0, 2, 1]).view(1, 3)
    for gamma in (0.0, 0.5, 2.0):
        compare_to_reference(tsl.dice_focal_loss, ref.dice_focal_loss, xm, ym, mode="multiclass", gamma=gamma)
    compare_to_reference(tsl.ce_dice_loss, ref.ce_dice_loss, xm, ym)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_dtypes(backend, dtype):
    x = (torch.randn(2, 4, 6, 7) * 3).to(dtype)
    y = make_target("multiclass", x.shape, 255)
    compare_to_reference(tsl.ce_dice_loss, ref.ce_dice_loss, x, y, ignore_index=255, upstream=upstream_not_one)
    t = make_target("multilabel", x.shape)
    compare_to_reference(tsl.dice_focal_loss, ref.dice_focal_loss, x, t, mode="multilabel")


def test_all_pixels_ignored(backend):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    cases = [(tsl.ce_dice_loss, torch.full((2, 4, 4), 255), {}),
             (tsl.dice_focal_loss, torch.full((2, 4, 4), 255), {"mode": "multiclass"}),
             (tsl.bce_dice_loss, torch.full((2, 3, 4, 4), 255.0), {"mode": "multilabel"})]
    for fn, t, kw in cases:
        loss = fn(x, t, ignore_index=255, **kw)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_gradcheck_fp64(backend):
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    y = make_target("multiclass", x.shape, 255)
    t = torch.rand(2, 3, 3, 4, dtype=torch.float64)
    w = torch.rand(2, 3, 4, dtype=torch.float64)
    checks = [
        lambda a: tsl.ce_dice_loss(a, y, ignore_index=255, weight=w, ce_weight=[1.0, 2.0, 3.0]),
        lambda a: tsl.dice_focal_loss(a, y, mode="multiclass", ignore_index=255, gamma=1.5, alpha=[0.2, 0.3, 0.5]),
        lambda a: tsl.dice_focal_loss(a, t, mode="multilabel", gamma=2.0, weight=w, per_image=True,
                                      reduction="none"),
        lambda a: tsl.bce_dice_loss(a, t, mode="multilabel", weight=w, squared=True),
    ]
    for fn in checks:
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)


COMBOS = [
    ("bce_dice_loss", tsl.BCEDiceLoss, "multilabel", {"mode": "multilabel", "lambda_bce": 0.5}),
    ("ce_dice_loss", tsl.CEDiceLoss, "multiclass", {"ignore_index": 255, "ce_weight": [1.0, 2.0, 3.0]}),
    ("dice_focal_loss", tsl.DiceFocalLoss, "multiclass", {"mode": "multiclass", "alpha": [0.2, 0.3, 0.5]}),
]


@pytest.mark.parametrize("name,module,mode,opts", COMBOS, ids=[c[0] for c in COMBOS])
def test_compile_fullgraph(backend, name, module, mode, opts):
    x = torch.randn(2, 3, 6, 6)
    t = make_target(mode, x.shape, 255 if "ignore_index" in opts else None)
    check = compiled_matches_eager if name == "ce_dice_loss" else compiled_matches_eager_aot
    check(getattr(tsl, name), x, t, **opts)
    m = module(**opts, per_image=True, reduction="none")
    check(lambda a, b: m(a, b).sum(), x, t)


def test_deterministic(backend):
    x = torch.randn(3, 5, 33, 35)
    y = make_target("multiclass", x.shape, 255)
    bitwise_deterministic(tsl.ce_dice_loss, x, y, ignore_index=255, per_image=True)
    bitwise_deterministic(tsl.dice_focal_loss, x, make_target("multilabel", x.shape), mode="multilabel")


class _Record(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        tensors = [o for o in outs if isinstance(o, torch.Tensor)]
        big = max((o.numel() for o in tensors if o.dtype != torch.bool), default=0)
        self.calls.append((str(func.name()), func.is_view, big))
        return out


@pytest.mark.parametrize("name,mode", [("bce_dice_loss", "multilabel"), ("ce_dice_loss", "multiclass"),
                                       ("dice_focal_loss", "multiclass"), ("dice_loss", "multiclass"),
                                       ("generalized_dice_loss", "multilabel")])
def test_one_read_per_pass_and_nothing_input_sized(backend, name, mode):
    """Forward: one dice op and only (N, C, 5)-sized float tensors besides views of the inputs;
    backward: one dice_backward op writes the gradient, nothing else is input-sized.
    (Boolean masks are left out: they come from the CPU-only value checks of the target.)"""
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    t = make_target(mode, x.shape)
    kw = {} if name == "ce_dice_loss" else {"mode": mode}
    with _Record() as fwd:
        loss = getattr(tsl, name)(x, t, **kw)
    with _Record() as bwd:
        loss.backward()
    small = 2 * 3 * 5
    for rec, op in ((fwd, "triton_segloss::dice"), (bwd, "triton_segloss::dice_backward")):
        names = [c[0] for c in rec.calls]
        assert names.count(op) == 1, names
        big = [c for c in rec.calls if not c[1] and c[2] > small and c[0] != op and "accumulate" not in c[0]]
        assert not big, big


# ---- bad input -------------------------------------------------------------------------------

def test_bad_input():
    x = torch.randn(2, 3, 4, 4)
    y = torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(ValueError, match="bce_dice_loss needs mode 'binary' or 'multilabel'"):
        tsl.bce_dice_loss(x, y, mode="multiclass")
    with pytest.raises(ValueError, match="reduction='none'.*per_image=True"):
        tsl.ce_dice_loss(x, y, reduction="none")
    with pytest.raises(TypeError, match="alpha must be a number or None for mode='multilabel'"):
        tsl.dice_focal_loss(x, torch.rand(2, 3, 4, 4), mode="multilabel", alpha=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"ce_weight must have shape \(3,\)"):
        tsl.ce_dice_loss(x, y, ce_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"alpha must have shape \(3,\)"):
        tsl.dice_focal_loss(x, y, mode="multiclass", alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        tsl.dice_focal_loss(x, y, mode="multiclass", gamma=-1.0)
    with pytest.raises(TypeError, match="integer class labels"):
        tsl.ce_dice_loss(x, torch.rand(2, 4, 4))


def test_ce_dice_label_smoothing_is_torch_cross_entropy(backend):
    """The CE term with label smoothing and class weights is torch's ``cross_entropy`` (the peer)."""
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 5, 6))
    y[0, 0] = 255
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    for eps in (0.0, 0.15, 1.0):
        ours = tsl.ce_dice_loss(x, y, ce_weight=w, ignore_index=255, label_smoothing=eps, lambda_dice=0.0)
        peer = torch.nn.functional.cross_entropy(x, y, weight=w, ignore_index=255, label_smoothing=eps)
        assert torch.allclose(ours, peer, rtol=1e-12, atol=0), (eps, ours, peer)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_ce_dice_label_smoothing_range(bad):
    with pytest.raises(ValueError, match="label_smoothing"):
        tsl.ce_dice_loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), label_smoothing=bad)
