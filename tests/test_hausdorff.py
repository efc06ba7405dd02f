"""Distance-map losses: the Hausdorff DT loss and the boundary loss (triton_segloss.hausdorff).

The op (``_hausdorff_from_fields`` / ``_boundary_from_fields``) is tested with distance maps
from scipy against the float64 reference; the public functions (fields from the distance
family's EDT) against the reference and against MONAI's HausdorffDTLoss.
"""

import itertools

import pytest
import torch

import triton_segloss as tsl
from checks import compiled_matches_eager, upstream_not_one, value_and_grad
from tolerances import assert_grad, assert_value
from triton_segloss.hausdorff import api

scipy = pytest.importorskip("scipy")
from reference import hausdorff as R  # noqa: E402  (needs scipy)

MODES = {"binary": 1, "multilabel": 3, "multiclass": 3}


def _target(mode, c, shape, *, empty=None, full=None):
    n, *sp = shape
    if mode == "multiclass":
        y = torch.randint(0, c, (n, *sp))
        if empty is not None:
            y[y == empty] = (empty + 1) % c
        if full is not None:
            y[0] = full
        return y
    t = (torch.rand(n, c, *sp) > 0.5).float()
    if empty is not None:
        t[:, empty] = 0
    if full is not None:
        t[0, full] = 1
    return t


def _fields(kind, x, t, mode, from_logits=True):
    p, oh = R.probs_onehot(x, t, mode, from_logits)
    if kind == "hausdorff":
        return R.field(p > 0.5), R.field(oh > 0.5)
    m = oh > 0.5
    return R.distance_to(m), R.distance_to(~m)


def _from_fields(kind, fa, fb):
    f = api._hausdorff_from_fields if kind == "hausdorff" else api._boundary_from_fields
    def fn(x, t, **kw):  # fields in fp64 for fp64 logits, else fp32 as the EDT returns them
        dt = torch.float64 if x.dtype == torch.float64 else torch.float32
        return f(x, t, fa.to(dt), fb.to(dt), **kw)

    return fn


def _ref(kind):
    return R.hausdorff_dt_loss if kind == "hausdorff" else R.boundary_loss


