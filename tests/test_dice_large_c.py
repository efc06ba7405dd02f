"""Multiclass Dice at large C (150, 1024 classes): values and gradients against the float64
reference, the multi-block walk of the softmax kernels, and the partial-sum bytes they write."""

import pytest
import torch

import triton_segloss as tsl
from checks import bitwise_deterministic, compare_to_reference, upstream_not_one
from reference import dice as ref
from test_dice import make_target
from triton_segloss.dice import kernels as K

LOSSES = {
    "dice": (lambda x, y, **kw: tsl.dice_loss(x, y, mode="multiclass", **kw),
             lambda x, y, **kw: ref.dice_loss(x, y, mode="multiclass", **kw)),
    "ce_dice": (tsl.ce_dice_loss, ref.ce_dice_loss),
    "dice_focal": (lambda x, y, **kw: tsl.dice_focal_loss(x, y, mode="multiclass", **kw),
                   lambda x, y, **kw: ref.dice_focal_loss(x, y, mode="multiclass", **kw)),
}


@pytest.fixture
def small_walk(monkeypatch):
    """Make the softmax kernels walk several blocks per program on tiny images: at most 48 pixels
    per program (6 blocks of 8 at C 150, 24 of 2 at C 1024) whatever the program count,
    so a program's last blocks run past the image (masked) and the loop's sums are exercised."""
    monkeypatch.setattr(K, "PIX_PER_PROGRAM", 48)
    monkeypatch.setattr(K, "PIX_MIN", 48)
    monkeypatch.setattr(K, "MIN_PROGRAMS", 1)


# C 1024 runs one loss: the reference loops over the classes in Python (seconds per call); CE + Dice
# covers the Dice sums and a pixel term, Dice + focal's softmax focal term runs at C 150
CASES = [(name, 150) for name in LOSSES] + [("ce_dice", 1024)]


@pytest.mark.parametrize("name,C", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_large_c_matches_reference(backend, small_walk, name, C):
    fn, rfn = LOSSES[name]
    shape = (2, C, 9, 7)  # 63 pixels: 2 programs per image, the second's walk past the image
    x = torch.randn(shape, dtype=torch.float32) * 3
    y = make_target("multiclass", shape, ignore=255)
    kw = {"ignore_index": 255, "smooth": 1.0, "weight": torch.rand(shape[0], *shape[2:]) + 0.2}
    if backend == "triton":
        programs, n_blocks_s, c_pad, block, bpp, _ = K._softmax_grid(x.reshape(2, C, -1))
        assert bpp > 1 and n_blocks_s == 2 and block * bpp * n_blocks_s > 63  # the walk runs past the image
    compare_to_reference(fn, rfn, x, y, upstream=upstream_not_one, **kw)


@pytest.mark.parametrize("C", [150, 1024])
def test_large_c_default_grid(backend, C):
    """The launcher's own choice on a small image (one block per program)."""
    fn, rfn = LOSSES["dice"]
    x = torch.randn((2, C, 5, 6), dtype=torch.float32) * 2
    y = make_target("multiclass", x.shape)
    if C == 150:  # per-image sums and the "none" table (at C 1024 the reference's loop is too slow)
        compare_to_reference(fn, rfn, x, y, per_image=True, reduction="none", upstream=upstream_not_one)
    else:
        compare_to_reference(fn, rfn, x, y, smooth=1.0)


def test_large_c_fp64(backend, small_walk):
    fn, rfn = LOSSES["ce_dice"]
    x = torch.randn((2, 150, 9, 7), dtype=torch.float64) * 3
    y = make_target("multiclass", x.shape)
    compare_to_reference(fn, rfn, x, y, smooth=0.5)


def test_large_c_deterministic(small_walk):
    x = torch.randn((2, 150, 9, 7)) * 3
    y = make_target("multiclass", x.shape)
    with tsl.use_backend("triton"):
        bitwise_deterministic(LOSSES["ce_dice"][0], x, y)


def _partial_ratio(N, C, S, dtype=torch.float32):
    """Bytes of the forward's partials per byte of logits, from the launcher's grid."""
    x = torch.empty((N, C, S), dtype=dtype)
    programs, n_blocks_s = K._softmax_grid(x)[:2]
    assert programs == N * n_blocks_s
    return n_blocks_s * 5 * N * C * 4 / (N * C * S * x.element_size())


def test_partials_counted_c150():
    """The traffic counter on the forward kernel at C 150 (2 x 150 x 64 x 64: 512 blocks of 8 pixels
    per image, 8 per program to keep 128 programs): the partials it stores are <= 10% of the logit
    bytes it loads, and the count agrees with the grid."""
    from bench import traffic

    N, C, H, W = 2, 150, 64, 64
    x = torch.randn((N, C, H, W))
    y = torch.randint(0, C, (N, H, W))
    with tsl.use_backend("triton"):
        step = traffic.count_step(lambda a, b: tsl.dice_loss(a, b, mode="multiclass"), x, y, backward=False)
    stored = step.kernel_by_op["_dice_softmax_fwd_kernel tl.store"]
    loaded = step.kernel_by_op["_dice_softmax_fwd_kernel tl.load"]
    assert loaded == x.numel() * 4 + y.numel() * 8  # logits and labels, each read once
    assert stored == pytest.approx(_partial_ratio(N, C, H * W) * x.numel() * 4)
    assert stored / (x.numel() * 4) <= 0.10


@pytest.mark.parametrize("N,S", [(1, 128 * 128), (2, 256 * 256), (8, 512 * 512), (16, 64 * 64)])
@pytest.mark.parametrize("C", [150, 1024])
def test_partials_grid_large_c(N, S, C):
    """From the launcher's grid at sizes with enough pixel blocks for MIN_PROGRAMS programs: the
    forward's partials stay <= 10% of the fp32 logit bytes (<= 5 / 128 by the rule)."""
    assert _partial_ratio(N, C, S) <= 5 / 128 + 1e-12
    assert _partial_ratio(N, C, S, torch.bfloat16) <= 0.10


@pytest.mark.parametrize("name", ["dice", "ce_dice"])
def test_large_c_three_launches(name, small_walk):
    """The walk changes no launch: forward, finisher, backward; no host sync (bench/launches.py)."""
    from bench import launches

    x = torch.randn((2, 150, 9, 7))
    y = torch.randint(0, 150, (2, 9, 7))
    step = launches.count_step(LOSSES[name][0], x, y)
    assert (step.launches, step.syncs) == (3, 0)
