"""The eager route's tape (``_core/tape.py``): what a PyTorch-path forward keeps for its backward.

On the eager route the CE and focal forwards keep their class exponentials, so the backward does not
recompute them; the custom-op route (torch.compile, fake tensors, the bench counters) recomputes.
These tests check that both routes give bitwise the same loss and gradient over the options that
take different code paths, that the kept tensors are really used (the recompute is skipped), that a
retained graph's second backward recomputes and agrees, and that nothing is kept without a gradient.
"""

import pytest
import torch

import triton_segloss as tsl
from triton_segloss._core import op as core_op
from triton_segloss._core import tape
from triton_segloss.ce import torch_impl as ce_impl
from triton_segloss.focal import torch_impl as focal_impl


def test_keep_and_taken_outside_the_eager_route_do_nothing():
    tape.keep("x", a=torch.ones(1))  # not recording: dropped
    assert not tape.recording_now()
    assert tape.taken("x") is None
    with tape.recording() as rec:
        assert tape.recording_now()
        tape.keep("x", a=torch.ones(1))
    with tape.recording(False) as off:
        tape.keep("x", a=torch.ones(1))
    assert list(rec) == ["x"] and off == {}
    with tape.replaying(rec):
        assert tape.taken("y") is None
        assert set(tape.taken("x")) == {"a"}
        assert tape.taken("x") is None  # handed over once
    assert tape.taken("x") is None


def _labels(shape, ignore=None):
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    if ignore is not None:
        y[0, 0, :3] = ignore
    return y


def _spread(x):
    """Logits whose other classes sit ~60 nats above the label's at some pixels: d >= 2^64 there,
    so the CPU path takes the max shift instead of s = x_y."""
    x = x.clone()
    x[:, 0, :2, :2] = -60.0
    return x


CE = {
    "plain": dict(),
    "sum": dict(reduction="sum"),
    "none": dict(reduction="none"),
    "balance": dict(balance=True),
    "balance none": dict(balance=True, reduction="none"),
    "smoothing": dict(label_smoothing=0.1),
    "smoothing weights": dict(label_smoothing=0.2, weight=(0.5, 1.0, 2.0)),
    "weight tensor": dict(weight=torch.tensor([0.5, 1.0, 2.0])),
    "ignore": dict(ignore_index=1),
    "ignore 255": dict(ignore_index=255),
}


FOCAL = {
    "gamma 2": dict(),
    "gamma 0": dict(gamma=0.0),
    "gamma 0.5": dict(gamma=0.5),
    "gamma 1": dict(gamma=1.0),
    "gamma 3 alpha": dict(gamma=3.0, alpha=0.25),
    "none": dict(reduction="none"),
    "sum": dict(reduction="sum"),
    "ignore": dict(ignore_index=2),
}


def _run(fn, x, t, kw, fast, monkeypatch, backward_twice=False):
    monkeypatch.setattr(core_op, "EAGER_FAST_PATH", fast)
    a = x.clone().requires_grad_()
    loss = fn(a, t, **kw)
    g = torch.ones_like(loss) * 0.7
    loss.backward(g, retain_graph=backward_twice)
    grad = a.grad.clone()
    if backward_twice:
        a.grad = None
        loss.backward(g)
        assert torch.equal(a.grad, grad)  # the second backward recomputes what the first took from the tape
    return loss.detach(), grad


def _routes_agree(fn, kw, dtype, spread, make, monkeypatch):
    shape = (2, 3, 6, 7)
    x = torch.randn(shape, dtype=dtype) * 3
    x = _spread(x) if spread else x
    t = make(shape, kw.get("ignore_index"))
    with tsl.use_backend("torch"):
        le, ge = _run(fn, x, t, kw, True, monkeypatch)
        lo, go = _run(fn, x, t, kw, False, monkeypatch)
        lt, gt = _run(fn, x, t, kw, True, monkeypatch, backward_twice=True)
    assert torch.isfinite(ge).all()
    assert torch.equal(le, lo) and torch.equal(ge, go)
    assert torch.equal(lt, le) and torch.equal(gt, ge)


