import os
import sys

# Triton reads TRITON_INTERPRET when a kernel is decorated: set it before
# triton or triton_segloss is imported, so CPU tensors can run the kernels.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.pop("TRITON_SEGLOSS_BACKEND", None)
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
import torch  # noqa: E402

import triton_segloss as tsl  # noqa: E402

BACKENDS = ["triton", "torch"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once on the Triton kernels (interpreted on CPU) and once on the PyTorch path."""
    with tsl.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def in_place_interpreter(monkeypatch):
    """Skip the interpreter's copy of every argument's storage back onto itself after a launch.

    For CPU tensors (run in place) the copy is a no-op, but over the sparse multi-GiB mappings of
    the large-offset tests it would touch every page.
    """
    from triton.runtime import interpreter

    monkeypatch.setattr(interpreter.GridExecutor, "_restore_args_dev", lambda self, *a, **k: None)

