"""Smoke tests of bench/: tiny sizes, no timing asserted; the traffic counters count exactly.

conftest.py sets TRITON_INTERPRET=1 before triton is imported, which the kernel
traffic counter needs.
"""

import csv
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import triton  # noqa: E402

import triton_segloss as tsl  # noqa: E402
from bench import common, traffic  # noqa: E402
from bench.__main__ import FAMILIES, main  # noqa: E402
from triton_segloss._core.jit import block_for  # noqa: E402

# one thread: tiny tensors, and no OpenMP spin-waits on a busy machine
FAST = ["--sizes", "tiny", "--reps", "2", "--warmup", "1", "--providers", "tsl", "eager", "--threads", "1"]


def _tsl_present(family):
    import importlib

    cases = importlib.import_module(f"bench.{family}").cases()
    try:
        cases[0].providers["tsl"]()
    except common.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("family", FAMILIES)
def test_family_runs_on_tiny_sizes(tmp_path, family, capsys):
    _tsl_present(family)
    rows = main(["--family", family, *FAST, "--out", str(tmp_path), "--no-plot"])[family]
    assert "WARNING" not in capsys.readouterr().out  # tsl and the eager code agree on every case
    modes = {"forward"} if family == "metrics" else {"forward", "backward", "full"}
    assert {r["mode"] for r in rows} == modes
    assert {r["provider"] for r in rows} == {"tsl", "eager"}
    assert all(r["median_ms"] > 0 and r["p20_ms"] <= r["median_ms"] <= r["p80_ms"] for r in rows)
    with open(tmp_path / "timings.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert len(saved) == len(rows) and saved[0]["torch"] == torch.__version__
    assert saved[0]["triton"] == triton.__version__ and saved[0]["threads"] == "1"
    md = (tmp_path / f"{family}.md").read_text()
    assert md.count("\n| ") == 1 + len(rows) // 2  # header + one line per (case, shape, mode)


def test_plot_and_csv_append(tmp_path):
    args = ["--family", "bce", *FAST, "--out", str(tmp_path), "--mode", "full"]
    main(args)
    main(args)
    with open(tmp_path / "timings.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert len(saved) == 2 * 2 * 2  # two runs x two cases x two providers, one header
    assert (tmp_path / "bce.png").stat().st_size > 0


def test_missing_family_prints_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(tsl, "bce_with_logits")
    assert main(["--family", "bce", *FAST, "--out", str(tmp_path)])["bce"] == []
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("==")]
    assert out == ["bce: skipped (triton_segloss.bce_with_logits is not available yet)"]


def test_quantiles_and_peak_table():
    assert common.quantiles([float(v) for v in range(1, 12)]) == (6.0, 3.0, 9.0)
    assert common.peak_gbps("NVIDIA H100 80GB HBM3") == 3350
    assert common.peak_gbps("NVIDIA GH200 480GB") == 4000
    assert common.peak_gbps("NVIDIA H200") == 4800
    assert common.peak_gbps("NVIDIA L40S") == 864 and common.peak_gbps("NVIDIA L4") == 300
    assert common.peak_gbps("NVIDIA A100-SXM4-80GB") == 2039 and common.peak_gbps("NVIDIA A10G") == 600
    assert common.peak_gbps("Some New GPU") is None


def test_min_bytes():
    x = torch.zeros(2, 4, 8, 8)
    labels = torch.zeros(2, 8, 8, dtype=torch.int64)
    # fp32 logits + int64 labels over 4 classes: 2 * (4 + 8 / 4) + 4 = 16 B per logit element
    assert common.min_bytes(x, labels, "full") == 16 * x.numel()
    assert common.min_bytes(x, x, "full") == 20 * x.numel()
    assert common.min_bytes(x, x, "forward") == 8 * x.numel()
    assert common.min_bytes(x, x, "full", backward=False) == 8 * x.numel()


# ---------------------------------------------------------------------------- traffic


def _bce_kernel_bytes(n, c, s, target_bytes=4):
    """Hand count from bce/kernels.py (no options, reduction="mean", fp32 logits).

    forward, per program: x (4 B) and t (``target_bytes``) on its active lanes, stores 4 partials
    (4 B each); the finisher loads every partial and stores the loss and 2 coefficients (12 B);
    backward, per program: the scalar coef[0] and the 0-d upstream gradient (4 B each), x and t on
    its active lanes, stores dx (4 B).
    """
    block, _ = block_for(s)
    programs = n * c * triton.cdiv(s, block)
    elems = n * c * s
    forward = elems * (4 + target_bytes) + programs * 4 * 4
    finisher = programs * 4 * 4 + 12
    backward = programs * 8 + elems * (4 + target_bytes) + elems * 4
    return forward + finisher + backward


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (1, 2, 37, 41), (3, 1, 3000)])
def test_kernel_traffic_is_exact_for_bce(shape):
    x = torch.randn(shape)
    t = (torch.rand(shape) < 0.5).float()
    with tsl.use_backend("triton"):
        step = traffic.count_step(tsl.bce_with_logits, x, t)
    assert step.kernel_bytes == _bce_kernel_bytes(shape[0], shape[1], x[0, 0].numel())
    kernels = {k.split()[0] for k in step.kernel_by_op}
    assert kernels == {"_bce_fwd_kernel", "_bce_finish_kernel", "_bce_bwd_kernel"}


