"""The Lovász register-sort path (issue 12, section 2): segments of at most ``REG_SORT_MAX``
pixels with 32-bit errors are sorted inside one Triton program (``tl.sort`` of packed int64
keys) and walked in the same program, with no ``torch.sort``, no count kernel and no int64
permutation.

Each case checks, on the Triton backend: the loss and gradient against the eager float64
reference; the op's ``d`` bitwise equal to the ``torch.sort`` path's (``REG_SORT_MAX = 0``
forces that path), its ``coef`` equal, and its loss equal to rounding. Both paths sum the same
fp32 terms relu(e_i) g_i (bitwise equal, as d is), each >= 0, only grouped differently (one
tl.sum over the segment here; per-block lanes, then chunks, there): the difference is at most
about log2(P) fp32 roundings of the value, < 1e-6 relative for P <= 512.

tl.sort is slow in the interpreter (about 0.4 s per program of 256 keys), so the segments here
are small: images of 8 x 16 pixels, a few images and classes.
"""

import contextlib

import pytest
import torch

import triton_segloss as tsl
from checks import compare_to_reference, upstream_not_one, value_and_grad
from checks import random_binary_mask as _binary, random_labels as _labels
from reference import lovasz as ref
from triton_segloss.lovasz import kernels as kl
from triton_segloss.lovasz.ops import LovaszHingeOptions as HO, LovaszSoftmaxOptions as SO, hinge_op, softmax_op

LOSS_RTOL, LOSS_ATOL = 1e-6, 1e-7  # see the module docstring


@contextlib.contextmanager
def _no_torch_sort():
    """torch.sort raises inside the block: the register path must not call it."""
    saved = torch.sort

    def boom(*a, **k):
        raise AssertionError("torch.sort called on the register-sort path")

    torch.sort = boom
    try:
        yield
    finally:
        torch.sort = saved


def _unsorted(fn):
    """``fn`` with torch.sort raising during its forward (the reference may sort; the loss may not)."""
    def call(*a, **k):
        with _no_torch_sort():
            return fn(*a, **k)
    return call


def _both_paths(op, x, t, o, monkeypatch):
    """(loss, coef, d) of the register path and of the torch.sort path (REG_SORT_MAX = 0)."""
    with tsl.use_backend("triton"):
        with _no_torch_sort():
            reg = op.forward_op(x, t, *o)
        with monkeypatch.context() as m:
            m.setattr(kl, "REG_SORT_MAX", 0)
            srt = op.forward_op(x, t, *o)
    return reg, srt


def _same_as_sort_path(reg, srt):
    (loss_r, coef_r, d_r), (loss_s, coef_s, d_s) = reg, srt
    assert d_r.dtype == d_s.dtype and d_r.shape == d_s.shape
    assert torch.equal(d_r, d_s), (d_r - d_s).abs().max()
    assert torch.equal(coef_r, coef_s)
    assert loss_r.shape == loss_s.shape and loss_r.dtype == loss_s.dtype
    torch.testing.assert_close(loss_r, loss_s, rtol=LOSS_RTOL, atol=LOSS_ATOL)


# ---- hinge ----------------------------------------------------------------------------

HINGE_CASES = [
    dict(per_image=True),
    dict(per_image=True, ignore_index=255.0, reduction="none"),
    dict(per_image=False, ignore_index=255.0, margin=(1.0, 5.0), reduction="sum"),
    dict(per_image=False, reduction="none", margin=(0.5, 2.0)),
]


@pytest.mark.parametrize("kw", HINGE_CASES, ids=str)
def test_hinge(kw, monkeypatch):
    x = torch.randn(2, 1, 8, 16) * 2
    t = _binary(x.shape, ignore=kw.get("ignore_index"))
    with tsl.use_backend("triton"):
        compare_to_reference(_unsorted(tsl.lovasz_hinge), ref.lovasz_hinge, x, t, upstream=upstream_not_one, **kw)
    o = HO(**{"margin": None, **kw})
    _same_as_sort_path(*_both_paths(hinge_op, x.view(2, 1, -1), t.view(2, 1, -1), o, monkeypatch))


