"""Every @triton.jit kernel in the package compiles to cubin for sm_80 and sm_90.

The interpreter runs kernels as Python and accepts code that the GPU compiler
rejects, so this test compiles the real thing. It runs in a subprocess
because this test session has TRITON_INTERPRET=1 set.
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def aot_results():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "aot_compile.py")], env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, lines


def test_every_kernel_compiles_for_sm80_and_sm90(aot_results):
    proc, lines = aot_results
    failures = [r for r in lines if r.get("ok") is False]
    assert not failures, "\n".join(json.dumps(f) for f in failures) + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = lines[-1]
    assert summary["kernels"] >= 2 and summary["variants"] >= summary["kernels"]
    compiled = {(r["kernel"], r["target"]) for r in lines if r.get("ok")}
    names = {r["kernel"] for r in lines if "target" in r}
    for name in names:
        assert (name, "sm_80") in compiled and (name, "sm_90") in compiled


def test_fast_path_of_bce_vectorises(aot_results):
    _, lines = aot_results
    for k in ("_bce_fwd_kernel", "_bce_bwd_kernel"):
        assert any(r.get("vector_loads") for r in lines if r.get("kernel") == k), k
