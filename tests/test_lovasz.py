import os

import pytest
import torch
import torch._dynamo.testing

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, compiled_matches_eager, sparse_mapping, upstream_not_one, value_and_grad
from checks import random_binary_mask as _binary, random_labels as _labels
from reference import lovasz as ref

# (2, 1, 12, 13): 156 pixels per image, so each sorted segment is walked in several chunks
HINGE_SHAPES = [(2, 1, 7, 5), (3, 1, 4, 5, 3), (1, 1, 1, 1), (2, 1, 12, 13)]
SOFTMAX_SHAPES = [(2, 4, 7, 5), (2, 3, 4, 5, 3), (1, 3, 1, 1), (2, 3, 12, 13)]
CLASSES = ["present", "all", [2, 0], [1, 1, 0]]


# ---- Lovász hinge --------------------------------------------------------------

@pytest.mark.parametrize("shape", HINGE_SHAPES, ids=str)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255.0])
def test_hinge_matches_berman(backend, shape, per_image, ignore):
    x = torch.randn(shape) * 2
    t = _binary(shape, ignore=ignore)
    compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, t, per_image=per_image, ignore_index=ignore,
                         upstream=upstream_not_one)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_hinge_reductions(backend, per_image, reduction):
    x = torch.randn(3, 1, 6, 7)
    t = _binary(x.shape, ignore=255)
    loss, _ = compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, t, per_image=per_image, ignore_index=255,
                                   reduction=reduction, upstream=upstream_not_one)
    if reduction == "none":
        assert loss.shape == ((3,) if per_image else ())


@pytest.mark.parametrize("margin", [(1, 5), (0.5, 2.0)])
def test_hinge_margin(backend, margin):
    x = torch.randn(2, 1, 9, 8) * 3
    compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, _binary(x.shape), margin=margin,
                         upstream=upstream_not_one)


@pytest.mark.parametrize("per_image", [True, False])
def test_hinge_image_without_foreground_all_foreground_all_ignored(backend, per_image):
    x = torch.randn(4, 1, 6, 5)
    t = _binary(x.shape)
    t[0] = 0.0  # no foreground: the loss is the largest positive error
    t[1] = 1.0  # all foreground
    t[2] = 255.0  # every pixel ignored: loss 0, zero gradient
    loss, grad = compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, t, per_image=per_image,
                                      ignore_index=255, reduction="none", upstream=upstream_not_one)
    assert torch.count_nonzero(grad[2]) == 0
    if per_image:
        assert loss[2] == 0


def test_hinge_all_pixels_ignored_is_zero_with_zero_gradient(backend):
    x = torch.randn(2, 1, 5, 5, requires_grad=True)
    t = torch.full((2, 1, 5, 5), 255.0)
    for per_image in (True, False):
        loss = tsl.lovasz_hinge(x, t, ignore_index=255, per_image=per_image)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


@pytest.mark.parametrize("tdtype", [torch.bool, torch.uint8, torch.int64, torch.float16])
def test_hinge_target_dtypes_and_no_channel_dim(backend, tdtype):
    x = torch.randn(2, 1, 6, 7)
    t = torch.rand(2, 6, 7) < 0.5
    got = tsl.lovasz_hinge(x, t.to(tdtype))
    torch.testing.assert_close(got.double(), ref.lovasz_hinge(x.double(), t.double()), rtol=1e-5, atol=1e-6)


# ---- Lovász-Softmax --------------------------------------------------------------

@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("classes", CLASSES, ids=str)
@pytest.mark.parametrize("per_image", [True, False])
def test_softmax_matches_berman(backend, shape, classes, per_image):
    x = torch.randn(shape) * 2
    y = _labels(shape, shape[1], ignore=255)
    compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, classes=classes, per_image=per_image,
                         ignore_index=255, upstream=upstream_not_one)


@pytest.mark.parametrize("classes", ["all", [0, 35, 7]], ids=str)
@pytest.mark.parametrize("from_logits", [True, False])
def test_softmax_more_classes_than_one_tile(backend, classes, from_logits):
    """C = 40 > 32 classes per register tile: the errors and backward kernels sweep the classes in
    chunks (online max and sum) instead of reading each pixel's logits once."""
    x = torch.randn(2, 40, 5, 6) * 2
    if not from_logits:
        x = torch.softmax(x, 1)
    y = _labels(x.shape, 40, ignore=255)
    compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, classes=classes, ignore_index=255,
                         from_logits=from_logits, upstream=upstream_not_one)


