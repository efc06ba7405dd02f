"""Dice family, PyTorch path against MONAI on the CPU (fwd+bwd, 2 threads, providers interleaved, medians in ms):
binary Dice 8x1x256x256 (MONAI DiceLoss(sigmoid=True, batch=True)), multiclass Dice and CE+Dice 4x21x128x128
(MONAI DiceLoss / DiceCELoss(softmax=True, to_onehot_y=True, batch=True)).

    TRITON_SEGLOSS_BACKEND=torch .venv/bin/python bench/closing/dice_peers.py
"""
import time, torch, statistics
import triton_segloss as tsl
from monai.losses import DiceLoss as MD
torch.set_num_threads(2)
def bench(fns, x, t, reps=21):
    res = {k: [] for k in fns}
    for _ in range(2):
        for k, f in fns.items():
            a = x.clone().requires_grad_(); f(a, t).backward()
    for _ in range(reps):
        for k, f in fns.items():
            a = x.clone().requires_grad_()
            t0 = time.perf_counter(); f(a, t).backward(); res[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in res.items()}
x = torch.randn(8, 1, 256, 256); t = (torch.rand_like(x) > 0.5).float()
md = MD(sigmoid=True, batch=True)
print("binary", bench({"tsl": lambda a, b: tsl.dice_loss(a, b), "monai": md}, x, t))
x = torch.randn(4, 21, 128, 128); y = torch.randint(0, 21, (4, 1, 128, 128))
mm = MD(softmax=True, to_onehot_y=True, batch=True)
print("multiclass", bench({"tsl": lambda a, b: tsl.dice_loss(a, b[:, 0], mode="multiclass"), "monai": mm}, x, y))
from monai.losses import DiceCELoss as MDC
mdc = MDC(softmax=True, to_onehot_y=True, batch=True)
print("ce_dice", bench({"tsl": lambda a, b: tsl.ce_dice_loss(a, b[:, 0]), "monai": mdc}, x, y))