CASES = [
    # (kind, mode, spatial, options)
    ("hausdorff", "binary", (8, 8), {}),
    ("hausdorff", "binary", (6, 6, 6), {"alpha": 1.0, "reduction": "sum", "per_image": True}),
    ("hausdorff", "multilabel", (8, 8), {"include_background": True, "reduction": "none"}),
    ("hausdorff", "multilabel", (5, 7), {"alpha": 1.5, "reduction": "none", "per_image": True}),
    ("hausdorff", "multiclass", (8, 8), {}),
    ("hausdorff", "multiclass", (6, 6, 6), {"alpha": 0.0, "include_background": True, "reduction": "sum"}),
    ("hausdorff", "multiclass", (7, 5), {"reduction": "none", "per_image": True, "from_logits": False}),
    ("boundary", "binary", (8, 8), {}),
    ("boundary", "multilabel", (6, 6, 6), {"reduction": "none", "per_image": True}),
    ("boundary", "multiclass", (8, 8), {}),
    ("boundary", "multiclass", (6, 6, 6), {"include_background": True, "reduction": "sum"}),
    ("boundary", "multiclass", (7, 5), {"reduction": "none", "from_logits": False}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{len(c[2])}d-{c[3]}")
def test_op_matches_reference(backend, case, dtype):
    """Value and gradient (upstream not one) with scipy's fields, empty and full classes included."""
    kind, mode, sp, opts = case
    c = MODES[mode]
    shape = (2, *sp)
    x = torch.randn(2, c, *sp, dtype=dtype)
    t = _target(mode, c, shape, empty=(1 if c > 1 else None), full=(2 if mode == "multilabel" else None))
    if not opts.get("from_logits", True):
        x = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
    fa, fb = _fields(kind, x, t, mode, opts.get("from_logits", True))
    loss, grad = value_and_grad(_from_fields(kind, fa, fb), x, t, upstream=upstream_not_one, mode=mode, **opts)
    ref_loss, ref_grad = value_and_grad(_ref(kind), x.double(), t, upstream=upstream_not_one, mode=mode, **opts)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert loss.shape == ref_loss.shape and grad.dtype == dtype
    assert_value(loss, ref_loss, dtype)
    assert_grad(grad, ref_grad, dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_logits(backend, dtype):
    x = torch.randn(2, 3, 8, 8).to(dtype)
    t = _target("multiclass", 3, (2, 8, 8))
    fa, fb = _fields("hausdorff", x, t, "multiclass")
    loss, grad = value_and_grad(_from_fields("hausdorff", fa, fb), x, t, mode="multiclass")
    ref_loss, ref_grad = value_and_grad(R.hausdorff_dt_loss, x.double(), t, mode="multiclass")
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    assert_value(loss, ref_loss, dtype)
    assert_grad(grad, ref_grad, dtype)


def test_public_functions_match_reference(backend):
    """The fields from the distance family's EDT: the whole loss against scipy's reference."""
    for kind, mode, sp in (("hausdorff", "multiclass", (8, 8)), ("hausdorff", "multilabel", (5, 5, 5)),
                           ("boundary", "multiclass", (5, 5, 5)), ("boundary", "binary", (8, 8))):
        c = MODES[mode]
        x = torch.randn(2, c, *sp, dtype=torch.float64)
        t = _target(mode, c, (2, *sp), empty=(1 if c > 1 else None))
        fn = tsl.hausdorff.hausdorff_dt_loss if kind == "hausdorff" else tsl.hausdorff.boundary_loss
        loss, grad = value_and_grad(fn, x, t, mode=mode, spacing=(1.5,) + (1.0,) * (len(sp) - 1))
        ref_loss, ref_grad = value_and_grad(_ref(kind), x, t, mode=mode, spacing=(1.5,) + (1.0,) * (len(sp) - 1))
        assert_value(loss, ref_loss, torch.float64)
        assert_grad(grad, ref_grad, torch.float64)


# ---- MONAI's HausdorffDTLoss as the spec ----------------------------------------------------------

def _monai(x, t, mode, alpha, include_background, per_image, reduction):
    from monai.losses import HausdorffDTLoss

    loss = HausdorffDTLoss(alpha=alpha, include_background=include_background, to_onehot_y=mode == "multiclass",
                           sigmoid=mode != "multiclass", softmax=mode == "multiclass", reduction=reduction,
                           batch=not per_image)
    out = loss(x, t.unsqueeze(1) if mode == "multiclass" else t)
    return out.flatten(2).squeeze(-1) if reduction == "none" else out


def _monai_configs():
    g = torch.Generator().manual_seed(5)
    combos = list(itertools.product(MODES, (2.0, 1.0, 0.5), (False, True), (False, True), ("mean", "sum", "none"),
                                    ((8, 8), (5, 6, 4))))
    idx = torch.randperm(len(combos), generator=g)[:36].tolist()
    return [combos[i] for i in idx]


@pytest.mark.filterwarnings("ignore:single channel prediction")
def test_hausdorff_matches_monai():
    """36 random configurations on the PyTorch path (6 on the kernels, below), empty classes,
    full classes and empty predictions included: largest value and gradient differences."""
    pytest.importorskip("monai")
    worst_v = worst_g = 0.0
    for i, (mode, alpha, inc, per, red, sp) in enumerate(_monai_configs()):
        c = MODES[mode]
        x = torch.randn(2, c, *sp) * 3
        t = _target(mode, c, (2, *sp), empty=(i % c if c > 1 and i % 2 else None),
                    full=(0 if i % 3 == 0 and mode != "binary" else None))
        if i % 4 == 1:
            x[1, c - 1] = -abs(x[1, c - 1]) - 5  # an empty prediction (sigmoid) or a never-winning class
        backend = "triton" if i < 6 else "torch"
        with tsl.use_backend(backend):
            loss, grad = value_and_grad(tsl.hausdorff.hausdorff_dt_loss, x, t, mode=mode, alpha=alpha,
                                        include_background=inc, per_image=per, reduction=red)
        m_loss, m_grad = value_and_grad(_monai, x, t, mode, alpha, inc, per, red)
        assert loss.shape == m_loss.shape, (mode, red, per)
        dv = float((loss - m_loss).abs().max() / m_loss.abs().max().clamp_min(1e-30))
        dg = float((grad - m_grad).abs().max() / m_grad.abs().max().clamp_min(1e-30))
        worst_v, worst_g = max(worst_v, dv), max(worst_g, dg)
        torch.testing.assert_close(loss, m_loss, rtol=2e-6, atol=1e-6)
        torch.testing.assert_close(grad, m_grad, rtol=2e-5, atol=1e-7)
    print(f"\nvs MONAI HausdorffDTLoss: largest relative value difference {worst_v:.2e}, gradient {worst_g:.2e}")


# ---- hand-derived cases ---------------------------------------------------------------------------

def test_hausdorff_hand_case(backend):
    """1x4 image, target [0, 1, 1, 0] (field 1 everywhere), probabilities [.2, .6, .4, .1] (mask
    [0, 1, 0, 0], field [1, 1, 1, 2]); alpha 2: D = [2, 2, 2, 5], (p - t)^2 = [.04, .16, .36, .01]."""
    p = torch.tensor([0.2, 0.6, 0.4, 0.1], dtype=torch.float64).view(1, 1, 1, 4)
    t = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 1, 4)
    loss = tsl.hausdorff.hausdorff_dt_loss(p, t, from_logits=False)
    assert abs(float(loss) - (0.08 + 0.32 + 0.72 + 0.05) / 4) < 1e-12


def test_boundary_hand_case(backend):
    """Labels [0, 1, 1, 1, 0, 0]: class 1's phi = [1, 0, -1, 0, 1, 2] (the paper's code: inside
    -(edt - 1)); with p_1 = [.5, 1, 1, 1, 0, 0] the mean of p * phi is (0.5 - 1) / 6."""
    y = torch.tensor([0, 1, 1, 1, 0, 0]).view(1, 1, 6)
    p1 = torch.tensor([0.5, 1, 1, 1, 0, 0], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1]).view(1, 2, 1, 6)
    loss = tsl.hausdorff.boundary_loss(probs, y, from_logits=False)
    assert abs(float(loss) + 0.5 / 6) < 1e-12
    # an absent class (and a class filling the image) has phi = 0: loss 0 and zero gradient
    x = torch.randn(1, 2, 1, 6, dtype=torch.float64, requires_grad=True)
    for labels in (torch.zeros(1, 1, 6, dtype=torch.long), torch.ones(1, 1, 6, dtype=torch.long)):
        loss = tsl.hausdorff.boundary_loss(x, labels)
        (g,) = torch.autograd.grad(loss, x)
        assert float(loss) == 0.0 and torch.count_nonzero(g) == 0


def test_gradcheck(backend):
    """fp64 gradcheck with fixed fields (each interpreted launch is slow: tiny shapes, two kernels' cases
    on the Triton backend, all four on the PyTorch path)."""
    cases = (("hausdorff", "multiclass"), ("boundary", "binary"), ("hausdorff", "multilabel"), ("boundary", "multiclass"))
    for kind, mode in cases[:2] if backend == "triton" else cases:
        c = MODES[mode]
        x = torch.randn(2, c, 3, 3, dtype=torch.float64, requires_grad=True)
        t = _target(mode, c, (2, 3, 3))
        fa, fb = _fields(kind, x, t, mode)
        fn = _from_fields(kind, fa, fb)
        assert torch.autograd.gradcheck(lambda a: fn(a, t, mode=mode, reduction="none", per_image=True), (x,))


def test_opcheck(backend):
    from triton_segloss.hausdorff.ops import DistanceLossOptions, distance_weighted

    x = torch.randn(2, 3, 20, requires_grad=True)
    y = torch.randint(0, 3, (2, 1, 20))
    m = (torch.rand(2, 3, 20) > 0.5).float()
    fa, fb = torch.rand(2, 3, 20) * 3, torch.rand(2, 3, 20) * 3
    fb[0, 1] = float("inf")
    cases = [((x, m, fa, fb), DistanceLossOptions()),
             ((x, y, fa, fb), DistanceLossOptions(multiclass=True, alpha=1.5, skip_background=True,
                                                  reduction="none")),
             ((x, y, fa, fb), DistanceLossOptions(kind="boundary", multiclass=True, per_image=False,
                                                  reduction="none")),
             ((x, m, fa, fb), DistanceLossOptions(kind="boundary", reduction="sum", per_image=False))]
    for tensors, o in cases:
        torch.library.opcheck(distance_weighted.forward_op, (*tensors, *o))
    for tensors, o in cases:
        tensors = (tensors[0].detach(),) + tensors[1:]
        out = distance_weighted(*tensors, o)
        torch.library.opcheck(distance_weighted.backward_op, (torch.randn_like(out), *tensors, *o))


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph(backend, dynamic):
    import os

    torch._dynamo.reset()
    x = torch.randn(2, 3, 6, 6)
    t = _target("multiclass", 3, (2, 6, 6))
    be = os.environ.get("TSL_COMPILE_BACKEND", "aot_eager")
    for fn, kw in ((tsl.hausdorff.hausdorff_dt_loss, dict(mode="multiclass", alpha=1.5)),
                   (tsl.hausdorff.boundary_loss, dict(reduction="none")),
                   (tsl.hausdorff.dice_boundary_loss, dict(alpha=0.3))):
        compiled = torch.compile(lambda a, b: fn(a, b, **kw).sum(), fullgraph=True, dynamic=dynamic, backend=be)
        loss, grad = value_and_grad(compiled, x, t)
        eager_loss, eager_grad = value_and_grad(lambda a, b: fn(a, b, **kw).sum(), x, t)
        torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-7)


