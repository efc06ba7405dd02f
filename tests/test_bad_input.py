"""The README's bad-input table, row by row, for every public loss a row applies to."""

import pytest
import torch

import triton_segloss as tsl

BINARY = {
    "bce_with_logits": tsl.bce_with_logits,
    "dice_loss": tsl.dice_loss,
    "jaccard_loss": tsl.jaccard_loss,
    "tversky_loss": tsl.tversky_loss,
    "generalized_dice_loss": tsl.generalized_dice_loss,
    "bce_dice_loss": tsl.bce_dice_loss,
    "dice_focal_loss": tsl.dice_focal_loss,
    "focal_loss": tsl.focal_loss,
    "lovasz_hinge": tsl.lovasz_hinge,
    "boundary_bce_dice_loss": tsl.boundary_bce_dice_loss,
}


def _mc(fn):
    return lambda x, t, **kw: fn(x, t, mode="multiclass", **kw)


MULTICLASS = {
    "dice_loss": _mc(tsl.dice_loss),
    "jaccard_loss": _mc(tsl.jaccard_loss),
    "tversky_loss": _mc(tsl.tversky_loss),
    "generalized_dice_loss": _mc(tsl.generalized_dice_loss),
    "dice_focal_loss": _mc(tsl.dice_focal_loss),
    "focal_loss": _mc(tsl.focal_loss),
    "lovasz_softmax": tsl.lovasz_softmax,
    "cross_entropy": tsl.cross_entropy,
    "ce_dice_loss": tsl.ce_dice_loss,
}


def _binary():
    return torch.randn(2, 1, 6, 6), (torch.rand(2, 1, 6, 6) > 0.5).float()


def _multiclass():
    return torch.randn(2, 3, 6, 6), torch.randint(0, 3, (2, 6, 6))


@pytest.fixture(params=["triton", "torch"])
def any_backend(request):
    with tsl.use_backend(request.param):
        yield


b_names = pytest.mark.parametrize("name", sorted(BINARY))
m_names = pytest.mark.parametrize("name", sorted(MULTICLASS))


@b_names
def test_binary_shape_mismatch(name):
    x, t = _binary()
    with pytest.raises(ValueError, match=r"target must have the shape of logits \(2, 1, 6, 6\).*got target \(2, 1, 6, 5\)"):
        BINARY[name](x, t[..., :5])


@m_names
def test_multiclass_shape_mismatch(name):
    x, t = _multiclass()
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*spatial\) = \(2, 6, 6\).*got target \(2, 6, 5\)"):
        MULTICLASS[name](x, t[..., :5])


@b_names
def test_integer_logits(name):
    x, t = _binary()
    with pytest.raises(TypeError, match=r"logits must be a floating tensor.*torch.int64.*\(2, 1, 6, 6\)"):
        BINARY[name](x.long(), t)


@m_names
def test_float_labels_for_multiclass(name):
    x, t = _multiclass()
    with pytest.raises(TypeError, match=r"target must hold integer class labels.*torch.float32.*\(2, 6, 6\)"):
        MULTICLASS[name](x, t.float())


@m_names
def test_labels_out_of_range(name):
    x, t = _multiclass()
    t[1, 2, 3] = 7
    with pytest.raises(ValueError, match=r"target labels must lie in \[0, 3\).*7.*\(2, 6, 6\)"):
        MULTICLASS[name](x, t)


def test_confusion_matrix_skips_out_of_range_labels():
    x, t = _multiclass()
    t[1, 2, 3] = 7
    cm = tsl.metrics.confusion_matrix(x, t, 3)
    assert int(cm.sum()) == t.numel() - 1


@b_names
@pytest.mark.parametrize("bad", [2.0, -0.5, float("nan")])
def test_binary_target_outside_0_1(name, bad):
    x, t = _binary()
    t[0, 0, 1, 1] = bad
    with pytest.raises(ValueError, match=r"target must hold (values in \[0, 1\]|0 or 1).*\(2, 1, 6, 6\)"):
        BINARY[name](x, t)


@b_names
def test_mismatched_devices_binary(name):
    x, t = _binary()
    with pytest.raises(ValueError, match="target is on meta but logits is on cpu"):
        BINARY[name](x, t.to("meta"))


