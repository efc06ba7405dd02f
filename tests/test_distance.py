"""Exact Euclidean distance transforms: both backends against a brute-force float64 reference
and scipy, empty/full slices, dtypes, layouts, the custom op, compile and the launch count."""

import pytest
import torch

import triton_segloss as tsl
from triton_segloss.distance import distance_transform, signed_distance_transform
from reference import distance as ref

CASES = [  # (shape, spacing)
    ((2, 3, 9, 7), None),
    ((2, 2, 8, 8), (2.0, 0.3)),
    ((1, 2, 6, 5, 7), (0.5, 1.3, 2.0)),
    ((3, 1, 11), (0.7,)),
    ((1, 1, 1, 5), None),
]
DENSITIES = [0.02, 0.3, 0.9]


def _check(actual, expected, dtype=torch.float32):
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    assert torch.equal(torch.isinf(actual), torch.isinf(expected))
    fin = torch.isfinite(expected)
    torch.testing.assert_close(actual.double()[fin], expected[fin], **tol)


@pytest.mark.parametrize("shape,spacing", CASES, ids=str)
def test_matches_brute_force(backend, shape, spacing):
    for p in DENSITIES:
        m = torch.rand(shape) < p
        m[0, 0] = False  # an empty slice: inf (signed: 0)
        if shape[1] > 1:
            m[0, 1] = True  # a full slice: 0 (signed: 0)
        d = distance_transform(m, spacing=spacing)
        assert d.dtype == torch.float32 and d.shape == m.shape and not d.requires_grad
        _check(d, ref.distance_transform(m, spacing))
        _check(signed_distance_transform(m, spacing=spacing), ref.signed_distance_transform(m, spacing))


def test_matches_scipy(backend):
    nd = pytest.importorskip("scipy.ndimage")
    worst = 0.0
    for shape, spacing in CASES[:4]:
        for p in (0.001, 0.05, 0.5):
            m = torch.rand(shape) < p
            sp = spacing or (1.0,) * (len(shape) - 2)
            d = distance_transform(m, spacing=spacing)
            s = signed_distance_transform(m, spacing=spacing)
            for n in range(shape[0]):
                for c in range(shape[1]):
                    a = m[n, c].numpy()
                    if not a.any():
                        assert torch.isinf(d[n, c]).all() and (s[n, c] == 0).all()
                        continue
                    out = torch.from_numpy(nd.distance_transform_edt(1 - a, sampling=sp))
                    worst = max(worst, (d[n, c].double() - out).abs().max().item())
                    if not a.all():
                        inn = torch.from_numpy(nd.distance_transform_edt(a, sampling=sp))
                        worst = max(worst, (s[n, c].double() - (out - inn)).abs().max().item())
    assert worst < 2e-6, worst  # fp32 results: a few ulps of distances below 20


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float32, torch.float64])
def test_dtypes(backend, dtype):
    m = torch.rand(2, 2, 6, 7) < 0.2
    d = distance_transform(m.to(dtype), spacing=(1.5, 0.5))
    want = torch.float64 if dtype == torch.float64 else torch.float32
    assert d.dtype == want
    _check(d, ref.distance_transform(m, (1.5, 0.5)), want)


def test_fp64_is_exact_integers(backend):
    """Unit spacing: squared distances are integers, so fp64 distances are sqrt of integers to 1 ulp."""
    m = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    m[0, 0, 2, 3] = 1
    d = distance_transform(m)
    i, j = torch.meshgrid(torch.arange(9.0, dtype=torch.float64), torch.arange(9.0, dtype=torch.float64),
                          indexing="ij")
    torch.testing.assert_close(d[0, 0], ((i - 2) ** 2 + (j - 3) ** 2).sqrt(), rtol=0, atol=1e-15)


def test_hand_derived_1d(backend):
    m = torch.tensor([[[0, 1, 0, 0, 0, 1, 0]]], dtype=torch.uint8)
    torch.testing.assert_close(distance_transform(m, spacing=2.0)[0, 0], torch.tensor([2., 0, 2, 4, 2, 0, 2]))
    torch.testing.assert_close(signed_distance_transform(m)[0, 0], torch.tensor([1., -1, 1, 2, 1, -1, 1]))