def test_compile_from_fields(backend):
    x = torch.randn(2, 1, 6, 6)
    t = _target("binary", 1, (2, 6, 6))
    fa, fb = _fields("hausdorff", x, t, "binary")
    compiled_matches_eager(_from_fields("hausdorff", fa, fb), x, t)


def test_launch_budget_of_the_op():
    """The op alone: forward + finisher + backward = 3 launches, 0 syncs."""
    from bench import launches

    x = torch.randn(2, 3, 8, 8)
    t = _target("multiclass", 3, (2, 8, 8))
    fa, fb = _fields("hausdorff", x, t, "multiclass")
    fa, fb = fa.float(), fb.float()
    op = launches.count_step(lambda a, b: api._hausdorff_from_fields(a, b, fa, fb, mode="multiclass"), x, t)
    assert op.syncs == 0 and op.launches == 3, op.forward.ops + op.backward.ops


BUDGET = [  # (mode, C, spatial): 2D and 3D, binary and multiclass (and multilabel in 2D)
    ("binary", 1, (16, 16)), ("multiclass", 4, (16, 16)), ("multilabel", 3, (16, 16)),
    ("binary", 1, (4, 8, 8)), ("multiclass", 3, (3, 4, 4)),  # the count does not depend on the size
]


@pytest.mark.parametrize("kind", ["hausdorff", "boundary"])
@pytest.mark.parametrize("mode,c,sp", BUDGET, ids=lambda v: str(v))
def test_launch_budget(kind, mode, c, sp):
    """A training step of the public loss: one EDT launch per spatial axis for every field at once
    (the masks are thresholded inside the first pass), then forward + finisher + backward; no other
    device op (no threshold, one-hot, complement, cat, cast or add), no host sync."""
    from bench import launches

    fn = tsl.hausdorff.hausdorff_dt_loss if kind == "hausdorff" else tsl.hausdorff.boundary_loss
    x = torch.randn(2, c, *sp)
    step = launches.count_step(lambda a, b: fn(a, b, mode=mode), x, _target(mode, c, (2, *sp)))
    ops = step.forward.ops + step.backward.ops
    assert step.syncs == 0, ops
    assert step.launches == len(sp) + 3, ops
    assert all(op.startswith("triton") for op in ops), ops
    assert sum("_fields_first_pass_kernel" in op for op in ops) == 1, ops


