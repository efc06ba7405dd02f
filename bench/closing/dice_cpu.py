"""CPU numbers for the Dice family's closing note (PyTorch path: TRITON_INTERPRET unset).

python /tmp/dice_bench.py mem <tsl|onehot_smp|onehot_scatter>   peak extra RSS of one fwd+bwd, B=2 C=64 96^3
python /tmp/dice_bench.py time                                     fwd+bwd medians
"""
import os, resource, subprocess, sys, time
os.environ.pop("TRITON_INTERPRET", None)
import torch
import torch.nn.functional as F
import triton_segloss as tsl


def onehot_smp(x, y):  # segmentation_models_pytorch's multiclass DiceLoss, smooth=0, eps=1e-7
    n, c = x.shape[:2]
    p = x.log_softmax(1).exp().view(n, c, -1)
    t = F.one_hot(y.view(n, -1), c).permute(0, 2, 1).type_as(p)
    inter = (p * t).sum((0, 2))
    card = (p + t).sum((0, 2))
    dice = 2 * inter / card.clamp_min(1e-7)
    return (1 - dice).mean()


def onehot_scatter(x, y):  # MONAI-style: one_hot via scatter into a float tensor, then softmax
    p = torch.softmax(x, 1)
    t = torch.zeros_like(x).scatter_(1, y.unsqueeze(1), 1.0)
    dims = tuple(range(2, x.dim()))
    inter = (p * t).sum(dims)
    den = p.sum(dims) + t.sum(dims)
    return (1 - (2 * inter + 1e-5) / (den + 1e-5)).mean()


def tsl_dice(x, y):
    return tsl.dice_loss(x, y, mode="multiclass", per_image=True)


FNS = {"tsl": tsl_dice, "onehot_smp": onehot_smp, "onehot_scatter": onehot_scatter}


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mem(name):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = torch.randn(2, 64, 96, 96, 96).requires_grad_(True)
    y = torch.randint(0, 64, (2, 96, 96, 96))
    xs = torch.randn(2, 64, 4, 4, 4).requires_grad_(True)  # warm-up: load code paths before the baseline
    FNS[name](xs, torch.randint(0, 64, (2, 4, 4, 4))).backward()
    x.grad = torch.zeros_like(x)  # the gradient buffer every method fills: not counted as extra
    x.grad += 0
    base = rss_mb()
    loss = FNS[name](x, y)
    loss.backward()
    print(f"{name}: peak extra {rss_mb() - base:.0f} MB (logits {x.numel() * 4 / 2**20:.0f} MB)")


def bench(fn, x, t, reps=10):
    for _ in range(2):
        fn(x, t).backward()
    ts = []
    for _ in range(reps):
        x.grad = None
        t0 = time.perf_counter()
        fn(x, t).backward()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def timing():
    torch.manual_seed(0)
    print("threads", torch.get_num_threads())
    xb = torch.randn(8, 1, 256, 256).requires_grad_(True)
    tb = (torch.rand(8, 1, 256, 256) < 0.3).float()
    ref_b = lambda a, b: 1 - (2 * (torch.sigmoid(a) * b).sum() / (torch.sigmoid(a).sum() + b.sum()))
    print(f"binary 8x1x256x256: tsl.dice_loss {bench(lambda a, b: tsl.dice_loss(a, b), xb, tb):.1f} ms, "
          f"eager torch {bench(ref_b, xb, tb):.1f} ms, "
          f"tsl.bce_dice_loss {bench(lambda a, b: tsl.bce_dice_loss(a, b), xb, tb):.1f} ms")
    xm = torch.randn(4, 21, 128, 128).requires_grad_(True)
    ym = torch.randint(0, 21, (4, 128, 128))
    print(f"multiclass 4x21x128x128: tsl.dice_loss {bench(tsl_dice, xm, ym):.1f} ms, "
          f"smp-style one-hot {bench(onehot_smp, xm, ym):.1f} ms, "
          f"tsl.ce_dice_loss {bench(lambda a, b: tsl.ce_dice_loss(a, b), xm, ym):.1f} ms")


if __name__ == "__main__":
    if sys.argv[1] == "mem":
        mem(sys.argv[2])
    else:
        timing()
