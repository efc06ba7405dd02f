"""triton_segloss.compat.smp against segmentation_models_pytorch 0.6's own classes.

Each test walks a seeded loop of random configurations (mode, options, ignored pixels, empty
classes, 2D and 3D) and compares the value and the gradient w.r.t. the logits with the real
class, in float64 on the PyTorch backend, and a smaller subset on the Triton kernels
(interpreted). Run with ``-s`` to print the largest differences per class (docs/MIGRATION.md).
Cases that need a core option another family has not landed yet are strict xfails that
expect NotImplementedError and turn into plain tests once the option exists.
"""

import random
import zlib

import pytest
import torch

import triton_segloss as tsl
from triton_segloss import functional as TF
from triton_segloss.compat import smp as ours
from triton_segloss.compat._patch import has_option

from peers import smp_losses

L = smp_losses()

MAXDIFF: dict = {}
LOVASZ_TOL = 2e-6  # float32 (smp's hinge cannot run in float64): a few ulp of sums of ~100 terms
TOL = 1e-9  # float64 on both sides: the sums differ only in their order


def _record(name, dv, dg):
    v, g = MAXDIFF.get(name, (0.0, 0.0))
    MAXDIFF[name] = (max(v, dv), max(g, dg))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for k, (v, g) in sorted(MAXDIFF.items()):
        print(f"\n[compat smp] {k}: max |value diff| {v:.3g}, max |grad diff| {g:.3g}")


def compare(name, mine, theirs, x, t, tol=TOL):
    xa = x.detach().clone().requires_grad_(True)
    xb = x.detach().clone().requires_grad_(True)
    a = mine(xa, t)
    b = theirs(xb, t)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    (a * torch.linspace(0.5, 1.5, a.numel(), dtype=a.dtype).view(a.shape)).sum().backward() if a.dim() else a.backward()
    (b * torch.linspace(0.5, 1.5, b.numel(), dtype=b.dtype).view(b.shape)).sum().backward() if b.dim() else b.backward()
    dv = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    ga = xa.grad if xa.grad is not None else torch.zeros_like(xa)
    gb = xb.grad if xb.grad is not None else torch.zeros_like(xb)
    if not torch.isfinite(gb).all():
        # the peer's gradient is NaN (smp's Tversky raises a zero mean to gamma < 1); ours is 0 there
        assert torch.isfinite(ga).all(), (name, "NaN gradient")
        _record(name + " (peer gradient NaN, skipped)", dv, 0.0)
        ga, gb = ga[torch.isfinite(gb)], gb[torch.isfinite(gb)]
    dg = (ga - gb).abs().max().item() if ga.numel() else 0.0
    _record(name, dv, dg)
    assert dv <= tol * max(1.0, b.double().abs().max().item()), (name, a, b)
    assert dg <= tol * max(1.0, gb.abs().max().item() if gb.numel() else 0.0), (name, dg)


def _shape(rng):
    return rng.choice([(2, 8, 8), (1, 6, 6, 6), (3, 5, 7)])


def _inputs(rng, mode, c, spatial, ignore=None, empty=False, soft=False):
    n = spatial[0]
    sp = spatial[1:]
    x = torch.randn(n, c, *sp, dtype=torch.float64) * rng.choice([0.5, 2.0, 4.0])
    if mode == "multiclass":
        t = torch.randint(0, c, (n, *sp))
        if empty:
            t[t == c - 1] = 0  # class C-1 absent from the target
        if ignore is not None:
            t[torch.rand(t.shape) < 0.2] = ignore
    else:
        shape = (n, c, *sp)
        t = torch.rand(shape, dtype=torch.float64) if soft else (torch.rand(shape) < 0.4).double()
        if empty:
            t[:, -1] = 0
        if ignore is not None:
            t[torch.rand(shape) < 0.2] = ignore
    return x, t


REGION = {"DiceLoss": (ours.DiceLoss, "dice_loss"), "JaccardLoss": (ours.JaccardLoss, "jaccard_loss"),
          "TverskyLoss": (ours.TverskyLoss, "tversky_loss")}


def _region_configs(rng, name, k):
    for _ in range(k):
        mode = rng.choice(["binary", "multiclass", "multilabel"])
        c = 1 if mode == "binary" else rng.choice([2, 3, 4])
        kw = dict(smooth=rng.choice([0.0, 0.0, 1.0, 1e-3]), log_loss=rng.random() < 0.3,
                  ignore_index=rng.choice([None, None, 255 if mode == "multiclass" else -1]))
        if mode != "binary":
            if rng.random() < 0.3:
                kw["classes"] = sorted(rng.sample(range(c), rng.randint(1, c)))
            if rng.random() < 0.3:
                # multiples of 1/8: smp stores its weights in float32, exact for these
                kw["class_weights"] = [rng.randint(2, 16) / 8 for _ in range(c)]
        if name == "TverskyLoss":
            kw.update(alpha=rng.uniform(0.1, 0.9), beta=rng.uniform(0.1, 0.9),
                      gamma=1.0 if kw["log_loss"] else rng.choice([1.0, 2.0, 0.75]))
        yield mode, c, kw, rng.random() < 0.3