# ---- the fields op: the EDT reads the logits and the target itself ----------------------------------

FIELD_CASES = [  # (mode, C, spatial, from_logits, spacing)
    ("multiclass", 3, (11,), True, None),  # one spatial axis: the first pass is also the last
    ("binary", 1, (7, 5), True, (1.5, 0.7)),
    ("multilabel", 3, (3, 5, 4), True, (2.0, 1.0, 0.5)),
    ("multiclass", 3, (3, 2, 4), False, None),
    ("binary", 1, (6,), False, None),
]


@pytest.mark.parametrize("case,dtype", [(c, torch.float32) for c in FIELD_CASES] +
                         [(c, torch.float64) for c in FIELD_CASES[:3]], ids=lambda c: str(c)[:40])
def test_fields_match_scipy(backend, case, dtype):
    """``ops.loss_fields`` against scipy's EDT of the masks built the plain way (the reference's
    probabilities > 0.5, the target's one-hot > 0.5): an empty class, a full one, an empty
    prediction, strided logits and a (N, *spatial) bool target included."""
    from triton_segloss.hausdorff.api import _fields, _prepare

    mode, c, sp, from_logits, spacing = case
    x = (torch.randn(2, c, *sp, dtype=dtype) * 3).transpose(0, 1).contiguous().transpose(0, 1)  # (C, N) strides
    t = _target(mode, c, (2, *sp), empty=(1 if c > 1 else None), full=(2 if mode == "multilabel" else None))
    if mode == "binary":
        t = t[:, 0] > 0.5  # a bool (N, *spatial) target
        x[1] = -abs(x[1])  # an empty prediction in image 1
    if not from_logits:
        x = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
    p, oh = R.probs_onehot(x, t, mode, from_logits)
    want = {"hausdorff": (R.field(p > 0.5, spacing), R.field(oh > 0.5, spacing)),
            "boundary": (R.distance_to(oh > 0.5, spacing), R.distance_to(oh <= 0.5, spacing))}
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    for kind, (wa, wb) in want.items():
        fa, fb = _fields(x, _prepare(x, t, mode, from_logits), kind, mode, from_logits, spacing)
        assert fa.dtype == dtype and fa.shape == x.shape and not fa.requires_grad
        for got, ref in ((fa, wa), (fb, wb)):
            if kind == "hausdorff":  # an empty or full mask: inf here, 0 in the reference (MONAI's field)
                got = torch.where(torch.isinf(got), 0.0, got)
            assert torch.equal(torch.isinf(got), torch.isinf(ref)), kind
            fin = torch.isfinite(ref)
            torch.testing.assert_close(got.double()[fin], ref[fin], **tol)


