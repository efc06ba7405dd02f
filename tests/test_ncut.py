import pytest
import torch

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager
from reference import ncut as ref


def _probs(shape, dtype=torch.float32):
    return torch.softmax(torch.randn(shape, dtype=torch.float64) * 2, dim=1).to(dtype)


def _image(shape, cin):
    return torch.randn(shape[0], cin, *shape[2:]) * 2


def _times(c):
    return lambda loss: torch.full_like(loss, c)


# (probs shape, image channels): 2D with a gray and a color image, 3D, one pixel, K = 1,
# K = 20 (two blocks of classes), odd sizes
CASES = [((2, 3, 8, 9), 1), ((2, 4, 6, 5), 3), ((2, 2, 4, 5, 3), 2), ((1, 3, 1, 1), 1), ((2, 1, 5, 5), 1),
         ((2, 20, 5, 7), 3), ((1, 3, 37, 41), 1)]


@pytest.mark.parametrize("shape,cin", CASES, ids=str)
def test_matches_seed_reference(backend, shape, cin):
    p = _probs(shape)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, p, _image(shape, cin), upstream=_times(0.37))


@pytest.mark.parametrize("opts", [{}, {"radius": 2, "sigma_spatial": 1.5}, {"sigma_value": 2.0}], ids=str)
def test_spatial_gaussian_form(backend, opts):
    shape = (2, 3, 9, 8)
    p = _probs(shape)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, p, _image(shape, 3), spatial_gaussian=True,
                         upstream=_times(-1.3), **opts)


def test_sigma_value_and_gray_image_without_channel_dim(backend):
    shape = (2, 3, 7, 6)
    p = _probs(shape)
    img = torch.randn(2, 7, 6)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, p, img, sigma_value=1.5)
    # uint8 images (raw pixels, 0..255) are read as they are
    img8 = (torch.rand(2, 1, 7, 6) * 255).to(torch.uint8)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, p, img8, sigma_value=300.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(backend, dtype):
    shape = (2, 3, 8, 9)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, _probs(shape, dtype), _image(shape, 1), upstream=_times(2.0))


def test_layouts_channels_last_and_sliced(backend):
    shape = (2, 4, 10, 12)
    p = _probs(shape)
    img = _image(shape, 3)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, p.to(memory_format=torch.channels_last),
                         img.to(memory_format=torch.channels_last))
    big = _probs((2, 4, 20, 25))
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, big[:, :, ::2, 1:13], torch.randn(2, 3, 20, 24)[..., ::2, ::2])


def test_gradcheck_fp64(backend):
    p = _probs((2, 3, 3, 4), torch.float64).requires_grad_(True)
    img = torch.randn(2, 2, 3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: tsl.ncut_loss(a, img, sigma_value=3.0), (p,), fast_mode=True)


def test_gradcheck_fp64_spatial_gaussian():
    # torch ops on every backend: one run covers both
    q = _probs((1, 2, 4, 4), torch.float64).requires_grad_(True)
    img = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: tsl.ncut_loss(a, img, spatial_gaussian=True, radius=1), (q,))


def test_opcheck(backend):
    cases = [
        (_probs((2, 3, 20)).requires_grad_(True), torch.randn(2, 1, 20), 10.0),
        (_probs((1, 18, 6)).requires_grad_(True), torch.randn(1, 3, 6), 2.5),
    ]
    for args in cases:
        torch.library.opcheck(torch.ops.triton_segloss.ncut_forward, args)
    # the backward op has no derivative of its own: check it on plain tensors
    for p, img, sigma in cases:
        _, mu, mu_den, cut = torch.ops.triton_segloss.ncut_forward(p.detach(), img, sigma)
        torch.library.opcheck(torch.ops.triton_segloss.ncut_backward,
                              (torch.tensor(0.7), mu, mu_den, cut, p.detach(), img, sigma))


def test_compile_fullgraph(backend):
    shape = (2, 3, 6, 6)
    p = _probs(shape)
    img = _image(shape, 1)
    compiled_matches_eager(tsl.ncut_loss, p, img, sigma_value=3.0)
    module = tsl.NCutLoss(spatial_gaussian=True, radius=2)
    compiled_matches_eager(lambda a, b: module(a, b), p, img)


def test_deterministic(backend):
    shape = (2, 5, 20, 30)  # several programs per image: partials summed in a fixed order
    bitwise_deterministic(tsl.ncut_loss, _probs(shape), _image(shape, 3))


def test_module_matches_functional(backend):
    shape = (2, 3, 5, 5)
    p, img = _probs(shape), _image(shape, 1)
    torch.testing.assert_close(tsl.NCutLoss(sigma_value=4.0)(p, img), tsl.ncut_loss(p, img, sigma_value=4.0))


# ---- bad input -------------------------------------------------------------

def test_image_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"image must have shape .*probs \(2, 3, 4, 4\).*got image \(2, 1, 4, 5\)"):
        tsl.ncut_loss(_probs((2, 3, 4, 4)), torch.randn(2, 1, 4, 5))


def test_image_requiring_grad_is_refused():
    img = torch.randn(2, 1, 4, 4, requires_grad=True)
    with pytest.raises(ValueError, match="image.detach"):
        tsl.ncut_loss(_probs((2, 3, 4, 4)), img)
    with torch.no_grad():
        assert torch.isfinite(tsl.ncut_loss(_probs((2, 3, 4, 4)), img))


def test_bad_options():
    p, img = _probs((2, 3, 4, 4)), torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="sigma_value"):
        tsl.ncut_loss(p, img, sigma_value=0.0)
    with pytest.raises(ValueError, match="radius"):
        tsl.ncut_loss(p, img, radius=-1)
    with pytest.raises(ValueError, match=r"spatial_gaussian=True needs 2D probs"):
        tsl.ncut_loss(_probs((2, 3, 4, 4, 2)), torch.randn(2, 1, 4, 4, 2), spatial_gaussian=True)
    with pytest.raises(TypeError, match="probs must be a floating tensor"):
        tsl.ncut_loss(torch.ones(2, 3, 4, 4, dtype=torch.long), img)
    with pytest.raises(ValueError, match="image is on meta but probs is on cpu"):
        tsl.ncut_loss(p, torch.randn(2, 1, 4, 4, device="meta"))