def test_hinge_odd_sizes_and_low_precision(monkeypatch):
    """P not a power of two (padding lanes), one pixel, bf16 / fp16 logits (fp32 errors)."""
    for shape, dtype in (((3, 1, 7, 9), torch.float32), ((1, 1, 1, 1), torch.float32),
                         ((2, 1, 5, 11), torch.bfloat16), ((2, 1, 6, 6), torch.float16)):
        x = (torch.randn(shape) * 3).to(dtype)
        t = _binary(shape, ignore=255)
        with tsl.use_backend("triton"):
            compare_to_reference(_unsorted(tsl.lovasz_hinge), ref.lovasz_hinge, x, t, ignore_index=255,
                                 upstream=upstream_not_one)
        o = HO(per_image=shape[0] != 3, ignore_index=255.0)
        n = shape[0]
        _same_as_sort_path(*_both_paths(hinge_op, x.view(n, 1, -1), t.view(n, 1, -1), o, monkeypatch))


def test_hinge_empty_segments(monkeypatch):
    """An image without foreground, one all foreground, one all ignored (loss 0, zero gradient)."""
    x = torch.randn(3, 1, 8, 8)
    t = _binary(x.shape)
    t[0], t[1], t[2] = 0.0, 1.0, 255.0
    with tsl.use_backend("triton"):
        _, grad = compare_to_reference(_unsorted(tsl.lovasz_hinge), ref.lovasz_hinge, x, t, ignore_index=255,
                                       reduction="none", upstream=upstream_not_one)
    assert torch.count_nonzero(grad[2]) == 0
    _same_as_sort_path(*_both_paths(hinge_op, x.view(3, 1, -1), t.view(3, 1, -1),
                                    HO(ignore_index=255.0, reduction="none"), monkeypatch))


# ---- softmax --------------------------------------------------------------------------

SOFTMAX_CASES = [
    dict(),  # classes present, the whole batch
    dict(classes="all", per_image=True, ignore_index=255),
    dict(classes=[2, 0, 2], per_image=True, ignore_index=255, reduction="none"),
    dict(classes=[1, 2], ignore_index=255, reduction="sum", from_logits=False),
    dict(per_image=True, ignore_index=255, class_weight=[0.5, 2.0, 1.25]),
    dict(classes="all", reduction="none", class_weight=[0.5, 0.0, 1.25]),
]


def _softmax_options(kw, c):
    kw = dict(kw)
    classes = kw.pop("classes", "present")
    cw = kw.pop("class_weight", None)
    return SO(classes=None if isinstance(classes, str) else tuple(classes), only_present=classes == "present",
              class_weight=None if cw is None else tuple(cw), **kw)


@pytest.mark.parametrize("kw", SOFTMAX_CASES, ids=str)
def test_softmax(kw, monkeypatch):
    x = torch.randn(2, 3, 8, 16) * 2
    if kw.get("from_logits") is False:
        x = torch.softmax(x, 1)
    y = _labels(x.shape, 3, ignore=kw.get("ignore_index"))
    with tsl.use_backend("triton"):
        compare_to_reference(_unsorted(tsl.lovasz_softmax), ref.lovasz_softmax, x, y, upstream=upstream_not_one, **kw)
    o = _softmax_options(kw, 3)
    _same_as_sort_path(*_both_paths(softmax_op, x.view(2, 3, -1), y.view(2, 1, -1), o, monkeypatch))


# ---- ties, NaN --------------------------------------------------------------------------