def test_fields_backends_agree():
    """The Triton first pass (threshold + softmax in registers) and the PyTorch path's masks give
    bitwise the same fields (the same squared distances, one sqrt each, one add)."""
    from triton_segloss.hausdorff.api import _fields, _prepare

    x = torch.randn(2, 3, 4, 6, 5)
    y = _target("multiclass", 3, (2, 4, 6, 5), empty=2)
    out = []
    for be in ("triton", "torch"):
        with tsl.use_backend(be):
            out.append([f for kind in ("hausdorff", "boundary")
                        for f in _fields(x, _prepare(x, y, "multiclass", True), kind, "multiclass", True,
                                         (0.7, 1.1, 1.9))])
    for a, b in zip(*out):
        assert torch.equal(a, b)


def test_fields_opcheck(backend):
    from triton_segloss.hausdorff.ops import FieldOptions, loss_fields

    x = torch.randn(2, 3, 5, 6)
    y = torch.randint(0, 3, (2, 5, 6))
    m = (torch.rand(2, 3, 5, 6) > 0.5).float()
    cases = ((y, FieldOptions(multiclass=True, spacing=(1.0, 1.0, 2.0))),
             (m, FieldOptions(kind="boundary", from_logits=False, spacing=(1.0, 0.5, 1.0))))
    for t, o in cases[:1] if backend == "triton" else cases:  # each interpreted launch is slow
        torch.library.opcheck(loss_fields.forward_op, (x, t, *o))


