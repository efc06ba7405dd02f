"""focal_loss options for smp / MONAI users (issue 13): per-class alpha in the sigmoid modes,
class_weight in every mode, use_softmax=False (one-vs-rest sigmoid focal on integer labels) and
from_logits=False (probabilities in), against the float64 references, hand-derived cases and
MONAI / smp where they compute the same thing."""

import importlib.util
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import triton_segloss as tsl
from checks import compare_to_reference, compiled_matches_eager, upstream_not_one, value_and_grad
from reference import focal as ref
from tolerances import assert_grad, assert_value
from triton_segloss.focal.ops import SigmoidFocalOptions, SoftmaxFocalOptions, focal_sigmoid, focal_softmax


def _mask(shape, p=0.4):
    return (torch.rand(shape) < p).float()


def _labels(n, c, *spatial):
    return torch.randint(0, c, (n, *spatial))


def _probs(shape, scale=3.0):
    """Sigmoid probabilities well inside (0, 1) (the -100 log clamp never acts)."""
    return torch.sigmoid(torch.randn(shape) * scale)


def _loss(mode):
    return lambda x, t, **kw: tsl.focal_loss(x, t, mode=mode, **kw)


def _ovr(x, y, **kw):
    return tsl.focal_loss(x, y, mode="multiclass", use_softmax=False, **kw)


def _ovr_ref(x, y, **kw):
    return ref.one_vs_rest_focal_loss(x, y, **kw)


# ---- per-class alpha and class_weight in the sigmoid modes --------------------------

SIGMOID_CASES = [
    {"alpha": [0.1, 0.5, 0.9]},
    {"alpha": [0.1, 0.5, 0.9], "reduction": "sum", "gamma": 0.5},
    {"alpha": [0.3, 0.0, 1.0], "ignore_index": 255.0, "reduction": "none"},
    {"class_weight": [2.0, 0.5, 1.0]},
    {"class_weight": 3.0, "alpha": None, "reduction": "sum"},
    {"alpha": [0.2, 0.7, 0.4], "class_weight": [0.0, 1.5, 2.0], "ignore_index": 255.0, "gamma": 1.5},
]


