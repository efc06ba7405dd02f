"""Checks every loss family's tests share: value + gradient against a reference,
fullgraph compile, determinism. Kept small and explicit."""

import os

import torch

from tolerances import assert_grad, assert_value


def value_and_grad(fn, logits, *args, upstream=None, **kwargs):
    """Loss and d(sum(upstream * loss))/d(logits) of ``fn(logits, *args, **kwargs)``."""
    x = logits.detach().requires_grad_(True)  # detach, not clone: keeps the caller's strides
    loss = fn(x, *args, **kwargs)
    g = torch.ones_like(loss) if upstream is None else upstream(loss)
    if not loss.requires_grad:  # a constant (e.g. a reference's value when every pixel is ignored)
        return loss.detach(), torch.zeros_like(x)
    (grad,) = torch.autograd.grad(loss, x, grad_outputs=g, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return loss.detach(), grad


def upstream_not_one(loss):
    """An upstream gradient that is not 1: 0.37 for scalars, a ramp for maps."""
    if loss.dim() == 0:
        return torch.full_like(loss, 0.37)
    return torch.linspace(-1.0, 2.0, loss.numel(), dtype=loss.dtype).view(loss.shape)


def compare_to_reference(fn, ref, logits, *args, upstream=None, **kwargs):
    """``fn`` on ``logits`` vs ``ref`` on the same values in float64: loss dtype, value and gradient."""
    loss, grad = value_and_grad(fn, logits, *args, upstream=upstream, **kwargs)
    ref_loss, ref_grad = value_and_grad(ref, logits.detach().double(), *args, upstream=upstream, **kwargs)
    want = torch.float64 if logits.dtype == torch.float64 else torch.float32
    assert loss.dtype == want, f"loss dtype {loss.dtype}, want {want}"
    assert grad.dtype == logits.dtype and grad.shape == logits.shape
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert_value(loss, ref_loss, logits.dtype)
    assert_grad(grad, ref_grad, logits.dtype)
    return loss, grad


def compiled_matches_eager(fn, logits, *args, **kwargs):
    """``torch.compile(fullgraph=True)`` of ``fn`` gives the eager value and gradient (no graph break).

    ``fullgraph=True`` makes any graph break an error; the ``aot_eager`` backend then
    traces forward and backward through AOT autograd with fake tensors, which is what
    exercises the ops' fake and autograd registrations. Inductor's code generation for
    the surrounding torch ops costs ~10 s per graph on 2 cores, so it runs once per
    family in the tests that call ``torch.compile`` directly, and everywhere with
    ``TSL_COMPILE_BACKEND=inductor``.
    """
    torch._dynamo.reset()
    backend = os.environ.get("TSL_COMPILE_BACKEND", "aot_eager")
    compiled = torch.compile(lambda x, *a: fn(x, *a, **kwargs), fullgraph=True, backend=backend)
    loss, grad = value_and_grad(compiled, logits, *args)
    eager_loss, eager_grad = value_and_grad(fn, logits, *args, **kwargs)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-7)


def bitwise_deterministic(fn, logits, *args, runs=3, **kwargs):
    first = value_and_grad(fn, logits, *args, **kwargs)
    for _ in range(runs - 1):
        again = value_and_grad(fn, logits, *args, **kwargs)
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def sparse_mapping(path, numel: int) -> torch.Tensor:
    """A float32 tensor of ``numel`` elements memory-mapped from a sparse file at ``path``.

    Offsets past 2^31 elements without the RAM or disk: the file is truncated to its size, so
    only the pages a test writes exist. The caller deletes the file.
    """
    with open(path, "wb") as f:
        f.truncate(numel * 4)
    return torch.from_file(str(path), shared=True, size=numel, dtype=torch.float32)



def random_binary_mask(shape, p=0.4, ignore=None, p_ignore=0.25):
    """A float 0/1 mask (each pixel 1 with probability ``p``), with about ``p_ignore`` of the pixels
    set to ``ignore`` when it is given (the Lovász tests' inputs)."""
    t = (torch.rand(shape) < p).float()
    if ignore is not None:
        t[torch.rand(shape) < p_ignore] = ignore
    return t


def random_labels(shape, c, ignore=None, p_ignore=0.25):
    """Integer labels in [0, c) for logits of ``shape`` (N, C, *spatial), with about ``p_ignore`` of them
    set to ``ignore`` when it is given."""
    y = torch.randint(0, c, (shape[0],) + tuple(shape[2:]))
    if ignore is not None:
        y[torch.rand(y.shape) < p_ignore] = ignore
    return y
