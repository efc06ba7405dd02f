"""The clDice family's PyTorch path on the eager route (``cldice/torch_impl.py``, ``_core/tape.py``):
the forward builds the prediction's skeleton tape and keeps it for the backward instead of the
backward rebuilding it from the logits. Both routes run the same taped skeleton and reverse pass,
so the loss and the gradient must be bitwise equal (the custom-op route, taken with
``EAGER_FAST_PATH`` off, keeps nothing and rebuilds); the kept tape is handed over once (a second
backward of a retained graph rebuilds it), and nothing is kept without a gradient."""

import pytest
import torch

import triton_segloss as tsl
from triton_segloss._core import op as core_op
from triton_segloss.cldice import torch_impl


def _target(shape, mode):
    if mode == "multiclass":
        return torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]))
    return (torch.rand(shape) < 0.4).float()


# (loss, shape, mode, options): every ClDiceOptions field away from its default somewhere
CASES = {
    "2d binary": (tsl.cldice_loss, (2, 1, 12, 11), "binary", {}),
    "2d multiclass no background": (tsl.cldice_loss, (2, 3, 9, 10), "multiclass", {"include_background": False}),
    "2d multilabel none K4": (tsl.cldice_loss, (2, 2, 10, 9), "multilabel",
                              {"iterations": 4, "reduction": "none", "smooth": 0.5, "eps": 1e-3}),
    "2d probabilities K0": (tsl.cldice_loss, (1, 2, 7, 8), "multilabel", {"from_logits": False, "iterations": 0}),
    "3d multilabel sum K2": (tsl.cldice_loss, (1, 2, 6, 7, 5), "multilabel", {"iterations": 2, "reduction": "sum"}),
    "3d multiclass": (tsl.cldice_loss, (1, 3, 5, 6, 7), "multiclass", {}),
    "2d dice binary": (tsl.dice_cldice_loss, (2, 1, 11, 12), "binary", {"alpha": 0.3}),
    "2d dice multiclass sum": (tsl.dice_cldice_loss, (2, 3, 8, 9), "multiclass",
                               {"include_background": False, "reduction": "sum"}),
    "3d dice multilabel probabilities": (tsl.dice_cldice_loss, (1, 2, 5, 6, 6), "multilabel",
                                         {"from_logits": False, "iterations": 1}),
    "3d dice multiclass": (tsl.dice_cldice_loss, (2, 3, 5, 5, 6), "multiclass", {"alpha": 0.7}),
}


def _inputs(shape, mode, opts, dtype, ties=False):
    if ties:  # values in {0, 1/2, 1} (probabilities) or {-1, 0, 1} (logits): every tie rule is used
        x = torch.randint(0, 3, shape).to(dtype)
        x = x / 2 if opts.get("from_logits") is False else x - 1
    elif opts.get("from_logits") is False:
        x = torch.rand(shape, dtype=dtype)
    else:
        x = torch.randn(shape, dtype=dtype) * 2
    t = _target(shape, mode)
    return x, (t.to(dtype) if mode != "multiclass" else t)


def _step(fn, x, t, mode, opts, backwards=1):
    a = x.clone().requires_grad_()
    loss = fn(a, t, mode=mode, **opts)
    up = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
    grads = []
    for i in range(backwards):
        (g,) = torch.autograd.grad(loss, a, up, retain_graph=i + 1 < backwards)
        grads.append(g)
    return loss.detach(), grads


@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("case", list(CASES))
def test_eager_route_equals_the_op_route(case, dtype, ties, monkeypatch):
    fn, shape, mode, opts = CASES[case]
    x, t = _inputs(shape, mode, opts, dtype, ties)
    with tsl.use_backend("torch"):
        monkeypatch.setattr(core_op, "EAGER_FAST_PATH", True)
        loss_e, (grad_e,) = _step(fn, x, t, mode, opts)
        monkeypatch.setattr(core_op, "EAGER_FAST_PATH", False)
        loss_o, (grad_o,) = _step(fn, x, t, mode, opts)
    assert torch.equal(loss_e, loss_o)
    assert torch.equal(grad_e, grad_o)
    assert grad_e.dtype == dtype and grad_e.abs().sum() > 0


