import os

import pytest
import torch

import triton_segloss as tsl
from triton_segloss._core import backend as _backend


def test_use_backend_nests_and_restores():
    assert _backend.requested_backend() == "auto"
    with tsl.use_backend("torch"):
        assert _backend.select(torch.device("cpu")) == "torch"
        with tsl.use_backend("triton"):
            assert _backend.select(torch.device("cpu")) == "triton"
        assert _backend.requested_backend() == "torch"
    assert _backend.requested_backend() == "auto"


def test_auto_on_cpu_uses_interpreter_when_it_was_set():
    # conftest sets TRITON_INTERPRET=1 before import
    assert _backend.INTERPRET
    assert _backend.select(torch.device("cpu")) == "triton"


def test_env_var_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("TRITON_SEGLOSS_BACKEND", "torch")
    assert _backend.select(torch.device("cpu")) == "torch"
    monkeypatch.setenv("TRITON_SEGLOSS_BACKEND", "bogus")
    with pytest.raises(ValueError, match="TRITON_SEGLOSS_BACKEND"):
        _backend.select(torch.device("cpu"))


def test_bad_backend_name():
    with pytest.raises(ValueError, match="use_backend"):
        with tsl.use_backend("cuda"):
            pass


def test_forced_triton_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_backend, "INTERPRET", False)
    assert _backend.select(torch.device("cpu")) == "torch"  # auto falls back
    x = torch.randn(2, 1, 4, 4)
    with tsl.use_backend("triton"), pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        tsl.bce_with_logits(x, torch.rand_like(x))


def test_backend_read_inside_compiled_graph():
    x = torch.randn(2, 1, 5, 5)
    t = (torch.rand_like(x) > 0.5).float()
    f = torch.compile(tsl.bce_with_logits, fullgraph=True)
    with tsl.use_backend("torch"):
        a = f(x, t)
    with tsl.use_backend("triton"):
        b = f(x, t)
    torch.testing.assert_close(a, b)


def test_subprocess_without_interpreter_runs_torch_path():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("import torch, triton_segloss as tsl; from triton_segloss._core import backend as _backend; "
            "x = torch.randn(2, 1, 3, 3); print(_backend.select(x.device), float(tsl.bce_with_logits(x, (x > 0).float())))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "torch"


# ---- the choice is per thread / context, and the backward sees the forward's ----------------

def _in_thread(fn):
    import threading

    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # report it in the main thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_use_backend_is_not_seen_by_other_threads():
    with tsl.use_backend("torch"):
        assert _in_thread(_backend.requested_backend) == "auto"
        assert _backend.requested_backend() == "torch"


def test_interleaved_threads_keep_their_own_choice():
    import threading

    entered, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        with tsl.use_backend("triton"):
            entered.set()
            release.wait(10)
            seen["other"] = _backend.requested_backend()

    t = threading.Thread(target=other)
    t.start()
    entered.wait(10)
    with tsl.use_backend("torch"):
        pass  # enter and exit while the other thread is inside its block
    seen["main"] = _backend.requested_backend()
    release.set()
    t.join()
    assert seen == {"other": "triton", "main": "auto"}


def test_backward_runs_on_the_backend_of_the_forward(monkeypatch):
    from triton_segloss.bce import torch_impl

    calls = []
    real = torch_impl.backward
    monkeypatch.setattr(torch_impl, "backward", lambda *a: calls.append("torch") or real(*a))
    x = torch.randn(2, 1, 4, 4, requires_grad=True)
    t = (torch.rand_like(x) > 0.5).float()
    with tsl.use_backend("torch"):
        loss = tsl.bce_with_logits(x, t)
    loss.backward()  # outside the block: "auto" would pick the interpreter here
    assert calls == ["torch"]


def test_concurrent_threads_on_the_interpreter_are_serialised():
    import threading

    x = torch.randn(3, 2, 17, 19)
    t = (torch.rand_like(x) > 0.5).float()
    with tsl.use_backend("triton"):
        want = tsl.bce_with_logits(x, t, balance=(0.3, 0.7))
    errors, results = [], []

    def work():
        try:
            with tsl.use_backend("triton"):
                for _ in range(3):
                    results.append(tsl.bce_with_logits(x, t, balance=(0.3, 0.7)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(results) == 9
    for r in results:
        assert torch.equal(r, want)