@pytest.mark.parametrize("opts", SIGMOID_CASES, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_multilabel_per_class_alpha_and_class_weight(backend, opts):
    x = torch.randn(2, 3, 5, 6) * 3
    t = _mask(x.shape)
    if "ignore_index" in opts:
        t[torch.rand(x.shape) < 0.3] = 255.0
    compare_to_reference(_loss("multilabel"), ref.sigmoid_focal_loss, x, t, upstream=upstream_not_one, **opts)


def test_per_class_alpha_and_weight_as_tensors(backend):
    x = torch.randn(2, 3, 5, 6) * 3
    t = _mask(x.shape)
    a, w = [0.1, 0.6, 0.9], [2.0, 0.5, 1.0]
    want = tsl.focal_loss(x, t, mode="multilabel", alpha=a, class_weight=w)
    got = tsl.focal_loss(x, t, mode="multilabel", alpha=torch.tensor(a), class_weight=torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(got, want)
    y = _labels(2, 3, 5, 6)
    for fn in (_loss("multiclass"), _ovr):
        want = fn(x, y, alpha=a, class_weight=w)
        torch.testing.assert_close(fn(x, y, alpha=torch.tensor(a), class_weight=torch.tensor(w)), want)
    # a strided alpha tensor (every other entry) is read in place
    a_big = torch.tensor([0.1, 9.0, 0.6, 9.0, 0.9, 9.0])
    torch.testing.assert_close(tsl.focal_loss(x, t, mode="multilabel", alpha=a_big[::2]),
                               tsl.focal_loss(x, t, mode="multilabel", alpha=a))


def test_binary_length_one_alpha_is_the_scalar(backend):
    x = torch.randn(2, 1, 6, 7) * 3
    t = _mask(x.shape)
    loss, grad = value_and_grad(_loss("binary"), x, t, alpha=[0.7], class_weight=[2.0])
    want, want_grad = value_and_grad(_loss("binary"), x, t, alpha=0.7)
    assert_value(loss, 2 * want, torch.float32)
    assert_grad(grad, 2 * want_grad, torch.float32)


@pytest.mark.parametrize("opts", [
    {"class_weight": [0.5, 1.0, 2.0, 0.1]},
    {"class_weight": 2.5, "alpha": [0.1, 0.2, 0.3, 0.4], "reduction": "sum"},
    {"class_weight": [0.5, 1.0, 2.0, 0.1], "ignore_index": 255, "reduction": "none", "gamma": 0.5},
], ids=["list", "scalar-alpha-list-sum", "ignore-none"])
def test_softmax_class_weight(backend, opts):
    x = torch.randn(2, 4, 5, 6) * 3
    y = _labels(2, 4, 5, 6)
    if "ignore_index" in opts:
        y[torch.rand(y.shape) < 0.3] = 255
    compare_to_reference(_loss("multiclass"), ref.softmax_focal_loss, x, y, upstream=upstream_not_one, **opts)


def test_softmax_class_weight_gamma_zero_is_weighted_cross_entropy_sum(backend):
    # gamma 0, no alpha: sum_i w_{y_i} (-log p_{y_i}), which is torch's weighted CE with reduction="sum"
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64) * 3
    y = _labels(2, 5, 4, 3)
    w = [0.5, 1.0, 2.0, 0.1, 1.5]
    loss, grad = value_and_grad(_loss("multiclass"), x, y, gamma=0.0, alpha=None, class_weight=w, reduction="sum")
    want, want_grad = value_and_grad(lambda a: F.cross_entropy(a, y, weight=torch.tensor(w, dtype=torch.float64),
                                                               reduction="sum"), x)
    assert_value(loss, want, torch.float64)
    assert_grad(grad, want_grad, torch.float64)


# ---- use_softmax=False: one-vs-rest sigmoid focal on integer labels -------------------

OVR_CASES = [
    {},
    {"alpha": None, "gamma": 0.5, "reduction": "sum"},
    {"alpha": [0.1, 0.4, 0.6, 0.9], "ignore_index": 255},
    {"class_weight": [1.0, 2.0, 0.5, 0.0], "ignore_index": -100, "reduction": "none"},
    {"alpha": 0.6, "gamma": 0.0},
]


@pytest.mark.parametrize("shape", [(2, 4, 5, 6), (1, 4, 3, 4, 3)])
@pytest.mark.parametrize("opts", OVR_CASES, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "plain")
def test_one_vs_rest_matches_reference(backend, shape, opts):
    x = torch.randn(shape) * 3
    y = _labels(shape[0], shape[1], *shape[2:])
    if "ignore_index" in opts:
        y[torch.rand(y.shape) < 0.3] = opts["ignore_index"]
    compare_to_reference(_ovr, _ovr_ref, x, y, upstream=upstream_not_one, **opts)


def test_one_vs_rest_is_multilabel_on_the_one_hot(backend):
    """Independent of the reference: the same loss as mode='multilabel' on an explicit one-hot;
    "mean" divides by pixels x C in both."""
    x = torch.randn(2, 5, 7, 3) * 2
    y = _labels(2, 5, 7, 3)
    onehot = F.one_hot(y, 5).movedim(-1, 1).float()
    for kw in ({}, {"reduction": "none", "gamma": 0.7}, {"alpha": [0.1, 0.2, 0.3, 0.4, 0.5], "class_weight": 2.0}):
        loss, grad = value_and_grad(_ovr, x, y, upstream=upstream_not_one, **kw)
        want, want_grad = value_and_grad(_loss("multilabel"), x, onehot, upstream=upstream_not_one, **kw)
        assert_value(loss, want, torch.float32)
        assert_grad(grad, want_grad, torch.float32)


@pytest.mark.parametrize("tdtype", [torch.int32, torch.uint8])
def test_one_vs_rest_label_dtypes_and_ignore(backend, tdtype):
    x = torch.randn(2, 3, 5, 6)
    y = _labels(2, 3, 5, 6)
    y[0, 0] = 255
    want = ref.one_vs_rest_focal_loss(x, y, ignore_index=255)
    torch.testing.assert_close(_ovr(x, y.to(tdtype), ignore_index=255).double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_ovr(x, y.unsqueeze(1), ignore_index=255).double(), want, rtol=1e-5, atol=1e-6)


def test_one_vs_rest_all_ignored_is_zero(backend):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = _ovr(x, torch.full((2, 4, 4), 9), ignore_index=9)
    (g,) = torch.autograd.grad(loss, x)
    assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


# ---- from_logits=False: probabilities in -------------------------------------------

@pytest.mark.parametrize("opts", [
    {},
    {"alpha": [0.2, 0.5, 0.8], "class_weight": [1.0, 2.0, 0.5], "reduction": "sum", "gamma": 0.5},
    {"ignore_index": 255.0, "reduction": "none", "gamma": 0.0},
], ids=["plain", "alpha-weight-sum", "ignore-none-gamma0"])
def test_sigmoid_probabilities(backend, opts):
    p = _probs((2, 3, 5, 6))
    t = torch.rand(p.shape)  # soft targets too
    t[0] = _mask(t[0].shape)
    if "ignore_index" in opts:
        t[torch.rand(p.shape) < 0.3] = 255.0
    compare_to_reference(_loss("multilabel"), ref.sigmoid_focal_loss, p, t, upstream=upstream_not_one,
                         from_logits=False, **opts)


@pytest.mark.parametrize("opts", [
    {},
    {"alpha": [0.1, 0.2, 0.3, 0.4], "class_weight": 2.0, "ignore_index": 255, "gamma": 0.5},
    {"reduction": "none", "gamma": 3.0},
], ids=["plain", "alpha-weight-ignore", "none"])
def test_softmax_probabilities(backend, opts):
    p = torch.softmax(torch.randn(2, 4, 5, 6) * 3, dim=1)
    y = _labels(2, 4, 5, 6)
    if "ignore_index" in opts:
        y[torch.rand(y.shape) < 0.3] = 255
    loss, grad = compare_to_reference(_loss("multiclass"), ref.softmax_focal_loss, p, y, upstream=upstream_not_one,
                                      from_logits=False, **opts)
    off = F.one_hot(y.clamp(max=3), 4).movedim(-1, 1) == 0
    assert torch.count_nonzero(grad[off]) == 0  # only p_y gets a gradient


def test_one_vs_rest_probabilities(backend):
    p = _probs((2, 4, 5, 6))
    y = _labels(2, 4, 5, 6)
    compare_to_reference(_ovr, _ovr_ref, p, y, upstream=upstream_not_one, from_logits=False, alpha=[0.1, 0.3, 0.5, 0.7])


@pytest.mark.parametrize("mode", ["multilabel", "one-vs-rest", "multiclass"])
def test_probabilities_agree_with_logits_by_the_chain_rule(backend, mode):
    """Same loss from sigmoid(x) / softmax(x) as from x; the probability gradient pulled back
    through the sigmoid (or softmax) Jacobian is the logits gradient."""
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 2
    if mode == "multilabel":
        t, fn, act = _mask(x.shape), _loss("multilabel"), torch.sigmoid
    elif mode == "one-vs-rest":
        t, fn, act = _labels(2, 3, 4, 5), _ovr, torch.sigmoid
    else:
        t, fn, act = _labels(2, 3, 4, 5), _loss("multiclass"), lambda a: torch.softmax(a, 1)
    kw = {"alpha": [0.2, 0.5, 0.7], "gamma": 1.5, "class_weight": [1.0, 0.5, 2.0]}
    loss, grad = value_and_grad(fn, x, t, **kw)
    p = act(x.detach()).requires_grad_(True)
    loss_p = fn(p, t, from_logits=False, **kw)
    (gp,) = torch.autograd.grad(loss_p, p)
    _, pulled = torch.autograd.functional.vjp(act, x, gp)
    torch.testing.assert_close(loss_p, loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pulled, grad, rtol=1e-8, atol=1e-12)


def test_probabilities_at_zero_and_one(backend):
    """p exactly 0 or 1: hand-derived values and gradients, all finite. gamma = 2, alpha = None:
    right answers give 0 loss and 0 gradient; wrong ones the clamped -log 0 = 100 with
    q = 1, and dl/dp = gamma (1 - 2t) * 100 (the clamped log itself has no gradient)."""
    p = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 4)
    t = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 4)
    loss, grad = value_and_grad(_loss("binary"), p, t, alpha=None, reduction="none", from_logits=False)
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.0, 100.0, 100.0]).view(1, 1, 4))
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.0, 200.0, -200.0]).view(1, 1, 4))
    # softmax probabilities with p_y = 1 (loss 0) and p_y = 0 (loss 100, dl/dp_y = -gamma * 100)
    ps = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 2)  # pixel 0: class 0 sure, pixel 1: class 1 sure
    y = torch.tensor([[0, 0]])
    loss, grad = value_and_grad(_loss("multiclass"), ps, y, alpha=None, reduction="none", from_logits=False)
    torch.testing.assert_close(loss, torch.tensor([[0.0, 100.0]]))
    torch.testing.assert_close(grad, torch.tensor([[0.0, -200.0], [0.0, 0.0]]).view(1, 2, 2))  # q^2 = 0 at p_y = 1


