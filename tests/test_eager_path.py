"""Eager calls on plain tensors skip the custom-op dispatcher (``_core.op.EAGER_FAST_PATH``).

Both routes run the same forward and backward implementations; these tests check that they give
bitwise the same loss and gradient on both backends, that the eager route is the one taken
outside tracing, and that it keeps the op's rules: gradients flow to the logits only, asking for
another argument's gradient raises, a second derivative raises instead of being silently wrong,
and tracing (fake tensors, torch.compile) still goes through the op.
"""

import pytest
import torch

import triton_segloss as tsl
from triton_segloss._core import op as core_op


def _mask(shape):
    return (torch.rand(shape) > 0.5).float()


def _labels(shape):
    return torch.randint(0, shape[1], (shape[0], *shape[2:]))


CASES = {
    "bce": (lambda x, t: tsl.bce_with_logits(x, t), (2, 1, 8, 8), _mask),
    "dice binary": (lambda x, t: tsl.dice_loss(x, t), (2, 1, 8, 8), _mask),
    "dice multiclass": (lambda x, t: tsl.dice_loss(x, t, mode="multiclass"), (2, 3, 8, 8), _labels),
    "ce": (lambda x, t: tsl.cross_entropy(x, t), (2, 3, 8, 8), _labels),
    "focal multiclass": (lambda x, t: tsl.focal_loss(x, t, mode="multiclass"), (2, 3, 8, 8), _labels),
    "lovasz hinge": (lambda x, t: tsl.lovasz_hinge(x, t), (2, 1, 8, 8), _mask),
    "ce_dice none": (lambda x, t: tsl.ce_dice_loss(x, t, reduction="none", per_image=True), (2, 3, 8, 8), _labels),
    "boundary bce dice": (lambda x, t: tsl.boundary_bce_dice_loss(x, t, 3), (2, 1, 8, 8), _mask),
}


def _step(fn, x, t):
    a = x.clone().requires_grad_()
    loss = fn(a, t)
    loss.backward(torch.ones_like(loss))
    return loss.detach(), a.grad


@pytest.mark.parametrize("name", list(CASES))
def test_eager_route_equals_the_op_route(name, backend, monkeypatch):
    fn, shape, make = CASES[name]
    x = torch.randn(shape, dtype=torch.float64)
    t = make(shape)
    monkeypatch.setattr(core_op, "EAGER_FAST_PATH", True)
    loss_e, grad_e = _step(fn, x, t)
    monkeypatch.setattr(core_op, "EAGER_FAST_PATH", False)
    loss_o, grad_o = _step(fn, x, t)
    assert torch.equal(loss_e, loss_o)
    assert torch.equal(grad_e, grad_o)


def test_the_eager_route_is_taken_outside_tracing():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss = tsl.bce_with_logits(x, _mask(x.shape))
    assert "_EagerOp" in type(loss.grad_fn).__name__
    core_op.EAGER_FAST_PATH, saved = False, core_op.EAGER_FAST_PATH
    try:
        loss = tsl.bce_with_logits(x, _mask(x.shape))
    finally:
        core_op.EAGER_FAST_PATH = saved
    assert "_EagerOp" not in type(loss.grad_fn).__name__


def test_only_the_logits_get_a_gradient():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    w = torch.rand(2, 1, 8, 8, requires_grad=True)
    loss = tsl.bce_with_logits(x, _mask(x.shape), weight=w)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        loss.backward()


def test_second_derivative_raises():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss = tsl.dice_loss(x, _mask(x.shape))
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_no_grad_and_detached_inputs():
    x = torch.randn(2, 3, 8, 8)
    y = _labels(x.shape)
    with torch.no_grad():
        a = tsl.cross_entropy(x, y)
    b = tsl.cross_entropy(x, y)
    assert not a.requires_grad and not b.requires_grad
    assert torch.equal(a, b)


def test_fake_tensors_and_compile_take_the_op():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.randn(2, 1, 8, 8)
        t = torch.ones(2, 1, 8, 8)
        assert not core_op._plain_eager((x, t))
    x, t = torch.randn(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    assert core_op._plain_eager((x, t, None))
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with _Mode():
        assert not core_op._plain_eager((x, t))  # the bench counters see the op and enter it
    fn = torch.compile(lambda a, b: tsl.bce_with_logits(a, b), fullgraph=True, backend="eager")
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    t = _mask(x.shape)
    loss = fn(x, t)
    loss.backward()
    ref = x.detach().clone().requires_grad_()
    tsl.bce_with_logits(ref, t).backward()
    assert torch.allclose(loss, tsl.bce_with_logits(x.detach(), t))
    assert torch.allclose(x.grad, ref.grad)