@pytest.mark.parametrize("per_image", [True, False])
def test_softmax_without_ignore_index(backend, per_image):
    x = torch.randn(2, 5, 6, 7)
    compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, _labels(x.shape, 5), per_image=per_image)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", CLASSES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_softmax_reductions(backend, per_image, classes, reduction):
    x = torch.randn(3, 4, 5, 6)
    y = _labels(x.shape, 3, ignore=-100)  # class 3 absent everywhere
    loss, _ = compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, classes=classes,
                                   per_image=per_image, ignore_index=-100, reduction=reduction,
                                   upstream=upstream_not_one)
    if reduction == "none":
        k = 4 if isinstance(classes, str) else len(classes)
        assert loss.shape == ((3, k) if per_image else (k,))


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all", [3, 1]], ids=str)
def test_softmax_absent_class_and_fully_ignored_image(backend, per_image, classes):
    x = torch.randn(3, 4, 6, 5)
    y = _labels(x.shape, 3)  # class 3 is absent everywhere
    y[1] = 255  # every pixel of image 1 ignored
    y[2, :2] = 0
    loss, grad = compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, classes=classes,
                                      per_image=per_image, ignore_index=255, upstream=upstream_not_one)
    assert torch.count_nonzero(grad[1]) == 0


def test_softmax_all_pixels_ignored_is_zero_with_zero_gradient(backend):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.full((2, 4, 4), 255)
    for per_image in (True, False):
        for classes in ("present", "all", [1]):
            loss = tsl.lovasz_softmax(x, y, ignore_index=255, per_image=per_image, classes=classes)
            (g,) = torch.autograd.grad(loss, x)
            assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", [0, 2]], ids=str)
def test_softmax_from_probabilities(backend, per_image, classes):
    p = torch.softmax(torch.randn(2, 3, 7, 6) * 2, dim=1)
    y = _labels(p.shape, 3, ignore=255)
    compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, p, y, classes=classes, per_image=per_image,
                         ignore_index=255, from_logits=False, upstream=upstream_not_one)


@pytest.mark.parametrize("ldtype", [torch.uint8, torch.int32, torch.int64])
def test_softmax_label_dtypes(backend, ldtype):
    x = torch.randn(2, 3, 5, 6)
    y = _labels(x.shape, 3, ignore=255)
    got = tsl.lovasz_softmax(x, y.to(ldtype), ignore_index=255, per_image=True)
    torch.testing.assert_close(got.double(), ref.lovasz_softmax(x.double(), y, ignore_index=255, per_image=True),
                               rtol=1e-5, atol=1e-6)


# ---- both -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_dtypes(backend, dtype):
    x = (torch.randn(2, 1, 8, 9) * 3).to(dtype)
    compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, _binary(x.shape, ignore=255), ignore_index=255,
                         upstream=upstream_not_one)
    x = (torch.randn(2, 4, 8, 9) * 3).to(dtype)
    y = _labels(x.shape, 4, ignore=255)
    for per_image in (True, False):
        compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, ignore_index=255, per_image=per_image,
                             upstream=upstream_not_one)


def test_layouts_channels_last_and_sliced(backend):
    base = torch.randn(2, 4, 10, 12)
    y = _labels(base.shape, 4, ignore=255)
    cl = base.to(memory_format=torch.channels_last)
    _, grad = compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, cl, y, ignore_index=255)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    sliced = torch.randn(2, 4, 20, 25)[:, :, ::2, 1:13]
    compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, sliced, y, ignore_index=255, per_image=True)
    xb = torch.randn(2, 1, 20, 25)[:, :, ::2, 1:13]
    tb = _binary((2, 1, 10, 12))
    compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, xb, tb, per_image=False)
    compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, xb, tb.expand(2, 1, 10, 12)[:, :, :, :])