# ---- MONAI and smp: where they compute the same thing --------------------------------

def _smp_losses():
    if "segmentation_models_pytorch.losses" in sys.modules:
        return sys.modules["segmentation_models_pytorch.losses"]
    if "segmentation_models_pytorch" in sys.modules:  # a stub parent from another test: import under it
        import segmentation_models_pytorch.losses as L

        return L
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None:
        pytest.skip("segmentation_models_pytorch not installed")
    pkg = types.ModuleType("segmentation_models_pytorch")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("segmentation_models_pytorch", pkg)
    import segmentation_models_pytorch.losses as L

    return L


def _peer_value_and_grad(loss_fn, x, t):
    return value_and_grad(loss_fn, x.double(), t)


def test_monai_sigmoid(backend):
    monai = pytest.importorskip("monai")
    x = torch.randn(2, 3, 5, 6) * 3
    t = _mask(x.shape)
    for kw, ours in (
        ({"gamma": 2.0, "alpha": 0.25}, {"alpha": 0.25}),
        ({"gamma": 0.5, "alpha": None, "weight": [0.5, 1.0, 2.0]}, {"alpha": None, "gamma": 0.5,
                                                                    "class_weight": [0.5, 1.0, 2.0]}),
        ({"gamma": 1.0, "alpha": 0.7, "weight": 3.0}, {"alpha": 0.7, "gamma": 1.0, "class_weight": 3.0}),
    ):
        m = monai.losses.FocalLoss(reduction="mean", **kw)
        want, want_grad = _peer_value_and_grad(m, x, t)
        loss, grad = value_and_grad(_loss("multilabel"), x, t, **ours)
        assert_value(loss, want, torch.float32)
        assert_grad(grad, want_grad, torch.float32)


