import pytest
import torch
import torch.nn.functional as F

from triton_segloss import recipes
from checks import compare_to_reference, upstream_not_one, value_and_grad
from reference import boundary as ref_boundary
from reference import focal as ref_focal


def _blobs(n, h, w, cells):
    coarse = (torch.rand(n, 1, max(1, h // cells), max(1, w // cells)) < 0.5).float()
    return F.interpolate(coarse, size=(h, w), mode="nearest")


def _terms(i):
    """Element i of the seed's (loss, bce, dice) tuple, as a one-output function for the checks."""
    return (lambda x, t, **kw: recipes.combined_loss(x, t, **kw)[i],
            lambda x, t, **kw: ref_boundary.seed001_combined_loss(x, t, **kw)[i])


@pytest.mark.parametrize("is_weight", [True, False])
@pytest.mark.parametrize("is_log_dice", [False, True])
def test_combined_loss_seed001(backend, is_weight, is_log_dice):
    x = torch.randn(2, 1, 128, 5) * 2  # a height of the seed's table, narrow for the interpreter
    t = _blobs(2, 128, 5, 16)
    for i in range(3):
        fn, ref = _terms(i)
        compare_to_reference(fn, ref, x, t, is_weight=is_weight, is_log_dice=is_log_dice, upstream=upstream_not_one)


@pytest.mark.parametrize("height", [256, 512, 1024, 1280])
def test_combined_loss_other_table_heights(backend, height):
    x = torch.randn(1, 1, height, 3)
    t = _blobs(1, height, 3, 32)
    fn, ref = _terms(0)
    compare_to_reference(fn, ref, x, t, is_weight=True)


def test_combined_loss_labels_without_channel_and_other_heights(backend):
    x = torch.randn(2, 1, 128, 4)
    t = _blobs(2, 128, 4, 16)
    for a, b in zip(recipes.combined_loss(x, t[:, 0]), recipes.combined_loss(x, t)):
        torch.testing.assert_close(a, b)
    # a height outside the seed's table: the seed raises; the recipe uses the documented rule
    loss, bce, dice = recipes.combined_loss(torch.randn(1, 1, 40, 6), _blobs(1, 40, 6, 5))
    assert torch.isfinite(loss) and torch.isfinite(bce) and torch.isfinite(dice)


def test_combined_loss_bad_shapes():
    with pytest.raises(ValueError, match=r"logits must have shape \(N, 1, H, W\)"):
        recipes.combined_loss(torch.randn(2, 2, 8, 8), torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="labels must have N\\*H\\*W = 128 elements"):
        recipes.combined_loss(torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 9))


@pytest.mark.parametrize("alpha", [None, [0.25, 0.5, 1.0, 2.0], 0.5])
def test_focal_loss_seed004_intent(backend, alpha):
    x = torch.randn(2, 4, 6, 5) * 2
    y = torch.randint(0, 4, (2, 6, 5))
    y[0, 0, :3] = -100  # cross entropy's default ignore_index
    if isinstance(alpha, float):  # a number is a uniform factor: the intent with every class weighted alike
        ref = lambda a, b, alpha, beta: ref_focal.seed004_focal_loss(a, b, [alpha] * 4, beta)  # noqa: E731
    else:
        ref = ref_focal.seed004_focal_loss
    compare_to_reference(recipes.focal_loss, ref, x, y, alpha=alpha, beta=2, upstream=upstream_not_one)
    compare_to_reference(recipes.focal_loss, ref, x, y, alpha=alpha, beta=0.5)


def test_focal_loss_seed004_literal_without_alpha(backend):
    # without class weights the seed's own arithmetic (pi = exp(-CE)) is the focal loss: same numbers
    x = torch.randn(2, 3, 5, 5)
    y = torch.randint(0, 3, (2, 5, 5))
    compare_to_reference(recipes.focal_loss, ref_focal.seed004_focal_loss_literal, x, y, beta=2)
    # with class weights the literal arithmetic differs (pi = p_y ** alpha_y): the recipe follows the intent
    w = [0.2, 0.5, 3.0]
    got, _ = value_and_grad(recipes.focal_loss, x, y, alpha=w)
    literal = (F.cross_entropy(x.double(), y, weight=torch.tensor(w, dtype=torch.float64), reduction="none"))
    literal = (literal * (1 - torch.exp(-literal)) ** 2).sum()
    assert not torch.allclose(got.double(), literal, rtol=1e-3)
