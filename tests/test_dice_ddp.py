"""Dice pooled across ranks (``process_group=``): two gloo processes on loopback against one process.

Every case splits one batch into two shards of different sizes (3 + 1 images). Each rank
computes the loss of its shard with ``process_group=WORLD``; the single process computes it on
the whole batch with no group. The loss must be the same on both ranks and equal the single
process's; each rank's logits gradient must be ``world_size`` times the single process's
gradient of its shard (the upstream gradient is all-reduced in backward, see
``triton_segloss._core.dist``). A DDP-wrapped convolution then checks the user-level claim:
after DDP averages the parameter gradients they equal the single-process gradients of the
whole batch, while without ``process_group`` the pooled loss of a shard differs (the test
can tell the two apart).
"""

import io
import multiprocessing
import os
import tempfile
import traceback

import pytest
import torch
import torch.distributed as dist

import triton_segloss as tsl

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")

WORLD = 2
SHARDS = (slice(0, 3), slice(3, 4))  # rank 0 gets 3 images, rank 1 gets 1: pooling must not need equal shards
N, C, H, W = 4, 3, 6, 5


def _inputs(kind: str, dtype):
    g = torch.Generator().manual_seed(1234)
    x = torch.randn((N, C if kind != "binary" else 1, H, W), generator=g, dtype=torch.float64).to(dtype)
    if kind == "multiclass":
        t = torch.randint(0, C, (N, H, W), generator=g)
        t[0, :2] = 255  # ignored pixels on rank 0 only
        t[1] = t[1].clamp_max(1)  # image 1 has no class 2
    else:
        t = (torch.rand(x.shape, generator=g) > 0.6).to(dtype)
    return x, t


def _cases():
    """name -> (loss function taking process_group=, target kind, logits dtype, relative tolerance)."""
    f64, f32 = torch.float64, torch.float32
    return {
        "dice binary": (lambda x, t, **k: tsl.dice_loss(x, t, **k), "binary", f64, 1e-12),
        "dice multiclass ignore+class_weight none": (
            lambda x, t, **k: tsl.dice_loss(x, t, mode="multiclass", ignore_index=255, class_weight=[1.0, 2.0, 0.5],
                                            reduction="none", **k), "multiclass", f64, 1e-12),
        "dice multiclass fp32": (lambda x, t, **k: tsl.dice_loss(x, t, mode="multiclass", smooth=1.0, ignore_index=255, **k),
                                 "multiclass", f32, 2e-6),
        "jaccard multilabel micro": (lambda x, t, **k: tsl.jaccard_loss(x, t, mode="multilabel", average="micro", **k),
                                     "multilabel", f64, 1e-12),
        "tversky binary focal": (lambda x, t, **k: tsl.tversky_loss(x, t, alpha=0.3, beta=0.7, gamma=0.75, **k),
                                 "binary", f64, 1e-12),
        "generalized multiclass": (lambda x, t, **k: tsl.generalized_dice_loss(x, t, mode="multiclass",
                                                                               ignore_index=255, **k),
                                   "multiclass", f64, 1e-12),
        "mcc binary": (lambda x, t, **k: tsl.mcc_loss(x, t, **k), "binary", f64, 1e-12),
        "bce_dice multilabel pos_weight": (lambda x, t, **k: tsl.bce_dice_loss(x, t, mode="multilabel",
                                                                              pos_weight=2.0, **k),
                                           "multilabel", f64, 1e-12),
        "ce_dice ce_weight sum": (lambda x, t, **k: tsl.ce_dice_loss(x, t, ce_weight=[1.0, 3.0, 0.5], ignore_index=255,
                                                                     reduction="sum", **k), "multiclass", f64, 1e-12),
        "dice_focal multiclass": (lambda x, t, **k: tsl.dice_focal_loss(x, t, mode="multiclass", ignore_index=255, **k),
                                  "multiclass", f64, 1e-12),
    }


def _loss_and_grad(fn, x, t, **kw):
    x = x.clone().requires_grad_(True)
    loss = fn(x, t, **kw)
    loss.sum().backward()
    return loss.detach(), x.grad


def _ddp_model():
    torch.manual_seed(7)
    return torch.nn.Conv2d(2, C, 3, padding=1).double()


def _ddp_data():
    g = torch.Generator().manual_seed(99)
    return torch.randn((N, 2, H, W), generator=g, dtype=torch.float64), torch.randint(0, C, (N, H, W), generator=g)


def _ddp_loss(model, img, y, **kw):
    return tsl.dice_loss(model(img), y, mode="multiclass", **kw)