def test_monai_one_vs_rest_and_softmax(backend):
    monai = pytest.importorskip("monai")
    x = torch.randn(2, 4, 5, 6) * 3
    y = _labels(2, 4, 5, 6)
    w = [0.5, 1.0, 2.0, 1.5]
    # use_softmax=False, to_onehot_y=True: our one-vs-rest form ("mean" over pixels x C in both)
    m = monai.losses.FocalLoss(to_onehot_y=True, use_softmax=False, gamma=2.0, alpha=0.25, weight=w)
    want, want_grad = _peer_value_and_grad(lambda a, b: m(a, b.unsqueeze(1)), x, y)
    loss, grad = value_and_grad(_ovr, x, y, alpha=0.25, class_weight=w)
    assert_value(loss, want, torch.float32)
    assert_grad(grad, want_grad, torch.float32)
    # use_softmax=True with a per-class alpha: MONAI's "mean" is over the (N, C, *spatial) one-hot
    # map, whose entries are 0 off the labelled class, so it is our mean / C
    a = [0.1, 0.2, 0.3, 0.4]
    m = monai.losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=1.5, alpha=a, weight=w)
    want, want_grad = _peer_value_and_grad(lambda b, c: m(b, c.unsqueeze(1)), x, y)
    loss, grad = value_and_grad(_loss("multiclass"), x, y, alpha=a, gamma=1.5, class_weight=w)
    assert_value(loss / 4, want, torch.float32)
    assert_grad(grad / 4, want_grad, torch.float32)


