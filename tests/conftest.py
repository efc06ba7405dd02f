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


@pytest.fixture(autouse=True)
def _lovasz_sort_path(request, monkeypatch):
    """Lovász segments take the torch.sort path in every test file but the register-sort one.

    The register path's ``tl.sort`` costs the interpreter ~10 s per 4096-key segment (578 s instead
    of 78 s for tests/test_lovasz.py alone), and most Lovász tests are about the options, the walk's
    chunks and carries and the launch budget of the sort path. tests/test_lovasz_register_sort.py
    runs the register path against the eager reference over the options and checks its d bit for
    bit against the sort path's, so the two paths stay tied.
    """
    if request.node.path.name != "test_lovasz_register_sort.py":
        from triton_segloss.lovasz import kernels

        monkeypatch.setattr(kernels, "REG_SORT_MAX", 0)


@pytest.fixture
def in_place_interpreter(monkeypatch):
    """Skip the interpreter's copy of every argument's storage back onto itself after a launch.

    For CPU tensors (run in place) the copy is a no-op, but over the sparse multi-GiB mappings of
    the large-offset tests it would touch every page.
    """
    from triton.runtime import interpreter

    monkeypatch.setattr(interpreter.GridExecutor, "_restore_args_dev", lambda self, *a, **k: None)

