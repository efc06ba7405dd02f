"""Property suite over every public loss, both backends (hypothesis).

For random shapes (1 pixel to odd sizes, 2D and 3D, batch 1..4, C 1..9 where
it applies), dtypes, reductions, weights, ignore masks (none, some, all) and
layouts (contiguous, channels_last, sliced, expanded), every loss:
  * equals its eager reference in value and gradient,
  * gives a finite value and gradient,
  * gives zero gradient on ignored pixels,
  * does not depend on the memory layout of its inputs.

Profiles: ``ci`` (default, small) and ``full`` (``TSL_HYPOTHESIS_PROFILE=full``).
The number of examples each loss ran is printed with ``-s``.
"""

import os
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import triton_segloss as tsl  # noqa: E402
from checks import upstream_not_one, value_and_grad  # noqa: E402
from reference import bce as ref_bce  # noqa: E402
from reference import boundary as ref_boundary  # noqa: E402
from reference import ce as ref_ce  # noqa: E402
from reference import dice as ref_dice  # noqa: E402
from reference import focal as ref_focal  # noqa: E402
from reference import lovasz as ref_lovasz  # noqa: E402
from tolerances import assert_grad, assert_value  # noqa: E402

settings.register_profile("ci", max_examples=8, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("full", max_examples=200, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("TSL_HYPOTHESIS_PROFILE", "ci"))

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
IGNORE = 255


@dataclass
class Case:
    """One public loss: how to draw valid inputs for it, and its reference."""

    fn: Callable
    ref: Callable
    target_kind: str  # "mask" (binary/multilabel float mask) or "labels" (integer classes)
    options: Callable  # draw -> kwargs for both fn and ref
    supports_ignore: bool = True
    min_classes: int = 1
    max_classes: int = 9
    channels: tuple = (1, 1, 2, 3)  # C choices for mask targets
    min_spatial: int = 1
    fp64_mask_for_fp64: bool = False  # see boundary_bce_dice_loss below


CASES: dict[str, Case] = {}


def register(name: str, case: Case) -> None:
    CASES[name] = case


@st.composite
def _bce_options(draw):
    kw = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    if draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1]))
    if draw(st.booleans()):
        kw["pos_weight"] = draw(st.sampled_from([0.5, 3.0]))
    if draw(st.booleans()):
        kw["balance"] = (0.25, 0.75)
    return kw


register("bce_with_logits", Case(tsl.bce_with_logits, ref_bce.bce_with_logits, "mask", _bce_options))


def _region_options(mode, squared=True):
    @st.composite
    def draw_options(draw):
        kw = {"mode": mode, "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
              "per_image": draw(st.booleans()), "smooth": draw(st.sampled_from([0.0, 1.0]))}
        if squared and draw(st.booleans()):  # the Tversky reference defines linear sums only
            kw["squared"] = True
        if draw(st.booleans()):
            kw["log_loss"] = True
        return kw
    return draw_options


for _mode, _kind in (("binary", "mask"), ("multilabel", "mask"), ("multiclass", "labels")):
    _ch = (1,) if _mode == "binary" else (1, 2, 3)
    for _name in ("dice_loss", "jaccard_loss", "tversky_loss", "generalized_dice_loss"):
        register(f"{_name}[{_mode}]", Case(getattr(tsl, _name), getattr(ref_dice, _name), _kind,
                                           _region_options(_mode, squared=_name != "tversky_loss"),
                                           channels=_ch, min_classes=2))


@st.composite
def _combo_options(draw, mode):
    kw = {"per_image": draw(st.booleans()), "smooth": draw(st.sampled_from([0.0, 1.0]))}
    if mode != "multiclass":
        kw["mode"] = mode
    return kw


register("bce_dice_loss", Case(tsl.bce_dice_loss, ref_dice.bce_dice_loss, "mask",
                               lambda: _combo_options("binary"), channels=(1,)))
register("ce_dice_loss", Case(tsl.ce_dice_loss, ref_dice.ce_dice_loss, "labels",
                              lambda: _combo_options("multiclass"), min_classes=2))
register("dice_focal_loss[multilabel]", Case(tsl.dice_focal_loss, ref_dice.dice_focal_loss, "mask",
                                             lambda: _combo_options("multilabel"), channels=(1, 2, 3)))