@pytest.mark.xfail(not has_option(TF.dice_loss, "zero_absent"), strict=True, raises=NotImplementedError,
                   reason="needs dice_loss(zero_absent=...) (helper D)")
@pytest.mark.parametrize("name", list(REGION))
def test_region_losses_match_smp(name):
    rng = random.Random(zlib.crc32(name.encode()))  # str hash() differs per process
    cls, _ = REGION[name]
    peer = getattr(L, name)
    with tsl.use_backend("torch"):
        for mode, c, kw, empty in _region_configs(rng, name, 24):
            x, t = _inputs(rng, mode, c, _shape(rng), kw.get("ignore_index"), empty)
            compare(name, cls(mode, **kw), peer(mode, **kw), x, t)
    with tsl.use_backend("triton"):
        for mode, c, kw, empty in _region_configs(rng, name, 4):
            x, t = _inputs(rng, mode, c, (2, 6, 6), kw.get("ignore_index"), empty)
            compare(name + " (triton)", cls(mode, **kw), peer(mode, **kw), x, t)


@pytest.mark.xfail(not (has_option(TF.dice_loss, "zero_absent") and has_option(TF.dice_loss, "soft_label")),
                   strict=True, raises=(NotImplementedError, AssertionError),
                   reason="soft targets need dice_loss(soft_label=True) (smp's |p - t| intersection)")
def test_dice_soft_targets_match_smp():
    rng = random.Random(5)
    with tsl.use_backend("torch"):
        for mode in ("binary", "multilabel"):
            c = 1 if mode == "binary" else 3
            x, t = _inputs(rng, mode, c, (2, 8, 8), soft=True)
            compare("DiceLoss soft", ours.DiceLoss(mode), L.DiceLoss(mode), x, t)


def _focal_configs(rng, k, modes):
    for _ in range(k):
        mode = rng.choice(modes)
        c = 1 if mode == "binary" else rng.choice([2, 3])
        kw = dict(alpha=rng.choice([None, 0.25, 0.7]), gamma=rng.choice([0.0, 1.0, 2.0, 0.5]),
                  # smp's multilabel ignore_index indexes (N, *S) with an (N, C, *S) mask and fails
                  ignore_index=None if mode == "multilabel" else rng.choice([None, 255 if mode == "multiclass" else -1]),
                  reduction=rng.choice(["mean", "sum", "batchwise_mean"]))
        if mode == "binary" and kw["ignore_index"] is None and rng.random() < 0.3:
            kw["reduction"] = "none"
        yield mode, c, kw


def _focal_loop(modes, k, kt):
    rng = random.Random(7 + len(modes))
    with tsl.use_backend("torch"):
        for mode, c, kw in _focal_configs(rng, k, modes):
            x, t = _inputs(rng, mode, c, _shape(rng), kw["ignore_index"])
            compare("FocalLoss " + mode, ours.FocalLoss(mode, **kw), L.FocalLoss(mode, **kw), x, t)
    with tsl.use_backend("triton"):
        for mode, c, kw in _focal_configs(rng, kt, modes):
            x, t = _inputs(rng, mode, c, (2, 6, 6), kw["ignore_index"])
            compare("FocalLoss (triton)", ours.FocalLoss(mode, **kw), L.FocalLoss(mode, **kw), x, t)


def test_focal_binary_multilabel_match_smp():
    _focal_loop(["binary", "multilabel"], 24, 4)


@pytest.mark.xfail(not has_option(TF.focal_loss, "use_softmax"), strict=True, raises=NotImplementedError,
                   reason="needs focal_loss(use_softmax=False) (helper E)")
def test_focal_multiclass_match_smp():
    _focal_loop(["multiclass"], 12, 2)


@pytest.mark.xfail(not has_option(TF.focal_loss, "class_weight"), strict=True, raises=NotImplementedError,
                   reason="needs focal_loss(class_weight=...) (helper E)")
def test_focal_class_weights_match_smp():
    rng = random.Random(11)
    with tsl.use_backend("torch"):
        for red in ("mean", "sum"):
            x, t = _inputs(rng, "multilabel", 3, (2, 8, 8))
            kw = dict(class_weights=[0.5, 1.0, 2.0], reduction=red)
            compare("FocalLoss class_weights", ours.FocalLoss("multilabel", **kw), L.FocalLoss("multilabel", **kw),
                    x, t)


