"""clDice (Shit et al. 2021) and Dice + clDice: float64 reference, MONAI's SoftclDiceLoss /
SoftDiceclDiceLoss (1.6) on probability maps, both backends, gradcheck, opcheck, compile."""

import pytest
import torch

from checks import compare_to_reference, compiled_matches_eager, upstream_not_one, value_and_grad
from reference import cldice as ref
from triton_segloss.cldice import cldice_loss, dice_cldice_loss


def _target(shape, mode):
    if mode == "multiclass":
        return torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]))
    return (torch.rand(shape) < 0.5).float()


CASES = [
    ((2, 1, 8, 8), "binary", {}),
    ((2, 3, 8, 8), "multiclass", {"include_background": False}),
    ((1, 2, 6, 6, 6), "multilabel", {"iterations": 2, "reduction": "sum"}),
    ((2, 2, 7, 9), "multilabel", {"iterations": 4, "reduction": "none"}),
]


@pytest.mark.parametrize("shape,mode,opts", CASES, ids=lambda v: str(v))
def test_matches_reference(backend, shape, mode, opts):
    x = torch.randn(shape) * 2
    t = _target(shape, mode)
    compare_to_reference(cldice_loss, ref.cldice_loss, x, t, mode=mode, upstream=upstream_not_one, **opts)
    if opts.get("reduction") != "none":
        compare_to_reference(dice_cldice_loss, ref.dice_cldice_loss, x, t, mode=mode, alpha=0.3,
                             upstream=upstream_not_one, **opts)


def test_multi_tile_fp64(backend):
    """Larger than one kernel tile (22 x 22 in 2D, 6^3 in 3D at iterations=3): tile seams and halos."""
    for shape, it in (((1, 1, 40, 37), 3), ((1, 1, 9, 13, 8), 1)):
        x = torch.randn(shape, dtype=torch.float64)
        compare_to_reference(cldice_loss, ref.cldice_loss, x, _target(shape, "binary").double(), iterations=it)


@pytest.mark.parametrize("shape,iterations,include_background", [
    ((2, 3, 8, 8), 3, True), ((2, 3, 8, 8), 1, False), ((1, 2, 6, 6, 6), 2, True), ((2, 1, 9, 7), 5, True),
])
def test_matches_monai(backend, shape, iterations, include_background):
    """from_logits=False takes probabilities exactly as MONAI; targets one-hot (multilabel mode)."""
    losses = pytest.importorskip("monai.losses")
    p = torch.rand(shape, dtype=torch.float64)
    t = (torch.rand(shape) < 0.4).double()
    kw = dict(mode="binary" if shape[1] == 1 else "multilabel", iterations=iterations,
              include_background=include_background, from_logits=False)
    m_cl = losses.SoftclDiceLoss(iter_=iterations, include_background=include_background)
    m_dc = losses.SoftDiceclDiceLoss(iter_=iterations, alpha=0.5, include_background=include_background)
    for ours, theirs in ((cldice_loss, m_cl), (dice_cldice_loss, m_dc)):
        loss, grad = value_and_grad(ours, p, t, **kw)
        want, want_grad = value_and_grad(lambda a, b: theirs(a, b), p, t)
        torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)


def test_multiclass_labels_match_monai_one_hot(backend):
    losses = pytest.importorskip("monai.losses")
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    lab = torch.randint(0, 3, (2, 8, 8))
    m = losses.SoftclDiceLoss(iter_=3, softmax=True, include_background=False, to_onehot_y=True)
    torch.testing.assert_close(cldice_loss(x, lab, mode="multiclass", include_background=False),
                               m(x, lab.unsqueeze(1)), rtol=1e-12, atol=1e-14)


def test_float32_and_channels_last(backend):
    x = torch.randn(2, 2, 8, 8).to(memory_format=torch.channels_last)
    compare_to_reference(cldice_loss, ref.cldice_loss, x, _target(x.shape, "multilabel"), mode="multilabel")


def test_gradcheck(backend):
    """fp64 on tiny inputs; random values keep every min/max away from ties. fast_mode (random
    projections, a few forwards) since each forward on the interpreter costs ~0.3 s."""
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    t = _target(x.shape, "multilabel").double()
    assert torch.autograd.gradcheck(lambda a: cldice_loss(a, t, mode="multilabel", iterations=2), (x,),
                                    fast_mode=True)
    lab = torch.randint(0, 3, (1, 4, 4, 4))
    x3 = torch.randn(1, 3, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: dice_cldice_loss(a, lab, mode="multiclass", iterations=1), (x3,),
                                    fast_mode=True)


