import math

import pytest
import torch
import torch.nn.functional as F

import triton_segloss as tsl
from triton_segloss import recipes
from triton_segloss.boundary.ops import BoundaryBCEDiceOptions, WeightMapOptions, boundary_bce_dice, \
    default_kernel_size, weight_map
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager, sparse_mapping, upstream_not_one, \
    value_and_grad
from reference import boundary as ref


def _blobs(shape, cells=4, p=0.5):
    """A 0/1 mask of blocky regions (so boxes straddle real boundaries), shaped like ``shape``."""
    spatial = shape[-2:] if len(shape) < 5 else shape[-3:]
    coarse = (torch.rand(*shape[:-len(spatial)], *[max(1, s // cells) for s in spatial]) < p).float()
    lead = coarse.shape[:-len(spatial)]
    up = F.interpolate(coarse.reshape(-1, 1, *coarse.shape[-len(spatial):]), size=spatial, mode="nearest")
    return up.reshape(*lead, *spatial)


def _same_weights(target, k, spatial_dims=2, **kw):
    """The map equals the seed's: exactly before normalisation, rel 1e-6 after."""
    want = ref.seed001_weight_map(target, k, spatial_dims=spatial_dims, **kw)
    got = tsl.boundary_weight_map(target, k, spatial_dims=spatial_dims, **kw)
    assert got.shape == target.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    raw = tsl.boundary_weight_map(target, k, spatial_dims=spatial_dims, normalize=False, **kw)
    assert torch.equal(raw, ref.seed001_weight_map(target, k, spatial_dims=spatial_dims, normalize=False, **kw))
    return raw


@pytest.mark.parametrize("height", sorted(ref.SEED001_KERNEL_SIZES))
def test_seed_table_heights(backend, height):
    # batch 1 and a narrow width: the interpreter would take minutes on 1280 x 1280
    t = _blobs((1, 1, height, 7), cells=height // 16)
    raw = _same_weights(t, ref.seed001_kernel_size(height))
    assert 0 < int((raw > 1).sum()) < raw.numel()  # the band is neither empty nor everything
    torch.testing.assert_close(tsl.boundary_weight_map(t), ref.seed001_weight_map(t, ref.seed001_kernel_size(height)),
                               rtol=1e-6, atol=0)


@pytest.mark.parametrize("k", [1, 3, 13, 61])
def test_any_odd_kernel_non_square(backend, k):
    _same_weights(_blobs((2, 1, 37, 41)), k)
    _same_weights(_blobs((3, 23, 17), cells=3), k)  # (N, H, W) as the seed passes it


def test_multichannel_and_wide_kernel_in_one_axis(backend):
    _same_weights(_blobs((2, 3, 12, 10), cells=3), 5)
    _same_weights(_blobs((1, 1, 200, 40), cells=8), 151)  # a window wider than the tile along H


def test_3d(backend):
    _same_weights(_blobs((1, 1, 9, 10, 11), cells=3), 5, spatial_dims=3)
    t = _blobs((2, 1, 7, 6, 8), cells=2)
    assert torch.equal(tsl.boundary_weight_map(t, 3), tsl.boundary_weight_map(t, 3, spatial_dims=3))
    _same_weights(t[:, 0], 3, spatial_dims=3)  # (N, D, H, W) volumes need spatial_dims=3
    _same_weights(t[:1, 0], 5, spatial_dims=3)  # (avg_pool3d refuses boxes larger than the volume)


def _engineered(c_lo, c_hi, K):
    """low/high one float64 ulp inside the mean of c_lo / c_hi ones in the box: a float64 comparison
    of count / K rejects both, the seed's rounded mean in the mask's dtype accepts both."""
    return math.nextafter(c_lo / K, math.inf), math.nextafter(c_hi / K, -math.inf)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_thresholds_match_avg_pool_bit_for_bit(backend, dtype):
    k, K = 11, 121
    t = (torch.rand(1, 1, 20, 21) < 0.5).to(dtype)
    counts = F.avg_pool2d(t.double(), k, stride=1, padding=k // 2, divisor_override=1).round()
    c_lo, c_hi = int(counts.quantile(0.3)), int(counts.quantile(0.7))
    for low, high in (_engineered(c_lo, c_hi, K), (c_lo / K, c_hi / K), (0.0, 1.0), (0.5, 0.2)):
        raw = tsl.boundary_weight_map(t, k, low=low, high=high, normalize=False)
        assert torch.equal(raw, ref.seed001_weight_map(t, k, low=low, high=high, normalize=False))
        if (low, high) == _engineered(c_lo, c_hi, K) and dtype != torch.float64:
            naive = (counts / K >= low) & (counts / K <= high)
            assert not torch.equal(raw > 1, naive)  # the case is engineered: a float64 test would miss it


def test_target_dtypes_and_layouts(backend):
    t = _blobs((2, 1, 13, 14), cells=3)
    want = _same_weights(t, 5)
    for other in (t.bool(), t.to(torch.uint8), t.to(torch.int64), t.to(memory_format=torch.channels_last)):
        assert torch.equal(tsl.boundary_weight_map(other, 5, normalize=False), want)
    _same_weights(_blobs((2, 1, 26, 28), cells=3)[:, :, ::2, 1::2], 5)  # a strided view, read in place
    _same_weights(_blobs((1, 1, 13, 14), cells=3).expand(3, 2, 13, 14), 5)  # stride-0 batch and channels


def test_narrow_window_sums_match_float_targets(backend):
    """bool / integer masks keep their window sums in one byte (2D) or two (3D, k^2 up to 32767):
    the same integers as the float path's sums, so the same weights, loss and gradient."""
    from triton_segloss.boundary import kernels

    for shape, k in (((2, 1, 13, 14), 5), ((2, 1, 6, 7, 8), 3), ((1, 1, 5, 40, 6), 31)):
        t = _blobs(shape, cells=2)
        top = k ** (len(shape) - 3)  # the largest sum: k (2D), k^2 (3D): 5, 9, 961
        assert kernels._sums_dtype(t.bool(), k // 2, len(shape) - 2, torch.float32) == \
            (torch.uint8 if top <= 255 else torch.int16)
        want = tsl.boundary_weight_map(t, k, normalize=False)
        for other in (t.bool(), t.to(torch.uint8), t.to(torch.int32)):
            assert torch.equal(tsl.boundary_weight_map(other, k, normalize=False), want)
        x = torch.randn(shape)
        loss, grad = value_and_grad(tsl.boundary_bce_dice_loss, x, t, kernel_size=k)
        loss8, grad8 = value_and_grad(tsl.boundary_bce_dice_loss, x, t.to(torch.uint8), kernel_size=k)
        assert torch.equal(loss, loss8) and torch.equal(grad, grad8)
    assert kernels._sums_dtype(torch.zeros(1, dtype=torch.bool), 200, 3, torch.float32) == torch.float32


def test_empty_full_and_one_pixel_masks(backend):
    for t in (torch.zeros(2, 1, 9, 8), torch.ones(2, 1, 9, 8), torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)):
        w = _same_weights(t, 3)
        assert torch.isfinite(w).all()
    assert torch.equal(tsl.boundary_weight_map(torch.zeros(2, 1, 9, 8), 3), torch.ones(2, 1, 9, 8))


def test_normalised_sum_is_numel(backend):
    t = _blobs((3, 1, 20, 22), cells=4)
    w = tsl.boundary_weight_map(t, 7, boundary_weight=5.0)
    torch.testing.assert_close(w.double().sum(), torch.tensor(float(t.numel()), dtype=torch.float64), rtol=1e-6, atol=0)
    raw = tsl.boundary_weight_map(t, 7, boundary_weight=5.0, normalize=False)
    assert set(raw.unique().tolist()) <= {1.0, 5.0}


def test_soft_targets_differ_only_within_rounding_of_the_thresholds(backend):
    t = torch.rand(2, 1, 24, 25) ** 6  # means near 0.01 .. 0.99 all over
    k = 5
    a = F.avg_pool2d(t, k, stride=1, padding=k // 2)
    got = tsl.boundary_weight_map(t, k, normalize=False) > 1
    want = ref.seed001_weight_map(t, k, normalize=False) > 1
    near = ((a.double() - 0.01).abs() < 1e-6) | ((a.double() - 0.99).abs() < 1e-6)
    assert torch.equal(got[~near], want[~near])


def test_default_kernel_size_rule():
    for h, k in ref.SEED001_KERNEL_SIZES.items():
        assert default_kernel_size(h) == k
    assert [default_kernel_size(h) for h in (1, 64, 384, 768, 2048)] == [3, 5, 21, 31, 81]
    ks = [default_kernel_size(h) for h in range(1, 3000)]
    assert all(k % 2 == 1 and k >= 3 for k in ks)
    assert all(a <= b for a, b in zip(ks, ks[1:]))  # monotone in the height


def test_not_differentiable_target_is_fine():
    t = torch.rand(1, 1, 6, 6, requires_grad=True)
    w = tsl.boundary_weight_map(t, 3)
    assert not w.requires_grad


def test_opcheck(backend):
    for t, opts in (
        (_blobs((2, 1, 9, 10), cells=3), WeightMapOptions(3, 2, 0.01, 0.99, 3.0, True)),
        (_blobs((2, 1, 9, 10), cells=3).to(torch.uint8), WeightMapOptions(5, 2, 0.2, 0.7, 2.0, False)),
        (_blobs((1, 5, 6, 7), cells=2).double(), WeightMapOptions(3, 3, 0.01, 0.99, 3.0, True)),
        (_blobs((2, 1, 9, 10), cells=3), WeightMapOptions(None, 2, 0.01, 0.99, 3.0, True)),
    ):
        torch.library.opcheck(weight_map.forward_op, (t, *opts))


@pytest.mark.parametrize("opts", [BoundaryBCEDiceOptions(kernel_size=3),
                                  BoundaryBCEDiceOptions(kernel_size=None, log_dice=True),
                                  BoundaryBCEDiceOptions(kernel_size=3, weighted=False)])
def test_opcheck_loss(backend, opts):
    for x, t in ((torch.randn(2, 1, 7, 6), _blobs((2, 1, 7, 6), cells=2)),
                 (torch.randn(1, 1, 4, 5, 6, dtype=torch.float64), _blobs((1, 1, 4, 5, 6), cells=2).double())):
        torch.library.opcheck(boundary_bce_dice.forward_op, (x.requires_grad_(), t, *opts))
        loss, bce, dice, coef, band = boundary_bce_dice(x.detach(), t, opts)
        g = torch.tensor(0.37, dtype=loss.dtype)
        torch.library.opcheck(boundary_bce_dice.backward_op, (g, None, g, coef, band, x.detach(), t, *opts))


def test_compile_fullgraph_and_deterministic(backend):
    t = _blobs((2, 1, 12, 12), cells=3)
    torch._dynamo.reset()
    f = torch.compile(lambda a: tsl.boundary_weight_map(a, 5), fullgraph=True)
    assert torch.equal(f(t), tsl.boundary_weight_map(t, 5))
    first = tsl.boundary_weight_map(t, 5)
    assert all(torch.equal(first, tsl.boundary_weight_map(t, 5)) for _ in range(2))


# ---- boundary_bce_dice_loss (seed 001's CombinedLoss, is_weight=True) -----------------------------

@pytest.mark.parametrize("log_dice", [False, True])
@pytest.mark.parametrize("shape,k", [((2, 1, 13, 11), 5), ((1, 1, 128, 6), None), ((1, 1, 6, 7, 5), 3)])
def test_loss_matches_seed(backend, shape, k, log_dice):
    x = torch.randn(shape) * 2
    t = _blobs(shape, cells=3 if k else 16)
    compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, x, t, k, log_dice=log_dice,
                         upstream=upstream_not_one)


_F32, _U8, _B, _F64 = torch.float32, torch.uint8, torch.bool, torch.float64


@pytest.mark.parametrize("shape,k,tdtype", [
    # 2D
    ((2, 1, 70, 131), 3, _F32), ((2, 1, 70, 131), 3, _U8), ((2, 1, 70, 131), 3, _B),
    ((2, 1, 70, 131), 3, _F64), ((1, 1, 5, 200), 5, _F32), ((1, 1, 130, 64), 11, _U8),
    ((1, 1, 64, 64), 31, _F32), ((1, 1, 64, 64), 31, _F64), ((1, 1, 40, 72), 33, _B),
    ((1, 1, 90, 300), 41, _F32), ((1, 1, 90, 300), 41, _U8), ((2, 1, 61, 37), 51, _F32),
    ((2, 1, 61, 37), 51, _F64), ((1, 1, 20, 530), 67, _F32), ((1, 1, 20, 530), 67, _B),
    ((1, 1, 9, 30), 131, _U8),
    # 3D
    ((2, 1, 9, 10, 11), 5, _F32), ((2, 1, 9, 10, 11), 5, _U8), ((2, 1, 9, 10, 11), 5, _F64),
    ((1, 1, 12, 70, 40), 3, _F32), ((1, 1, 12, 70, 40), 3, _B), ((1, 1, 12, 20, 130), 11, _U8),
    ((1, 1, 40, 9, 8), 7, _F32), ((1, 1, 40, 9, 8), 7, _F64), ((1, 1, 31, 31, 40), 31, _F32),
    ((1, 1, 31, 31, 40), 31, _U8), ((1, 1, 33, 34, 40), 33, _U8)])
def test_fused_band_is_avg_pools(shape, k, tdtype, monkeypatch):
    """The fused forwards find the band from the target itself: in 2D from the target's own strips
    (windows up to 2 STRIP_MAX_R + 1 wide; k = 131 takes the window-sum pass), in 3D walking along D
    with (H, W) tiles (windows up to 2 FUSED3_MAX_R + 1 wide; k = 33 takes the window-sum pass). Bit
    for bit avg_pool's band (the seed's raw weight map), and the same loss and gradient as the
    window-sum pass, on strips and tiles cut anywhere (widths not multiples of the owned columns,
    several strips per image at W = 300 and 530, 2D windows wider than the image; avg_pool3d refuses
    windows wider than an axis)."""
    from triton_segloss.boundary import kernels

    dims = len(shape) - 2
    t = _blobs(shape, cells=3)
    x = torch.randn(shape, dtype=torch.float64 if tdtype == torch.float64 else torch.float32) * 2
    tt = t.to(tdtype)
    opts = BoundaryBCEDiceOptions(kernel_size=k)
    if dims == 2:
        want_band = ref.seed001_weight_map(t.double(), k, normalize=False) != 1.0
    else:
        want_band = ref.seed001_weight_map(t[:, 0].double(), k, spatial_dims=3, normalize=False)[:, None] != 1.0
    results = []
    for fused in (True, False):
        monkeypatch.setattr(kernels, "FUSED_2D" if dims == 2 else "FUSED_3D", fused)
        with tsl.use_backend("triton"):
            band = boundary_bce_dice(x, tt, opts)[4]
            assert torch.equal(band.bool(), want_band)
            results.append(value_and_grad(tsl.boundary_bce_dice_loss, x, tt, k, upstream=upstream_not_one))
    (l1, g1), (l2, g2) = results
    # the same sums in another order (tiles of another shape): rounding apart
    torch.testing.assert_close(l1, l2, rtol=1e-6 if x.dtype == torch.float32 else 1e-13, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-5 if x.dtype == torch.float32 else 1e-12, atol=1e-12)


@pytest.mark.parametrize("tdtype", [torch.float32, torch.uint8])
def test_fused_2d_many_segments(tdtype, monkeypatch):
    """Images cut into many row segments (each re-reads an R-row halo above and below) and strips:
    still avg_pool's band bit for bit, the reference's loss and gradient, and no window-sum pass."""
    from triton_segloss.boundary import kernels

    monkeypatch.setattr(kernels, "STRIP_SEG_PER_R", 1)
    monkeypatch.setattr(kernels, "STRIP_SEG_MIN", 8)

    def no_window_sums(*a, **kw):
        raise AssertionError("the 2D fused forward ran the window-sum pass")

    monkeypatch.setattr(kernels, "_window_dh", no_window_sums)
    for shape, k in (((2, 1, 77, 40), 7), ((1, 1, 103, 260), 35), ((1, 1, 50, 9), 21)):
        t = _blobs(shape, cells=3)
        x = torch.randn(shape) * 2
        want_band = ref.seed001_weight_map(t.double(), k, normalize=False) != 1.0
        with tsl.use_backend("triton"):
            band = boundary_bce_dice(x, t.to(tdtype), BoundaryBCEDiceOptions(kernel_size=k))[4]
            assert torch.equal(band.bool(), want_band)
            # the seed's avg_pool takes float masks only; the uint8 mask's loss is compared with the float one's
            compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, x, t, k,
                                 upstream=upstream_not_one)
            if tdtype != torch.float32:
                a, b = (value_and_grad(tsl.boundary_bce_dice_loss, x, m, k) for m in (t, t.to(tdtype)))
                assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_fused_2d_soft_targets(monkeypatch):
    """Soft (non 0/1) float masks: the vertical sums run in float64 along each strip, so the band
    agrees with avg_pool's except within rounding of the thresholds, as the window-sum pass does."""
    b = _blobs((1, 1, 150, 70), cells=25)
    j = torch.rand(b.shape) * 0.04  # windows inside a region average near 0.98 / 0.02: both thresholds
    t = b * (1 - j) + (1 - b) * j
    k = 41
    a = F.avg_pool2d(t, k, stride=1, padding=k // 2)
    with tsl.use_backend("triton"):
        got = boundary_bce_dice(torch.randn(t.shape), t, BoundaryBCEDiceOptions(kernel_size=k))[4].bool()
    want = ref.seed001_weight_map(t, k, normalize=False) > 1
    near = ((a.double() - 0.01).abs() < 1e-6) | ((a.double() - 0.99).abs() < 1e-6)
    assert torch.equal(got[~near], want[~near]) and 0 < int(want.sum()) < want.numel()


def test_fused_3d_many_segments_and_strides(monkeypatch):
    """Volumes cut into many D segments (each re-reads R halo slices before and after), strided
    inputs read in place: avg_pool3d's band, the reference's loss and gradient, no window-sum pass."""
    from triton_segloss.boundary import kernels

    monkeypatch.setattr(kernels, "STRIP_SEG_PER_R", 1)
    monkeypatch.setattr(kernels, "STRIP_SEG_MIN", 2)

    def no_window_sums(*a, **kw):
        raise AssertionError("the 3D fused forward ran the window-sum pass")

    monkeypatch.setattr(kernels, "_window_dh", no_window_sums)
    t = _blobs((2, 1, 17, 12, 13), cells=3)
    x = torch.randn(2, 1, 17, 12, 13) * 2
    for k in (3, 7):
        want_band = ref.seed001_weight_map(t[:, 0], k, spatial_dims=3, normalize=False)[:, None] != 1.0
        with tsl.use_backend("triton"):
            band = boundary_bce_dice(x, t.to(torch.uint8), BoundaryBCEDiceOptions(kernel_size=k))[4]
            assert torch.equal(band.bool(), want_band)
            compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, x, t, k,
                                 upstream=upstream_not_one)
    xs = torch.randn(2, 1, 13, 12, 17).transpose(2, 4)  # (2, 1, 17, 12, 13) with W the slowest axis
    ts = _blobs((2, 1, 12, 17, 13), cells=3).transpose(2, 3)
    with tsl.use_backend("triton"):
        compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, xs, ts, 5,
                             upstream=upstream_not_one)


def test_fused_2d_strided_inputs(monkeypatch):
    # channels_last logits and a transposed (non-contiguous) target read in place
    x = torch.randn(2, 1, 50, 70).to(memory_format=torch.channels_last)
    t = _blobs((2, 1, 70, 50), cells=3).transpose(-1, -2)
    with tsl.use_backend("triton"):
        for k in (7, 35):
            compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, x, t, k,
                                 upstream=upstream_not_one)


def test_loss_target_forms_and_no_foreground(backend):
    x = torch.randn(2, 1, 10, 9)
    t = _blobs((2, 1, 10, 9), cells=3)
    t[1] = 0
    compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, x, t[:, 0], 3)
    torch.testing.assert_close(tsl.boundary_bce_dice_loss(x, t.bool(), 3), tsl.boundary_bce_dice_loss(x, t, 3))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_loss_dtypes(backend, dtype):
    # a float64 run gets a float64 mask: float32 weights sum to N*H*W only to ~1e-8, and the fused
    # BCE divides by N*H*W where the seed divides by sum(w) (equal up to that rounding)
    x = (torch.randn(2, 1, 9, 8) * 2).to(dtype)
    t = _blobs((2, 1, 9, 8), 3).to(torch.float64 if dtype == torch.float64 else torch.float32)
    compare_to_reference(tsl.boundary_bce_dice_loss, ref.boundary_bce_dice_loss, x, t, 3)


def test_loss_gradcheck_fp64(backend):
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    t = _blobs((1, 1, 3, 4), cells=2).double()
    assert torch.autograd.gradcheck(lambda a: tsl.boundary_bce_dice_loss(a, t, 3, log_dice=True), (x,))


def test_loss_compile_module_and_determinism(backend):
    x = torch.randn(2, 1, 8, 8)
    t = _blobs((2, 1, 8, 8), cells=2)
    m = tsl.BoundaryBCEDiceLoss(kernel_size=3, log_dice=True)  # calls the functional: one compile covers both
    compiled_matches_eager(lambda a, b: m(a, b), x, t)
    torch.testing.assert_close(m(x, t), tsl.boundary_bce_dice_loss(x, t, 3, log_dice=True))
    bitwise_deterministic(tsl.boundary_bce_dice_loss, x, t, 3)


@pytest.mark.parametrize("fn", [
    lambda a, b: tsl.boundary_bce_dice_loss(a, b, 3),
    lambda a, b: tsl.boundary_bce_dice_loss(a, b, log_dice=True),  # kernel_size=None: from the height at run time
    lambda a, b: tsl.boundary_weight_map(b, 5).sum() * a.sum(),  # the map is a constant: the graph still holds it
    lambda a, b: recipes.combined_loss(a, b)[0] + recipes.combined_loss(a, b, is_weight=False)[2],
], ids=["loss", "loss_default_kernel", "weight_map", "combined_loss"])
def test_compile_dynamic_fullgraph(backend, fn):
    """torch.compile(fullgraph=True, dynamic=True): no graph break, one graph for three sizes, eager values."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    for shape in ((2, 1, 9, 7), (3, 1, 12, 10), (4, 1, 14, 11)):
        x, t = torch.randn(shape), _blobs(shape, cells=3)
        (a, ga), (b, gb) = (value_and_grad(f, x, t) for f in (compiled, fn))
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ga, gb, rtol=1e-6, atol=1e-7)
    assert counters["stats"]["unique_graphs"] == 1


# ---- offsets past 2^31 elements: a class-like axis (D, or the batch) with stride 2^30 ----------------

_FAR = 2**30


@pytest.fixture(scope="module")
def sparse_storage(tmp_path_factory):
    """2^31 + 2^16 float32 elements of a sparse memory-mapped file (8 GiB of address space)."""
    path = tmp_path_factory.mktemp("far") / "sparse.bin"
    numel = 2 * _FAR + 2**16
    big = sparse_mapping(path, numel)
    yield big
    del big
    path.unlink()



def _far(big, shape, strides, offset, values):
    v = big.as_strided(shape, strides, offset)
    v.copy_(values)
    return v


def _same_far_and_near(fn, x, t):
    """``fn`` on the far views and on small contiguous copies: same value and gradient, bit for bit."""
    outs = []
    for a, b in ((x, t), (x.clone(), t.clone())):
        a = a.detach().requires_grad_(True)
        loss = fn(a, b)
        outs.append((loss.detach(), torch.autograd.grad(loss, a)[0]))
    (lf, gf), (ln, gn) = outs
    assert torch.equal(lf, ln) and torch.equal(gf, gn)


def test_past_2_31_depth_stride(sparse_storage, in_place_interpreter):
    # (1, 1, 3, 4, 8) volumes whose slice d = 2 starts 2^31 elements in: every kernel multiplies d by 2^30
    shape, strides = (1, 1, 3, 4, 8), (3 * _FAR, 3 * _FAR, _FAR, 8, 1)
    x = _far(sparse_storage, shape, strides, 0, torch.randn(shape) * 3)
    t = _far(sparse_storage, shape, strides, 2**15, _blobs(shape, cells=2))
    with tsl.use_backend("triton"):
        for k in (1, 3):
            _same_far_and_near(lambda a, b: tsl.boundary_bce_dice_loss(a, b, k, log_dice=True), x, t)
            assert torch.equal(tsl.boundary_weight_map(t, k), tsl.boundary_weight_map(t.clone(), k))
        m = t[:, 0]  # (N, D, H, W) seen as a volume
        assert torch.equal(tsl.boundary_weight_map(m, 3, spatial_dims=3), tsl.boundary_weight_map(m.clone(), 3,
                                                                                                 spatial_dims=3))


def test_past_2_31_batch_stride(sparse_storage, in_place_interpreter):
    # (3, 1, 5, 8) images whose image n = 2 starts 2^31 elements in
    shape, strides = (3, 1, 5, 8), (_FAR, 40, 8, 1)
    x = _far(sparse_storage, shape, strides, 0, torch.randn(shape) * 3)
    t = _far(sparse_storage, shape, strides, 2**15, _blobs(shape, cells=2))
    with tsl.use_backend("triton"):
        _same_far_and_near(lambda a, b: tsl.boundary_bce_dice_loss(a, b, 3), x, t)
        _same_far_and_near(lambda a, b: recipes.combined_loss(a, b, is_weight=False)[0], x, t)
        assert torch.equal(tsl.boundary_weight_map(t, 3), tsl.boundary_weight_map(t.clone(), 3))


# ---- bad input -------------------------------------------------------------

def test_bad_inputs():
    t = torch.rand(2, 1, 8, 8).round()
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int"):
        tsl.boundary_weight_map(t, 4)
    with pytest.raises(TypeError, match="kernel_size must be an odd int or None"):
        tsl.boundary_weight_map(t, 5.0)
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        tsl.boundary_weight_map(t, 3, spatial_dims=1)
    with pytest.raises(ValueError, match=r"3 spatial dims, got \(8, 8\)"):
        tsl.boundary_weight_map(t[0, 0], 3, spatial_dims=3)
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\]"):
        tsl.boundary_weight_map(t * 2, 3)
    with pytest.raises(ValueError, match=r"target is empty"):
        tsl.boundary_weight_map(torch.zeros(0, 1, 8, 8), 3)
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        tsl.boundary_weight_map([[0, 1]], 3)
    with pytest.raises(ValueError, match=r"needs binary logits \(N, 1, \*spatial\), got logits \(2, 2, 8, 8\)"):
        tsl.boundary_bce_dice_loss(torch.randn(2, 2, 8, 8), t)
    with pytest.raises(ValueError, match=r"target must have the shape of logits \(2, 1, 8, 8\)"):
        tsl.boundary_bce_dice_loss(torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 9).round())
