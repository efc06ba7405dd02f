import os

import pytest
import torch

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager, sparse_mapping, value_and_grad
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
    from triton_segloss.ncut.ops import NCutOptions, ncut

    cases = [
        ((_probs((2, 3, 1, 20)).requires_grad_(True), torch.randn(2, 1, 1, 20)), NCutOptions(sigma_value=10.0)),
        ((_probs((1, 18, 1, 6)).requires_grad_(True), torch.randn(1, 3, 1, 6)), NCutOptions(sigma_value=2.5)),
        ((_probs((2, 3, 5, 4)).requires_grad_(True), torch.randn(2, 2, 5, 4)),
         NCutOptions(sigma_value=3.0, radius=1, sigma_spatial=1.5)),
    ]
    for tensors, o in cases:
        torch.library.opcheck(ncut.forward_op, (*tensors, *o))
    # the backward op has no derivative of its own: check it on plain tensors
    for (p, img), o in cases:
        _, mu, ab, e = ncut(p.detach(), img, o)
        torch.library.opcheck(ncut.backward_op, (torch.tensor(0.7), mu, ab, e, p.detach(), img, *o))


def test_compile_fullgraph(backend):
    shape = (2, 3, 6, 6)
    p = _probs(shape)
    img = _image(shape, 1)
    compiled_matches_eager(tsl.ncut_loss, p, img, sigma_value=3.0)
    module = tsl.NCutLoss(spatial_gaussian=True, radius=2)
    compiled_matches_eager(lambda a, b: module(a, b), p, img)


@pytest.mark.parametrize("spatial_gaussian", [False, True], ids=["running", "spatial"])
def test_compile_fullgraph_dynamic(backend, spatial_gaussian):
    """dynamic=True: symbolic shapes through the api, the op's fake and autograd, no graph break."""
    torch._dynamo.reset()
    fn = torch.compile(lambda p, img: tsl.ncut_loss(p, img, radius=1, sigma_value=3.0,
                                                    spatial_gaussian=spatial_gaussian),
                       fullgraph=True, dynamic=True, backend="aot_eager")
    for shape in ((2, 3, 6, 6), (1, 4, 5, 7)):
        p, img = _probs(shape), _image(shape, 2)
        got = value_and_grad(fn, p, img)
        want = value_and_grad(tsl.ncut_loss, p, img, radius=1, sigma_value=3.0, spatial_gaussian=spatial_gaussian)
        torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=1e-7)


def test_deterministic(backend):
    shape = (2, 5, 20, 30)  # several programs per image: partials summed in a fixed order
    bitwise_deterministic(tsl.ncut_loss, _probs(shape), _image(shape, 3))
    bitwise_deterministic(tsl.ncut_loss, _probs(shape), _image(shape, 3), spatial_gaussian=True, radius=1)


@pytest.mark.parametrize("spatial_gaussian", [False, True], ids=["running", "spatial"])
def test_programs_loop_over_tiles(backend, monkeypatch, spatial_gaussian):
    # one program per (image, class block) in passes 1 and 2: each program loops over several pixel tiles
    from triton_segloss.ncut import kernels

    monkeypatch.setattr(kernels, "_PROGRAMS", 1)
    shape = (2, 3, 30, 40)  # 1200 pixels: 3 tiles of 512 (5 of 256 for the spatial form)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, _probs(shape), _image(shape, 2), sigma_value=4.0,
                         spatial_gaussian=spatial_gaussian, radius=1, upstream=_times(0.37))


def test_more_partials_than_one_step_sums(backend):
    # K = 16 (tiles of 128 pixels): 79 programs per image, more than the 64 partials summed per step
    shape = (1, 16, 100, 100)
    compare_to_reference(tsl.ncut_loss, ref.ncut_loss, _probs(shape), _image(shape, 2), sigma_value=4.0)


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


# ---- offsets past 2^31 elements --------------------------------------------

CLASS_STRIDE = 2**30


@pytest.fixture(scope="module")
def sparse_storage(tmp_path_factory):
    """2^31 + 2^17 float32 elements of a sparse file (8 GiB of address space, a few pages of disk)."""
    path = tmp_path_factory.mktemp("big") / "sparse.bin"
    numel = 2 * CLASS_STRIDE + 2**17
    big = sparse_mapping(path, numel)
    yield big
    del big
    os.unlink(path)



@pytest.mark.parametrize("spatial_gaussian", [False, True], ids=["running", "spatial"])
def test_class_and_channel_stride_past_2_31(sparse_storage, in_place_interpreter, spatial_gaussian):
    """probs (1, 3, 6, 7) with class stride 2^30 and an image (1, 3, 6, 7) with channel stride 2^30 in
    one mapping: class / channel 2 starts 2^31 elements in, where an int32 ``k * stride_pk`` (or
    ``c * stride_ic``) wraps. Every kernel (moments, cut, finisher, backward) against a small copy."""
    h, w = 6, 7
    p = sparse_storage.as_strided((1, 3, h, w), (3 * CLASS_STRIDE, CLASS_STRIDE, w, 1))
    img = sparse_storage.as_strided((1, 3, h, w), (3 * CLASS_STRIDE, CLASS_STRIDE, w, 1), 2**16)
    p.copy_(_probs((1, 3, h, w)))
    img.copy_(torch.randn(1, 3, h, w))
    kw = dict(sigma_value=3.0, spatial_gaussian=spatial_gaussian, radius=1)
    with tsl.use_backend("triton"):
        far = value_and_grad(tsl.ncut_loss, p, img, upstream=_times(0.37), **kw)
        near = value_and_grad(tsl.ncut_loss, p.clone(), img.clone(), upstream=_times(0.37), **kw)
    assert torch.equal(far[0], near[0])
    assert torch.equal(far[1], near[1])
