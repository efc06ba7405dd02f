"""Kernel offsets past 2^31 elements, without 8 GB of RAM.

A sparse file of 2^31 + 2^16 float32 elements (8 GiB of address space, a few
pages of disk) is memory-mapped as one tensor; the test views it with a batch
stride of 2^30 elements, so image n = 2 starts 2^31 elements (8 GiB) in. A
kernel that multiplies 32-bit program ids by 32-bit strides would overflow
there and read the wrong pixels. Results are compared with the same values in
a small contiguous copy.

Triton's interpreter copies every argument's storage back onto itself after a
launch (a no-op for CPU tensors, which are run in place); that copy would touch
all 8 GiB, so the test skips it for the duration of the test.
"""

import os

import pytest
import torch

import triton_segloss as tsl

pytest.importorskip("triton")
from triton.runtime import interpreter  # noqa: E402

BATCH_STRIDE = 2**30
NUMEL = 2 * BATCH_STRIDE + 2**16


@pytest.fixture(scope="module")
def sparse_storage(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(NUMEL * 4)
    big = torch.from_file(str(path), shared=True, size=NUMEL, dtype=torch.float32)
    yield big
    del big
    os.unlink(path)


@pytest.fixture
def in_place_interpreter(monkeypatch):
    monkeypatch.setattr(interpreter.GridExecutor, "_restore_args_dev", lambda self, *a, **k: None)


def _far_view(big, c, s):
    """(3, c, s) view whose image n starts at element n * 2^30 of the mapping."""
    x = big.as_strided((3, c, s), (BATCH_STRIDE, s, 1))
    x.copy_(torch.randn(3, c, s) * 3)
    return x


def test_bce_past_2_31(sparse_storage, in_place_interpreter):
    x = _far_view(sparse_storage, 2, 50)
    t = (torch.rand(3, 2, 50) > 0.5).float()
    near = x.clone()
    with tsl.use_backend("triton"):
        for kw in ({"reduction": "none"}, {"balance": (0.25, 0.75)}):
            xf = x.detach().requires_grad_(True)
            xn = near.detach().requires_grad_(True)
            far_loss = tsl.bce_with_logits(xf, t, **kw)
            near_loss = tsl.bce_with_logits(xn, t, **kw)
            assert torch.equal(far_loss, near_loss)
            g = torch.ones_like(far_loss)
            assert torch.equal(torch.autograd.grad(far_loss, xf, g)[0], torch.autograd.grad(near_loss, xn, g)[0])