def test_hand_derived_small_case(backend):
    """A 1x3 bar of ones in a 3x3 zero image, probabilities given: erosion empties it, so the
    skeleton of the target is the bar itself (S_T = T); with P = T, tprec = tsens = 1."""
    t = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    t[0, 0, 1] = 1.0
    loss = cldice_loss(t.clone(), t, from_logits=False, iterations=1)
    torch.testing.assert_close(loss, torch.tensor(1 - 2 / (2 + 1e-4), dtype=torch.float64))
    # P = 0: S_P = 0, tprec = 1 / 1, tsens = (0 + 1) / (3 + 1)
    loss0 = cldice_loss(torch.zeros_like(t), t, from_logits=False, iterations=1)
    tp, ts = 1.0, 0.25
    torch.testing.assert_close(loss0, torch.tensor(1 - 2 * tp * ts / (tp + ts + 1e-4), dtype=torch.float64))


def test_opcheck(backend):
    from triton_segloss.cldice.ops import ClDiceOptions, cldice

    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    lab = torch.randint(0, 3, (2, 6, 6))
    t = _target(x.shape, "multilabel")
    cases = [((x, lab), ClDiceOptions(mode="multiclass", include_background=False)),
             ((x, t), ClDiceOptions(mode="multilabel", reduction="none", iterations=1)),
             ((x, t), ClDiceOptions(mode="multilabel", reduction="sum", alpha=0.5))]
    for tensors, o in cases[:1 if backend == "triton" else 3]:  # each opcheck runs the op ~6 times
        torch.library.opcheck(cldice.forward_op, (*tensors, *o))
    for tensors, o in cases[1:2]:
        g = torch.randn(2) if o.reduction == "none" else torch.tensor(0.7)
        _, coef = cldice.forward_op(tensors[0].detach(), tensors[1], *o)
        torch.library.opcheck(cldice.backward_op, (g, coef, tensors[0].detach(), tensors[1], *o))


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph(backend, dynamic):
    x = torch.randn(2, 1, 8, 8)
    t = _target(x.shape, "binary")
    if not dynamic:
        compiled_matches_eager(dice_cldice_loss, x, t)
    else:
        torch._dynamo.reset()
        f = torch.compile(lambda a, b: cldice_loss(a, b, reduction="none").sum(), fullgraph=True, dynamic=True,
                          backend="aot_eager")
        for shape in ((2, 1, 8, 8), (3, 1, 7, 9)):
            xs, ts = torch.randn(shape), _target(shape, "binary")
            torch.testing.assert_close(f(xs, ts), cldice_loss(xs, ts, reduction="none").sum(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fn,shape,mode", [
    (cldice_loss, (2, 1, 9, 8), "binary"), (dice_cldice_loss, (2, 3, 8, 7), "multiclass"),
    (dice_cldice_loss, (1, 1, 4, 5, 6), "binary"), (cldice_loss, (1, 3, 4, 4, 5), "multiclass"),
    (cldice_loss, (1, 1, 20, 9, 9), "binary"), (dice_cldice_loss, (1, 2, 5, 18, 17), "multiclass"),
], ids=["2d-binary", "2d-multiclass", "3d-binary", "3d-multiclass", "3d-long-axis", "3d-long-axis-mc"])
def test_launch_budget(fn, shape, mode):
    """A training step on the CUDA code path: forward kernel + finisher + backward kernel, no host sync
    (it was 2 + ~380 torch ops in 2D, 2 + ~490 in 3D with the PyTorch reverse pass); a 3D axis over
    16 (the scatter form) adds the zero fill of the gradient buffer."""
    from bench import launches
    from triton_segloss.cldice import kernels

    x = torch.randn(shape)
    scatter = kernels._bwd_geometry(x, 3)[1]
    assert scatter == (x.dim() == 5 and max(shape[2:]) > 16)  # gather blocks: 32 x 16 x 16, 8 x 32 x 32
    step = launches.count_step(lambda a, b: fn(a, b, mode=mode), x, _target(shape, mode), backward=True)
    assert step.forward.launches == 2 and step.backward.launches == 1 + scatter, \
        step.forward.ops + step.backward.ops
    assert step.launches <= 4 and step.syncs == 0, step.forward.ops + step.backward.ops