def test_non_contiguous_and_channels_last(backend):
    base = torch.rand(2, 3, 10, 12) < 0.15
    want = ref.distance_transform(base, None)
    _check(distance_transform(base.to(memory_format=torch.channels_last)), want)
    view = torch.rand(3, 2, 12, 20) < 0.15
    sl = view.transpose(0, 1)[:, :, ::2, 1::3]
    _check(distance_transform(sl), ref.distance_transform(sl.contiguous(), None))


def test_backends_agree_bitwise():
    m = torch.rand(2, 2, 5, 6, 7) < 0.1
    with tsl.use_backend("torch"):
        a = distance_transform(m, spacing=(0.7, 1.1, 1.9))
        sa = signed_distance_transform(m, spacing=(0.7, 1.1, 1.9))
    with tsl.use_backend("triton"):
        b = distance_transform(m, spacing=(0.7, 1.1, 1.9))
        sb = signed_distance_transform(m, spacing=(0.7, 1.1, 1.9))
    torch.testing.assert_close(a, b, rtol=2e-7, atol=0)  # same formula; sqrt and min are exact in both
    torch.testing.assert_close(sa, sb, rtol=2e-7, atol=2e-7)


def test_requires_grad_mask_gives_no_grad():
    m = (torch.rand(1, 1, 5, 5) < 0.3).float().requires_grad_(True)
    assert not distance_transform(m).requires_grad


def test_opcheck():
    from triton_segloss.distance.ops import DistanceOptions, distance_transform_op

    m = (torch.rand(2, 1, 5, 6) < 0.3).to(torch.uint8)
    for signed in (False, True):
        torch.library.opcheck(distance_transform_op.forward_op, (m, (1.0, 1.0, 0.5), 2, signed),
                              test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static",
                                          "test_aot_dispatch_dynamic"))
    assert DistanceOptions._fields == ("spacing", "ndim", "signed")


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph(dynamic):
    torch._dynamo.reset()
    m = torch.rand(2, 2, 7, 6) < 0.2
    f = torch.compile(lambda x: signed_distance_transform(x, spacing=(1.0, 2.0)) + distance_transform(x),
                      fullgraph=True, dynamic=dynamic, backend="aot_eager")
    torch.testing.assert_close(f(m), signed_distance_transform(m, spacing=(1.0, 2.0)) + distance_transform(m))


@pytest.mark.parametrize("bad,exc,words", [
    (lambda: distance_transform(torch.zeros(4, 4)), ValueError, ["mask", "(4, 4)"]),
    (lambda: distance_transform(torch.zeros(1, 1, 2, 2, 2, 2)), ValueError, ["mask", "(1, 1, 2, 2, 2, 2)"]),
    (lambda: distance_transform(torch.zeros(1, 1, 3, 3, dtype=torch.int64)), TypeError, ["mask", "int64"]),
    (lambda: distance_transform(torch.full((1, 1, 3, 3), 0.5)), ValueError, ["mask", "0.5"]),
    (lambda: distance_transform(torch.zeros(1, 1, 3, 3), spacing=(1.0,)), ValueError, ["spacing", "2"]),
    (lambda: distance_transform(torch.zeros(1, 1, 3, 3), spacing=-1.0), ValueError, ["spacing"]),
    (lambda: distance_transform(torch.zeros(1, 1, 3, 3), spacing=float("inf")), ValueError, ["spacing"]),
    (lambda: distance_transform([[0, 1]]), TypeError, ["mask"]),
    (lambda: distance_transform(torch.zeros(1, 0, 3)), ValueError, ["mask", "(1, 0, 3)"]),
])
def test_bad_input(bad, exc, words):
    with pytest.raises(exc) as e:
        bad()
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (1, 2, 6, 6, 6), (2, 1, 9)])
@pytest.mark.parametrize("signed", [False, True])
def test_launches_one_per_axis_no_sync(shape, signed):
    from bench import launches

    fn = signed_distance_transform if signed else distance_transform
    m = (torch.rand(shape) < 0.3).float()
    step = launches.count_step(lambda x, t: fn(x), m, None, backward=False)
    ops = step.forward.ops
    assert step.syncs == 0, ops
    assert step.launches == len(shape) - 2, ops
    assert all(op.startswith("triton") for op in ops), ops
