"""The nn.Module forms (triton_segloss.losses): explicit signatures equal to the functionals',
options checked at construction with the functionals' own messages, tensor options as
buffers (state_dict, .to(), pickling), and forward == the functional on both backends."""

import copy
import inspect
import pickle
import pydoc
import typing

import pytest
import torch

import triton_segloss as tsl
from triton_segloss import losses
from triton_segloss.dice import mcc_loss
from checks import compiled_matches_eager, value_and_grad
from tolerances import assert_grad, assert_value

# module -> (its functional, number of leading inputs before the options)
MODULES = {
    losses.BCEWithLogitsLoss: (tsl.bce_with_logits, 2),
    losses.DiceLoss: (tsl.dice_loss, 2),
    losses.JaccardLoss: (tsl.jaccard_loss, 2),
    losses.TverskyLoss: (tsl.tversky_loss, 2),
    losses.GeneralizedDiceLoss: (tsl.generalized_dice_loss, 2),
    losses.BCEDiceLoss: (tsl.bce_dice_loss, 2),
    losses.CEDiceLoss: (tsl.ce_dice_loss, 2),
    losses.DiceFocalLoss: (tsl.dice_focal_loss, 2),
    losses.FocalLoss: (tsl.focal_loss, 2),
    losses.LovaszHingeLoss: (tsl.lovasz_hinge, 2),
    losses.LovaszSoftmaxLoss: (tsl.lovasz_softmax, 2),
    losses.CrossEntropyLoss: (tsl.cross_entropy, 2),
    losses.BoundaryBCEDiceLoss: (tsl.boundary_bce_dice_loss, 2),
    losses.NCutLoss: (tsl.ncut_loss, 2),
    losses.MCCLoss: (mcc_loss, 2),
    losses.HausdorffDTLoss: (tsl.hausdorff_dt_loss, 2),
    losses.BoundaryLoss: (tsl.boundary_loss, 2),
    losses.DiceBoundaryLoss: (tsl.dice_boundary_loss, 2),
    losses.ClDiceLoss: (tsl.cldice_loss, 2),
    losses.DiceClDiceLoss: (tsl.dice_cldice_loss, 2),
}
# public functions that are not losses and so have no module
# (BoundaryLossSchedule is the alpha schedule of dice_boundary_loss, a plain class)
NOT_LOSSES = {"boundary_weight_map", "distance_transform", "signed_distance_transform", "BoundaryLossSchedule"}

B = (2, 1, 6, 6)  # binary logits
M = (2, 3, 6, 6)  # multiclass / multilabel logits


def _inputs(kind):
    if kind == "binary":
        return torch.randn(B), (torch.rand(B) > 0.5).float()
    if kind == "multilabel":
        return torch.randn(M), (torch.rand(M) > 0.5).float()
    if kind == "multiclass":
        return torch.randn(M), torch.randint(0, M[1], (M[0], *M[2:]))
    if kind == "boundary":
        t = torch.zeros(2, 1, 8, 8)
        t[..., 2:6, 1:5] = 1
        return torch.randn(2, 1, 8, 8), t
    if kind == "ncut":
        return torch.softmax(torch.randn(M), 1), torch.rand(M[0], 1, *M[2:]) * 255
    raise ValueError(kind)


# ---- signatures ----------------------------------------------------------------------------------


def test_every_loss_has_a_module():
    """A loss function without a module (or a module not in this table) fails here."""
    have = {fn.__name__ for fn, _ in MODULES.values()}
    missing = sorted(set(tsl.functional.__all__) - NOT_LOSSES - have)
    assert not missing, f"losses without a module in triton_segloss.losses: {missing}"
    assert set(losses.__all__) == {m.__name__ for m in MODULES}


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__)
def test_module_signature_matches_functional(module):
    """Constructor parameters == the functional's parameters after its inputs: names, order,
    defaults; ``mode`` positional-or-keyword first; the rest keyword-only unless the functional
    takes them positionally too (boundary's kernel_size)."""
    fn, n_inputs = MODULES[module]
    want = list(inspect.signature(fn).parameters.values())[n_inputs:]
    got = list(inspect.signature(module).parameters.values())
    assert [(p.name, p.default) for p in got] == [(p.name, p.default) for p in want], (
        f"{module.__name__}{inspect.signature(module)} != {fn.__name__}{inspect.signature(fn)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g.name == "mode":
            assert i == 0 and g.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        else:
            assert g.kind is w.kind, f"{g.name}: {g.kind} != {w.kind}"


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__)
def test_type_hints_and_docs(module):
    """Resolvable hints (jsonargparse / LightningCLI read them), Literal modes and reductions,
    and every argument named in the docstring help() shows."""
    hints = typing.get_type_hints(module.__init__)
    params = [p for p in inspect.signature(module).parameters]
    assert set(params) <= set(hints)
    if "reduction" in hints:
        assert typing.get_args(hints["reduction"]) == ("mean", "sum", "none")
    if "mode" in hints:
        assert set(typing.get_args(hints["mode"])) <= {"binary", "multiclass", "multilabel"}
    doc = pydoc.render_doc(module, renderer=pydoc.plaintext)
    fn_name = MODULES[module][0].__name__
    assert fn_name in module.__doc__
    for p in params:
        assert p in module.__doc__, f"{module.__name__}'s docstring does not describe {p}"
    assert "forward" in doc