def test_ties_give_the_stable_sort_paths_d(monkeypatch):
    """Integer logits: most errors tie exactly; the packed key breaks ties by pixel index, as the
    stable descending torch.sort does, so d is bitwise the sort path's."""
    x = torch.randint(-3, 4, (2, 1, 8, 16)).float() / 2
    t = _binary(x.shape, ignore=255)
    for pi in (True, False):
        reg, srt = _both_paths(hinge_op, x.view(2, 1, -1), t.view(2, 1, -1), HO(per_image=pi, ignore_index=255.0),
                               monkeypatch)
        _same_as_sort_path(reg, srt)
        # the ties matter: the pixels in reverse order give another d (un-reversed), on both paths
        rev, _ = _both_paths(hinge_op, x.view(2, 1, -1).flip(-1), t.view(2, 1, -1).flip(-1),
                             HO(per_image=pi, ignore_index=255.0), monkeypatch)
        assert not torch.equal(rev[2].view(2, -1).flip(-1).reshape(reg[2].shape), reg[2])
    xs = torch.randint(-2, 3, (2, 3, 8, 8)).float()
    y = _labels(xs.shape, 3, ignore=255)
    for pi in (True, False):
        _same_as_sort_path(*_both_paths(softmax_op, xs.view(2, 3, -1), y.view(2, 1, -1),
                                        SO(per_image=pi, ignore_index=255), monkeypatch))


def test_nan_and_infinite_logits_order_as_torch_sort(monkeypatch):
    """torch.sort puts NaN first (descending) whatever its sign bit; errors of -inf (a valid pixel
    with an infinite logit) count as left out, as on the sort path: d equal, NaN where it is NaN."""
    x = torch.randn(2, 1, 64)
    t = _binary(x.shape)
    x[0, 0, 3], x[0, 0, 9], x[1, 0, 5] = float("nan"), -float("nan"), float("inf")
    t[1, 0, 5] = 1.0  # e = 1 - inf = -inf
    x[1, 0, 7], t[1, 0, 7] = -float("inf"), 0.0  # e = 1 + (-inf) = -inf
    reg, srt = _both_paths(hinge_op, x, t, HO(), monkeypatch)
    torch.testing.assert_close(reg[2], srt[2], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(reg[0], srt[0], rtol=0, atol=0, equal_nan=True)


# ---- which path -------------------------------------------------------------------------

def _ops(fn, x, t):
    from bench import launches

    step = launches.count_step(fn, x, t)
    return step, step.forward.ops + step.backward.ops


def test_path_taken_launches_and_syncs():
    """No sort, no count kernel; at most 3 launches per step (hinge: the ticket's zero fill, the
    register kernel, the backward; softmax: errors, register kernel, backward), no host sync."""
    x = torch.randn(2, 1, 8, 16)
    step, ops = _ops(lambda a, b: tsl.lovasz_hinge(a, b, ignore_index=255), x, _binary(x.shape, ignore=255))
    assert not any("sort" in op and "reg_sort" not in op for op in ops), ops
    assert "triton _lovasz_reg_sort_kernel" in ops and not any("count" in op or "walk" in op for op in ops), ops
    assert step.syncs == 0 and step.launches <= 3 and step.backward.launches == 1, ops
    xs = torch.randn(2, 3, 8, 16)
    step, ops = _ops(lambda a, b: tsl.lovasz_softmax(a, b, per_image=True, classes=[2, 0]), xs, _labels(xs.shape, 3))
    assert not any("sort" in op and "reg_sort" not in op for op in ops), ops
    assert "triton _lovasz_reg_sort_kernel" in ops and not any("count" in op or "walk" in op for op in ops), ops
    assert step.syncs == 0 and step.launches <= 3 and step.backward.launches == 1, ops


def test_fp64_and_long_segments_take_the_sort_path(monkeypatch):
    x = torch.randn(2, 1, 8, 16)
    t = _binary(x.shape)
    _, ops = _ops(tsl.lovasz_hinge, x.double(), t)
    assert sum("aten.sort" in op for op in ops) == 1 and "triton _lovasz_walk_kernel" in ops, ops
    monkeypatch.setattr(kl, "REG_SORT_MAX", 128)
    _, ops = _ops(tsl.lovasz_hinge, x, t)  # P = 128 per image: the register path
    assert not any("aten.sort" in op for op in ops) and "triton _lovasz_reg_sort_kernel" in ops, ops
    _, ops = _ops(lambda a, b: tsl.lovasz_hinge(a, b, per_image=False), x, t)  # P = 256 > 128
    assert sum("aten.sort" in op for op in ops) == 1 and "triton _lovasz_reg_sort_kernel" not in ops, ops
    xs = torch.randn(2, 3, 8, 16)
    y = _labels(xs.shape, 3)
    _, ops = _ops(tsl.lovasz_softmax, xs, y)  # P = 256 > 128
    assert sum("aten.sort" in op for op in ops) == 1 and "triton _lovasz_reg_sort_kernel" not in ops, ops
    with tsl.use_backend("triton"):  # and the sort path still matches the reference there
        compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x.double(), t, upstream=upstream_not_one)
        loss, _ = value_and_grad(tsl.lovasz_softmax, xs, y)
    torch.testing.assert_close(loss.double(), ref.lovasz_softmax(xs.double(), y), rtol=1e-5, atol=1e-6)


