"""CPU: confusion matrix from logits (4, 21, 512, 512): triton_segloss PyTorch path vs seed 001's numpy path."""
import os, time, statistics
os.environ.pop("TRITON_INTERPRET", None)
import numpy as np, torch
import triton_segloss as tsl
from triton_segloss import metrics

def fast_hist(label_true, label_pred, n_class):  # seed 001
    mask = (label_true >= 0) & (label_true < n_class)
    return np.bincount(n_class * label_true[mask].astype(int) + label_pred[mask], minlength=n_class ** 2).reshape(n_class, n_class)

def seed_path(score, target, n):
    lbl_pred = score.data.max(1)[1].cpu().numpy()
    lbl_true = target.data.cpu().numpy()
    hist = np.zeros((n, n))
    for lt, lp in zip(lbl_true, lbl_pred):
        hist += fast_hist(lt.flatten(), lp.flatten(), n)
    return hist

def tsl_path(score, target, n):
    with tsl.use_backend("torch"):
        return metrics.confusion_matrix(score, target, n)

def bench(fn, *a, reps=7):
    fn(*a)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(*a); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), sorted(ts)[1], sorted(ts)[-2]

torch.manual_seed(0)
x = torch.randn(4, 21, 512, 512)
t = torch.randint(0, 21, (4, 512, 512)); t[:, :8] = 255
assert np.array_equal(seed_path(x, t, 21), tsl_path(x, t, 21).numpy())
print("threads", torch.get_num_threads())
for name, fn in (("seed001 numpy", seed_path), ("tsl torch path", tsl_path)):
    med, lo, hi = bench(fn, x, t, 21)
    print(f"{name:16s} median {med*1e3:7.1f} ms  (q20 {lo*1e3:.1f}, q80 {hi*1e3:.1f})")