def test_walk_with_several_blocks_per_chunk(monkeypatch):
    """Force the Triton walk to use chunks of several blocks, so both the in-block scan and
    the carries between blocks and between chunks are exercised."""
    from triton_segloss.lovasz import kernels as kl

    monkeypatch.setattr(kl, "PROGRAMS", 2)
    monkeypatch.setattr(kl, "MAX_BLOCK", 128)
    assert kl._walk_plan(1, 1000) == (128, 512, 2)
    with tsl.use_backend("triton"):
        x = torch.randn(2, 1, 20, 25)
        compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, _binary(x.shape, ignore=255), ignore_index=255,
                             per_image=False, upstream=upstream_not_one)
        x = torch.randn(2, 3, 20, 25)
        compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, _labels(x.shape, 3, ignore=255),
                             ignore_index=255, upstream=upstream_not_one)


def test_finisher_tiles(monkeypatch):
    """More chunks per segment (> BLOCK_CH) and more columns (K, KL > BLOCK_K) than one tile of
    the walk's carry sum and of the finisher holds."""
    from triton_segloss.lovasz import kernels as kl

    monkeypatch.setattr(kl, "MAX_BLOCK", 128)
    monkeypatch.setattr(kl, "PROGRAMS", 40)
    with tsl.use_backend("triton"):
        x = torch.randn(2, 1, 42, 50)
        assert kl._walk_plan(1, x.numel())[2] > kl.BLOCK_CH
        compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, _binary(x.shape, ignore=255), ignore_index=255,
                             per_image=False, upstream=upstream_not_one)
        x = torch.randn(2, 34, 5, 6)
        y = _labels(x.shape, 34, ignore=255)
        assert kl._walk_plan(34, 30)[2] == 1
        compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, ignore_index=255, upstream=upstream_not_one)
        listed = [33, 1, 5, 1] + list(range(2, 32))
        for kw in ({"per_image": True, "reduction": "none"}, {"classes": "all", "per_image": True}):
            compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, ignore_index=255,
                                 **{"classes": listed, **kw}, upstream=upstream_not_one)


def test_ties_are_broken_the_same_way_every_run(backend):
    # logits on a coarse grid: most errors tie exactly. The value of the Lovász extension does
    # not depend on the order of ties; the gradient does, and it must not change between runs.
    x = torch.randint(-3, 4, (3, 1, 10, 10)).float() / 2
    t = _binary(x.shape, ignore=255)
    for per_image in (True, False):
        bitwise_deterministic(tsl.lovasz_hinge, x, t, per_image=per_image, ignore_index=255)
        # hinge errors 1 -+ x are exact in fp32 and fp64, and both sorts are stable in pixel
        # order: the tie order, and so the gradient, equals the reference's
        compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, t, per_image=per_image, ignore_index=255)
    xs = torch.randint(-2, 3, (2, 3, 8, 8)).float()
    y = _labels(xs.shape, 3, ignore=255)
    for per_image in (True, False):
        bitwise_deterministic(tsl.lovasz_softmax, xs, y, per_image=per_image, ignore_index=255)
        loss, _ = value_and_grad(tsl.lovasz_softmax, xs, y, per_image=per_image, ignore_index=255)
        want = ref.lovasz_softmax(xs.double(), y, per_image=per_image, ignore_index=255)
        torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=1e-6)


def test_both_backends_break_ties_alike():
    x = torch.randint(-3, 4, (2, 1, 16, 16)).float() / 2
    t = _binary(x.shape, ignore=255)
    got = {}
    for b in ("triton", "torch"):
        with tsl.use_backend(b):
            got[b] = value_and_grad(tsl.lovasz_hinge, x, t, per_image=False, ignore_index=255)
    torch.testing.assert_close(got["triton"][1], got["torch"][1], rtol=1e-6, atol=1e-9)