def test_lovasz_matches_smp():
    rng = random.Random(3)
    for backend, k in (("torch", 16), ("triton", 3)):
        with tsl.use_backend(backend):
            for _ in range(k):
                mode = rng.choice(["binary", "multiclass", "multilabel"])
                c = 1 if mode == "binary" else rng.choice([2, 3])
                kw = dict(per_image=rng.random() < 0.5, ignore_index=rng.choice([None, 255]))
                x, t = _inputs(rng, mode, c, _shape(rng) if backend == "torch" else (2, 5, 5),
                               kw["ignore_index"], empty=rng.random() < 0.3)
                x = x.float()  # smp's hinge dots float32 labels with the errors: float32 only
                t = t if mode == "multiclass" else t.float()
                # Berman's loss is piecewise linear in sorted errors: ties sort differently; random
                # float64 logits have none.
                compare(f"LovaszLoss {mode}" + (" (triton)" if backend == "triton" else ""),
                        ours.LovaszLoss(mode, **kw), L.LovaszLoss(mode, **kw), x, t, tol=LOVASZ_TOL)


def test_soft_bce_matches_smp():
    rng = random.Random(4)
    for backend, k in (("torch", 16), ("triton", 3)):
        with tsl.use_backend(backend):
            for _ in range(k):
                c = rng.choice([1, 3])
                n, *sp = _shape(rng)
                x = torch.randn(n, c, *sp, dtype=torch.float64) * 2
                t = (torch.rand(x.shape) < 0.5).double()
                ig = rng.choice([None, -100, 255])
                if ig is not None:
                    t[torch.rand(t.shape) < 0.2] = ig
                kw = dict(ignore_index=ig, reduction=rng.choice(["mean", "sum", "none"]),
                          smooth_factor=rng.choice([None, 0.1]))
                if rng.random() < 0.4:
                    kw["weight"] = torch.rand(x.shape[-1], dtype=torch.float64) + 0.5
                if rng.random() < 0.4:
                    kw["pos_weight"] = torch.rand(x.shape[-1], dtype=torch.float64) + 0.5
                compare("SoftBCEWithLogitsLoss", ours.SoftBCEWithLogitsLoss(**kw), L.SoftBCEWithLogitsLoss(**kw),
                        x, t)


def test_soft_ce_matches_smp():
    rng = random.Random(6)
    for backend, k in (("torch", 16), ("triton", 3)):
        with tsl.use_backend(backend):
            for _ in range(k):
                c = rng.choice([2, 4])
                n, *sp = _shape(rng)
                x = torch.randn(n, c, *sp, dtype=torch.float64) * 2
                ig = rng.choice([None, -100, 255])
                t = torch.randint(0, c, (n, *sp))
                if ig is not None:
                    t[torch.rand(t.shape) < 0.2] = ig
                kw = dict(ignore_index=ig, reduction=rng.choice(["mean", "sum", "none"]),
                          smooth_factor=rng.choice([0.0, 0.1]))  # smp fails on its own default None
                compare("SoftCrossEntropyLoss", ours.SoftCrossEntropyLoss(**kw), L.SoftCrossEntropyLoss(**kw), x, t)
        # dim=-1: (N, S, C) logits, the class dim last (a view on our side)
        x = torch.randn(2, 7, 3, dtype=torch.float64)
        t = torch.randint(0, 3, (2, 7))
        kw = dict(smooth_factor=0.05, ignore_index=None, dim=-1)
        with tsl.use_backend("torch"):
            compare("SoftCrossEntropyLoss", ours.SoftCrossEntropyLoss(**kw), L.SoftCrossEntropyLoss(**kw), x, t)


@pytest.mark.xfail(not hasattr(TF, "mcc_loss"), strict=True, raises=NotImplementedError,
                   reason="needs triton_segloss.mcc_loss (helper D)")
def test_mcc_matches_smp():
    rng = random.Random(8)
    for backend, k in (("torch", 8), ("triton", 2)):
        with tsl.use_backend(backend):
            for _ in range(k):
                n, *sp = _shape(rng)
                p = torch.rand(n, 1, *sp, dtype=torch.float64)
                t = (torch.rand(p.shape) < 0.4).double()
                eps = rng.choice([1e-5, 1e-2])
                compare("MCCLoss", ours.MCCLoss(eps), L.MCCLoss(eps), p, t)


def test_signatures_match_smp():
    import inspect

    for name in ours.__all__:
        if name.endswith("_MODE"):
            assert getattr(ours, name) == getattr(L, name)
            continue
        a = inspect.signature(getattr(ours, name).__init__).parameters
        b = inspect.signature(getattr(L, name).__init__).parameters
        assert list(a) == list(b), name
        for k in b:
            assert a[k].default == b[k].default or (a[k].default is b[k].default), (name, k)


def test_patch_smp_swaps_and_restores():
    from triton_segloss.compat import patch_smp, unpatch_smp

    orig = L.DiceLoss
    done = patch_smp()
    try:
        assert L.DiceLoss is ours.DiceLoss
        import sys

        assert sys.modules["segmentation_models_pytorch.losses.dice"].DiceLoss is ours.DiceLoss
        assert "segmentation_models_pytorch.losses.DiceLoss" in done
        assert patch_smp() == done  # idempotent
        assert isinstance(L.FocalLoss("binary"), ours.FocalLoss)
    finally:
        restored = unpatch_smp()
    assert L.DiceLoss is orig and restored
    assert unpatch_smp() == []