def test_smp(backend):
    L = _smp_losses()
    x = torch.randn(2, 3, 5, 6) * 3
    xb = x[:, :1]
    tb = _mask(xb.shape)
    tb[0, 0, 0] = 255.0
    # binary with ignore_index: smp drops ignored pixels, then averages: our "mean"
    m = L.FocalLoss("binary", alpha=0.3, gamma=2.0, ignore_index=255)
    want, want_grad = _peer_value_and_grad(m, xb, tb)
    loss, grad = value_and_grad(_loss("binary"), xb, tb, alpha=0.3, ignore_index=255)
    assert_value(loss, want, torch.float32)
    assert_grad(grad, want_grad, torch.float32)
    # multilabel (no ignore): smp's mean of per-class means is our mean (same count per class)
    t = _mask(x.shape)
    want, want_grad = _peer_value_and_grad(L.FocalLoss("multilabel", alpha=0.25, gamma=1.5), x, t)
    loss, grad = value_and_grad(_loss("multilabel"), x, t, gamma=1.5)
    assert_value(loss, want, torch.float32)
    assert_grad(grad, want_grad, torch.float32)
    # multiclass: smp's one-vs-rest sigmoid focal with ignore_index (one mask for every class)
    y = _labels(2, 3, 5, 6)
    y[1, 2] = -1
    want, want_grad = _peer_value_and_grad(L.FocalLoss("multiclass", alpha=None, gamma=2.0, ignore_index=-1), x, y)
    loss, grad = value_and_grad(_ovr, x, y, alpha=None, ignore_index=-1)
    assert_value(loss, want, torch.float32)
    assert_grad(grad, want_grad, torch.float32)
    # class_weights: smp's sum_c w_c mean_c / sum_c w_c is our class_weight mean times C / sum(w)
    w = [0.5, 1.0, 2.5]
    want, want_grad = _peer_value_and_grad(L.FocalLoss("multiclass", gamma=2.0, class_weights=w), x, y.clamp(min=0))
    loss, grad = value_and_grad(_ovr, x, y.clamp(min=0), alpha=None, class_weight=w)
    assert_value(loss * 3 / sum(w), want, torch.float32)
    assert_grad(grad * 3 / sum(w), want_grad, torch.float32)
    # from_logits=False (binary): smp clamps to [1e-7, 1 - 1e-7] and maps back to logits; inside
    # that range it is our probability form
    p = _probs(xb.shape, scale=2.0).double()
    mp = L.FocalLoss("binary", alpha=0.3, gamma=2.0, from_logits=False)
    want, want_grad = value_and_grad(mp, p, tb.clamp(max=1))
    loss, grad = value_and_grad(_loss("binary"), p, tb.clamp(max=1), alpha=0.3, from_logits=False)
    assert_value(loss, want, torch.float64)
    torch.testing.assert_close(grad, want_grad, rtol=1e-9, atol=1e-12)


# ---- ops, gradcheck, compile, launch budget, bad input ------------------------------