def test_gradcheck_fp64(backend):
    # Lovász is piecewise linear in the sorted order: random normal inputs keep every pair of
    # errors (and every hinge error and 0) far apart compared with gradcheck's eps = 1e-6.
    # The interpreted kernels run gradcheck's fast mode (a random projection of the Jacobian);
    # the PyTorch path checks every column.
    fast = backend == "triton"
    x = torch.randn(2, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    t = _binary(x.shape, ignore=255).double()
    for per_image in (True, False):
        assert torch.autograd.gradcheck(
            lambda a: tsl.lovasz_hinge(a, t, per_image=per_image, ignore_index=255, margin=(1, 2)), (x,),
            fast_mode=fast)
    xs = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    y = _labels(xs.shape, 3, ignore=255)
    for kw in ({}, {"per_image": True, "classes": [2, 0]}, {"classes": "all", "reduction": "none"}):
        assert torch.autograd.gradcheck(lambda a: tsl.lovasz_softmax(a, y, ignore_index=255, **kw), (xs,),
                                        fast_mode=fast)
    p = torch.softmax(torch.randn(2, 3, 2, 3, dtype=torch.float64), 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: tsl.lovasz_softmax(a, y, ignore_index=255, from_logits=False), (p,),
                                    fast_mode=fast)


def test_opcheck(backend):
    from triton_segloss.lovasz.ops import LovaszHingeOptions as HO, LovaszSoftmaxOptions as SO, hinge_op, softmax_op

    x = torch.randn(2, 1, 30, requires_grad=True)
    t = _binary(x.shape, ignore=255)
    hinge_cases = [
        (x, t, HO()),
        (x, t, HO(per_image=False, ignore_index=255.0, margin=(1.0, 5.0), reduction="sum")),
        (x, t, HO(ignore_index=255.0, reduction="none")),
        (x, t, HO(per_image=False, ignore_index=255.0, reduction="none")),
        (torch.randn(3, 1, 40, dtype=torch.float64, requires_grad=True), _binary((3, 1, 40)), HO(margin=(0.5, 2.0))),
    ]
    for xx, tt, o in hinge_cases:
        torch.library.opcheck(hinge_op.forward_op, (xx, tt, *o))
        loss, coef, d = hinge_op.forward_op(xx.detach(), tt, *o)
        g = torch.randn(loss.shape, dtype=loss.dtype)
        torch.library.opcheck(hinge_op.backward_op, (g, coef, d, xx.detach(), tt, *o))
    xs = torch.randn(2, 4, 30, requires_grad=True)
    y = _labels((2, 4, 30), 4, ignore=255).view(2, 1, 30)
    softmax_cases = [
        (xs, y, SO(ignore_index=255)),
        (xs, y, SO(classes=(0, 3), per_image=True, ignore_index=255)),
        (xs, y, SO(classes=(3, 1, 3), per_image=True, ignore_index=255, reduction="none")),
        (xs, y, SO(classes=(2, 2), ignore_index=255, reduction="sum")),
        (torch.softmax(xs.detach(), 1).requires_grad_(), y, SO(classes=(1,), ignore_index=255, from_logits=False)),
        (xs, y.clamp(max=3), SO(only_present=False, per_image=True, reduction="none")),
        (xs, y, SO(ignore_index=255, reduction="none")),
    ]
    for xx, yy, o in softmax_cases:
        torch.library.opcheck(softmax_op.forward_op, (xx, yy, *o))
        loss, coef, d = softmax_op.forward_op(xx.detach(), yy, *o)
        g = torch.randn(loss.shape, dtype=loss.dtype)
        torch.library.opcheck(softmax_op.backward_op, (g, coef, d, xx.detach(), yy, *o))


@pytest.mark.parametrize("case", range(5))
def test_compile_fullgraph(backend, case):
    x = torch.randn(2, 1, 6, 6)
    t = _binary(x.shape, ignore=255)
    xs = torch.randn(2, 3, 6, 6)
    y = _labels(xs.shape, 3, ignore=255)
    fn, args, kwargs = [
        (tsl.lovasz_hinge, (x, t), {"ignore_index": 255}),
        (lambda a, b, **k: tsl.lovasz_hinge(a, b, **k).sum(), (x, t),
         {"reduction": "none", "margin": (1, 5), "ignore_index": 255}),
        (tsl.lovasz_softmax, (xs, y), {"ignore_index": 255}),
        (tsl.lovasz_softmax, (xs, y), {"ignore_index": 255, "classes": [2, 0], "per_image": True}),
        (lambda a, b, **k: tsl.lovasz_softmax(a, b, **k).sum(), (xs, y),
         {"classes": "all", "reduction": "none", "ignore_index": 255}),
    ][case]
    compiled_matches_eager(fn, *args, **kwargs)
    module = (tsl.LovaszHingeLoss if args[0] is x else tsl.LovaszSoftmaxLoss)(**kwargs)
    compiled_matches_eager(lambda a, b: module(a, b).sum(), *args)


@pytest.mark.parametrize("case", range(4))
def test_compile_fullgraph_dynamic(backend, case):
    """dynamic=True: symbolic sizes reach the ops' fake functions; no graph break, no
    recompilation for a second size, and the eager value and gradient."""
    fn, kwargs, c = [
        (tsl.lovasz_hinge, {"ignore_index": 255}, 1),
        (tsl.lovasz_hinge, {"reduction": "none", "per_image": False, "margin": (1, 5), "ignore_index": 255}, 1),
        (tsl.lovasz_softmax, {"ignore_index": 255}, 3),
        (tsl.lovasz_softmax, {"classes": [2, 0, 2], "per_image": True, "reduction": "none", "ignore_index": 255}, 3),
    ][case]
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(lambda a, b: fn(a, b, **kwargs), fullgraph=True, dynamic=True, backend=counter)
    for shape in ((2, c, 6, 7), (4, c, 5, 9)):  # never square: no duck-sizing guard
        x = torch.randn(shape)
        t = _binary(x.shape, ignore=255) if c == 1 else _labels(x.shape, c, ignore=255)
        loss, grad = value_and_grad(compiled, x, t)
        want_loss, want_grad = value_and_grad(fn, x, t, **kwargs)
        torch.testing.assert_close(loss, want_loss, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-7)
    assert counter.frame_count == 1


CLASS_STRIDE = 2**30


@pytest.fixture(scope="module")
def far_classes(tmp_path_factory):
    """A (1, 3, S) float32 view whose class c starts c * 2^30 elements into a sparse memory-mapped
    file (8 GiB of address space, a few pages of disk): ``cls * stride_c`` passes 2^31 at c = 2."""
    s = 40
    numel = 2 * CLASS_STRIDE + s
    path = tmp_path_factory.mktemp("far") / "sparse.bin"
    big = sparse_mapping(path, numel)
    x = big.as_strided((1, 3, s), (3 * CLASS_STRIDE, CLASS_STRIDE, 1))
    yield x
    del x, big
    os.unlink(path)


@pytest.mark.parametrize("kw", [{}, {"classes": [2, 0], "per_image": True, "reduction": "none"},
                                {"classes": "all", "reduction": "sum", "from_logits": False}], ids=str)
def test_softmax_class_stride_2_30(far_classes, in_place_interpreter, kw):
    """The errors and backward kernels address class c at c * stride_c in int64: a class stride
    of 2^30 elements gives the values and gradient of a small contiguous copy."""
    x = far_classes
    vals = torch.randn(1, 3, 40) * 3
    x.copy_(torch.softmax(vals, 1) if kw.get("from_logits") is False else vals)
    y = _labels(x.shape, 3, ignore=255)
    near = x.clone()
    assert near.stride() != x.stride()
    with tsl.use_backend("triton"):
        far_loss, far_grad = value_and_grad(tsl.lovasz_softmax, x, y, ignore_index=255, **kw)
        near_loss, near_grad = value_and_grad(tsl.lovasz_softmax, near, y, ignore_index=255, **kw)
    assert torch.equal(far_loss, near_loss)
    assert torch.equal(far_grad, near_grad)
    assert torch.count_nonzero(near_grad) > 0


BUDGET_CASES = (
    [("hinge", dict(per_image=pi, reduction=r, **kw)) for pi in (True, False) for r in ("mean", "sum", "none")
     for kw in ({}, {"ignore_index": 255, "margin": (1, 5)})]
    + [("softmax", dict(per_image=pi, reduction=r, classes=c, ignore_index=255))
       for pi in (True, False) for r in ("mean", "sum", "none") for c in ("present", "all", [3, 1, 3])]
    + [("softmax", dict(reduction=r, classes=[3, 1, 3], from_logits=False)) for r in ("mean", "sum", "none")]
    + [("softmax", dict(classes=[0, 2])), ("softmax_large", {}), ("hinge_large", dict(per_image=False))]
)


@pytest.mark.parametrize("kind,kw", BUDGET_CASES, ids=lambda v: v if isinstance(v, str) else str(v))
def test_training_step_launch_budget(kind, kw):
    """Every option: one training step on the CUDA code path is the sort plus at most 4 launches
    (errors, count, walk with its finisher, backward), and no host sync (bench/launches.py)."""
    from bench import launches

    gen = torch.Generator().manual_seed(0)
    size = (48, 40) if kind.endswith("_large") else (16, 16)  # large: several chunks per segment
    if kind.startswith("hinge"):
        x = torch.randn(2, 1, *size, generator=gen)
        t = _binary(x.shape, ignore=kw.get("ignore_index"))
        fn = lambda a, b: tsl.lovasz_hinge(a, b, **kw)  # noqa: E731
    else:
        x = torch.randn(2, 4, *size, generator=gen)
        t = _labels(x.shape, 4, ignore=kw.get("ignore_index"))
        if kw.get("from_logits") is False:
            x = torch.softmax(x, 1)
        fn = lambda a, b: tsl.lovasz_softmax(a, b, **kw)  # noqa: E731
    step = launches.count_step(fn, x, t)
    ops = step.forward.ops + step.backward.ops
    sorts = sum("sort" in op for op in ops)
    assert step.syncs == 0 and sorts == 1, ops
    assert step.launches - sorts <= 4, ops
    assert step.backward.launches == 1, ops


def test_module_matches_functional(backend):
    x = torch.randn(2, 1, 5, 5)
    t = _binary(x.shape)
    m = tsl.LovaszHingeLoss(per_image=False, margin=(1, 2))
    torch.testing.assert_close(m(x, t), tsl.lovasz_hinge(x, t, per_image=False, margin=(1, 2)))
    xs = torch.randn(2, 3, 5, 5)
    y = _labels(xs.shape, 3)
    m = tsl.LovaszSoftmaxLoss(classes="all", per_image=True)
    torch.testing.assert_close(m(xs, y), tsl.lovasz_softmax(xs, y, classes="all", per_image=True))
    with pytest.raises(TypeError, match="unexpected argument"):
        tsl.LovaszSoftmaxLoss(ignore=255)


# ---- bad input -------------------------------------------------------------------

def test_hinge_needs_one_channel():
    with pytest.raises(ValueError, match=r"lovasz_hinge is binary.*\(2, 3, 4, 4\)"):
        tsl.lovasz_hinge(torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4))


