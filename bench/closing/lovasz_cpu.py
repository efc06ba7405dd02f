"""CPU timing of the Lovász PyTorch path (fwd+bwd through the public functional) against
(a) its one torch.sort alone, on the very keys the op sorts, and (b) the restated Berman
reference (tests/reference/lovasz.py, float64, Python loop over images / classes).
Runs alternate between the candidates; min and median over REPS rounds are printed.
Run from the repo root:
  THREADS=1 TRITON_SEGLOSS_BACKEND=torch .venv/bin/python bench_lovasz_cpu.py"""
import os, sys, time, statistics
os.environ.pop("TRITON_INTERPRET", None)
sys.path.insert(0, "tests")
import torch
import torch.nn.functional as F
import triton_segloss as tsl
from reference import lovasz as ref

if os.environ.get("THREADS"):
    torch.set_num_threads(int(os.environ["THREADS"]))
REPS = int(os.environ.get("REPS", 9))


def fwd_bwd(f, x, *a, **k):
    def run():
        xx = x.detach().requires_grad_(True)
        f(xx, *a, **k).backward()
    return run


def race(cands, reps):
    times = {name: [] for name in cands}
    for fn in cands.values():
        fn()
    for _ in range(reps):
        for name, fn in cands.items():
            t0 = time.perf_counter(); fn(); times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def report(title, r):
    s, t, b = r["sort"], r["tsl"], r["berman"]
    print(f"{title}: sort {s[0]:.0f}/{s[1]:.0f} ms | tsl fwd+bwd {t[0]:.0f}/{t[1]:.0f} ms "
          f"= {t[0] / s[0]:.2f}x/{t[1] / s[1]:.2f}x sort | Berman ref {b[0]:.0f}/{b[1]:.0f} ms "
          f"= {b[0] / t[0]:.1f}x/{b[1] / t[1]:.1f}x tsl   (min/median)")


torch.manual_seed(0)
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
      f"backend {os.environ.get('TRITON_SEGLOSS_BACKEND')}, reps {REPS}")
x = torch.randn(8, 1, 256, 256)
t = (torch.rand(8, 1, 256, 256) > 0.5).float()
keys = (1.0 - x * (2 * t - 1)).view(8, 65536)  # the op's hinge errors, one row per image
report("hinge 8x1x256x256 per_image", race({
    "sort": lambda: torch.sort(keys, dim=1, descending=True, stable=True),
    "tsl": fwd_bwd(tsl.lovasz_hinge, x, t, per_image=True),
    "berman": fwd_bwd(ref.lovasz_hinge, x, t, per_image=True),
}, REPS))
x = torch.randn(4, 21, 128, 128)
y = torch.randint(0, 21, (4, 128, 128))
err = (F.one_hot(y, 21).permute(0, 3, 1, 2) - torch.softmax(x, 1)).abs().reshape(4, 21, -1)
for per_image in (False, True):
    # the op's errors |[y == c] - p_c|, laid out as its rows: (image, class) or (class,)
    rows = (err.reshape(84, -1) if per_image else err.transpose(0, 1).reshape(21, -1)).contiguous()
    report(f"softmax 4x21x128x128 per_image={per_image}", race({
        "sort": lambda: torch.sort(rows, dim=1, descending=True, stable=True),
        "tsl": fwd_bwd(tsl.lovasz_softmax, x, y, per_image=per_image),
        "berman": fwd_bwd(ref.lovasz_softmax, x, y, per_image=per_image),
    }, max(3, REPS // 2)))