@st.composite
def _focal_options(draw, mode):
    return {"mode": mode, "gamma": draw(st.sampled_from([0.0, 0.5, 2.0])),
            "alpha": draw(st.sampled_from([None, 0.25])),
            "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


def _ref_focal(kind):
    fn = ref_focal.sigmoid_focal_loss if kind == "sigmoid" else ref_focal.softmax_focal_loss
    return lambda x, t, mode, **kw: fn(x, t, **kw)


register("focal_loss[binary]", Case(tsl.focal_loss, _ref_focal("sigmoid"), "mask",
                                    lambda: _focal_options("binary"), channels=(1,)))
register("focal_loss[multiclass]", Case(tsl.focal_loss, _ref_focal("softmax"), "labels",
                                        lambda: _focal_options("multiclass"), min_classes=2))


@st.composite
def _lovasz_hinge_options(draw):
    return {"per_image": draw(st.booleans()), "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
            "margin": draw(st.sampled_from([None, (1.0, 5.0)]))}


@st.composite
def _lovasz_softmax_options(draw):
    return {"per_image": draw(st.booleans()), "classes": draw(st.sampled_from(["present", "all", [0, 1]])),
            "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


register("lovasz_hinge", Case(tsl.lovasz_hinge, ref_lovasz.lovasz_hinge, "mask", _lovasz_hinge_options,
                              channels=(1,)))
register("lovasz_softmax", Case(tsl.lovasz_softmax, ref_lovasz.lovasz_softmax, "labels",
                                _lovasz_softmax_options, min_classes=2))


@st.composite
def _ce_options(draw):
    return {"reduction": draw(st.sampled_from(["mean", "sum", "none"])),
            "label_smoothing": draw(st.sampled_from([0.0, 0.1])), "balance": draw(st.booleans())}


register("cross_entropy", Case(tsl.cross_entropy, ref_ce.cross_entropy, "labels", _ce_options, min_classes=2))


@st.composite
def _boundary_options(draw):
    # kernel_size=None picks by height from a table the reference only knows at its five heights
    return {"kernel_size": draw(st.sampled_from([3, 5])), "log_dice": draw(st.booleans())}


register("boundary_bce_dice_loss", Case(tsl.boundary_bce_dice_loss, ref_boundary.boundary_bce_dice_loss, "mask",
                                        _boundary_options, supports_ignore=False, channels=(1,),
                                        min_spatial=5,  # the reference's avg_pool needs input >= kernel
                                        # seed 001 normalises the weights in the mask's dtype and divides
                                        # by sum(w); tsl divides by the pixel count, equal to sum(w) up to
                                        # that dtype's rounding (documented): exact in fp64 with an fp64 mask
                                        fp64_mask_for_fp64=True))


@st.composite
def problems(draw, case: Case):
    """(logits, target, kwargs, ignored-pixel mask broadcastable to logits or None)."""
    n = draw(st.integers(1, 4))
    c = draw(st.integers(max(case.min_classes, 1), case.max_classes)) if case.target_kind == "labels" \
        else draw(st.sampled_from(case.channels))
    spatial = tuple(draw(st.lists(st.integers(case.min_spatial, 9), min_size=2, max_size=3)))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn((n, c) + spatial, generator=gen) * 3).to(dtype)
    ignore_mode = draw(st.sampled_from(["none", "some", "all"])) if case.supports_ignore else "none"
    if case.target_kind == "labels":
        target = torch.randint(0, c, (n,) + spatial, generator=gen)
        ign_shape = target.shape
    else:
        target = (torch.rand((n, c) + spatial, generator=gen) < 0.4).float()
        ign_shape = target.shape
    ignored = None
    if ignore_mode != "none":
        ignored = torch.rand(ign_shape, generator=gen) < (0.3 if ignore_mode == "some" else 2.0)
        target = torch.where(ignored, torch.full_like(target, IGNORE), target)
    if case.fp64_mask_for_fp64 and dtype == torch.float64:
        target = target.double()
    kw = draw(case.options())
    if ignored is not None:
        kw["ignore_index"] = IGNORE
    layout = draw(st.sampled_from(["contiguous", "channels_last", "sliced", "expanded"]))
    logits = relayout(logits, layout)
    return logits, target, kw, ignored


def relayout(x, layout):
    """The same values in another memory layout."""
    if layout == "channels_last" and x.dim() in (4, 5):
        return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    if layout == "sliced":
        wide = torch.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    if layout == "expanded":  # every image the same values, batch stride 0
        return x[:1].expand(x.shape)
    return x


def _check(case: Case, logits, target, kw, ignored):
    up = upstream_not_one
    loss, grad = value_and_grad(case.fn, logits, target, upstream=up, **kw)
    ref_loss, ref_grad = value_and_grad(case.ref, logits.detach().double(), target, upstream=up, **kw)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert_value(loss, ref_loss, logits.dtype)
    assert_grad(grad, ref_grad, logits.dtype)
    if ignored is not None:
        mask = ignored if ignored.dim() == grad.dim() else ignored.unsqueeze(1).expand_as(grad)
        assert torch.count_nonzero(grad[mask]) == 0
    # layout invariance: the contiguous copy gives bitwise the same value
    loss_c, grad_c = value_and_grad(case.fn, logits.contiguous(), target, upstream=up, **kw) \
        if not logits.is_contiguous() else (loss, grad)
    torch.testing.assert_close(loss_c, loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad_c, grad, rtol=1e-6, atol=1e-7)


EXAMPLES_RUN: dict[str, int] = {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_property(backend, name):
    case = CASES[name]

    @given(problems(case))
    def run(problem):
        EXAMPLES_RUN[f"{name}[{backend}]"] = EXAMPLES_RUN.get(f"{name}[{backend}]", 0) + 1
        _check(case, *problem)

    run()
    print(f"\n{name}[{backend}]: {EXAMPLES_RUN.get(f'{name}[{backend}]', 0)} examples")
