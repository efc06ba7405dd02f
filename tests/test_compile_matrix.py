"""Every public loss under ``torch.compile(fullgraph=True)``, static and ``dynamic=True``, both backends.

The loss list is ``bench/launches.py``'s (every public loss and mode, default and
non-default options). Each loss is compiled once per (backend, dynamic) and called
on three inputs of different batch and spatial sizes: values and gradients equal
eager, ``fullgraph=True`` makes a graph break an error, and with ``dynamic=True``
the new sizes must not recompile. ``python -m bench.compile_matrix`` prints the
same matrix as a table (graphs per case and the largest difference to eager).
"""

import os

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
from bench import launches  # noqa: E402
from bench.compile_matrix import run_matrix  # noqa: E402

import triton_segloss as tsl  # noqa: E402

CASES = {c.name: c for c in launches.cases()}


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("name", list(CASES))
def test_compiles_without_breaks(backend, name, dynamic):
    graphs, dv, dg = run_matrix(CASES[name], backend, dynamic)
    assert dv <= 1e-5 and dg <= 1e-5, (dv, dg)
    if dynamic:
        assert graphs == 1, f"{graphs} graphs for three sizes: dynamic=True recompiled"


def test_boundary_default_kernel_size_keeps_the_height_symbolic():
    """kernel_size=None derives the box size from the height inside the op: new heights do not
    recompile, and torch.export with a dynamic height runs at other heights (the table's 128 -> 11)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    f = torch.compile(lambda x, t: tsl.boundary_bce_dice_loss(x, t), fullgraph=True, dynamic=True,
                      backend="aot_eager")
    for h, w in [(32, 40), (48, 36), (128, 64)]:
        x = torch.randn(2, 1, h, w)
        t = (torch.rand(2, 1, h, w) > 0.5).float()
        torch.testing.assert_close(f(x, t), tsl.boundary_bce_dice_loss(x, t))
    assert counters["stats"]["unique_graphs"] == 1

    class Loss(torch.nn.Module):
        def forward(self, x, t):
            return tsl.boundary_bce_dice_loss(x, t)

    x = torch.randn(2, 1, 32, 40)
    t = (torch.rand_like(x) > 0.5).float()
    h = torch.export.Dim("H", min=8, max=4096)
    ep = torch.export.export(Loss(), (x, t), dynamic_shapes={"x": {2: h}, "t": {2: h}})
    x2 = torch.randn(2, 1, 128, 40)
    t2 = (torch.rand_like(x2) > 0.5).float()
    torch.testing.assert_close(ep.module()(x2, t2), tsl.boundary_bce_dice_loss(x2, t2))
