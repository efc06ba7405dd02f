"""CPU timings for issue 4 (PyTorch path). Run: cd /work/main && TRITON_SEGLOSS_BACKEND=torch .venv/bin/python /tmp/focal_boundary_helper/bench_boundary.py"""
import statistics, time
import torch
import torch.nn.functional as F
import triton_segloss as tsl


def bench(fn, reps=10, warm=2):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    ts.sort()
    return statistics.median(ts) * 1e3, ts[len(ts) // 5] * 1e3, ts[(4 * len(ts)) // 5] * 1e3


def seed001_combined_loss(logits, labels, kernel_size):
    """Seed 001's combined_loss (is_weight=True), eager fp32, restated (without .cuda())."""
    n, _, h, w = logits.shape
    logits = logits.view(n, h, w); labels = labels.view(n, h, w)
    a = F.avg_pool2d(labels, kernel_size=kernel_size, padding=kernel_size // 2, stride=1)
    ind = (a.ge(0.01) * a.le(0.99)).float()
    weights = torch.ones(a.size())
    w0 = weights.sum(); weights += ind * 2; w1 = weights.sum(); weights = weights / w1 * w0
    x = logits.reshape(-1); t = labels.reshape(-1); wf = weights.reshape(-1)
    l = x.clamp(min=0) - x * t + torch.log(1 + torch.exp(-x.abs()))
    bce = (l * wf).sum() / wf.sum()
    probs = torch.sigmoid(logits); w2 = weights.view(n, -1) ** 2
    m1 = probs.view(n, -1); m2 = labels.view(n, -1)
    score = 2.0 * ((w2 * m1 * m2).sum(1) + 1) / ((w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
    dice = 1 - score.sum() / n
    return bce + dice


torch.manual_seed(0)
coarse = (torch.rand(8, 1, 16, 16) < 0.5).float()
t = F.interpolate(coarse, size=(512, 512), mode="nearest")
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, backend {tsl._backend.select(t.device)}")
print("ms: median (p20, p80)")
for k in (11, 51):
    print(f"boundary_weight_map 8x1x512x512 k={k}:", "%.1f (%.1f, %.1f)" % bench(lambda: tsl.boundary_weight_map(t, k)))
    print(f"  seed avg_pool2d band   k={k}:", "%.1f (%.1f, %.1f)" % bench(
        lambda: F.avg_pool2d(t, k, stride=1, padding=k // 2).ge(0.01), reps=5))
x = torch.randn(8, 1, 512, 512, requires_grad=True)
def ours():
    tsl.boundary_bce_dice_loss(x, t).backward()
def seed():
    seed001_combined_loss(x, t, 21).backward()
print("boundary_bce_dice_loss fwd+bwd 8x1x512x512 (k=21):", "%.1f (%.1f, %.1f)" % bench(ours))
print("seed 001 combined_loss eager fwd+bwd          :", "%.1f (%.1f, %.1f)" % bench(seed))