def _worker(rank, init_file, queue):
    try:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
        torch.set_num_threads(1)
        group = dist.group.WORLD
        out = {}
        for backend in ("triton", "torch"):
            with tsl.use_backend(backend):
                for name, (fn, kind, dtype, _) in _cases().items():
                    x, t = _inputs(kind, dtype)
                    sh = SHARDS[rank]
                    out[backend, name] = _loss_and_grad(fn, x[sh], t[sh], process_group=group)
                try:
                    x, t = _inputs("binary", torch.float64)
                    tsl.dice_loss(x, t, per_image=True, process_group=group)
                    out[backend, "per_image error"] = None
                except ValueError as e:
                    out[backend, "per_image error"] = str(e)
                # DDP: parameter gradients after DDP's averaging, with and without the pooled sums
                img, y = _ddp_data()
                for pooled in (True, False):
                    ddp = torch.nn.parallel.DistributedDataParallel(_ddp_model())
                    loss = _ddp_loss(ddp, img[SHARDS[rank]], y[SHARDS[rank]],
                                     process_group=group if pooled else None)
                    loss.backward()
                    out[backend, "ddp", pooled] = (loss.detach(), [p.grad.clone() for p in ddp.parameters()])
        # the op under torch.compile(fullgraph=True): the collective lives inside the custom op
        fn = _cases()["dice multiclass fp32"][0]
        x, t = _inputs("multiclass", torch.float32)
        with tsl.use_backend("triton"):
            compiled = torch.compile(lambda a, b: fn(a, b, process_group=group), fullgraph=True)
            out["compiled"] = _loss_and_grad(compiled, x[SHARDS[rank]], t[SHARDS[rank]])
        buf = io.BytesIO()  # plain bytes: tensors sent through a queue would be shared with a process that exits
        torch.save(out, buf)
        queue.put((rank, buf.getvalue()))
    except BaseException:  # report, never hang the parent
        queue.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    """The two ranks' results (rank -> dict), from one spawn of two processes."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as d:
        init_file = os.path.join(d, "init")
        procs = [ctx.Process(target=_worker, args=(r, init_file, queue)) for r in range(WORLD)]
        for p in procs:
            p.start()
        results = {}
        try:
            for _ in range(WORLD):
                rank, res = queue.get(timeout=600)
                results[rank] = res
        finally:
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
    for rank, res in results.items():
        if isinstance(res, str):
            pytest.fail(f"rank {rank} failed:\n{res}")
    return {rank: torch.load(io.BytesIO(res)) for rank, res in results.items()}


def _close(a, b, rtol, what):
    scale = max(b.abs().max().item(), 1e-30)
    diff = (a - b).abs().max().item()
    assert diff <= rtol * scale, f"{what}: max |diff| {diff:.3e} > {rtol:.0e} x {scale:.3e}"
    return diff / scale


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("name", list(_cases()))
def test_two_ranks_equal_one_process(ranks, backend, name):
    fn, kind, dtype, rtol = _cases()[name]
    x, t = _inputs(kind, dtype)
    with tsl.use_backend(backend):
        loss1, grad1 = _loss_and_grad(fn, x, t)
    for rank in range(WORLD):
        loss, grad = ranks[rank][backend, name]
        assert loss.shape == loss1.shape
        _close(loss, loss1, rtol, f"rank {rank} loss")
        _close(grad, WORLD * grad1[SHARDS[rank]], rtol, f"rank {rank} gradient")


def test_shard_alone_differs(ranks):
    """Without the group a shard's pooled Dice is not the whole batch's: the test above can fail."""
    fn, kind, dtype, _ = _cases()["dice binary"]
    x, t = _inputs(kind, dtype)
    whole = fn(x, t)
    alone = fn(x[SHARDS[0]], t[SHARDS[0]])
    assert (whole - alone).abs().item() > 1e-3
    assert (ranks[0]["triton", "dice binary"][0] - whole).abs().item() < 1e-12


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_ddp_parameter_gradients_equal_one_process(ranks, backend):
    img, y = _ddp_data()
    model = _ddp_model()
    with tsl.use_backend(backend):
        loss1 = _ddp_loss(model, img, y)
    loss1.backward()
    grads1 = [p.grad for p in model.parameters()]
    for rank in range(WORLD):
        loss, grads = ranks[rank][backend, "ddp", True]
        _close(loss, loss1.detach(), 1e-12, f"rank {rank} DDP loss")
        for g, g1 in zip(grads, grads1):
            _close(g, g1, 1e-12, f"rank {rank} DDP parameter gradient")
        # without process_group: each rank's loss is its shard's, and the averaged gradient is not the batch's
        loss_alone, grads_alone = ranks[rank][backend, "ddp", False]
        assert (loss_alone - loss1.detach()).abs().item() > 1e-4
    assert max((g - g1).abs().max().item() for g, g1 in zip(grads_alone, grads1)) > 1e-6


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_per_image_with_group_raises(ranks, backend):
    msg = ranks[0][backend, "per_image error"]
    assert msg is not None and "per_image=False" in msg


def test_compiled_fullgraph_with_group(ranks):
    fn, kind, dtype, rtol = _cases()["dice multiclass fp32"]
    x, t = _inputs(kind, dtype)
    for rank in range(WORLD):
        loss, grad = ranks[rank]["compiled"]
        eager_loss, eager_grad = ranks[rank]["triton", "dice multiclass fp32"]
        _close(loss, eager_loss, rtol, f"rank {rank} compiled loss")
        _close(grad, eager_grad, rtol, f"rank {rank} compiled gradient")


def test_group_type_checked():
    x, t = _inputs("binary", torch.float64)
    with pytest.raises(TypeError, match="process_group"):
        tsl.dice_loss(x, t, process_group="WORLD")
