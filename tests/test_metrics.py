import datetime
import os
import socket
import time

import numpy as np
import pytest
import torch

import triton_segloss as tsl
from triton_segloss import metrics
from reference import metrics as ref
from triton_segloss.confusion.ops import ConfusionOptions, confusion as confusion_op
from checks import sparse_mapping  # noqa: E402


def _np_confusion(pred, target, C, ignore_index=None):
    """np.bincount(C * true + pred) over pixels with 0 <= true < C (and != ignore_index)."""
    t = target.reshape(-1).numpy().astype(np.int64)
    p = pred.reshape(-1).numpy().astype(np.int64)
    keep = (t >= 0) & (t < C)
    if ignore_index is not None:
        keep &= t != ignore_index
    return np.bincount(C * t[keep] + p[keep], minlength=C * C).reshape(C, C)


# (logits shape): 2D, 3D, one pixel, odd sizes, C = 1, C = 2, C = 70 (global-atomic path, two chunks of classes)
SHAPES = [(2, 5, 7, 6), (2, 3, 4, 5, 3), (1, 4, 1, 1), (2, 21, 37, 41), (2, 1, 3, 3), (3, 2, 9, 8), (2, 70, 3, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_from_logits_equals_bincount(backend, shape):
    C = shape[1]
    x = torch.randn(shape)
    t = torch.randint(-2, C + 2, (shape[0], *shape[2:]))  # some labels outside [0, C): skipped
    got = metrics.confusion_matrix(x, t, C)
    assert got.dtype == torch.int64 and got.shape == (C, C)
    np.testing.assert_array_equal(got.numpy(), _np_confusion(x.argmax(1), t, C))
    np.testing.assert_array_equal(metrics.confusion_matrix(x.argmax(1), t, C).numpy(), got.numpy())


def test_ignore_index_and_target_dtypes(backend):
    x = torch.randn(2, 4, 9, 10)
    t = torch.randint(0, 4, (2, 9, 10))
    t[torch.rand(t.shape) < 0.3] = 255
    want = _np_confusion(x.argmax(1), t, 4, 255)
    for tt in (t, t.to(torch.int32), t.to(torch.uint8), t.unsqueeze(1)):
        np.testing.assert_array_equal(metrics.confusion_matrix(x, tt, 4, ignore_index=255).numpy(), want)
    t2 = torch.randint(0, 4, (2, 9, 10))
    t2[0, 0] = 2  # ignore_index inside [0, C): that class is not counted
    np.testing.assert_array_equal(metrics.confusion_matrix(x, t2, 4, ignore_index=2).numpy(),
                                  _np_confusion(x.argmax(1), t2, 4, 2))


def test_ties_and_nan_follow_torch_argmax(backend):
    # ties: the first maximum wins; a NaN is the maximum (the first NaN wins), also across chunks of classes
    C = 70
    x = torch.zeros(1, C, 6)
    x[0, 3, 1] = 1.0
    x[0, 65, 1] = 1.0  # tie across the chunk boundary: class 3
    x[0, 40, 2] = float("nan")
    x[0, 66, 2] = float("nan")
    x[0, 5, 3] = 9.0
    x[0, 67, 3] = float("nan")  # NaN in a later chunk beats a number in an earlier one
    x[0, :, 4] = float("-inf")
    x[0, :, 5] = float("inf")
    t = torch.zeros(1, 6, dtype=torch.long)
    pred = x.argmax(1)
    assert pred.tolist() == [[0, 3, 40, 67, 0, 0]]
    np.testing.assert_array_equal(metrics.confusion_matrix(x, t, C).numpy(), _np_confusion(pred, t, C))
    y = x[:, :21].clone()
    np.testing.assert_array_equal(metrics.confusion_matrix(y, t, 21).numpy(), _np_confusion(y.argmax(1), t, 21))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_logit_dtypes_and_layouts(backend, dtype):
    x = torch.randn(2, 6, 10, 12).to(dtype)
    t = torch.randint(0, 6, (2, 10, 12))
    want = _np_confusion(x.float().argmax(1), t, 6)
    np.testing.assert_array_equal(metrics.confusion_matrix(x, t, 6).numpy(), want)
    cl = x.to(memory_format=torch.channels_last)
    np.testing.assert_array_equal(metrics.confusion_matrix(cl, t, 6).numpy(), want)
    big = torch.randn(2, 6, 20, 25).to(dtype)
    sl = big[:, :, ::2, 1:13]
    np.testing.assert_array_equal(metrics.confusion_matrix(sl, t, 6).numpy(), _np_confusion(sl.float().argmax(1), t, 6))


def test_predicted_labels_outside_range_are_skipped(backend):
    t = torch.randint(0, 3, (2, 5, 5))
    p = torch.randint(-1, 5, (2, 5, 5))
    keep = (p >= 0) & (p < 3)
    want = _np_confusion(p[keep], t[keep], 3)
    for pp in (p, p.to(torch.int32), p.to(torch.int16)):
        np.testing.assert_array_equal(metrics.confusion_matrix(pp, t, 3).numpy(), want)
    b = torch.rand(2, 5, 5) > 0.5  # a bool prediction of a binary problem
    np.testing.assert_array_equal(metrics.confusion_matrix(b, t.clamp(max=1), 2).numpy(),
                                  _np_confusion(b.long(), t.clamp(max=1), 2))


def test_large_counts_are_int64_and_deterministic(backend):
    x = torch.randn(1, 3, 128, 130)
    t = torch.randint(0, 3, (1, 128, 130))
    a = metrics.confusion_matrix(x, t, 3)
    b = metrics.confusion_matrix(x, t, 3)
    assert torch.equal(a, b) and int(a.sum()) == 128 * 130


def test_compile_fullgraph_and_opcheck(backend):
    x = torch.randn(2, 4, 6, 7)
    t = torch.randint(0, 5, (2, 6, 7))
    torch._dynamo.reset()
    f = torch.compile(lambda a, b: metrics.confusion_matrix(a, b, 4, ignore_index=4), fullgraph=True)
    torch.testing.assert_close(f(x, t), metrics.confusion_matrix(x, t, 4, ignore_index=4))
    g = torch.compile(lambda a, b: metrics.scores(metrics.confusion_matrix(a, b, 4))["miou"], fullgraph=True,
                      backend="aot_eager")  # no graph break; inductor's code generation is not what is tested
    torch.testing.assert_close(g(x, t), metrics.scores(metrics.confusion_matrix(x, t, 4))["miou"], equal_nan=True)
    for tensors, o in (((x.reshape(2, 4, -1), t.reshape(2, 1, -1)), ConfusionOptions(4, ignore_index=4)),
                       ((x.argmax(1).reshape(2, 1, -1), t.reshape(2, 1, -1)), ConfusionOptions(4)),
                       ((torch.randn(2, 70, 3), torch.randint(0, 70, (2, 1, 3))), ConfusionOptions(70))):
        torch.library.opcheck(confusion_op.forward_op, (*tensors, *o))


def test_compile_dynamic(backend):
    # dynamic=True: no graph break, and new sizes do not recompile
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    f = torch.compile(lambda a, b: metrics.confusion_matrix(a, b, 4, ignore_index=4), fullgraph=True, dynamic=True,
                      backend="aot_eager")
    g = torch.compile(lambda a, b: metrics.confusion_matrix(a.argmax(1), b, 4), fullgraph=True, dynamic=True,
                      backend="aot_eager")
    for shape in ((2, 4, 6, 7), (3, 4, 9, 5), (4, 4, 5, 11)):  # no size 1: dynamo specialises it
        x = torch.randn(shape)
        t = torch.randint(0, 5, (shape[0], *shape[2:]))
        assert torch.equal(f(x, t), metrics.confusion_matrix(x, t, 4, ignore_index=4))
        want = metrics.confusion_matrix(x.argmax(1), t, 4)
        assert torch.equal(g(x, t), want)
    assert counters["stats"]["unique_graphs"] == 2


def test_logits_requiring_grad(backend):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randint(0, 3, (2, 4, 4))
    cm = metrics.confusion_matrix(x, t, 3)
    assert not cm.requires_grad and int(cm.sum()) == 32


# ---- scores ------------------------------------------------------------------

def _label_maps(n, C, h=9, w=8, p_ignore=0.2):
    trues = [np.random.randint(0, C, (h, w)) for _ in range(n)]
    for lt in trues:
        lt[np.random.rand(h, w) < p_ignore] = -1
    preds = [np.random.randint(0, C, (h, w)) for _ in range(n)]
    return trues, preds


def test_scores_equal_seed_label_accuracy_score(backend):
    np.random.seed(0)
    trues, preds = _label_maps(3, 5)
    trues[0][trues[0] == 4] = 0  # class 4 absent from image 0
    for lt in trues:
        lt[lt == 3] = 1  # class 3 absent from the truth: NaN accuracy, left out of the means
    hist = sum(ref.fast_hist(lt.flatten(), lp.flatten(), 5) for lt, lp in zip(trues, preds))
    cm = sum(metrics.confusion_matrix(torch.from_numpy(lp)[None], torch.from_numpy(lt)[None], 5)
             for lt, lp in zip(trues, preds))
    np.testing.assert_array_equal(cm.numpy(), hist)
    s = metrics.scores(cm)
    acc, acc_cls, miou, fwiou = ref.label_accuracy_score(trues, preds, 5)
    for k, v in (("pixel_acc", acc), ("mean_acc", acc_cls), ("miou", miou), ("fwiou", fwiou)):
        assert s[k].dtype == torch.float64 and s[k].dim() == 0
        np.testing.assert_allclose(s[k].item(), v, rtol=1e-12)
    iou, dice = ref.per_class_iou_dice(hist)
    np.testing.assert_allclose(s["iou"].numpy(), iou, rtol=1e-12)
    np.testing.assert_allclose(s["dice"].numpy(), dice, rtol=1e-12)
    assert not np.isnan(s["dice"][3].item())  # class 3 is predicted: a Dice of 0, not NaN
    assert s["dice"][3].item() == 0.0


def test_scores_of_empty_and_absent_classes():
    cm = torch.zeros(3, 3, dtype=torch.int64)
    s = metrics.scores(cm)
    acc, acc_cls, miou, fwiou = ref.label_accuracy_score([], [], 3)
    assert np.isnan(acc) and s["pixel_acc"].isnan()
    assert s["mean_acc"].isnan() and s["miou"].isnan() and s["fwiou"].item() == fwiou == 0.0
    cm[0, 0] = 5  # only class 0: classes 1 and 2 are NaN and left out
    s = metrics.scores(cm)
    assert s["miou"].item() == 1.0 and s["mean_acc"].item() == 1.0 and s["iou"][1:].isnan().all()
    s = metrics.scores(cm.numpy())
    assert s["pixel_acc"].item() == 1.0
    with pytest.raises(ValueError, match=r"square \(C, C\)"):
        metrics.scores(torch.zeros(2, 3))


# ---- streaming and distributed ---------------------------------------------

def test_streaming_equals_one_shot(backend):
    xs = [torch.randn(2, 4, 5, 6) for _ in range(3)]
    ts = [torch.randint(0, 5, (2, 5, 6)) for _ in range(3)]
    acc = metrics.ConfusionMatrix(4, ignore_index=4)
    for x, t in zip(xs, ts):
        acc.update(x, t)
    want = metrics.confusion_matrix(torch.cat(xs), torch.cat(ts), 4, ignore_index=4)
    assert torch.equal(acc.compute(), want)
    assert acc.sync() is acc and torch.equal(acc.compute(), want)  # no process group: a no-op
    for k, v in acc.scores().items():
        torch.testing.assert_close(v, metrics.scores(want)[k], equal_nan=True)
    acc.update(xs[0].argmax(1), ts[0])  # predicted labels work too
    assert torch.equal(acc.compute(), want + metrics.confusion_matrix(xs[0], ts[0], 4, ignore_index=4))
    acc.reset()
    assert torch.equal(acc.compute(), torch.zeros(4, 4, dtype=torch.int64))
    assert "num_classes=4" in repr(acc)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard(rank):
    """Rank r's batches (rank 1 has one batch more than rank 0)."""
    g = torch.Generator().manual_seed(100 + rank)
    return [(torch.randn(2, 4, 5, 6, generator=g), torch.randint(0, 5, (2, 5, 6), generator=g))
            for _ in range(rank + 1)]


def _sync_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        acc = metrics.ConfusionMatrix(4, ignore_index=4)
        batches = _shard(rank)
        acc.update(*batches[0])
        acc.sync()
        first = acc.compute()
        acc.sync()  # nothing new since the last sync: the counts do not change
        second = acc.compute()
        for b in batches[1:]:
            acc.update(*b)
        acc.sync()  # only the counts since the last sync are added
        torch.save({"first": first, "second": second, "final": acc.compute()}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_process_sync_equals_single_process(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    world = 2
    ctx = mp.start_processes(_sync_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 120
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the two gloo processes did not finish within 120 s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
    shards = [_shard(r) for r in range(world)]
    everything = [b for s in shards for b in s]
    want = metrics.confusion_matrix(torch.cat([x for x, _ in everything]), torch.cat([t for _, t in everything]), 4,
                                    ignore_index=4)
    first_batches = [s[0] for s in shards]
    want_first = metrics.confusion_matrix(torch.cat([x for x, _ in first_batches]),
                                          torch.cat([t for _, t in first_batches]), 4, ignore_index=4)
    for r in range(world):
        got = torch.load(tmp_path / f"{r}.pt")
        assert torch.equal(got["first"], want_first)
        assert torch.equal(got["second"], want_first)
        assert torch.equal(got["final"], want)


# ---- bad input -------------------------------------------------------------

def test_bad_inputs():
    x, t = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"logits \(2, 3, 4, 4\) have 3 classes in dim 1 but num_classes=4"):
        metrics.confusion_matrix(x, t, 4)
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*spatial\) = \(2, 4, 4\).*\(2, 4, 5\)"):
        metrics.confusion_matrix(x, torch.zeros(2, 4, 5, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"same shape.*\(2, 4, 4\) and target \(2, 4, 5\)"):
        metrics.confusion_matrix(t, torch.zeros(2, 4, 5, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="target must hold integer"):
        metrics.confusion_matrix(t, t.float(), 3)
    with pytest.raises(TypeError, match="num_classes"):
        metrics.confusion_matrix(x, t, 3.0)
    with pytest.raises(ValueError, match="num_classes"):
        metrics.confusion_matrix(x, t, 0)
    with pytest.raises(TypeError, match="ignore_index"):
        metrics.ConfusionMatrix(3, ignore_index=1.5)


# ---- class stride 2^30 ---------------------------------------------------------

CLASS_STRIDE = 2**30
CHUNK_STRIDE = 2**25  # 70 classes: classes 64.. (the second chunk) start past 2^31
SPARSE_NUMEL = 70 * CHUNK_STRIDE + 2**16  # > 2 * CLASS_STRIDE + 2**16 too


@pytest.fixture(scope="module")
def sparse_storage(tmp_path_factory):
    """A sparse memory-mapped float32 file of ~2.35e9 elements (9 GiB of address space, a few pages of disk)."""
    path = tmp_path_factory.mktemp("big_cm") / "sparse.bin"
    big = sparse_mapping(path, SPARSE_NUMEL)
    yield big
    del big
    os.unlink(path)



@pytest.mark.parametrize("C,stride", [(3, CLASS_STRIDE), (70, CHUNK_STRIDE)], ids=["private", "atomic-2-chunks"])
def test_class_offsets_past_2_31(sparse_storage, in_place_interpreter, C, stride):
    # class c of the logits starts c * stride elements in: past 2^31 from c = 2 (stride 2^30), or in the
    # second chunk of classes (70 classes, stride 2^25), where an int32 c * stride_xc overflows
    S = 24
    x = sparse_storage.as_strided((1, C, S), (C * stride, stride, 1))
    x.copy_(torch.randn(1, C, S))
    x[0, C - 1, ::3] = 5.0  # the last class (farthest out) wins some pixels
    t = torch.randint(0, C, (1, S))
    with tsl.use_backend("triton"):
        got = metrics.confusion_matrix(x, t, C)
        assert torch.equal(got, metrics.confusion_matrix(x.clone(), t, C))
    np.testing.assert_array_equal(got.numpy(), _np_confusion(x.argmax(1), t, C))