def test_opcheck_new_options(backend):
    x = torch.randn(2, 3, 8, requires_grad=True)
    p = torch.sigmoid(x.detach()).requires_grad_(True)
    t = _mask((2, 3, 8))
    y = torch.randint(0, 3, (2, 1, 8))
    y[0, 0, 0] = 255
    a, w = torch.tensor([0.2, 0.3, 0.5]), torch.tensor([1.0, 2.0, 0.5])
    g = torch.randn(2, 3, 8)
    sig_cases = [
        ((x, t, a, w), SigmoidFocalOptions(gamma=0.5, reduction="none")),
        ((x, t, None, None), SigmoidFocalOptions(class_alpha=(0.2, 0.3, 0.5), class_weight_values=(1.0, 2.0, 0.5))),
        ((x, y, None, w), SigmoidFocalOptions(ignore_index=255.0, labels=True, scale=2.0, reduction="sum")),
        ((p, t, a, None), SigmoidFocalOptions(from_logits=False)),
    ]
    soft_cases = [
        ((x, y, a, w), SoftmaxFocalOptions(ignore_index=255, reduction="none")),
        ((x, y, None, None), SoftmaxFocalOptions(class_weight_values=(1.0, 2.0, 0.5), scale=0.5, ignore_index=255)),
        ((p, y, None, w), SoftmaxFocalOptions(from_logits=False, ignore_index=255, reduction="sum")),
    ]
    for op, cases, gmap in ((focal_sigmoid, sig_cases, g), (focal_softmax, soft_cases, g[:, 0])):
        for tensors, opts in cases:
            torch.library.opcheck(op.forward_op, (*tensors, *opts))
            tensors = (tensors[0].detach(),) + tensors[1:]
            saved = op.forward_op(*tensors, *opts)[1:]  # coef (and the softmax op's stats)
            grad = gmap if opts.reduction == "none" else g[0, 0, 0]
            torch.library.opcheck(op.backward_op, (grad, *saved, *tensors, *opts))


def test_gradcheck_fp64(backend):
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(torch.randn(1, 3, 2, 2, dtype=torch.float64) * 2).requires_grad_(True)
    t = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    y = torch.randint(0, 3, (1, 2, 2))
    y[0, 0, 0] = -1
    kw = {"alpha": [0.2, 0.6, 0.9], "class_weight": [1.0, 2.0, 0.5], "gamma": 0.5}
    assert torch.autograd.gradcheck(lambda a: _ovr(a, y, ignore_index=-1, **kw), (x,))
    assert torch.autograd.gradcheck(lambda a: tsl.focal_loss(a, t, mode="multilabel", from_logits=False, **kw), (p,))
    assert torch.autograd.gradcheck(lambda a: _ovr(a, y, ignore_index=-1, from_logits=False, reduction="none"), (p,))
    assert torch.autograd.gradcheck(
        lambda a: tsl.focal_loss(a, y, mode="multiclass", ignore_index=-1, from_logits=False, **kw), (p,))


COMPILE_CASES = [
    ("multilabel", {"alpha": [0.2, 0.3, 0.5], "class_weight": [1.0, 2.0, 0.5]}),
    ("multiclass", {"use_softmax": False, "alpha": 0.25, "ignore_index": 255}),
    ("multiclass", {"use_softmax": False, "class_weight": 2.0, "reduction": "none"}),
    ("multiclass", {"class_weight": [1.0, 2.0, 0.5], "reduction": "sum"}),
    ("multiclass", {"from_logits": False, "alpha": [0.2, 0.3, 0.5]}),
    ("multilabel", {"from_logits": False, "reduction": "none"}),
]


@pytest.mark.parametrize("mode,opts", COMPILE_CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}{w}" for k, w in v.items()))
def test_compile_fullgraph_dynamic(backend, mode, opts):
    torch._dynamo.reset()

    def fn(a, b):
        return tsl.focal_loss(a, b, mode=mode, **opts)

    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    for spatial in ((6, 6), (5, 7)):
        x = torch.randn(2, 3, *spatial) * 3
        if not opts.get("from_logits", True):
            x = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
        t = _labels(2, 3, *spatial) if mode == "multiclass" else _mask(x.shape)
        if "ignore_index" in opts:
            t[0, ..., 0] = 255
        loss, grad = value_and_grad(compiled, x, t, upstream=upstream_not_one)
        want, want_grad = value_and_grad(fn, x, t, upstream=upstream_not_one)
        torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-7)


def test_compile_fullgraph_static(backend):
    x = torch.randn(2, 3, 6, 6)
    compiled_matches_eager(lambda a, b: _ovr(a, b, alpha=[0.2, 0.3, 0.5], class_weight=[1.0, 2.0, 0.5]), x,
                           _labels(2, 3, 6, 6))