def test_hinge_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"target.*\(2, 1, 4, 4\).*\(2, 1, 4, 5\)"):
        tsl.lovasz_hinge(torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 5))


def test_hinge_target_must_be_binary():
    t = (torch.rand(2, 1, 4, 4) > 0.5).float()
    t[0, 0, 1, 1] = 0.5
    with pytest.raises(ValueError, match=r"target must hold 0 or 1.*\[0.5\]"):
        tsl.lovasz_hinge(torch.randn(2, 1, 4, 4), t)
    t[0, 0, 1, 1] = 255
    with pytest.raises(ValueError, match="target must hold 0 or 1"):
        tsl.lovasz_hinge(torch.randn(2, 1, 4, 4), t)
    assert torch.isfinite(tsl.lovasz_hinge(torch.randn(2, 1, 4, 4), t, ignore_index=255))


def test_bad_options():
    x, t = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    with pytest.raises(ValueError, match="reduction"):
        tsl.lovasz_hinge(x, t, reduction="avg")
    with pytest.raises(ValueError, match="margin"):
        tsl.lovasz_hinge(x, t, margin=(1,))
    xs, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(ValueError, match="classes must be 'present', 'all'"):
        tsl.lovasz_softmax(xs, y, classes="some")
    with pytest.raises(ValueError, match=r"classes must lie in \[0, 3\).*\[5\]"):
        tsl.lovasz_softmax(xs, y, classes=[0, 5])
    with pytest.raises(ValueError, match="at least one class"):
        tsl.lovasz_softmax(xs, y, classes=[])
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        tsl.lovasz_softmax(xs, y, ignore_index=2.5)


