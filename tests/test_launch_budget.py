"""The GPU launch budget, counted on the CPU (see bench/launches.py).

A training step (forward + backward) of every public loss, in every mode, with
default and non-default options, is at most 4 device launches (Lovász: plus its
sort; the distance losses: plus one distance-transform pass per spatial axis) and makes no host sync, on the CUDA code path (Triton launches counted in
the interpreter, every other device op through a dispatch mode, value checks
off as on CUDA). This is a count, not a timing: it is exact and repeatable.
"""

import os

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
from bench import launches  # noqa: E402

CASES = {c.name: c for c in launches.cases()}


def _torch_sorts(ops):
    """The sorts on top of the budget: torch's own sort ops (a kernel with "sort" in its name, such as
    the Lovász register-sort kernel that sorts and walks in one program, is a launch like any other)."""
    return sum(op.startswith(("aten.sort", "aten.argsort")) for op in ops)


@pytest.mark.parametrize("name", list(CASES))
def test_training_step_within_budget(name):
    case = CASES[name]
    x, t = launches.make_inputs(case, torch.Generator().manual_seed(0))
    step = launches.count_step(case.fn, x, t, backward=case.backward)
    ops = step.forward.ops + step.backward.ops
    assert step.syncs == 0, f"{step.syncs} host syncs: {ops}"
    sorts = _torch_sorts(ops)
    assert sorts <= case.sort, f"{sorts} sorts: {ops}"
    dts = sum("_edt_pass_kernel" in op or "_fields_first_pass_kernel" in op for op in ops)
    assert dts <= case.dt, f"{dts} distance-transform passes: {ops}"
    rest = step.launches - sorts - dts
    assert rest <= 4, f"{rest} launches besides the sort and the distance transform: {ops}"


def test_counter_sees_launches_and_syncs():
    """The counter is not blind: a plain eager BCE with an .item() shows its ops and the sync."""
    x = torch.randn(2, 1, 4, 4)
    t = (torch.rand_like(x) > 0.5).float()

    def eager(a, b):
        n = (b > 0.5).sum().item()  # a host sync
        return torch.nn.functional.binary_cross_entropy_with_logits(a, b) * (n + 1)

    step = launches._count_eager(eager, x, t, True)
    assert step.syncs == 1
    assert step.forward.launches >= 3 and step.backward.launches >= 1


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.sort])
def test_lovasz_register_path_within_budget(name, monkeypatch):
    """The Lovász cases on the register-sort path (segments of at most REG_SORT_MAX pixels; the other
    tests here take the torch.sort path, see tests/conftest.py): no torch sort, and at most 4
    launches with the sorting kernel counted among them, no host sync."""
    from triton_segloss.lovasz import kernels

    monkeypatch.setattr(kernels, "REG_SORT_MAX", kernels.SHIPPED_REG_SORT_MAX)  # (conftest sets 0 here)
    case = CASES[name]
    x, t = launches.make_inputs(case, torch.Generator().manual_seed(0))
    step = launches.count_step(case.fn, x, t, backward=case.backward)
    ops = step.forward.ops + step.backward.ops
    assert any("_lovasz_reg_sort_kernel" in op for op in ops), ops
    assert _torch_sorts(ops) == 0, ops
    assert step.syncs == 0, f"{step.syncs} host syncs: {ops}"
    assert step.launches <= 4, f"{step.launches} launches: {ops}"