def test_mode_is_positional():
    assert tsl.DiceLoss("multiclass").mode == "multiclass"
    assert tsl.FocalLoss("multilabel").mode == "multilabel"
    with pytest.raises(TypeError):
        tsl.DiceLoss("multiclass", 1.0)  # only mode is positional


def test_unknown_argument_names_the_known_ones():
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['smoht'\].*'smooth'"):
        tsl.DiceLoss(smoht=1.0)
    with pytest.raises(TypeError, match="unexpected argument"):
        tsl.CrossEntropyLoss(wieght=[1.0, 2.0])


# ---- construction checks: the functional's own errors, at construction ---------------------------

BAD = [
    (losses.DiceLoss, "binary", {"mode": "multi"}),
    (losses.DiceLoss, "binary", {"reduction": "avg"}),
    (losses.DiceLoss, "binary", {"smooth": -1.0}),
    (losses.DiceLoss, "binary", {"eps": float("nan")}),
    (losses.DiceLoss, "multiclass", {"mode": "multiclass", "ignore_index": 2.5}),
    (losses.DiceLoss, "multiclass", {"mode": "multiclass", "classes": [1, 1]}),
    (losses.DiceLoss, "multiclass", {"mode": "multiclass", "classes": ["a"]}),
    (losses.DiceLoss, "multiclass", {"mode": "multiclass", "class_weight": "abc"}),
    (losses.DiceLoss, "binary", {"smooth_dr": -1.0}),
    (losses.DiceLoss, "binary", {"average": "weighted"}),
    (losses.TverskyLoss, "binary", {"smooth_dr": float("inf")}),
    (losses.GeneralizedDiceLoss, "binary", {"smooth_dr": -0.5}),
    (losses.MCCLoss, "binary", {"eps": -1.0}),
    (losses.MCCLoss, "binary", {"average": "none"}),
    (losses.MCCLoss, "binary", {"mode": "binray"}),
    (losses.BCEDiceLoss, "binary", {"lambda_dice": -1.0}),
    (losses.BCEDiceLoss, "binary", {"label_smoothing": 2.0}),
    (losses.BCEDiceLoss, "binary", {"pos_weight": torch.tensor(2.0)}),
    (losses.CEDiceLoss, "multiclass", {"lambda_ce": -0.5}),
    (losses.DiceFocalLoss, "multiclass", {"mode": "multiclass", "focal_use_softmax": False, "alpha": [0.2, 0.3, 0.5]}),
    (losses.FocalLoss, "binary", {"use_softmax": False}),
    (losses.FocalLoss, "multiclass", {"mode": "multiclass", "use_softmax": 0}),
    (losses.FocalLoss, "binary", {"from_logits": "no"}),
    (losses.FocalLoss, "binary", {"class_weight": -1.0}),
    (losses.FocalLoss, "multilabel", {"mode": "multilabel", "class_weight": [1.0, -1.0, 1.0]}),
    (losses.LovaszSoftmaxLoss, "multiclass", {"class_weight": [1.0, -2.0, 1.0]}),
    (losses.LovaszSoftmaxLoss, "multiclass", {"class_weight": 3}),
    (losses.JaccardLoss, "binary", {"smooth": "x"}),
    (losses.TverskyLoss, "binary", {"alpha": -0.1}),
    (losses.TverskyLoss, "binary", {"gamma": 0.0}),
    (losses.TverskyLoss, "binary", {"gamma": 2.0, "log_loss": True}),
    (losses.GeneralizedDiceLoss, "binary", {"weight_type": "cube"}),
    (losses.BCEDiceLoss, "multiclass", {"mode": "multiclass"}),
    (losses.BCEDiceLoss, "binary", {"lambda_bce": float("inf")}),
    (losses.BCEDiceLoss, "binary", {"reduction": "none"}),
    (losses.CEDiceLoss, "multiclass", {"lambda_ce": "a"}),
    (losses.CEDiceLoss, "multiclass", {"reduction": "none", "per_image": False}),
    (losses.DiceFocalLoss, "binary", {"gamma": -1.0}),
    (losses.DiceFocalLoss, "binary", {"lambda_focal": float("nan")}),
    (losses.FocalLoss, "binary", {"gamma": -0.5}),
    (losses.FocalLoss, "binary", {"mode": "softmax"}),
    (losses.FocalLoss, "binary", {"reduction": "mean "}),
    (losses.FocalLoss, "multiclass", {"mode": "multiclass", "ignore_index": 2.5}),
    (losses.FocalLoss, "multiclass", {"mode": "multiclass", "alpha": [0.2, -0.1, 0.3]}),
    (losses.FocalLoss, "multiclass", {"mode": "multiclass", "alpha": [0.2, float("inf"), 0.3]}),
    (losses.BCEWithLogitsLoss, "binary", {"label_smoothing": 1.5}),
    (losses.BCEWithLogitsLoss, "binary", {"balance": (0.25,)}),
    (losses.BCEWithLogitsLoss, "binary", {"ignore_index": float("nan")}),
    (losses.BCEWithLogitsLoss, "binary", {"reduction": None}),
    (losses.LovaszHingeLoss, "binary", {"margin": 1.0}),
    (losses.LovaszHingeLoss, "binary", {"reduction": "max"}),
    (losses.LovaszSoftmaxLoss, "multiclass", {"classes": "some"}),
    (losses.LovaszSoftmaxLoss, "multiclass", {"classes": []}),
    (losses.LovaszSoftmaxLoss, "multiclass", {"ignore_index": "255"}),
    (losses.CrossEntropyLoss, "multiclass", {"ignore_index": 2.5}),
    (losses.CrossEntropyLoss, "multiclass", {"label_smoothing": -0.1}),
    (losses.CrossEntropyLoss, "multiclass", {"balance": (0.3, 0.7)}),
    (losses.CrossEntropyLoss, "multiclass", {"weight": torch.tensor([1, 2, 3])}),
    (losses.BoundaryBCEDiceLoss, "boundary", {"kernel_size": 4}),
    (losses.BoundaryBCEDiceLoss, "boundary", {"kernel_size": 3.0}),
    (losses.NCutLoss, "ncut", {"sigma_value": 0.0}),
    (losses.NCutLoss, "ncut", {"radius": -1}),
]


