"""``soft_label=True`` on Dice, Jaccard, Tversky and generalized Dice: the intersection of soft
targets ``(P + T - sum w |p - t|) / 2`` (MONAI's ``soft_label``, smp's intersection), against the
float64 reference, MONAI when installed, and the plain product form on 0/1 targets."""

import pytest
import torch

import triton_segloss as tsl
import triton_segloss.compat.monai  # noqa: F401  (tsl.compat is not imported by the package)
from checks import compare_to_reference, upstream_not_one
from reference import dice as ref

FNS = {
    "dice": (tsl.dice_loss, ref.dice_loss),
    "jaccard": (tsl.jaccard_loss, ref.jaccard_loss),
    "tversky": (tsl.tversky_loss, ref.tversky_loss),
    "generalized": (tsl.generalized_dice_loss, ref.generalized_dice_loss),
}
OPTS = [
    {},
    {"per_image": True, "reduction": "none", "smooth": 1.0},
    {"squared": True, "weight": "map", "ignore_index": 255},
    {"reduction": "sum", "from_logits": False},
]


def _inputs(mode, opts, gen):
    shape = (2, 1, 5, 7) if mode == "binary" else (2, 3, 4, 6)
    x = torch.randn(shape, generator=gen) * 2
    t = torch.rand(shape, generator=gen)
    t[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    if opts.get("ignore_index") is not None:
        t[1, 0, 1] = 255
    if not opts.get("from_logits", True):
        x = torch.sigmoid(x)
    kw = dict(opts)
    if kw.get("weight") == "map":
        kw["weight"] = torch.rand(shape, generator=gen) + 0.5
    return x, t, kw


@pytest.mark.parametrize("oi", range(len(OPTS)))
@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("kind", list(FNS))
def test_soft_label_matches_reference(backend, kind, mode, oi):
    fn, rfn = FNS[kind]
    opts = OPTS[oi]
    if kind == "generalized" and opts.get("reduction") == "none" and not opts.get("per_image"):
        pytest.skip("covered by the per-image case")
    x, t, kw = _inputs(mode, opts, torch.Generator().manual_seed(17 * oi + len(kind)))
    if kind == "tversky":
        kw.update(alpha=0.3, beta=0.7)
    compare_to_reference(fn, rfn, x, t, mode=mode, soft_label=True, upstream=upstream_not_one, **kw)


@pytest.mark.parametrize("kind", list(FNS))
def test_soft_label_is_the_product_on_hard_targets(backend, kind):
    fn, _ = FNS[kind]
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    t = (torch.rand(2, 3, 5, 5) > 0.5).double()
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    la = fn(a, t, mode="multilabel", soft_label=True)
    lb = fn(b, t, mode="multilabel")
    la.backward()
    lb.backward()
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-14)


def test_soft_label_differs_on_soft_targets(backend):
    """The option is not a no-op: with soft targets the product form gives a different value."""
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    t = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    assert (tsl.dice_loss(x, t, soft_label=True) - tsl.dice_loss(x, t)).abs().item() > 1e-3


def test_soft_label_gradcheck(backend):
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: tsl.tversky_loss(a, t, mode="multilabel", alpha=0.2, beta=0.8,
                                                               soft_label=True), (x,))


@pytest.mark.parametrize("name", ["DiceLoss", "TverskyLoss", "GeneralizedDiceLoss"])
def test_soft_label_matches_monai(backend, name):
    monai = pytest.importorskip("monai.losses")
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    t = torch.rand(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    kw = dict(sigmoid=True, soft_label=True)
    if name == "TverskyLoss":
        kw.update(alpha=0.3, beta=0.7)
    peer = getattr(monai, name)(**kw)
    ours = getattr(tsl.compat.monai, name)(**kw)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    lp, lo = peer(a, t), ours(b, t)
    lp.backward()
    lo.backward()
    # MONAI's GeneralizedDiceLoss casts its class weights 1/T^2 to float32 (w_func(ground_o.float())):
    # the two agree to that rounding (about 6e-8 relative), everything else in float64
    rtol = 1e-6 if name == "GeneralizedDiceLoss" else 1e-10
    torch.testing.assert_close(lo.double(), lp, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(b.grad, a.grad, rtol=100 * rtol, atol=1e-12)
