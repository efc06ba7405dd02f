"""Defects found by trying the library as a demanding user would; each test failed before its fix.

* a NaN logit makes every loss NaN (the Dice family used to return a finite loss);
* out-of-range labels where value checks are off (under torch.compile, on CUDA by default)
  are skipped like ignored pixels, the same on both backends;
* a tensor option or a soft target with ``requires_grad`` raises at backward instead of
  silently getting no gradient.
"""

import os

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
from bench import launches  # noqa: E402
from bench.traffic import no_value_checks  # noqa: E402
from test_bad_input import MULTICLASS  # noqa: E402  (the multiclass losses of the bad-input table)

import triton_segloss as tsl  # noqa: E402

CASES = {c.name: c for c in launches.cases()}
NO_LOGITS = {"boundary_weight_map", "confusion_matrix"}  # their value does not depend on the logits


@pytest.mark.parametrize("name", [n for n in CASES if n not in NO_LOGITS])
def test_a_nan_logit_gives_a_nan_loss(backend, name):
    case = CASES[name]
    x, t = launches.make_inputs(case, torch.Generator().manual_seed(0))
    x = x.clone()
    x.view(-1)[5] = float("nan")
    with no_value_checks():  # ncut's probabilities are checked on CPU; NaN must still surface
        loss = case.fn(x, t)
    assert torch.isnan(loss).any(), f"{name}: {loss}"


def _step(fn, x, t, **kw):
    xx = x.detach().clone().requires_grad_(True)
    loss = fn(xx, t, **kw)
    (g,) = torch.autograd.grad(loss.sum(), xx)
    return loss.detach(), g


@pytest.mark.parametrize("bad", [7, -3])
@pytest.mark.parametrize("name", sorted(MULTICLASS))
def test_out_of_range_labels_are_skipped_like_ignored_pixels_when_checks_are_off(name, bad):
    fn = MULTICLASS[name]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 5, 6, generator=gen)
    t = torch.randint(0, 4, (2, 5, 6), generator=gen)
    t_bad, t_ign = t.clone(), t.clone()
    t_bad[0, 1, 2], t_bad[1, 4, 5] = bad, bad
    t_ign[0, 1, 2], t_ign[1, 4, 5] = 255, 255
    results = {}
    with no_value_checks():
        for backend in ("triton", "torch"):
            with tsl.use_backend(backend):
                results[backend, "bad"] = _step(fn, x, t_bad, ignore_index=255)
                results[backend, "ignored"] = _step(fn, x, t_ign, ignore_index=255)
    want = results["torch", "ignored"]
    for key, (loss, g) in results.items():
        torch.testing.assert_close(loss, want[0], rtol=2e-5, atol=1e-6, msg=f"{name} {key}")
        torch.testing.assert_close(g, want[1], rtol=2e-5, atol=1e-6, msg=f"{name} {key}")


def _needs_grad(t):
    return t.detach().clone().requires_grad_(True)


def _binary():
    gen = torch.Generator().manual_seed(2)
    return torch.randn(2, 1, 5, 6, generator=gen), (torch.rand(2, 1, 5, 6, generator=gen) > 0.5).float()


def _labels():
    gen = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 5, 6, generator=gen), torch.randint(0, 3, (2, 5, 6), generator=gen)


NOT_DIFFERENTIABLE = {
    "bce weight": (_binary, lambda x, t: tsl.bce_with_logits(x, t, weight=_needs_grad(torch.rand_like(x))), "weight"),
    "bce pos_weight": (_binary, lambda x, t: tsl.bce_with_logits(x, t, pos_weight=_needs_grad(torch.rand_like(x))),
                       "pos_weight"),
    "bce soft target": (_binary, lambda x, t: tsl.bce_with_logits(x, _needs_grad(t * 0.8)), "target"),
    "dice weight": (_binary, lambda x, t: tsl.dice_loss(x, t, weight=_needs_grad(torch.rand_like(x))), "weight"),
    "dice soft target": (_binary, lambda x, t: tsl.dice_loss(x, _needs_grad(t * 0.8)), "target"),
    "dice class_weight": (_labels, lambda x, t: tsl.dice_loss(x, t, mode="multiclass",
                                                              class_weight=_needs_grad(torch.rand(3))),
                          "class_weight"),
    "ce weight": (_labels, lambda x, t: tsl.cross_entropy(x, t, weight=_needs_grad(torch.rand(3))), "weight"),
    "ce pixel_weight": (_labels, lambda x, t: tsl.cross_entropy(x, t, pixel_weight=_needs_grad(torch.rand(2, 5, 6))),
                        "pixel_weight"),
    "ce_dice ce_weight": (_labels, lambda x, t: tsl.ce_dice_loss(x, t, ce_weight=_needs_grad(torch.rand(3))),
                          "ce_weight"),
    "focal alpha tensor": (_labels, lambda x, t: tsl.focal_loss(x, t, mode="multiclass",
                                                                alpha=_needs_grad(torch.rand(3))), "alpha"),
    "focal soft target": (_binary, lambda x, t: tsl.focal_loss(x, _needs_grad(t * 0.8)), "target"),
}


@pytest.mark.parametrize("name", sorted(NOT_DIFFERENTIABLE))
def test_tensor_options_that_require_grad_raise(backend, name):
    make, fn, arg = NOT_DIFFERENTIABLE[name]
    x, t = make()
    x = x.requires_grad_(True)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument"):
        fn(x, t).backward()


@pytest.mark.parametrize("name,fn", [
    ("bce_with_logits", lambda x, t: tsl.bce_with_logits(x, t, reduction="none")),
    ("focal_loss gamma=0", lambda x, t: tsl.focal_loss(x, t, alpha=None, gamma=0.0, reduction="none")),
])
def test_log1p_of_a_tiny_exponential_is_not_rounded_away(backend, name, fn):
    # x = -20, t = 0: l = log(1 + e^-20) = 2.06e-9; log(1.0 + e) in fp32 gives 0
    x = torch.full((1, 1, 2, 2), -20.0)
    t = torch.zeros_like(x)
    want = torch.log1p(torch.exp(torch.tensor(-20.0, dtype=torch.float64)))
    torch.testing.assert_close(fn(x, t).double(), want.expand(1, 1, 2, 2), rtol=1e-6, atol=0)