@pytest.mark.parametrize("module, kind, kwargs", BAD, ids=[f"{m.__name__}-{k}" for m, _, k in BAD])
def test_bad_option_raises_at_construction(module, kind, kwargs):
    """The module raises at construction what the functional raises at its call: same type, same text."""
    fn = MODULES[module][0]
    x, t = _inputs(kind)
    with tsl.use_backend("torch"), pytest.raises((ValueError, TypeError)) as from_fn:
        fn(x, t, **kwargs)
    with pytest.raises(from_fn.type) as from_module:
        module(**kwargs)
    assert str(from_module.value) == str(from_fn.value)


# ---- buffers -------------------------------------------------------------------------------------


def test_tensor_options_are_buffers():
    cw = torch.tensor([1.0, 2.0, 0.5])
    m = tsl.CrossEntropyLoss(weight=cw, pixel_weight=torch.ones(2, 6, 6), label_smoothing=0.1)
    assert set(m.state_dict()) == {"weight", "pixel_weight"}
    assert m.weight is cw  # like nn.CrossEntropyLoss: the given tensor, not a copy
    d = tsl.DiceLoss("multiclass", class_weight=[0.2, 0.3, 0.5], classes=[0, 2])
    assert set(d.state_dict()) == {"class_weight"}  # weight=None: a buffer slot, not in state_dict
    assert d.class_weight.dtype == torch.float64  # the Python floats exactly
    assert d.class_weight.tolist() == [0.2, 0.3, 0.5]
    assert d.classes == (0, 2)
    f = tsl.FocalLoss("multiclass", alpha=0.5)
    assert f.alpha == 0.5 and not dict(f.named_buffers())  # a number stays a number
    f = tsl.FocalLoss("multiclass", alpha=(0.1, 0.2, 0.7))
    assert list(f.state_dict()) == ["alpha"]
    b = tsl.BCEWithLogitsLoss(pos_weight=[2.0, 3.0, 1.0])
    assert b.pos_weight.tolist() == [2.0, 3.0, 1.0] and "pos_weight" in b.state_dict()
    # a tensor given later to a None option is a buffer too
    c = tsl.CrossEntropyLoss()
    c.weight = torch.ones(3)
    assert "weight" in c.state_dict()


