"""Numerical extremes for every loss: logits +-1e4 in fp32, +-6e4 in fp16, bf16; focal with
gamma < 1; smooth = 0 with empty masks. Values and gradients are finite and match the float64
reference wherever the reference is finite."""

import pytest
import torch

import triton_segloss as tsl
from checks import value_and_grad
from reference import bce as ref_bce
from reference import ce as ref_ce
from reference import dice as ref_dice
from reference import focal as ref_focal
from reference import lovasz as ref_lovasz
from tolerances import assert_grad, assert_value

BINARY = [
    ("bce_with_logits", tsl.bce_with_logits, ref_bce.bce_with_logits, {}),
    ("dice_loss", tsl.dice_loss, ref_dice.dice_loss, {}),
    ("bce_dice_loss", tsl.bce_dice_loss, ref_dice.bce_dice_loss, {}),
    ("focal_loss", tsl.focal_loss, ref_focal.sigmoid_focal_loss, {}),
    ("focal_loss[gamma=0.5]", tsl.focal_loss, ref_focal.sigmoid_focal_loss, {"gamma": 0.5}),
    ("lovasz_hinge", tsl.lovasz_hinge, ref_lovasz.lovasz_hinge, {}),
]
MULTICLASS = [
    ("cross_entropy", tsl.cross_entropy, ref_ce.cross_entropy, {}),
    ("dice_loss", lambda x, t, **k: tsl.dice_loss(x, t, mode="multiclass", **k),
     lambda x, t, **k: ref_dice.dice_loss(x, t, mode="multiclass", **k), {}),
    ("ce_dice_loss", tsl.ce_dice_loss, ref_dice.ce_dice_loss, {}),
    ("focal_loss[gamma=0.5]", lambda x, t, **k: tsl.focal_loss(x, t, mode="multiclass", **k),
     ref_focal.softmax_focal_loss, {"gamma": 0.5}),
    ("lovasz_softmax", tsl.lovasz_softmax, ref_lovasz.lovasz_softmax, {}),
]
EXTREMES = [(torch.float32, 1e4), (torch.float16, 6e4), (torch.bfloat16, 1e4)]


def _extreme(shape, dtype, big):
    x = torch.randn(shape)
    x = torch.where(torch.rand(shape) < 0.5, torch.sign(x) * big, x * 3)  # half huge, half ordinary
    return x.to(dtype)


def _check(fn, ref, x, t, **kw):
    loss, grad = value_and_grad(fn, x, t, **kw)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    ref_loss, ref_grad = value_and_grad(ref, x.detach().double(), t, **kw)
    if torch.isfinite(ref_loss).all():
        # loss values reach ~1e4 here: compare relative to the reference (the table's rtol)
        assert_value(loss, ref_loss, x.dtype)
    if torch.isfinite(ref_grad).all():
        assert_grad(grad, ref_grad, x.dtype)


@pytest.mark.parametrize("dtype,big", EXTREMES, ids=["fp32-1e4", "fp16-6e4", "bf16-1e4"])
@pytest.mark.parametrize("name,fn,ref,kw", BINARY, ids=[b[0] for b in BINARY])
def test_binary_extremes(backend, name, fn, ref, kw, dtype, big):
    x = _extreme((2, 1, 6, 7), dtype, big)
    t = (torch.rand(2, 1, 6, 7) > 0.5).float()
    _check(fn, ref, x, t, **kw)


@pytest.mark.parametrize("dtype,big", EXTREMES, ids=["fp32-1e4", "fp16-6e4", "bf16-1e4"])
@pytest.mark.parametrize("name,fn,ref,kw", MULTICLASS, ids=[m[0] for m in MULTICLASS])
def test_multiclass_extremes(backend, name, fn, ref, kw, dtype, big):
    x = _extreme((2, 4, 5, 6), dtype, big)
    t = torch.randint(0, 4, (2, 5, 6))
    _check(fn, ref, x, t, **kw)


@pytest.mark.parametrize("name", ["dice_loss", "jaccard_loss", "tversky_loss", "generalized_dice_loss"])
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_smooth_zero_with_empty_masks(backend, name, mode):
    c = 1 if mode == "binary" else 3
    x = torch.full((2, c, 5, 5), -30.0)  # predicts nothing anywhere
    x.requires_grad_(True)
    t = torch.zeros(2, 1, 5, 5) if mode == "binary" else torch.zeros(2, 5, 5, dtype=torch.long)
    for per_image in (False, True):
        loss = getattr(tsl, name)(x, t, mode=mode, smooth=0.0, per_image=per_image, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert torch.isfinite(loss).all() and torch.isfinite(g).all()
        ref = getattr(ref_dice, name)(x.detach().double(), t, mode=mode, smooth=0.0, per_image=per_image,
                                      reduction="none")
        torch.testing.assert_close(loss.double(), ref.double(), rtol=1e-5, atol=1e-6)