# ---- the combination and the schedule -------------------------------------------------------------

DB_CASES = [  # (mode, C, spatial, options)
    ("multiclass", 3, (6, 6), {"region": "generalized_dice"}),
    ("multiclass", 4, (5, 4, 3), {"region": "dice", "include_background": True}),
    ("binary", 1, (7, 5), {"region": "generalized_dice"}),
    ("multilabel", 3, (6, 6), {"region": "dice", "from_logits": False}),
]


@pytest.mark.parametrize("case", DB_CASES, ids=lambda c: f"{c[0]}-{len(c[2])}d-{c[3]}")
def test_dice_boundary_loss(backend, case):
    """The fused op (the region sums share the boundary term's pixel pass, one finisher, one backward)
    against the unfused sum: the Dice family's loss with per_image=True and the float64 boundary
    reference; value and gradient, upstream not one, an image without one of the classes."""
    mode, c, sp, kw = case
    x = torch.randn(2, c, *sp, dtype=torch.float64) * 2
    t = _target(mode, c, (2, *sp), empty=(1 if c > 1 else None), full=(2 if mode == "multilabel" else None))
    if mode == "multiclass":
        t[0][t[0] == 2] = 0  # class 2 absent from image 0 only: generalized Dice's largest-weight rule
    if not kw.get("from_logits", True):
        x = torch.sigmoid(x)
    region = tsl.generalized_dice_loss if kw["region"] == "generalized_dice" else tsl.dice_loss
    fl = kw.get("from_logits", True)

    def unfused(a, b):
        return 0.7 * region(a, b, mode=mode, per_image=True, from_logits=fl) + 0.3 * R.boundary_loss(
            a, b, mode=mode, include_background=kw.get("include_background", False), from_logits=fl)

    got, g_got = value_and_grad(tsl.hausdorff.dice_boundary_loss, x, t, upstream=upstream_not_one, mode=mode,
                                alpha=0.3, **kw)
    want, g_want = value_and_grad(unfused, x, t, upstream=upstream_not_one)
    assert got.dtype == torch.float64 and got.shape == ()
    assert_value(got, want, torch.float64)
    assert_grad(g_got, g_want, torch.float64)
    if case == DB_CASES[0]:  # float32 logits: float32 partials, the float64 finisher
        g32 = value_and_grad(tsl.hausdorff.dice_boundary_loss, x.float(), t, mode=mode, alpha=0.3, **kw)[1]
        assert_grad(g32, value_and_grad(unfused, x, t)[1], torch.float32)


def test_dice_boundary_gradcheck(backend):
    """fp64 gradcheck of the fused op with fixed maps (the EDT would rerun per evaluation)."""
    from triton_segloss.hausdorff.ops import DiceBoundaryOptions, dice_boundary

    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    y = _target("multiclass", 3, (2, 1, 6))
    fa, fb = _fields("boundary", x, y.view(2, 6), "multiclass")
    fa, fb = fa.view(2, 3, 6), fb.view(2, 3, 6)
    for region in ("generalized_dice", "dice") if backend == "torch" else ("generalized_dice",):
        o = DiceBoundaryOptions(region=region, weight=0.4)
        assert torch.autograd.gradcheck(lambda a: dice_boundary(a, y.view(2, 1, 6), fa, fb, o)[0], (x,))


