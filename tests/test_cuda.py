"""GPU checks: they run where CUDA is present and skip cleanly where it is not.

For every public loss of ``bench/launches.py`` (every mode, default and
non-default options), on CUDA tensors (the compiled Triton kernels):

* value and gradient agree with the PyTorch path on the same CUDA tensors;
* ``torch.cuda.set_sync_debug_mode("error")`` raises nowhere in a training step;
* a training step captures into a CUDA graph and replays to the eager result;
* the profiler's device-kernel count per step is within the launch budget
  (4, plus the sort's kernels for Lovász).
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("no CUDA device here", allow_module_level=True)
if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    pytest.skip("TRITON_INTERPRET is set: CUDA tests need the compiled kernels", allow_module_level=True)

from bench import launches  # noqa: E402

import triton_segloss as tsl  # noqa: E402

CASES = {c.name: c for c in launches.cases()}


def _inputs(case):
    x, t = launches.make_inputs(case, torch.Generator().manual_seed(0))
    return x.cuda(), t.cuda()


def _step(fn, x, t, backward):
    xx = x.detach().clone().requires_grad_(backward)
    out = fn(xx, t)
    g = torch.autograd.grad(out.sum(), xx)[0] if backward else None
    return out, g


@pytest.mark.parametrize("name", list(CASES))
def test_cuda_matches_torch_path(name):
    case = CASES[name]
    x, t = _inputs(case)
    with tsl.use_backend("triton"):
        a, ga = _step(case.fn, x, t, case.backward)
    with tsl.use_backend("torch"):
        b, gb = _step(case.fn, x, t, case.backward)
    torch.testing.assert_close(a.double(), b.double(), rtol=2e-5, atol=2e-6)
    if case.backward:
        torch.testing.assert_close(ga.double(), gb.double(), rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_no_host_sync_in_a_training_step(name):
    case = CASES[name]
    x, t = _inputs(case)
    with tsl.use_backend("triton"):
        _step(case.fn, x, t, case.backward)  # warm-up: Triton compiles, caches fill
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            _step(case.fn, x, t, case.backward)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("name", list(CASES))
def test_training_step_captures_in_a_cuda_graph(name):
    case = CASES[name]
    x, t = _inputs(case)
    xx = x.detach().clone().requires_grad_(case.backward)
    with tsl.use_backend("triton"):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):  # warm-up on a side stream, as torch.cuda.graphs documents
                out = case.fn(xx, t)
                if case.backward:
                    torch.autograd.grad(out.sum(), xx)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = case.fn(xx, t)
            g = torch.autograd.grad(out.sum(), xx)[0] if case.backward else None
        graph.replay()
        torch.cuda.synchronize()
        want, gwant = _step(case.fn, x, t, case.backward)
    torch.testing.assert_close(out, want)
    if case.backward:
        torch.testing.assert_close(g, gwant)


@pytest.mark.parametrize("name", list(CASES))
def test_profiler_kernel_count_within_budget(name):
    from torch.profiler import ProfilerActivity, profile

    case = CASES[name]
    x, t = _inputs(case)
    xx = x.detach().clone().requires_grad_(case.backward)
    with tsl.use_backend("triton"):
        out = case.fn(xx, t)
        seed = torch.ones_like(out)
        if case.backward:
            torch.autograd.grad(out, xx, seed)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            out = case.fn(xx, t)
            if case.backward:
                torch.autograd.grad(out, xx, seed)
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    names = [e.name for e in kernels]
    sort_kernels = sum(("sort" in n.lower() or "radix" in n.lower() or "cub" in n.lower()) for n in names)
    assert len(names) - sort_kernels <= 4, names


@pytest.mark.parametrize("name", ["bce_with_logits", "dice_loss multiclass", "cross_entropy", "focal_loss binary",
                                  "lovasz_hinge", "boundary_bce_dice_loss"])
def test_compile_reduce_overhead(name):
    # mode="reduce-overhead" records CUDA graphs: it needs a step with no host sync and no
    # pageable copies, and must give the eager values
    case = CASES[name]
    x, t = _inputs(case)
    torch._dynamo.reset()
    f = torch.compile(case.fn, mode="reduce-overhead", fullgraph=True)
    with tsl.use_backend("triton"):
        for _ in range(3):
            got, g = _step(f, x, t, case.backward)
        want, gwant = _step(case.fn, x, t, case.backward)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if case.backward:
        torch.testing.assert_close(g, gwant, rtol=1e-5, atol=1e-6)
