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
from checks import sparse_mapping  # noqa: E402

BATCH_STRIDE = 2**30
NUMEL = 2 * BATCH_STRIDE + 2**16


@pytest.fixture(scope="module")
def sparse_storage(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "sparse.bin"
    big = sparse_mapping(path, NUMEL)
    yield big
    del big
    os.unlink(path)



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


def _labels_far(big, c, s):
    """A (3, c, s) logit view far out, and (3, s) labels near."""
    x = _far_view(big, c, s)
    return x, torch.randint(0, c, (3, s))


def _same_far_and_near(fn, x, t, **kw):
    near = x.clone()
    xf = x.detach().requires_grad_(True)
    xn = near.detach().requires_grad_(True)
    with tsl.use_backend("triton"):
        far_loss = fn(xf, t, **kw)
        near_loss = fn(xn, t, **kw)
        assert torch.equal(far_loss, near_loss)
        g = torch.ones_like(far_loss)
        gf = torch.autograd.grad(far_loss, xf, g)[0]
        gn = torch.autograd.grad(near_loss, xn, g)[0]
    assert torch.equal(gf, gn)


@pytest.mark.parametrize("name", ["dice_loss", "focal_loss", "bce_dice_loss", "lovasz_hinge"])
def test_sigmoid_losses_past_2_31(sparse_storage, in_place_interpreter, name):
    x = _far_view(sparse_storage, 1, 48)
    t = (torch.rand(3, 1, 48) > 0.5).float()
    _same_far_and_near(getattr(tsl, name), x, t)


@pytest.mark.parametrize("name", ["dice_loss", "focal_loss", "lovasz_softmax", "cross_entropy", "ce_dice_loss"])
def test_softmax_losses_past_2_31(sparse_storage, in_place_interpreter, name):
    x, t = _labels_far(sparse_storage, 3, 40)
    kw = {"mode": "multiclass"} if name in ("dice_loss", "focal_loss") else {}
    _same_far_and_near(getattr(tsl, name), x, t, **kw)


def test_confusion_matrix_past_2_31(sparse_storage, in_place_interpreter):
    x, t = _labels_far(sparse_storage, 3, 40)
    with tsl.use_backend("triton"):
        assert torch.equal(tsl.metrics.confusion_matrix(x, t, 3), tsl.metrics.confusion_matrix(x.clone(), t, 3))


def test_boundary_weight_map_past_2_31(sparse_storage, in_place_interpreter):
    # a (3, 1, 6, 8) mask view whose image 2 starts 2^31 elements in
    m = sparse_storage.as_strided((3, 1, 6, 8), (BATCH_STRIDE, 48, 8, 1))
    m.copy_((torch.rand(3, 1, 6, 8) > 0.5).float())
    with tsl.use_backend("triton"):
        assert torch.equal(tsl.boundary_weight_map(m, 3), tsl.boundary_weight_map(m.clone(), 3))
