"""Surface metrics against the brute-force float64 reference and MONAI, empty-mask conventions,
options, the custom op, compile and bad input."""

import warnings

import pytest
import torch

import triton_segloss as tsl
from triton_segloss.surface import hausdorff_distance, surface_dice, surface_distance
from reference import distance as ref

CASES = [((2, 3, 9, 7), None), ((2, 2, 8, 10), (2.0, 0.5)), ((1, 2, 6, 5, 7), (0.5, 1.3, 2.0))]
TOL = dict(rtol=1e-6, atol=1e-6, equal_nan=True)  # fp32 results vs fp64: distances below 20


def _masks(shape, p):
    a, b = torch.rand(shape) < p, torch.rand(shape) < p
    a[0, 0] = False
    b[0, 0] = False  # both empty: nan
    a[-1, 1] = False  # pred empty, target (almost surely) not: inf / 0
    return a, b


@pytest.mark.parametrize("shape,spacing", CASES, ids=str)
def test_matches_reference(backend, shape, spacing):
    for p in (0.05, 0.5):
        a, b = _masks(shape, p)
        for pc in (None, 95, 50.0, 0.0):
            h = hausdorff_distance(a, b, percentile=pc, spacing=spacing)
            assert h.shape == shape[:2] and h.dtype == torch.float32
            torch.testing.assert_close(h.double(), ref.hausdorff_distance(a, b, pc, spacing), **TOL)
        for sym in (True, False):
            torch.testing.assert_close(surface_distance(a, b, symmetric=sym, spacing=spacing).double(),
                                       ref.surface_distance(a, b, sym, spacing), **TOL)
        tol = [1.0, 2.5, 0.0][:shape[1]]
        torch.testing.assert_close(surface_dice(a, b, tolerance=tol, spacing=spacing).double(),
                                   ref.surface_dice(a, b, tol, spacing), **TOL)


def test_matches_monai(backend):
    M = pytest.importorskip("monai.metrics")
    worst = {"hd": 0.0, "asd": 0.0, "nsd": 0.0}

    def track(key, ours, theirs):
        torch.testing.assert_close(ours, theirs.float(), **TOL)
        fin = torch.isfinite(theirs)
        if fin.any():
            worst[key] = max(worst[key], (ours[fin] - theirs[fin]).abs().max().item())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape, sp in CASES:
            a, b = _masks(shape, 0.4)
            for pc in (None, 95):
                m = M.compute_hausdorff_distance(a.float(), b.float(), include_background=True, percentile=pc,
                                                 spacing=sp)
                if pc is not None:  # documented difference: one empty mask gives inf here, MONAI nan
                    m = torch.where(torch.isinf(hausdorff_distance(a, b)), float("inf"), m)
                track("hd", hausdorff_distance(a, b, percentile=pc, spacing=sp), m)
            for sym in (True, False):
                m = M.compute_average_surface_distance(a.float(), b.float(), include_background=True,
                                                       symmetric=sym, spacing=sp)
                track("asd", surface_distance(a, b, symmetric=sym, spacing=sp), m)
            tol = [1.0, 2.0, 0.5][:shape[1]]
            m = M.compute_surface_dice(a.float(), b.float(), tol, include_background=True, spacing=sp)
            track("nsd", surface_dice(a, b, tolerance=tol, spacing=sp), m)
            # include_background=False drops channel 0, as MONAI's default does
            m = M.compute_hausdorff_distance(a.float(), b.float(), percentile=None, spacing=sp)
            track("hd", hausdorff_distance(a, b, spacing=sp, include_background=False), m)
    assert worst["hd"] <= 1e-6 and worst["asd"] <= 1e-6 and worst["nsd"] == 0.0, worst


def test_hand_derived(backend):
    a = torch.zeros(1, 1, 7, 7, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[0, 0, 1, 1] = True  # a one-pixel border
    b[0, 0, 4, 5] = True
    d = (3 ** 2 + 4 ** 2) ** 0.5
    assert hausdorff_distance(a, b).item() == pytest.approx(d)
    assert surface_distance(a, b).item() == pytest.approx(d)
    assert surface_dice(a, b, tolerance=4.9).item() == 0.0
    assert surface_dice(a, b, tolerance=5.0).item() == 1.0
    assert hausdorff_distance(a, b, spacing=(2.0, 1.0)).item() == pytest.approx((36 + 16) ** 0.5)


def test_fp64(backend):
    a, b = _masks((2, 2, 6, 6), 0.5)
    h = hausdorff_distance(a.double(), b.double(), percentile=90)
    assert h.dtype == torch.float64
    torch.testing.assert_close(h, ref.hausdorff_distance(a, b, 90), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_backends_agree():
    a, b = _masks((2, 2, 7, 8), 0.3)
    with tsl.use_backend("torch"):
        x = surface_distance(a, b)
    with tsl.use_backend("triton"):
        y = surface_distance(a, b)
    torch.testing.assert_close(x, y, equal_nan=True, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph(dynamic):
    torch._dynamo.reset()
    a, b = _masks((2, 2, 6, 7), 0.4)
    f = torch.compile(lambda p, t: hausdorff_distance(p, t, percentile=95) + surface_dice(p, t, tolerance=1.0),
                      fullgraph=True, dynamic=dynamic, backend="aot_eager")
    torch.testing.assert_close(f(a, b), hausdorff_distance(a, b, percentile=95) + surface_dice(a, b, tolerance=1.0),
                               equal_nan=True)


def test_opcheck():
    from triton_segloss.surface.ops import surface_metric_op

    a = (torch.rand(2, 1, 5, 6) < 0.4).to(torch.uint8)
    b = (torch.rand(2, 1, 5, 6) < 0.4).to(torch.uint8)
    torch.library.opcheck(surface_metric_op.forward_op, (a, b, "hausdorff", 95.0, True, (1.0, 1.0, 1.0), 2, 1, ()),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static"))


@pytest.mark.parametrize("bad,exc,words", [
    (lambda: hausdorff_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5)), ValueError,
     ["pred", "target", "(1, 1, 4, 5)"]),
    (lambda: hausdorff_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), percentile=101), ValueError,
     ["percentile"]),
    (lambda: hausdorff_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), include_background=False),
     ValueError, ["include_background", "C = 1"]),
    (lambda: surface_dice(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), tolerance=[1.0]), ValueError,
     ["tolerance", "2"]),
    (lambda: surface_dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), tolerance=-1.0), ValueError,
     ["tolerance"]),
    (lambda: surface_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.int32)), TypeError,
     ["target", "int32"]),
])
def test_bad_input(bad, exc, words):
    with pytest.raises(exc) as e:
        bad()
    for w in words:
        assert w in str(e.value)


def test_no_host_sync_on_cuda_path():
    from bench import launches

    a, b = _masks((2, 2, 8, 8), 0.4)
    step = launches.count_step(lambda x, t: hausdorff_distance(x, t, percentile=95), a.float(), b, backward=False)
    assert step.syncs == 0, step.forward.ops
    assert sum(op.startswith("triton") for op in step.forward.ops) == 2  # one EDT pass per axis