BUDGET_CASES = {
    "multilabel alpha list + class_weight list": (
        (2, 3, 8, 8), "mask", {"mode": "multilabel", "alpha": [0.2, 0.3, 0.5], "class_weight": [1.0, 2.0, 0.5]}),
    "one-vs-rest alpha list + ignore": (
        (2, 3, 8, 8), "labels", {"mode": "multiclass", "use_softmax": False, "alpha": [0.2, 0.3, 0.5],
                                 "ignore_index": 255}),
    "one-vs-rest none": ((2, 3, 8, 8), "labels", {"mode": "multiclass", "use_softmax": False, "reduction": "none"}),
    "softmax class_weight list": ((2, 3, 8, 8), "labels", {"mode": "multiclass", "class_weight": [1.0, 2.0, 0.5]}),
    "softmax probabilities": ((2, 3, 8, 8), "probs", {"mode": "multiclass", "from_logits": False,
                                                       "alpha": [0.2, 0.3, 0.5]}),
    "binary probabilities": ((2, 1, 8, 8), "bprobs", {"mode": "binary", "from_logits": False, "class_weight": 2.0}),
}


@pytest.mark.parametrize("name", list(BUDGET_CASES))
def test_launch_budget(name):
    from bench import launches

    shape, kind, kw = BUDGET_CASES[name]
    x = torch.randn(shape)
    if kind == "mask":
        t = _mask(shape)
    elif kind == "bprobs":
        x, t = torch.sigmoid(x), _mask(shape)
    else:
        t = _labels(shape[0], shape[1], *shape[2:])
        if kind == "probs":
            x = torch.softmax(x, 1)

    def fn(a, b):
        loss = tsl.focal_loss(a, b, **kw)
        return loss.sum() if loss.dim() else loss

    step = launches.count_step(fn, x, t)
    ops = step.forward.ops + step.backward.ops
    assert step.syncs == 0, ops
    # "none" + .sum(): the sum and its backward fill are the caller's ops, not the loss's
    limit = 4 + (2 if kw.get("reduction") == "none" else 0)
    assert step.launches <= limit, ops


def test_bad_options():
    x = torch.randn(2, 3, 4, 4)
    y = torch.randint(0, 3, (2, 4, 4))
    t = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"class_weight has 2 entries but logits \(2, 3, 4, 4\) have 3 classes"):
        tsl.focal_loss(x, t, mode="multilabel", class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="class_weight entries must be >= 0"):
        tsl.focal_loss(x, y, mode="multiclass", class_weight=[1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match="class_weight must be >= 0"):
        tsl.focal_loss(x, y, mode="multiclass", class_weight=-1.0)
    with pytest.raises(ValueError, match="alpha entries must be >= 0"):
        tsl.focal_loss(x, t, mode="multilabel", alpha=torch.tensor([0.5, -0.1, 0.2]))
    with pytest.raises(ValueError, match=r"alpha must be a 1-D per-class tensor, got shape \(3, 1\)"):
        tsl.focal_loss(x, t, mode="multilabel", alpha=torch.ones(3, 1))
    with pytest.raises(TypeError, match="class_weight must be a number, a per-class sequence"):
        tsl.focal_loss(x, t, mode="multilabel", class_weight="balanced")
    with pytest.raises(ValueError, match="use_softmax=False applies to mode='multiclass' only"):
        tsl.focal_loss(x, t, mode="multilabel", use_softmax=False)
    with pytest.raises(TypeError, match="use_softmax must be a bool"):
        tsl.focal_loss(x, y, mode="multiclass", use_softmax=1)
    with pytest.raises(TypeError, match="from_logits must be a bool"):
        tsl.focal_loss(x, y, mode="multiclass", from_logits="no")
    with pytest.raises(ValueError, match=r"logits must hold probabilities in \[0, 1\] when from_logits=False"):
        tsl.focal_loss(x, t, mode="multilabel", from_logits=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        _ovr(x, y + 1)