def test_dice_boundary_opcheck(backend):
    from triton_segloss.hausdorff.ops import DiceBoundaryOptions, dice_boundary

    x = torch.randn(2, 3, 20)
    y = torch.randint(0, 3, (2, 1, 20))
    m = (torch.rand(2, 3, 20) > 0.5).float()
    fa, fb = torch.rand(2, 3, 20) * 3, torch.rand(2, 3, 20) * 3
    fb[0, 1] = float("inf")
    for t, o in ((y, DiceBoundaryOptions(weight=0.3)),
                 (m, DiceBoundaryOptions(multiclass=False, region="dice", skip_background=False, weight=0.8))):
        torch.library.opcheck(dice_boundary.forward_op, (x, t, fa, fb, *o))
        loss, coef = dice_boundary(x, t, fa, fb, o)
        torch.library.opcheck(dice_boundary.backward_op, (torch.randn_like(loss), coef, x, t, fa, fb, *o))


@pytest.mark.parametrize("mode,c,sp", BUDGET[:2] + BUDGET[3:], ids=lambda v: str(v))
def test_dice_boundary_launch_budget(mode, c, sp):
    """The combination: the target maps' EDT (one launch per spatial axis) + pixel pass + finisher +
    backward; no torch op."""
    from bench import launches

    x = torch.randn(2, c, *sp)
    step = launches.count_step(lambda a, b: tsl.hausdorff.dice_boundary_loss(a, b, mode=mode, alpha=0.3), x,
                               _target(mode, c, (2, *sp)))
    ops = step.forward.ops + step.backward.ops
    assert step.syncs == 0, ops
    assert step.launches == len(sp) + 3, ops
    assert all(op.startswith("triton") for op in ops), ops


def test_boundary_loss_schedule():
    s = tsl.hausdorff.BoundaryLossSchedule()
    alphas = [s.alpha] + [s.step() for _ in range(200)]
    assert alphas[0] == 0.01 and abs(alphas[1] - 0.02) < 1e-12 and alphas[-1] == 0.99
    s2 = tsl.hausdorff.BoundaryLossSchedule()
    s2.load_state_dict(s.state_dict())
    assert s2.alpha == s.alpha


# ---- bad input ------------------------------------------------------------------------------------

def test_bad_input():
    x = torch.randn(2, 3, 6, 6)
    y = torch.randint(0, 3, (2, 6, 6))
    h, b = tsl.hausdorff.hausdorff_dt_loss, tsl.hausdorff.boundary_loss
    with pytest.raises(ValueError, match="mode"):
        h(x, y, mode="softmax")
    with pytest.raises(ValueError, match="one channel"):
        h(x, y.float(), mode="binary")
    with pytest.raises(ValueError, match="alpha"):
        h(x, y, mode="multiclass", alpha=-1.0)
    with pytest.raises(ValueError, match=r"target.*\(2, 6, 6\)"):
        h(x, y[:, :5], mode="multiclass")
    with pytest.raises(TypeError, match="target"):
        b(x, y.float())
    with pytest.raises(ValueError, match=r"target.*shape of logits"):
        b(x, (torch.rand(2, 2, 6, 6) > 0.5).float(), mode="multilabel")
    with pytest.raises(TypeError, match="logits"):
        b(y, y)
    with pytest.raises(ValueError, match="labels"):
        b(x, y + 3)
    with pytest.raises(ValueError, match="reduction"):
        h(x, y, mode="multiclass", reduction="avg")
    with pytest.raises(ValueError, match="probabilities"):
        b(x, y, from_logits=False)
    with pytest.raises(ValueError, match="spatial"):
        b(torch.randn(2, 3), torch.randint(0, 3, (2,)))
    with pytest.raises(ValueError, match="alpha"):
        tsl.hausdorff.dice_boundary_loss(x, y, alpha=1.5)
    with pytest.raises(ValueError, match="region"):
        tsl.hausdorff.dice_boundary_loss(x, y, alpha=0.5, region="iou")
    with pytest.raises(ValueError, match="start"):
        tsl.hausdorff.BoundaryLossSchedule(start=0.5, max=0.2)
