import pytest
import torch

from triton_segloss import recipes
from checks import compare_to_reference, upstream_not_one
from reference import dice as ref


def _mask(shape, p=0.3):
    t = (torch.rand(shape) < p).float()
    t[-1] = 0  # an image with no foreground
    return t


def test_weighted_soft_dice_seed000(backend):
    x = torch.randn(4, 1, 16, 16) * 2
    t = _mask(x.shape)
    compare_to_reference(recipes.weighted_soft_dice, ref.seed000_weighted_soft_dice, x, t)
    compare_to_reference(recipes.weighted_soft_dice, ref.seed000_weighted_soft_dice, x[:, 0], t[:, 0],
                         weight=(0.1, 0.9), upstream=upstream_not_one)


def test_soft_dice_loss_seed001(backend):
    x = torch.randn(3, 1, 12, 10)
    compare_to_reference(recipes.soft_dice_loss, ref.seed001_soft_dice_loss, x, _mask(x.shape),
                         upstream=upstream_not_one)


def test_weighted_soft_dice_loss_seed001(backend):
    x = torch.randn(3, 1, 12, 10)
    w = torch.rand(3, 1, 12, 10) * 2 + 0.5
    compare_to_reference(recipes.weighted_soft_dice_loss, ref.seed001_weighted_soft_dice_loss, x, _mask(x.shape), w)


def test_dice_score_seed001(backend):
    x = torch.randn(4, 1, 9, 11)
    t = _mask(x.shape)
    x[-1] = -5.0  # empty mask, empty prediction: the seed's NaN, here 1
    for thr in (0.5, 0.3):
        got = recipes.dice_score(x, t, threshold=thr)
        torch.testing.assert_close(got.double(), ref.seed001_dice_score(x, t, thr), rtol=1e-6, atol=1e-7)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(recipes.dice_score(xg, t), xg)
    assert torch.count_nonzero(g) == 0


@pytest.mark.parametrize("size_average", [True, False])
def test_albu_bce_dice_loss_seed001(backend, size_average):
    x = torch.randn(3, 1, 10, 9) * 2
    t = _mask(x.shape)
    up = None if size_average else upstream_not_one
    compare_to_reference(recipes.bce_dice_loss, ref.seed001_albu_bce_dice_loss, x, t,
                         size_average=size_average, upstream=up)
    w = torch.rand(3, 1, 10, 9) + 0.5
    compare_to_reference(recipes.bce_dice_loss, ref.seed001_albu_bce_dice_loss, x, t, w,
                         size_average=size_average, upstream=up)


def test_albu_bce_dice_clamp_is_active_on_empty_batches(backend):
    # all-empty masks and confident negatives: the smoothed score is ~2, clamped to 1 (zero gradient)
    x = torch.full((2, 1, 4, 4), -8.0)
    t = torch.zeros(2, 1, 4, 4)
    compare_to_reference(recipes.bce_dice_loss, ref.seed001_albu_bce_dice_loss, x, t)


def test_binary_dice_loss_seed003(backend):
    probs = torch.rand(3, 1, 11, 7)
    compare_to_reference(recipes.binary_dice_loss, ref.seed003_binary_dice_loss, probs, _mask(probs.shape),
                         upstream=upstream_not_one)


@pytest.mark.parametrize("shape", [(2, 4, 7, 6), (2, 3, 3, 4, 5)], ids=["2d", "3d"])
def test_multiclass_dice_loss_seed004(backend, shape):
    x = torch.randn(shape) * 2
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    compare_to_reference(recipes.multiclass_dice_loss, ref.seed004_dice_loss, x, y)
    compare_to_reference(recipes.multiclass_dice_loss, ref.seed004_dice_loss, x, y, smooth=0.5)


@pytest.mark.parametrize("opts", [{}, {"reduction": "sum"}, {"weight": "w"}, {"smooth": 2.0, "ignore_index": 3}],
                         ids=str)
def test_ce_dice_loss_seed004(backend, opts):
    x = torch.randn(2, 4, 7, 6) * 2
    y = torch.randint(0, 4, (2, 7, 6))
    y[0, :2] = 255
    opts = dict(opts)
    if opts.get("weight") == "w":
        opts["weight"] = torch.tensor([1.0, 2.0, 0.5, 3.0])
    if opts.get("ignore_index") == 3:
        y[y == 255] = 3
    compare_to_reference(recipes.ce_dice_loss, ref.seed004_ce_dice_loss, x, y, upstream=upstream_not_one, **opts)


def test_recipe_bad_input():
    with pytest.raises(ValueError, match=r"logits and labels must have the same.*\(2, 1, 4, 4\).*\(2, 1, 4, 5\)"):
        recipes.soft_dice_loss(torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 5))
    with pytest.raises(ValueError, match="reduction 'mean' or 'sum'"):
        recipes.ce_dice_loss(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), reduction="none")