def _count(monkeypatch, name):
    """Record each call of ``torch_impl.<name>`` (and still run it)."""
    calls = []
    real = getattr(torch_impl, name)

    def spy(*args, **kw):
        calls.append(name)
        return real(*args, **kw)

    monkeypatch.setattr(torch_impl, name, spy)
    return calls


def test_backward_takes_the_forward_tape(monkeypatch):
    """The eager route's backward builds no skeleton; the op route's builds both (the prediction's
    taped, the target's) and its forward the prediction's values only."""
    x, t = _inputs((2, 1, 10, 10), "binary", {}, torch.float32)
    taped, plain = _count(monkeypatch, "_skel_taped"), _count(monkeypatch, "_soft_skel")
    target = _count(monkeypatch, "_target_skel")
    with tsl.use_backend("torch"):
        loss = tsl.cldice_loss(x.clone().requires_grad_(), t)
        assert (len(taped), len(plain), len(target)) == (1, 0, 1)
        loss.backward()
        assert (len(taped), len(plain), len(target)) == (1, 0, 1)
        monkeypatch.setattr(core_op, "EAGER_FAST_PATH", False)
        loss = tsl.cldice_loss(x.clone().requires_grad_(), t)
        assert (len(taped), len(plain), len(target)) == (1, 1, 2)
        loss.backward()
        assert (len(taped), len(plain), len(target)) == (2, 1, 3)


@pytest.mark.parametrize("case", ["2d multiclass no background", "3d dice multiclass"])
def test_second_backward_of_a_retained_graph(case, monkeypatch):
    """The tape is handed over once: the second backward rebuilds it, to the same gradient."""
    fn, shape, mode, opts = CASES[case]
    x, t = _inputs(shape, mode, opts, torch.float64)
    taped = _count(monkeypatch, "_skel_taped")
    with tsl.use_backend("torch"):
        _, (g1, g2) = _step(fn, x, t, mode, opts, backwards=2)
    assert torch.equal(g1, g2)
    assert len(taped) == 2  # the forward's, then the second backward's


def test_nothing_is_kept_without_a_gradient(monkeypatch):
    x, t = _inputs((2, 3, 8, 8), "multiclass", {}, torch.float32)
    taped = _count(monkeypatch, "_skel_taped")
    kept = []
    real_keep = torch_impl.tape.keep
    monkeypatch.setattr(torch_impl.tape, "keep", lambda tag, **kw: (kept.append(tag), real_keep(tag, **kw)))
    with tsl.use_backend("torch"):
        a = tsl.dice_cldice_loss(x, t, mode="multiclass")  # the logits need no gradient
        with torch.no_grad():
            b = tsl.dice_cldice_loss(x.clone().requires_grad_(), t, mode="multiclass")
    assert taped == [] and kept == []
    assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(2, 2, 13, 11), (1, 2, 7, 6, 9)], ids=["2d", "3d"])
@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_bool_target_skeleton_is_the_float_one(shape, iterations):
    """A 0/1 target is skeletonised in bool: bitwise the float skeleton of the same values."""
    t = (torch.rand(shape) < 0.6).double()
    want = torch_impl._soft_skel(t, iterations)
    got = torch_impl._target_skel(t, None, iterations)
    assert torch.equal(got, want) and got.dtype == want.dtype and want.sum() > 0


def test_soft_target_routes_agree_bitwise(monkeypatch):
    """A target with values strictly between 0 and 1 takes the float target skeleton."""
    x = torch.randn(2, 2, 9, 10, dtype=torch.float64)
    t = torch.rand(2, 2, 9, 10, dtype=torch.float64)
    out = {}
    with tsl.use_backend("torch"):
        for fast in (True, False):
            monkeypatch.setattr(core_op, "EAGER_FAST_PATH", fast)
            out[fast] = _step(tsl.dice_cldice_loss, x, t, "multilabel", {})
    assert torch.equal(out[True][0], out[False][0]) and torch.equal(out[True][1][0], out[False][1][0])