def test_state_dict_round_trip():
    a = tsl.DiceFocalLoss("multiclass", alpha=[0.2, 0.3, 0.5], class_weight=[1.0, 2.0, 3.0])
    b = tsl.DiceFocalLoss("multiclass", alpha=[0.0, 0.0, 0.0], class_weight=[0.0, 0.0, 0.0])
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.alpha, a.alpha) and torch.equal(b.class_weight, a.class_weight)
    with pytest.raises(RuntimeError, match="class_weight"):
        tsl.DiceFocalLoss("multiclass", alpha=[0.2, 0.3, 0.5]).load_state_dict(a.state_dict())


# one module per family with its tensor options, the same call as a functional with lists
CASES = [
    ("bce", losses.BCEWithLogitsLoss, "multilabel",
     dict(pos_weight=[2.0, 0.5, 1.0], weight=torch.rand(1, 1, 6, 6), label_smoothing=0.1),
     dict(pos_weight="tensor")),
    ("dice", losses.DiceLoss, "multiclass",
     dict(mode="multiclass", class_weight=[0.2, 0.3, 0.5], smooth=1.0, weight=torch.rand(2, 6, 6)), {}),
    ("jaccard", losses.JaccardLoss, "multilabel", dict(mode="multilabel", per_image=True, classes=[0, 2]), {}),
    ("tversky", losses.TverskyLoss, "binary", dict(alpha=0.7, beta=0.3, gamma=1.5, smooth=1.0), {}),
    ("gdice", losses.GeneralizedDiceLoss, "multiclass",
     dict(mode="multiclass", weight_type="simple", class_weight=[1.0, 2.0, 3.0]), {}),
    ("bce_dice", losses.BCEDiceLoss, "binary", dict(lambda_bce=0.5, smooth=1.0, per_image=True), {}),
    ("ce_dice", losses.CEDiceLoss, "multiclass", dict(ce_weight=[1.0, 2.0, 0.5], lambda_dice=2.0, ignore_index=2), {}),
    ("dice_focal", losses.DiceFocalLoss, "multiclass",
     dict(mode="multiclass", alpha=[0.2, 0.3, 0.5], gamma=1.5, class_weight=[1.0, 0.5, 2.0]), {}),
    ("focal", losses.FocalLoss, "multiclass", dict(mode="multiclass", alpha=[0.25, 0.5, 0.25], gamma=1.0), {}),
    ("focal_binary", losses.FocalLoss, "binary", dict(alpha=0.3, gamma=0.5, reduction="sum"), {}),
    ("hinge", losses.LovaszHingeLoss, "binary", dict(per_image=False, margin=(1.0, 2.0)), {}),
    ("lovasz_softmax", losses.LovaszSoftmaxLoss, "multiclass", dict(classes="all", per_image=True), {}),
    ("ce", losses.CrossEntropyLoss, "multiclass",
     dict(weight=[1.0, 2.0, 0.5], pixel_weight=torch.rand(2, 6, 6), label_smoothing=0.1), {}),
    ("boundary", losses.BoundaryBCEDiceLoss, "boundary", dict(kernel_size=3, log_dice=True), {}),
    ("ncut", losses.NCutLoss, "ncut", dict(sigma_value=4.0), {}),
    ("mcc", losses.MCCLoss, "multiclass", dict(mode="multiclass", class_weight=[1.0, 2.0, 1.0], zero_absent=True), {}),
    ("dice_options", losses.DiceLoss, "multilabel",
     dict(mode="multilabel", smooth=1.0, smooth_dr=0.5, average="micro", normalize_class_weight=False,
          class_weight=[1.0, 2.0, 1.0]), {}),
    ("bce_dice_options", losses.BCEDiceLoss, "multilabel",
     dict(mode="multilabel", pos_weight=[2.0, 1.0, 0.5], label_smoothing=0.1, zero_absent=True), {}),
    ("dice_focal_sigmoid", losses.DiceFocalLoss, "multiclass",
     dict(mode="multiclass", focal_use_softmax=False, alpha=0.3), {}),
    ("focal_options", losses.FocalLoss, "multiclass",
     dict(mode="multiclass", use_softmax=False, alpha=[0.2, 0.3, 0.5], class_weight=[1.0, 2.0, 0.5]), {}),
    ("focal_multilabel_alpha", losses.FocalLoss, "multilabel",
     dict(mode="multilabel", alpha=[0.2, 0.3, 0.5], class_weight=2.0), {}),
    ("lovasz_softmax_cw", losses.LovaszSoftmaxLoss, "multiclass", dict(class_weight=[1.0, 0.5, 2.0]), {}),
]