def test_sort_path_keeps_its_chunked_walk(monkeypatch):
    """REG_SORT_MAX = 0 with chunks of several blocks: the torch.sort path's count kernel, carries
    and walk, which the register path now takes over for small segments (as in test_lovasz.py's
    test_walk_with_several_blocks_per_chunk, whose 1000-pixel batch segment it now sorts in registers)."""
    monkeypatch.setattr(kl, "REG_SORT_MAX", 0)
    monkeypatch.setattr(kl, "PROGRAMS", 2)
    monkeypatch.setattr(kl, "MAX_BLOCK", 128)
    x = torch.randn(2, 1, 20, 25)
    t = _binary(x.shape, ignore=255)
    with tsl.use_backend("triton"):
        compare_to_reference(tsl.lovasz_hinge, ref.lovasz_hinge, x, t, ignore_index=255, per_image=False,
                             upstream=upstream_not_one)
        xs = torch.randn(2, 3, 20, 25)
        y = _labels(xs.shape, 3, ignore=255)
        compare_to_reference(tsl.lovasz_softmax, ref.lovasz_softmax, xs, y, ignore_index=255,
                             upstream=upstream_not_one)
    _, ops = _ops(lambda a, b: tsl.lovasz_hinge(a, b, per_image=False, ignore_index=255), x, t)
    assert "triton _lovasz_count_kernel" in ops and "triton _lovasz_walk_kernel" in ops, ops


def test_register_path_opcheck_and_fullgraph_compile():
    """The ops on the register path: torch.library.opcheck, and torch.compile(fullgraph=True),
    static and dynamic=True, against eager (torch.sort must not run in any of them)."""
    x = torch.randn(2, 1, 128, requires_grad=True)
    t = _binary((2, 1, 128))
    xs = torch.randn(2, 3, 128, requires_grad=True)
    ys = _labels((2, 3, 128), 3).view(2, 1, 128)
    with tsl.use_backend("triton"), _no_torch_sort():
        for op, a, b, o in ((hinge_op, x, t, HO()), (softmax_op, xs, ys, SO(per_image=True))):
            torch.library.opcheck(op.forward_op, (a, b, *o))
            loss, coef, d = op.forward_op(a.detach(), b, *o)
            g = torch.randn(loss.shape, dtype=loss.dtype)
            torch.library.opcheck(op.backward_op, (g, coef, d, a.detach(), b, *o))
        for dynamic in (False, True):
            torch._dynamo.reset()
            f = torch.compile(lambda a, b: tsl.lovasz_hinge(a, b), fullgraph=True, dynamic=dynamic,
                              backend="aot_eager")
            a, ga = value_and_grad(f, x.detach().reshape(2, 1, 8, 16), t.reshape(2, 1, 8, 16))
            b, gb = value_and_grad(tsl.lovasz_hinge, x.detach().reshape(2, 1, 8, 16), t.reshape(2, 1, 8, 16))
            assert torch.equal(a, b) and torch.equal(ga, gb)