@pytest.mark.parametrize("shape,iterations,include_background", [
    ((2, 1, 9, 8), 3, True), ((1, 3, 7, 8), 2, False), ((1, 2, 5, 6, 6), 2, True),
], ids=["2d-binary", "2d-multilabel", "3d-multilabel"])
def test_ties_match_monai(backend, shape, iterations, include_background):
    """Probabilities in {0, 1/2, 1}: nearly every pool has tied inputs and many relus sit at 0, so
    the gradient depends on the tie rule (kernels.py's docstring: first index within an axis
    pool and in the dilation's window, halves between equal axis minima). MONAI's autograd graph
    (max pools, torch.min) is the reference; the even-split reference (amin / amax) must differ,
    which shows the ties decide the gradient here."""
    losses = pytest.importorskip("monai.losses")
    p = torch.randint(0, 3, shape).double() / 2
    t = (torch.rand(shape) < 0.5).double()
    kw = dict(mode="binary" if shape[1] == 1 else "multilabel", iterations=iterations,
              include_background=include_background, from_logits=False)
    m_cl = losses.SoftclDiceLoss(iter_=iterations, include_background=include_background)
    m_dc = losses.SoftDiceclDiceLoss(iter_=iterations, alpha=0.5, include_background=include_background)
    for ours, theirs, even in ((cldice_loss, m_cl, ref.cldice_loss), (dice_cldice_loss, m_dc, ref.dice_cldice_loss)):
        loss, grad = value_and_grad(ours, p, t, **kw)
        want, want_grad = value_and_grad(lambda a, b: theirs(a, b), p, t)
        torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)
        _, even_grad = value_and_grad(even, p, t, **kw)
        assert (even_grad - want_grad).abs().max() > 1e-4


def test_ties_from_logits_multiclass_match_monai(backend):
    """Logits in {-1, 0, 1}: the softmax probabilities tie too, and the gradient goes through the
    softmax of every channel (the background's included, which the loss drops)."""
    losses = pytest.importorskip("monai.losses")
    x = torch.randint(-1, 2, (2, 3, 7, 6)).double()
    lab = torch.randint(0, 3, (2, 7, 6))
    m = losses.SoftclDiceLoss(iter_=2, softmax=True, include_background=False, to_onehot_y=True)
    loss, grad = value_and_grad(cldice_loss, x, lab, mode="multiclass", iterations=2, include_background=False)
    want, want_grad = value_and_grad(lambda a, b: m(a, b.unsqueeze(1)), x, lab)
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)


def test_backward_tile_seams(monkeypatch):
    """Blocks forced small (kernels.CAPS), so the forward and the backward run many tiles with
    halos in every tiled axis: seams and the backward's halo of 2 (iterations + 2) in 2D and 3D."""
    from triton_segloss.cldice import kernels

    monkeypatch.setitem(kernels.CAPS, "fwd2", 16)
    monkeypatch.setitem(kernels.CAPS, "bwd2", 16)
    monkeypatch.setitem(kernels.CAPS, "fwd3", 4)
    monkeypatch.setitem(kernels.CAPS, "bwd3", 8)
    for shape, it, mode in (((1, 1, 23, 19), 1, "binary"), ((1, 2, 20, 3, 4), 1, "multiclass")):
        x = torch.randn(shape, dtype=torch.float64)
        gm = kernels._geometry(x, 2 * (it + 2), kernels.CAPS["bwd3" if x.dim() == 5 else "bwd2"])
        assert gm["spatial_tiles"] >= 5 and max(gm["hd"], gm["hh"], gm["hw"]) == 2 * (it + 2), gm
        compare_to_reference(dice_cldice_loss, ref.dice_cldice_loss, x, _target(shape, mode), mode=mode,
                             iterations=it, upstream=upstream_not_one)


def _meta(shape):
    return torch.empty(shape, device="meta")


