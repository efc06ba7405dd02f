import torch

from triton_segloss import recipes
from checks import compare_to_reference
from reference import bce as ref


def test_weighted_bce_seed000(backend):
    x = torch.randn(4, 1, 16, 16) * 2
    t = (torch.rand(4, 1, 16, 16) > 0.7).float()
    compare_to_reference(recipes.weighted_bce, ref.seed000_weighted_bce, x, t)


def test_weighted_bce_loss2d_seed001(backend):
    x = torch.randn(3, 1, 12, 10)
    t = (torch.rand(3, 1, 12, 10) > 0.5).float()
    w = torch.rand(3, 1, 12, 10) + 0.5
    compare_to_reference(recipes.weighted_bce_loss2d, ref.seed001_weighted_bce_loss2d, x, t, w)