def _functional_kwargs(kwargs, dtype, special):
    """The functional's arguments: lists as given, pixel maps in ``dtype`` (as the module casts them)."""
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, torch.Tensor):
            v = v.to(dtype)
        elif special.get(k) == "tensor":  # the functional takes a tensor where the module also takes a list
            v = torch.tensor(v, dtype=dtype)
        out[k] = v
    return out


@pytest.mark.parametrize("name, module, kind, kwargs, special", CASES, ids=[c[0] for c in CASES])
def test_forward_equals_functional(backend, name, module, kind, kwargs, special):
    """Value and gradient of the module == the functional's, in fp32 and after ``.to(torch.float64)``."""
    x, t = _inputs(kind)
    m = module(**kwargs)
    fn = MODULES[module][0]
    got = value_and_grad(m, x, t)
    want = value_and_grad(fn, x, t, **_functional_kwargs(kwargs, torch.float32, special))
    assert_value(got[0], want[0], torch.float32)
    assert_grad(got[1], want[1], torch.float32)
    m64 = m.to(torch.float64)
    assert m64 is m
    for b in m.buffers():
        assert b.dtype == torch.float64
    x64 = x.double()
    t64 = t.double() if t.is_floating_point() else t
    got = value_and_grad(m, x64, t64)
    want = value_and_grad(fn, x64, t64, **_functional_kwargs(kwargs, torch.float64, special))
    assert got[0].dtype == torch.float64
    assert_value(got[0], want[0], torch.float64)
    assert_grad(got[1], want[1], torch.float64)


@pytest.mark.parametrize("name, module, kind, kwargs, special", CASES[:2] + CASES[-3:-2], ids=["bce", "dice", "ce"])
def test_pickle_and_deepcopy(name, module, kind, kwargs, special):
    x, t = _inputs(kind)
    m = module(**kwargs)
    with tsl.use_backend("torch"):
        want = m(x, t)
        for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
            assert type(clone) is module and repr(clone) == repr(m)
            assert clone.state_dict().keys() == m.state_dict().keys()
            for k, v in m.state_dict().items():
                assert torch.equal(clone.state_dict()[k], v)
            torch.testing.assert_close(clone(x, t), want, rtol=0, atol=0)


def test_extra_repr_shows_what_differs_from_the_defaults():
    assert repr(tsl.DiceLoss()) == "DiceLoss()"
    r = repr(tsl.DiceLoss("multiclass", smooth=1.0, class_weight=[1.0, 2.0, 3.0]))
    assert r == "DiceLoss(mode='multiclass', smooth=1.0, class_weight=Tensor(shape=(3,), dtype=torch.float64))"
    assert repr(tsl.BoundaryBCEDiceLoss(3)) == "BoundaryBCEDiceLoss(kernel_size=3)"


def test_compile_fullgraph_with_buffers(backend):
    """A module's buffers and attributes trace without a graph break."""
    x, t = _inputs("multiclass")
    m = tsl.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], label_smoothing=0.1)
    compiled_matches_eager(lambda a, b: m(a, b), x, t)


def test_launch_budget_with_buffers():
    """Buffers are read in place: a training step stays within the budget, with no host sync."""
    from bench import launches

    x, t = _inputs("multiclass")
    for m in (tsl.CrossEntropyLoss(weight=[1.0, 2.0, 0.5]), tsl.FocalLoss("multiclass", alpha=[0.2, 0.3, 0.5])):
        step = launches.count_step(m, x, t)
        ops = step.forward.ops + step.backward.ops
        assert step.syncs == 0, ops
        assert step.launches <= 4, ops


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_moves_buffers():
    m = tsl.CEDiceLoss(ce_weight=[1.0, 2.0, 0.5], class_weight=[1.0, 1.0, 2.0]).cuda()
    assert all(b.is_cuda for b in m.buffers())
    x, t = _inputs("multiclass")
    torch.testing.assert_close(m(x.cuda(), t.cuda()).cpu(),
                               tsl.ce_dice_loss(x, t, ce_weight=[1.0, 2.0, 0.5], class_weight=[1.0, 1.0, 2.0]),
                               rtol=1e-5, atol=1e-6)