def test_backward_form_choice():
    """Gather form where its block (halo 2 (K + 2)) fits and is not twice the tiles; the scatter form
    (halo K + 2) for 3D volumes with an axis over 16; the PyTorch reverse pass only where neither fits."""
    from triton_segloss.cldice import kernels

    gm, scatter = kernels._bwd_geometry(_meta((2, 1, 256, 256)), 3)
    assert not scatter and gm["block"] == 4096 and gm["hh"] == 10, gm
    gm, scatter = kernels._bwd_geometry(_meta((2, 4, 64, 128, 128)), 3)  # MONAI's default iterations
    assert scatter and gm["block"] == 4096 and gm["hd"] == gm["hh"] == gm["hw"] == 5, gm
    gm, scatter = kernels._bwd_geometry(_meta((1, 1, 20, 9, 9)), 1)  # gather fits, at 5 tiles against 2
    assert scatter and gm["nd"] == 2, gm
    gm, scatter = kernels._bwd_geometry(_meta((1, 1, 12, 12, 12)), 5)  # whole block, no halo
    assert not scatter and gm["block"] == 4096, gm
    assert kernels._bwd_geometry(_meta((1, 1, 20, 20, 5)), 6) == (None, None)


SCATTER_CASES = [
    (cldice_loss, (1, 1, 13, 11), "binary", {"iterations": 1}),
    (dice_cldice_loss, (2, 3, 13, 11), "multiclass", {"iterations": 2, "include_background": False}),
    (cldice_loss, (2, 2, 12, 10), "multilabel", {"iterations": 2, "reduction": "none"}),
    (cldice_loss, (1, 1, 12, 12), "binary", {"iterations": 2, "from_logits": False}),
    (dice_cldice_loss, (1, 2, 5, 4, 6), "multilabel", {"iterations": 1}),
    (cldice_loss, (1, 3, 12, 10, 9), "multiclass", {"iterations": 2}),
]


@pytest.mark.parametrize("fn,shape,mode,opts", SCATTER_CASES,
                         ids=[f"{c[0].__name__}-{'x'.join(map(str, c[1]))}-{c[2]}" for c in SCATTER_CASES])
def test_scatter_backward_matches_reference(monkeypatch, fn, shape, mode, opts):
    """The scatter form forced, with blocks small enough for several tiles along every axis: each
    block pixel within K + 2 of its tile gets the tile's share, summed across tiles (fp64)."""
    from triton_segloss.cldice import kernels

    monkeypatch.setattr(kernels, "BWD_FORM", "scatter")
    monkeypatch.setitem(kernels.CAPS, "bwd2", 8)
    monkeypatch.setitem(kernels.CAPS, "bwd3", 4)
    x = torch.randn(shape, dtype=torch.float64) * 2
    if opts.get("from_logits") is False:
        x = torch.rand(shape, dtype=torch.float64)
    gm, scatter = kernels._bwd_geometry(x, opts["iterations"])
    assert scatter and gm["spatial_tiles"] >= (8 if x.dim() == 5 else 4), gm
    t = _target(shape, mode)
    if mode != "multiclass":
        t = t.double()
    kw = dict(mode=mode, **opts)
    if fn is dice_cldice_loss:
        kw["alpha"] = 0.3
    compare_to_reference(fn, getattr(ref, fn.__name__), x, t, upstream=upstream_not_one, **kw)