def test_aten_traffic_counts_reads_and_writes():
    a, b = torch.randn(1000), torch.randn(1000)
    w = torch.randn(10, 1).expand(10, 100)  # stride 0: 10 distinct elements
    with traffic.AtenTraffic() as at:
        c = a + b  # reads 8000, writes 4000
        c.view(10, 100).t()  # views: nothing
        c.sum()  # reads 4000, writes 4
        torch.empty(50)  # allocation: nothing
        d = c.view(10, 100) * w  # reads 4000 + 40, writes 4000
        d.copy_(c.view(10, 100))  # reads 4000, writes 4000
    assert at.tally.read == 8000 + 4000 + 4040 + 4000
    assert at.tally.written == 4000 + 4 + 4000 + 4000


def test_sorts_are_charged_by_the_cuda_model():
    """A sort moves far more than its I/O on CUDA: the counter charges bench.lovasz_sort's model
    (per sorted fp32 element: small in-place sort 8 + 2 x 4 + 2 (4 + 8) = 40 B; one segment over
    4096 elements, 4 onesweep passes: 8 + 4 + 4 x 2 (4 + 8) = 108 B) and keeps the I/O aside."""
    small, big = torch.randn(3, 100), torch.randn(1, 5000)
    with traffic.AtenTraffic() as at:
        torch.sort(small, dim=1, descending=True, stable=True)
    assert at.tally.total == 40 * 300 and at.sort_io == 300 * (4 + 4 + 8)
    with traffic.AtenTraffic() as at:
        torch.sort(big, -1)
    assert at.tally.total == 108 * 5000 and at.sort_io == 5000 * 16


def test_custom_ops_are_entered_not_counted_as_black_boxes():
    x = torch.randn(2, 1, 8, 8)
    t = (torch.rand(2, 1, 8, 8) < 0.5).float()
    with tsl.use_backend("torch"):
        step = traffic.count_step(tsl.bce_with_logits, x, t)
    assert step.kernel_bytes == 0
    assert not any(op.startswith("triton_segloss") for op in step.aten_by_op)
    # the PyTorch path's own ops (bce/torch_impl.py; it writes softplus into a reused buffer: the .out form)
    assert any(op.startswith("aten.softplus") for op in step.aten_by_op), step.aten_by_op


def test_traffic_cli_on_tiny_sizes(tmp_path):
    rows = main(["--traffic", "--family", "bce", "--sizes", "tiny", "--providers", "tsl", "eager",
                 "--out", str(tmp_path)])["bce"]
    by = {(r["case"], r["provider"]): r for r in rows}
    assert set(by) == {(c, p) for c in ("multilabel", "balanced") for p in ("tsl", "tsl[torch path]", "eager")}
    plain = by[("multilabel", "tsl")]
    assert plain["kernel_bytes"] == _bce_kernel_bytes(2, 3, 64)
    assert plain["min_b_per_elem"] == 20.0 and plain["ratio"] >= 1.0
    assert (tmp_path / "traffic.csv").exists() and (tmp_path / "bce_traffic.md").exists()


def test_traffic_cli_with_uint8_targets(tmp_path):
    rows = main(["--traffic", "--family", "bce", "--sizes", "tiny", "--providers", "tsl", "eager",
                 "--target-dtype", "uint8", "--out", str(tmp_path)])["bce"]
    plain = next(r for r in rows if r["case"] == "multilabel" and r["provider"] == "tsl")
    assert plain["target_dtype"] == "uint8"
    assert plain["kernel_bytes"] == _bce_kernel_bytes(2, 3, 64, target_bytes=1)
    assert plain["min_b_per_elem"] == 14.0  # 2 * (4 + 1) + 4
    eager = next(r for r in rows if r["case"] == "multilabel" and r["provider"] == "eager")
    assert eager["bytes"] > 0  # the eager code ran on the target converted back to float


def test_kernel_counter_restores_the_interpreter():
    import triton.runtime.interpreter as interp

    call = interp.GridExecutor.__call__
    with traffic.KernelTraffic():
        assert "create_masked_load" in vars(interp.interpreter_builder)
    assert "create_masked_load" not in vars(interp.interpreter_builder)
    assert interp.GridExecutor.__call__ is call
