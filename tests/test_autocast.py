"""Losses ignore autocast: the same value (in fp32) and gradient inside a bf16 autocast region
as outside it, on both backends, eager and compiled (the loss list of bench/launches.py)."""

import os

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
from bench import launches  # noqa: E402

CASES = {c.name: c for c in launches.cases()}


def _step(fn, x, t, backward):
    xx = x.detach().clone().requires_grad_(backward)
    out = fn(xx, t)
    g = torch.autograd.grad(out.float().sum(), xx)[0] if backward else None
    return out, g


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", list(CASES))
def test_autocast_does_not_change_the_loss(backend, name, compiled):
    case = CASES[name]
    x, t = launches.make_inputs(case, torch.Generator().manual_seed(0))
    fn = case.fn
    if compiled:
        torch._dynamo.reset()
        fn = torch.compile(case.fn, fullgraph=True, backend="aot_eager")
    want, gwant = _step(fn, x, t, case.backward)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, g = _step(fn, x, t, case.backward)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    if case.backward:
        torch.testing.assert_close(g, gwant, rtol=1e-6, atol=1e-7)