def test_scatter_gradcheck(monkeypatch):
    from triton_segloss.cldice import kernels

    monkeypatch.setattr(kernels, "BWD_FORM", "scatter")
    monkeypatch.setitem(kernels.CAPS, "bwd3", 4)
    x = torch.randn(1, 1, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    t = _target(x.shape, "binary").double()
    assert torch.autograd.gradcheck(lambda a: cldice_loss(a, t, iterations=1), (x,), fast_mode=True)


def test_scatter_opcheck_and_dynamic_compile(monkeypatch):
    """The scatter form (zeroed buffer, atomic adds, a cast for half inputs) behind the backward op:
    opcheck, and a fullgraph dynamic=True compile of a training step matching eager over two sizes."""
    from triton_segloss.cldice import kernels
    from triton_segloss.cldice.ops import ClDiceOptions, cldice

    monkeypatch.setattr(kernels, "BWD_FORM", "scatter")
    monkeypatch.setitem(kernels.CAPS, "bwd3", 4)
    x = torch.randn(1, 1, 5, 4, 6)
    t = _target(x.shape, "binary")
    o = ClDiceOptions(iterations=1)
    assert kernels._bwd_geometry(x, 1)[1]
    _, coef = cldice.forward_op(x, t, *o)
    torch.library.opcheck(cldice.backward_op, (torch.tensor(0.7), coef, x, t, *o))
    torch._dynamo.reset()
    f = torch.compile(lambda a, b: cldice_loss(a, b, iterations=1), fullgraph=True, dynamic=True,
                      backend="aot_eager")
    for shape in ((1, 1, 5, 4, 6), (1, 1, 6, 5, 4)):
        xs, ts = torch.randn(shape), _target(shape, "binary")
        got, want = value_and_grad(f, xs, ts), value_and_grad(lambda a, b: cldice_loss(a, b, iterations=1), xs, ts)
        torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scatter_equals_gather(monkeypatch, dtype):
    """Both forms on the same input, channels_last, fp32 and bf16 (the scatter form accumulates in
    an fp32 buffer and casts once): the same loss, gradients equal up to the order of the fp32 adds
    (bf16: one rounding of nearly equal fp32 values, so at most one bf16 ulp, 2^-8 relative)."""
    from triton_segloss.cldice import kernels

    x = (torch.randn(1, 3, 10, 9, 11) * 2).to(dtype).to(memory_format=torch.channels_last_3d)
    lab = torch.randint(0, 3, (1, 10, 9, 11))
    grads = {}
    for form in ("gather", "scatter"):
        monkeypatch.setattr(kernels, "BWD_FORM", form)
        monkeypatch.setitem(kernels.CAPS, "bwd3", 16 if form == "gather" else 4)
        assert kernels._bwd_geometry(x, 2)[1] == (form == "scatter")
        grads[form] = value_and_grad(dice_cldice_loss, x, lab, mode="multiclass", iterations=2)
    loss, grad = grads["scatter"]
    assert grad.dtype == dtype and grad.stride() == x.stride()
    torch.testing.assert_close(loss, grads["gather"][0], rtol=0, atol=0)
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == torch.float32 else dict(rtol=2 ** -8, atol=1e-6)
    torch.testing.assert_close(grad.float(), grads["gather"][1].float(), **tol)


def test_widest_halo_takes_the_pytorch_reverse_pass():
    """3D, two axes over 16 and iterations=6: even the scatter form's block (halo 8 -> 32 x 32 x 8)
    is over MAX_BWD_BLOCK, so the backward is the PyTorch reverse pass (same coefficients, same tie
    rule), still exact."""
    from triton_segloss.cldice import kernels

    x = torch.randn(1, 1, 20, 20, 5, dtype=torch.float64)
    assert kernels._bwd_geometry(x, 6) == (None, None)
    compare_to_reference(cldice_loss, ref.cldice_loss, x, _target(x.shape, "binary").double(), iterations=6,
                         upstream=upstream_not_one)


# ---- bad input -------------------------------------------------------------

def test_bad_input():
    x = torch.randn(2, 1, 6, 6)
    with pytest.raises(ValueError, match=r"target.*\(2, 1, 6, 6\).*\(2, 1, 6, 5\)"):
        cldice_loss(x, torch.rand(2, 1, 6, 5))
    with pytest.raises(ValueError, match=r"2D \(N, C, H, W\) or 3D"):
        cldice_loss(torch.randn(1, 1, 2, 2, 2, 2), torch.rand(1, 1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C, \*spatial\) with at least 4 dims"):
        cldice_loss(torch.randn(2, 1, 6), torch.rand(2, 1, 6))
    with pytest.raises(ValueError, match="mode='binary' needs logits with C == 1"):
        cldice_loss(torch.randn(2, 2, 6, 6), torch.rand(2, 2, 6, 6))
    with pytest.raises(TypeError, match="iterations must be an int"):
        cldice_loss(x, torch.rand(2, 1, 6, 6), iterations=2.0)
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        cldice_loss(x, torch.rand(2, 1, 6, 6), iterations=-1)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        dice_cldice_loss(x, torch.rand(2, 1, 6, 6), alpha=1.5)
    with pytest.raises(ValueError, match="from_logits=False"):
        cldice_loss(x * 5, torch.rand(2, 1, 6, 6), from_logits=False)
    with pytest.raises(TypeError, match="integer class labels"):
        cldice_loss(torch.randn(2, 3, 6, 6), torch.rand(2, 6, 6), mode="multiclass")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        cldice_loss(torch.randn(2, 3, 6, 6), torch.full((2, 6, 6), 3), mode="multiclass")
    with pytest.raises(ValueError, match="target must hold values in"):
        cldice_loss(x, torch.full((2, 1, 6, 6), 2.0))
