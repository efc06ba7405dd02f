import pytest
import torch

from triton_segloss import recipes
from checks import compare_to_reference, upstream_not_one
from reference import lovasz as ref


def test_weighted_lovasz_seed000(backend):
    x = torch.randn(4, 1, 12, 11) * 2
    t = (torch.rand(4, 1, 12, 11) > 0.7).float()
    t[1] = 0.0  # an image without foreground
    compare_to_reference(recipes.weighted_lovasz, ref.seed000_weighted_lovasz, x, t, upstream=upstream_not_one)
    x2 = torch.randn(3, 64) * 2  # the seed's (batch, -1) view of the pixels
    compare_to_reference(recipes.weighted_lovasz, ref.seed000_weighted_lovasz, x2, (torch.rand(3, 64) > 0.5).float())


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255])
def test_lovasz_hinge_berman(backend, per_image, ignore):
    x = torch.randn(3, 9, 10) * 2  # Berman's [B, H, W] logits
    y = (torch.rand(3, 9, 10) > 0.6).long()
    if ignore is not None:
        y[torch.rand(3, 9, 10) < 0.2] = ignore
        y[2] = ignore  # an image with only void pixels counts as 0 in the mean
    compare_to_reference(recipes.lovasz_hinge, ref.berman_lovasz_hinge, x, y, per_image, ignore,
                         upstream=upstream_not_one)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all", [3, 1]], ids=str)
def test_lovasz_softmax_berman(backend, per_image, classes):
    probas = torch.softmax(torch.randn(3, 4, 8, 7) * 2, dim=1)  # Berman takes probabilities
    y = torch.randint(0, 3, (3, 8, 7))  # class 3 absent
    y[torch.rand(3, 8, 7) < 0.2] = 255
    compare_to_reference(recipes.lovasz_softmax, ref.berman_lovasz_softmax, probas, y, classes, per_image, 255,
                         upstream=upstream_not_one)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", [1]], ids=str)
def test_lovasz_softmax_one_sigmoid_channel(backend, per_image, classes):
    probas = torch.rand(3, 6, 7)  # [B, H, W]: one sigmoid channel
    y = (torch.rand(3, 6, 7) > 0.5).long()
    y[0] = 0  # with classes=[1] image 0 has no foreground; under 'present' class 0 is everywhere
    y[1, :2] = 255
    compare_to_reference(recipes.lovasz_softmax, ref.berman_lovasz_softmax, probas, y, classes, per_image, 255)


def test_lovasz_softmax_sigmoid_needs_one_class():
    with pytest.raises(ValueError, match="only with 1 class"):
        recipes.lovasz_softmax(torch.rand(2, 4, 4), torch.randint(0, 2, (2, 4, 4)), classes=[0, 1])