def test_softmax_labels_out_of_range():
    y = torch.randint(0, 3, (2, 4, 4))
    y[1, 2, 2] = 7
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*\[7\]"):
        tsl.lovasz_softmax(torch.randn(2, 3, 4, 4), y)


def test_softmax_target_shape_and_dtype():
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*spatial\).*\(2, 5, 4\)"):
        tsl.lovasz_softmax(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 5, 4)))
    with pytest.raises(TypeError, match="integer class labels"):
        tsl.lovasz_softmax(torch.randn(2, 3, 4, 4), torch.rand(2, 4, 4))


def test_probabilities_out_of_range():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\] when from_logits=False"):
        tsl.lovasz_softmax(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)), from_logits=False)


def test_value_checks_skip_while_compiling():
    t = (torch.rand(2, 1, 4, 4) > 0.5).float()
    t[0, 0, 0, 0] = 0.5  # not checked inside a compiled graph (the check would sync)
    f = torch.compile(tsl.lovasz_hinge, fullgraph=True)
    assert torch.isfinite(f(torch.randn(2, 1, 4, 4), t))


# ---- class weights (issue 13) -------------------------------------------------------

CW = [0.5, 2.0, 0.0, 1.25]


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all", [3, 1, 3], [2]], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "none", "sum"])
def test_softmax_class_weight(backend, per_image, classes, reduction):
    x = torch.randn(3, 4, 5, 6) * 2
    y = _labels(x.shape, 3, ignore=255)  # class 3 absent everywhere
    y[1] = 255  # an image with every pixel ignored
    compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, x, y, classes=classes, per_image=per_image,
                         ignore_index=255, reduction=reduction, class_weight=CW, upstream=upstream_not_one)