@pytest.mark.parametrize("spread", [False, True], ids=["s=x_y", "s=max"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(CE))
def test_ce_routes_agree_bitwise(case, dtype, spread, monkeypatch):
    _routes_agree(tsl.cross_entropy, CE[case], dtype, spread, _labels, monkeypatch)


@pytest.mark.parametrize("spread", [False, True], ids=["s=x_y", "s=max"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(FOCAL))
def test_focal_multiclass_routes_agree_bitwise(case, dtype, spread, monkeypatch):
    fn = lambda a, t, **kw: tsl.focal_loss(a, t, mode="multiclass", **kw)  # noqa: E731
    _routes_agree(fn, FOCAL[case], dtype, spread, _labels, monkeypatch)


def _count(monkeypatch, module, name):
    """Wrap ``module.name`` to count its calls and whether the tape was recording at each."""
    calls = []
    real = getattr(module, name)

    def spy(*a, **k):
        calls.append(tape.recording_now())
        return real(*a, **k)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_ce_backward_takes_the_forward_exponentials(monkeypatch):
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    y = _labels(x.shape)
    calls = _count(monkeypatch, ce_impl, "_shifted_exp")
    with tsl.use_backend("torch"):
        tsl.cross_entropy(x, y).backward()
        assert calls == [True]  # the forward, recording; the backward took its e
        monkeypatch.setattr(core_op, "EAGER_FAST_PATH", False)
        calls.clear()
        tsl.cross_entropy(x, y).backward()
        assert calls == [False, False]  # the op route: the backward recomputes


def test_focal_backward_takes_the_forward_terms(monkeypatch):
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    y = _labels(x.shape)
    calls = _count(monkeypatch, focal_impl, "_softmax_terms")
    with tsl.use_backend("torch"):
        tsl.focal_loss(x, y, mode="multiclass").backward()
    assert calls == [True]


def test_nothing_is_kept_without_a_gradient(monkeypatch):
    x = torch.randn(2, 4, 5, 5)
    y = _labels(x.shape)
    calls = _count(monkeypatch, ce_impl, "_shifted_exp")
    with tsl.use_backend("torch"):
        tsl.cross_entropy(x, y)  # the logits need no gradient
        with torch.no_grad():
            tsl.cross_entropy(x.requires_grad_(), y)
    assert calls == [False, False]


def test_triton_backend_keeps_nothing(monkeypatch):
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    y = _labels(x.shape)
    kept = []
    real = tape.start

    def spy(enabled):
        rec, prev = real(enabled)
        kept.append(rec)
        return rec, prev

    monkeypatch.setattr(tape, "start", spy)
    with tsl.use_backend("triton"):
        tsl.cross_entropy(x, y).backward()
    assert kept == [{}]


def test_unread_stats_are_a_broadcast_zero_on_the_eager_route_only():
    """The PyTorch path's ``stats`` output (read only by the Triton backward) costs no (N, 3, S)
    allocation on the eager route; through the custom op, whose fake promised contiguous zeros, it
    is real zeros. Loss and gradient are the same either way."""
    from triton_segloss.focal.ops import SoftmaxFocalOptions, focal_softmax

    x = torch.randn(2, 21, 6, 5).reshape(2, 21, 30)
    y = torch.randint(0, 21, (2, 1, 30))
    o = SoftmaxFocalOptions()
    with tsl.use_backend("torch"):
        xe = x.clone().requires_grad_()
        loss_e, _, stats_e = focal_softmax(xe, y, None, None, o)  # the eager route
        (ge,) = torch.autograd.grad(loss_e, xe)
        xo = x.clone().requires_grad_()
        loss_o, _, stats_o = focal_softmax.forward_op(xo, y, None, None, *o)  # the custom op
        (go,) = torch.autograd.grad(loss_o, xo)
    assert stats_e.shape == stats_o.shape == (2, 3, 30)
    assert stats_e.stride() == (0, 0, 0) and stats_o.is_contiguous()
    assert not stats_e.any() and not stats_o.any()
    torch.testing.assert_close(loss_e, loss_o, rtol=0, atol=0)
    torch.testing.assert_close(ge, go, rtol=0, atol=0)
    assert not getattr(tape._state, "eager", False)  # reset when the forward returns


def test_unread_stats_of_one_class_tile_stay_a_plain_empty_tensor():
    """Within one class tile the stats are (0,): on the eager route that stays one empty tensor, not a
    broadcast view (nothing to save, and one op fewer)."""
    rec, prev = tape.start(False)
    try:
        z = tape.unread_zeros(torch.ones(2), (0,), torch.float32)
        big = tape.unread_zeros(torch.ones(2), (2, 3, 4), torch.float32)
    finally:
        tape.stop(prev)
    assert z.shape == (0,) and z.stride() == (1,)
    assert big.shape == (2, 3, 4) and big.stride() == (0, 0, 0)
