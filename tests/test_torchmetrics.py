"""ConfusionMatrixMetric (triton_segloss.confusion.metric): a torchmetrics.Metric around the fused
confusion matrix, checked against torchmetrics' own MulticlassConfusionMatrix / MulticlassJaccardIndex."""

import pickle
import subprocess
import sys

import pytest
import torch

tm = pytest.importorskip("torchmetrics")
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex  # noqa: E402

from triton_segloss.confusion.metric import ConfusionMatrixMetric  # noqa: E402

C = 4
# compute() right after reset() is deliberate in one test: torchmetrics warns about it
pytestmark = pytest.mark.filterwarnings("ignore:The ``compute`` method")


def _batch(ignore=None):
    x = torch.randn(2, C, 5, 6)
    y = torch.randint(0, C, (2, 5, 6))
    if ignore is not None:
        y[torch.rand(y.shape) < 0.2] = ignore
    return x, y


@pytest.mark.parametrize("ignore", [None, 255, 1], ids=["none", "255", "label1"])
def test_matches_torchmetrics(backend, ignore):
    ours = ConfusionMatrixMetric(C, ignore_index=ignore)
    theirs = MulticlassConfusionMatrix(C, ignore_index=ignore)
    jac = MulticlassJaccardIndex(C, ignore_index=ignore, average="none")
    for _ in range(3):
        x, y = _batch(ignore)
        ours.update(x, y)  # logits: the argmax is fused
        theirs.update(x, y)
        jac.update(x, y)
    pred = torch.randint(0, C, (2, 5, 6))  # integer predictions too
    y = _batch(ignore)[1]
    ours.update(pred, y)
    theirs.update(pred, y)
    jac.update(pred, y)
    cm = ours.compute()
    assert cm.dtype == torch.int64
    assert torch.equal(cm, theirs.compute())
    iou = ours.scores()["iou"]
    union = cm.sum(0) + cm.sum(1) - cm.diagonal()
    present = union > 0  # torchmetrics scores 0/0 as 0, ours as NaN (left out of the mean)
    torch.testing.assert_close(iou[present], jac.compute().double()[present], rtol=1e-6, atol=1e-7)
    ours.reset()
    assert int(ours.compute().sum()) == 0


def test_score_option_and_miou():
    x, y = _batch()
    m = ConfusionMatrixMetric(C, score="miou")
    theirs = MulticlassJaccardIndex(C, average="macro")
    m.update(x, y)
    theirs.update(x, y)
    got = m.compute()
    assert got.dim() == 0
    torch.testing.assert_close(got, theirs.compute().double(), rtol=1e-6, atol=1e-7)  # every class present here
    with pytest.raises(ValueError, match="score"):
        ConfusionMatrixMetric(C, score="accuracy")
    with pytest.raises(TypeError, match="num_classes"):
        ConfusionMatrixMetric(2.0)


def test_state_reduces_by_sum_across_ranks():
    """The DDP path: torchmetrics stacks each rank's gathered confmat and applies the state's
    reduce fx; it must be the sum (a 2-process run is too slow for the 2-core CI)."""
    x1, y1 = _batch()
    x2, y2 = _batch()
    ranks = [ConfusionMatrixMetric(C), ConfusionMatrixMetric(C)]
    ranks[0].update(x1, y1)
    ranks[1].update(x2, y2)
    reduce = ranks[0]._reductions["confmat"]
    synced = reduce(torch.stack([r.confmat for r in ranks]))
    want = ConfusionMatrixMetric(C)
    want.update(x1, y1)
    want.update(x2, y2)
    assert torch.equal(synced, want.compute())
    assert torch.equal(ranks[0]._defaults["confmat"], torch.zeros(C, C, dtype=torch.int64))


def test_pickle_and_state_dict():
    x, y = _batch()
    m = ConfusionMatrixMetric(C, ignore_index=0)
    m.update(x, y)
    clone = pickle.loads(pickle.dumps(m))
    assert torch.equal(clone.compute(), m.compute())
    m.persistent(True)
    assert set(m.state_dict()) == {"confmat"}


def test_import_without_torchmetrics():
    """triton_segloss imports without torchmetrics; the metric's lookup names it in an ImportError."""
    code = (
        "import sys; sys.modules['torchmetrics'] = None\n"
        "import triton_segloss, triton_segloss.metrics\n"
        "from triton_segloss.confusion import metric\n"
        "triton_segloss.metrics.ConfusionMatrix(3)\n"
        "try:\n    metric.ConfusionMatrixMetric\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORTERROR" in out.stdout and "torchmetrics" in out.stdout
