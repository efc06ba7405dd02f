import numpy as np
import pytest
import torch

from triton_segloss import recipes
from checks import compare_to_reference, upstream_not_one
from reference import ce as ref_ce
from reference import metrics as ref_m
from reference import ncut as ref_ncut


@pytest.mark.parametrize("size_average", [True, False])
def test_cross_entropy2d_seed001(backend, size_average):
    x = torch.randn(3, 5, 9, 8) * 2
    t = torch.randint(0, 5, (3, 9, 8))
    t[torch.rand(t.shape) < 0.3] = -1
    t[0, 0, :3] = -7  # every negative label is ignored, not only -1 or -100
    compare_to_reference(recipes.cross_entropy2d, ref_ce.seed001_cross_entropy2d, x, t,
                         size_average=size_average, upstream=upstream_not_one)
    w = torch.rand(5) + 0.2
    compare_to_reference(recipes.cross_entropy2d, ref_ce.seed001_cross_entropy2d, x, t, weight=w,
                         size_average=size_average)


def test_cross_entropy2d_all_negative_is_zero(backend):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = recipes.cross_entropy2d(x, torch.full((2, 4, 4), -1))
    (g,) = torch.autograd.grad(loss, x)
    assert loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_balanced_bce_loss_seed003(backend):
    x = torch.randn(4, 2, 12, 11)
    t = (torch.rand(4, 12, 11) < 0.2).long()
    compare_to_reference(recipes.balanced_bce_loss, ref_ce.seed003_balanced_bce, x, t, upstream=upstream_not_one)
    # one class absent: its weight is 1e6 but it has no pixels
    compare_to_reference(recipes.balanced_bce_loss, ref_ce.seed003_balanced_bce, x, torch.zeros_like(t))
    with pytest.raises(ValueError, match=r"two-class logits.*\(4, 3, 12, 11\)"):
        recipes.balanced_bce_loss(torch.randn(4, 3, 12, 11), t)


def test_label_accuracy_score_seed001(backend):
    np.random.seed(1)
    n_class = 4
    trues = [np.random.randint(-1, n_class, (10, 9)) for _ in range(3)]
    preds = [np.random.randint(0, n_class, (10, 9)) for _ in range(3)]
    trues[1][trues[1] == 2] = 0  # a class absent in one image
    want = ref_m.label_accuracy_score(trues, preds, n_class)
    got = recipes.label_accuracy_score(trues, preds, n_class)
    assert len(got) == 4 and all(isinstance(v, np.float64) for v in got)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the seed's own call: torch labels and a numpy (N, H, W) array of predictions
    lt = torch.from_numpy(np.stack(trues))
    lp = np.stack(preds)
    np.testing.assert_allclose(recipes.label_accuracy_score(lt, lp, n_class), want, rtol=1e-12)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255, 1])
def test_iou_binary_seed004(backend, per_image, ignore):
    torch.manual_seed(2)
    preds = (torch.rand(3, 8, 7) < 0.4).long()
    labels = (torch.rand(3, 8, 7) < 0.3).long()
    labels[torch.rand(3, 8, 7) < 0.2] = 255
    labels[0, 0, 0] = 3  # neither 0, 1 nor ignored: background for Berman
    preds[2] = 0
    labels[2][labels[2] == 1] = 0  # image 2: empty union -> EMPTY
    got = recipes.iou_binary(preds, labels, EMPTY=1.0, ignore=ignore, per_image=per_image)
    want = ref_m.iou_binary(preds.numpy(), labels.numpy(), EMPTY=1.0, ignore=ignore, per_image=per_image)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [None, 255, 2])
def test_iou_seed004(backend, per_image, ignore):
    torch.manual_seed(3)
    C = 4
    preds = torch.randint(0, C + 1, (3, 8, 7))  # C is outside [0, C): never a match
    labels = torch.randint(0, C, (3, 8, 7))
    labels[torch.rand(3, 8, 7) < 0.2] = 255
    labels[1][labels[1] == 3] = 0
    preds[1][preds[1] == 3] = 0  # class 3 empty in image 1 -> EMPTY
    got = recipes.iou(preds, labels, C, EMPTY=1.0, ignore=ignore, per_image=per_image)
    want = ref_m.iou(preds.numpy(), labels.numpy(), C, EMPTY=1.0, ignore=ignore, per_image=per_image)
    assert isinstance(got, np.ndarray) and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_ncut_loss_seed003(backend):
    probs = torch.softmax(torch.randn(2, 4, 12, 10) * 2, dim=1)
    image = torch.randn(2, 1, 12, 10) * 3
    compare_to_reference(recipes.ncut_loss, ref_ncut.ncut_loss, probs, image, upstream=upstream_not_one)
    compare_to_reference(recipes.ncut_loss, ref_ncut.ncut_loss, probs, image, 3, 2.0, 5.0)