@m_names
def test_mismatched_devices_multiclass(name):
    x, t = _multiclass()
    with pytest.raises(ValueError, match="target is on meta but logits is on cpu"):
        MULTICLASS[name](x, t.to("meta"))


@b_names
def test_zero_size_batch(name):
    x, t = _binary()
    with pytest.raises(ValueError, match=r"logits has an empty batch: shape \(0, 1, 6, 6\)"):
        BINARY[name](x[:0], t[:0])


@m_names
def test_zero_size_spatial(name):
    x, t = _multiclass()
    with pytest.raises(ValueError, match=r"logits has no pixels: shape \(2, 3, 0, 6\)"):
        MULTICLASS[name](x[:, :, :0], t[:, :0])


@m_names
def test_one_class_softmax(name):
    x = torch.randn(2, 1, 6, 6)
    t = torch.zeros(2, 6, 6, dtype=torch.long)
    with pytest.raises(ValueError, match=r"logits \(2, 1, 6, 6\) have C = 1.*needs C >= 2.*mode='binary'"):
        MULTICLASS[name](x, t)


@pytest.mark.parametrize("name", ["bce_with_logits", "dice_loss", "focal_loss", "lovasz_hinge"])
def test_weight_or_reduction_errors(name):
    x, t = _binary()
    with pytest.raises(ValueError, match="reduction"):
        BINARY[name](x, t, reduction="avg")


@b_names
def test_all_ignored_binary_is_finite_with_zero_gradient(any_backend, name):
    if name == "boundary_bce_dice_loss":
        pytest.skip("no ignore_index: the boundary weights are defined on every pixel (seed 001)")
    x, _ = _binary()
    x.requires_grad_(True)
    t = torch.full((2, 1, 6, 6), 255.0)
    loss = BINARY[name](x, t, ignore_index=255)
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(loss).all() and torch.count_nonzero(g) == 0


@m_names
def test_all_ignored_multiclass_is_finite_with_zero_gradient(any_backend, name):
    x, _ = _multiclass()
    x.requires_grad_(True)
    t = torch.full((2, 6, 6), 255, dtype=torch.long)
    loss = MULTICLASS[name](x, t, ignore_index=255)
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(loss).all() and torch.count_nonzero(g) == 0


@m_names
@pytest.mark.parametrize("ignore,bad", [(-100, 156), (-1, 255)])
def test_uint8_labels_with_a_negative_ignore_index_are_range_checked(name, ignore, bad):
    # uint8 cannot hold a negative ignore_index: compared in uint8 it would wrap (-100 -> 156,
    # -1 -> 255) and silently ignore those labels; they are out of range and must raise
    x, t = _multiclass()
    t = t.to(torch.uint8)
    t[0, 1, 1] = bad
    with pytest.raises(ValueError, match=rf"target labels must lie in \[0, 3\).*{bad}"):
        MULTICLASS[name](x, t, ignore_index=ignore)


PROBABILITIES = {
    "dice_loss": lambda x, t: tsl.dice_loss(x, t, mode="multiclass", from_logits=False),
    "jaccard_loss": lambda x, t: tsl.jaccard_loss(x, t, mode="multiclass", from_logits=False),
    "tversky_loss": lambda x, t: tsl.tversky_loss(x, t, mode="multiclass", from_logits=False),
    "generalized_dice_loss": lambda x, t: tsl.generalized_dice_loss(x, t, mode="multiclass", from_logits=False),
    "lovasz_softmax": lambda x, t: tsl.lovasz_softmax(x, t, from_logits=False),
}


@pytest.mark.parametrize("name", sorted(PROBABILITIES))
def test_from_logits_false_needs_probabilities(name):
    # one rule for every family that takes probabilities (the Dice family used to compute silently)
    x, t = _multiclass()
    p = torch.softmax(x, 1)
    PROBABILITIES[name](p, t)  # valid probabilities pass
    p[0, 1, 2, 2] = 1.5
    with pytest.raises(ValueError, match=r"logits must hold probabilities in \[0, 1\] when from_logits=False.*1.5"):
        PROBABILITIES[name](p, t)
