"""``python -m bench.compile_matrix``: every public loss under ``torch.compile(fullgraph=True)``,
static and ``dynamic=True``, on both backends: graph breaks, graphs compiled for three input
sizes, and the largest difference to eager (value and gradient, relative to the eager scale).

The loss list is ``bench/launches.py``'s. ``tests/test_compile_matrix.py`` asserts the same
matrix: no graph break (``fullgraph=True`` makes one an error) and, with ``dynamic=True``, one
graph for the three sizes.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

from bench import launches  # noqa: E402

import triton_segloss as tsl  # noqa: E402


def shapes(shape):
    """Three sizes: batch and every spatial dim change (never square, so no duck-sizing guard)."""
    n, c, *sp = shape
    return [(n, c, *[s + 2 * i for i, s in enumerate(sp)]),
            (n + 1, c, *[s + 3 + 2 * i for i, s in enumerate(sp)]),
            (n + 2, c, *[s + 5 + i for i, s in enumerate(sp)])]


def _rel(a, b) -> float:
    """Largest difference relative to the eager values' scale."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / (1.0 + b.abs().max()))


def run_matrix(case, backend: str, dynamic: bool):
    """(graphs compiled, max value diff, max grad diff): three sizes with ``dynamic``, else one."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    gen = torch.Generator().manual_seed(0)
    compiled = torch.compile(case.fn, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    dv = dg = 0.0
    sizes = shapes(case.shape) if dynamic else shapes(case.shape)[:1]  # static graphs specialise: one size
    with tsl.use_backend(backend):
        for shape in sizes:
            c = launches.Case(case.name, case.fn, shape, case.target)
            x, t = launches.make_inputs(c, gen)
            outs = []
            for fn in (compiled, case.fn):
                xx = x.detach().clone().requires_grad_(case.backward)
                out = fn(xx, t)
                g = None
                if case.backward:
                    (g,) = torch.autograd.grad(out.sum(), xx)
                outs.append((out.detach(), g))
            (a, ga), (b, gb) = outs
            dv = max(dv, _rel(a, b))
            if case.backward:
                dg = max(dg, _rel(ga, gb))
    return counters["stats"]["unique_graphs"], dv, dg




def main() -> int:
    print("| loss | backend | static (one size): graphs, max diff | dynamic=True: graphs for 3 sizes, max diff |")
    print("|---|---|---|---|")
    for case in launches.cases():
        for backend in ("triton", "torch"):
            cells = []
            for dynamic in (False, True):
                try:
                    graphs, dv, dg = run_matrix(case, backend, dynamic)
                    cells.append(f"{graphs}, {max(dv, dg):.1e}")
                except Exception as e:  # a graph break under fullgraph=True, or a failure
                    cells.append(f"FAILED: {type(e).__name__}")
            print(f"| {case.name} | {backend} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