def test_softmax_class_weight_hand_derived(backend):
    """Two classes, one image: the weighted mean is (w0 l0 + w1 l1) / (w0 + w1), with l_c the
    unweighted class values ("none"); equal weights give the unweighted loss."""
    x = torch.randn(1, 2, 4, 5)
    y = _labels(x.shape, 2)
    y[0, 0, 0], y[0, 0, 1] = 0, 1
    l0, l1 = tsl.lovasz_softmax(x, y, reduction="none").double().tolist()
    got = tsl.lovasz_softmax(x, y, class_weight=[1.0, 3.0]).double()
    torch.testing.assert_close(got, torch.tensor((l0 + 3 * l1) / 4, dtype=torch.float64), rtol=1e-6, atol=1e-7)
    same = tsl.lovasz_softmax(x, y, class_weight=torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(same, tsl.lovasz_softmax(x, y), rtol=1e-6, atol=1e-7)
    # every counted class weighted 0: loss 0, zero gradient
    loss, grad = value_and_grad(tsl.lovasz_softmax, x, y, class_weight=[0.0, 0.0])
    assert loss.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_softmax_class_weight_gradcheck_fp64(backend):
    fast = backend == "triton"
    xs = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    y = _labels(xs.shape, 3, ignore=255)
    for kw in ({}, {"per_image": True, "classes": [2, 0]}):
        assert torch.autograd.gradcheck(
            lambda a: tsl.lovasz_softmax(a, y, ignore_index=255, class_weight=(0.3, 1.0, 2.5), **kw), (xs,),
            fast_mode=fast)


def test_softmax_class_weight_opcheck_compile_and_budget(backend):
    from bench import launches
    from triton_segloss.lovasz.ops import LovaszSoftmaxOptions as SO, softmax_op

    xs = torch.randn(2, 4, 30, requires_grad=True)
    y = _labels((2, 4, 30), 4, ignore=255).view(2, 1, 30)
    for o in (SO(ignore_index=255, class_weight=tuple(CW)),
              SO(classes=(3, 1, 3), per_image=True, ignore_index=255, reduction="none", class_weight=tuple(CW))):
        torch.library.opcheck(softmax_op.forward_op, (xs, y, *o))
        loss, coef, d = softmax_op.forward_op(xs.detach(), y, *o)
        torch.library.opcheck(softmax_op.backward_op, (torch.randn(loss.shape), coef, d, xs.detach(), y, *o))
    x = torch.randn(2, 4, 6, 7)
    t = _labels(x.shape, 4, ignore=255)
    compiled_matches_eager(tsl.lovasz_softmax, x, t, ignore_index=255, class_weight=CW)
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    f = torch.compile(lambda a, b: tsl.lovasz_softmax(a, b, ignore_index=255, class_weight=CW), fullgraph=True,
                      dynamic=True, backend=counter)
    for shape in ((2, 4, 6, 7), (3, 4, 5, 9)):
        a = torch.randn(shape)
        b = _labels(a.shape, 4, ignore=255)
        torch.testing.assert_close(value_and_grad(f, a, b)[1],
                                   value_and_grad(tsl.lovasz_softmax, a, b, ignore_index=255, class_weight=CW)[1],
                                   rtol=1e-6, atol=1e-7)
    assert counter.frame_count == 1
    step = launches.count_step(lambda a, b: tsl.lovasz_softmax(a, b, ignore_index=255, class_weight=CW),
                               torch.randn(2, 4, 16, 16), _labels((2, 4, 16, 16), 4, ignore=255))
    ops = step.forward.ops + step.backward.ops
    sorts = sum("sort" in op for op in ops)
    assert step.syncs == 0 and sorts == 1 and step.launches - sorts <= 4, ops


def test_softmax_class_weight_bad():
    xs, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(ValueError, match=r"class_weight must have shape \(3,\).*\(2,\)"):
        tsl.lovasz_softmax(xs, y, class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="class_weight must be >= 0"):
        tsl.lovasz_softmax(xs, y, class_weight=[1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match="class_weight"):
        tsl.lovasz_softmax(xs, y, class_weight=[1.0, float("nan"), 1.0])
    with pytest.raises(TypeError, match="class_weight must be a sequence"):
        tsl.lovasz_softmax(xs, y, class_weight="abc")


# ---- smp's LovaszLoss as a spec (binary, multilabel, multiclass) -----------------------

def _smp_losses():
    import importlib.util
    import sys
    import types

    if "segmentation_models_pytorch" not in sys.modules:
        spec = importlib.util.find_spec("segmentation_models_pytorch")
        if spec is None:
            pytest.skip("segmentation_models_pytorch not installed")
        pkg = types.ModuleType("segmentation_models_pytorch")  # skip the package's model imports
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["segmentation_models_pytorch"] = pkg
    import segmentation_models_pytorch.losses as L

    return L


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [None, 255])
def test_matches_smp_lovasz_loss(backend, per_image, ignore):
    """smp's LovaszLoss: binary and multilabel are one hinge problem per image (or batch) over
    all C x spatial pixels, i.e. lovasz_hinge on logits.reshape(N, 1, -1); multiclass is
    Berman's Lovasz-Softmax with classes='present'."""
    L = _smp_losses()
    # float32: smp's hinge builds its Jaccard gradient in float32 (a float64 input fails in its dot)
    x = torch.randn(2, 3, 6, 5) * 2
    t = _binary(x.shape, ignore=ignore)
    want, want_g = value_and_grad(L.LovaszLoss("multilabel", per_image=per_image, ignore_index=ignore), x, t)
    got, got_g = value_and_grad(lambda a, b: tsl.lovasz_hinge(a.reshape(2, 1, -1), b.reshape(2, 1, -1),
                                                              per_image=per_image, ignore_index=ignore), x, t)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_g, want_g, rtol=1e-5, atol=1e-6)
    xb, tb = x[:, :1], t[:, :1]
    want, want_g = value_and_grad(L.LovaszLoss("binary", per_image=per_image, ignore_index=ignore), xb, tb)
    got, got_g = value_and_grad(tsl.lovasz_hinge, xb, tb, per_image=per_image, ignore_index=ignore)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_g, want_g, rtol=1e-5, atol=1e-6)
    y = _labels(x.shape, 3, ignore=ignore)
    want, want_g = value_and_grad(L.LovaszLoss("multiclass", per_image=per_image, ignore_index=ignore), x, y)
    got, got_g = value_and_grad(tsl.lovasz_softmax, x, y, per_image=per_image, ignore_index=ignore)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_g, want_g, rtol=1e-5, atol=1e-6)
