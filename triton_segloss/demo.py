"""Train a small U-Net on synthetic shapes with a triton_segloss loss.

    python -m triton_segloss.demo                      # boundary-weighted BCE + Dice (seed 001)
    python -m triton_segloss.demo --loss lovasz --check

Every batch is drawn on the fly (random discs, rectangles and triangles on a
noisy, shaded background; binary masks), so nothing is downloaded. The
training step runs under ``torch.compile`` where it works (``--no-compile``
turns it off; a compile failure falls back to eager with a message). On CPU
the losses run their PyTorch path (Triton's interpreter is far too slow to
train with); on CUDA the Triton kernels. Each epoch prints the mean training
loss and the validation mIoU (``triton_segloss.metrics.ConfusionMatrix``), and
the run saves ``curves.png``, ``samples.png`` and ``history.json`` under
``--out``. The defaults finish in about a minute on 2 CPU cores.

``--check`` also evaluates, at every step, a plain eager implementation of the
same loss (written out below, in float32) on the same logits and reports the
largest difference in loss value and in gradient.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F

import triton_segloss as tsl
from ._demo_model import ShapesData, SmallUNet

# --loss choice -> (name of the triton_segloss function, keyword arguments for it)
LOSSES: dict[str, tuple[str, dict]] = {
    "bce": ("bce_with_logits", {}),
    "dice": ("dice_loss", {"mode": "binary", "smooth": 1.0}),
    "bce_dice": ("bce_dice_loss", {}),
    "focal": ("focal_loss", {"mode": "binary", "alpha": 0.25, "gamma": 2.0}),
    "lovasz": ("lovasz_hinge", {"per_image": True}),
    "boundary_bce_dice": ("boundary_bce_dice_loss", {}),
}


# ---------------------------------------------------------------------------
# Plain eager references (float32, the usual blog-post code), for --check only.
# ---------------------------------------------------------------------------

def _ref_bce(logits, mask):
    return F.binary_cross_entropy_with_logits(logits, mask)


def _ref_dice(logits, mask, smooth=1.0):
    """1 - (2 |P.T| + smooth) / (|P| + |T| + smooth), sums over the whole batch."""
    p = torch.sigmoid(logits)
    inter = (p * mask).sum()
    return 1.0 - (2.0 * inter + smooth) / (p.sum() + mask.sum() + smooth)


def _ref_bce_dice(logits, mask):
    """BCE (mean) + soft Dice (batch pooled, no smoothing, eps 1e-7 in the denominator)."""
    p = torch.sigmoid(logits)
    dice = 1.0 - 2.0 * (p * mask).sum() / (p.sum() + mask.sum()).clamp_min(1e-7)
    return _ref_bce(logits, mask) + dice


def _ref_focal(logits, mask, alpha=0.25, gamma=2.0):
    """torchvision's sigmoid_focal_loss, mean reduction."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    p_t = p * mask + (1 - p) * (1 - mask)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * mask + (1 - alpha) * (1 - mask)) * loss
    return loss.mean()


def _lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def _ref_lovasz(logits, mask):
    """Berman's lovasz_hinge, per image, averaged over the batch."""
    losses = []
    for x, t in zip(logits.flatten(1), mask.flatten(1)):
        signs = 2.0 * t - 1.0
        errors = 1.0 - x * signs
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(F.relu(errors_sorted), _lovasz_grad(t[perm])))
    return torch.stack(losses).mean()


def seed001_kernel_size(height: int) -> int:
    """Seed 001's box size for the boundary weights; other heights get the nearest odd size to H / 12."""
    table = {128: 11, 256: 21, 512: 21, 1024: 41, 1280: 51}
    if height in table:
        return table[height]
    return max(3, 2 * round(height / 24) + 1)


def _ref_boundary_bce_dice(logits, mask, kernel_size):
    """Seed 001's combined_loss (is_weight=True, is_log_dice=False), as the blog wrote it, in float32."""
    a = F.avg_pool2d(mask, kernel_size=kernel_size, padding=kernel_size // 2, stride=1)
    ind = (a.ge(0.01) * a.le(0.99)).float()
    weights = torch.ones_like(a)
    w0 = weights.sum()
    weights = weights + ind * 2
    weights = weights / weights.sum() * w0
    n = logits.shape[0]
    w, x, t = weights.view(-1), logits.view(-1), mask.view(-1)
    bce = x.clamp(min=0) - x * t + torch.log(1 + torch.exp(-x.abs()))
    bce = (bce * w).sum() / w.sum()
    w2 = weights.view(n, -1) ** 2
    m1, m2 = torch.sigmoid(logits).view(n, -1), mask.view(n, -1)
    score = 2.0 * ((w2 * m1 * m2).sum(1) + 1) / ((w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
    dice = 1 - score.sum() / n
    return bce + dice


def reference_loss(name: str, size: int) -> Callable:
    """The eager reference for ``--loss name`` (float32, plain PyTorch)."""
    if name == "boundary_bce_dice":
        ks = seed001_kernel_size(size)
        return lambda x, t: _ref_boundary_bce_dice(x, t, ks)
    return {"bce": _ref_bce, "dice": _ref_dice, "bce_dice": _ref_bce_dice, "focal": _ref_focal,
            "lovasz": _ref_lovasz}[name]


def fused_loss(name: str, size: int) -> Callable:
    """The triton_segloss loss for ``--loss name``; a clear error when this build lacks it."""
    fn_name, kwargs = LOSSES[name]
    fn = getattr(tsl.functional, fn_name, None)
    if fn is None:
        raise SystemExit(f"--loss {name}: triton_segloss.{fn_name} is not available in this build of triton_segloss")
    if name == "boundary_bce_dice":
        kwargs = dict(kwargs, kernel_size=seed001_kernel_size(size))

    def loss(logits, mask):
        out = fn(logits, mask, **kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out  # a combined loss may also return its terms

    return loss


# ---------------------------------------------------------------------------
# mIoU
# ---------------------------------------------------------------------------

def _miou(meter) -> float:
    return float(meter.scores()["miou"])


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m triton_segloss.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--loss", choices=list(LOSSES), default="boundary_bce_dice",
                   help="default: boundary_bce_dice (seed 001's boundary-weighted BCE + soft Dice)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=30, help="training steps per epoch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="image side (a multiple of 4)")
    p.add_argument("--width", type=int, default=8, help="channels of the U-Net's first level")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--val", type=int, default=64, help="validation images (fixed across epochs)")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--backend", choices=["auto", "triton", "torch"], default=None,
                   help="default: torch on CPU (the interpreter is too slow to train), auto elsewhere")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--no-compile", action="store_true", help="run the training step eagerly")
    p.add_argument("--check", action="store_true", help="compare with the eager reference loss at every step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo_out", help="folder for curves.png, samples.png, history.json")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true", help="skip curves.png and samples.png")
    args = p.parse_args(argv)
    if args.size % 4 or args.size < 4:
        p.error(f"--size must be a positive multiple of 4, got {args.size}")
    for name in ("epochs", "steps", "batch", "val"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def _grad_of(fn, logits, mask):
    x = logits.detach().clone().requires_grad_(True)
    loss = fn(x, mask)
    (g,) = torch.autograd.grad(loss, x)
    return loss.detach(), g


class _Check:
    """Largest |fused - eager| over the run: loss value, and gradient relative to the eager gradient's max."""

    def __init__(self, fused, ref):
        self.fused, self.ref = fused, ref
        self.loss_diff = 0.0
        self.grad_diff = 0.0

    def __call__(self, loss, logits, mask):
        ref_loss, ref_grad = _grad_of(self.ref, logits, mask)
        _, grad = _grad_of(self.fused, logits, mask)
        self.loss_diff = max(self.loss_diff, abs(float(loss) - float(ref_loss)))
        scale = float(ref_grad.abs().max()) or 1.0
        self.grad_diff = max(self.grad_diff, float((grad - ref_grad).abs().max()) / scale)


def _plot(history: dict, val_image, val_mask, val_pred, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    steps = history["step_loss"]
    per_epoch = len(steps) // max(len(history["loss"]), 1)
    ax1.plot([(i + 1) / per_epoch for i in range(len(steps))], steps, lw=0.6, alpha=0.5, label="per step")
    epochs = list(range(1, len(history["loss"]) + 1))
    ax1.plot(epochs, history["loss"], "o-", label="epoch mean")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel(f"training loss ({history['loss_name']})")
    ax1.legend()
    ax2.plot(epochs, history["miou"], "o-", color="C2", label="validation")
    ax2.axhline(history["chance_miou"], ls="--", color="gray", label="all background")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mIoU")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=100)
    plt.close(fig)

    k = min(6, val_image.shape[0])
    fig, axes = plt.subplots(3, k, figsize=(1.6 * k, 5), squeeze=False)
    for i in range(k):
        for row, (img, title) in enumerate(((val_image[i, 0], "image"), (val_mask[i, 0], "mask"),
                                            (val_pred[i, 0], "prediction"))):
            axes[row, i].imshow(img.detach().cpu().float().numpy(), cmap="gray")
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
            if i == 0:
                axes[row, i].set_ylabel(title)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "samples.png"), dpi=100)
    plt.close(fig)


def main(argv: Optional[list] = None) -> dict:
    """Run the demo with command-line arguments ``argv``; returns the history (also saved as JSON)."""
    args = _parse(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _train(args)
    finally:
        torch.set_num_threads(threads)


def _train(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backend = args.backend or ("torch" if device.type == "cpu" else "auto")
    torch.manual_seed(args.seed)
    loss_fn = fused_loss(args.loss, args.size)
    check = _Check(loss_fn, reference_loss(args.loss, args.size)) if args.check else None
    os.makedirs(args.out, exist_ok=True)

    data = ShapesData(args.size, seed=args.seed, device=device)
    val_image, val_mask = ShapesData(args.size, seed=args.seed + 10_000, device=device).batch(args.val)
    model = SmallUNet(width=args.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def forward(x, m):
        logits = model(x)
        return loss_fn(logits, m), logits

    def train_step(fn, x, m):
        opt.zero_grad(set_to_none=True)
        loss, logits = fn(x, m)
        loss.backward()  # inside the try: a compiled backward may fail only when it first runs
        opt.step()
        return loss, logits

    step_fn = forward if args.no_compile else torch.compile(forward)
    compiled = not args.no_compile
    print(f"triton_segloss {tsl.__version__}: --loss {args.loss} on {device} (backend {backend}), "
          f"{'torch.compile' if compiled else 'eager'}, {args.epochs} x {args.steps} steps of "
          f"{args.batch} images {args.size}x{args.size}", flush=True)

    meter = tsl.metrics.ConfusionMatrix(2)  # background / shape
    chance = None
    history = {"loss_name": args.loss, "loss": [], "miou": [], "step_loss": [], "seconds": []}
    start = time.perf_counter()
    with tsl.use_backend(backend):
        for epoch in range(1, args.epochs + 1):
            model.train()
            total = 0.0
            bar = range(args.steps)
            if not args.no_progress:
                from tqdm import tqdm

                bar = tqdm(bar, desc=f"epoch {epoch}/{args.epochs}", leave=False, file=sys.stdout,
                           dynamic_ncols=True)
            for _ in bar:
                x, m = data.batch(args.batch)
                try:
                    loss, logits = train_step(step_fn, x, m)
                except Exception as exc:  # noqa: BLE001 - any compile failure: say so and go on eagerly
                    if not compiled:
                        raise
                    print(f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                          f"falling back to eager", flush=True)
                    step_fn, compiled = forward, False
                    loss, logits = train_step(step_fn, x, m)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise RuntimeError(f"the training loss became {value} at epoch {epoch}")
                if check is not None:
                    check(value, logits.detach(), m)
                total += value
                history["step_loss"].append(value)
                if not args.no_progress:
                    bar.set_postfix(loss=f"{value:.4f}")

            model.eval()
            meter.reset()
            with torch.no_grad():
                preds = []
                for i in range(0, args.val, args.batch):
                    logits = model(val_image[i:i + args.batch])
                    pred = (logits > 0).long()[:, 0]
                    preds.append(pred)
                    meter.update(pred, val_mask[i:i + args.batch, 0].long())
                miou = _miou(meter)
                if chance is None:  # mIoU of predicting background everywhere
                    meter.reset()
                    meter.update(torch.zeros_like(val_mask[:, 0], dtype=torch.long), val_mask[:, 0].long())
                    chance = _miou(meter)
            history["loss"].append(total / args.steps)
            history["miou"].append(miou)
            history["seconds"].append(time.perf_counter() - start)
            print(f"epoch {epoch}/{args.epochs}  loss {total / args.steps:.4f}  mIoU {miou:.3f}  "
                  f"({history['seconds'][-1]:.1f} s)", flush=True)

    history["chance_miou"] = chance
    history["compiled"] = compiled
    if check is not None:
        history["check"] = {"max_loss_diff": check.loss_diff, "max_grad_diff_rel": check.grad_diff}
        print(f"check against the eager reference: largest loss difference {check.loss_diff:.3g}, "
              f"largest gradient difference {check.grad_diff:.3g} (relative to the reference's max |grad|)")
    pred = torch.cat(preds).unsqueeze(1)
    if not args.no_plot:
        _plot(history, val_image, val_mask, pred, args.out)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    saved = "history.json" if args.no_plot else "curves.png, samples.png, history.json"
    print(f"final mIoU {history['miou'][-1]:.3f} (all background: {chance:.3f}); {saved} in {args.out}")
    return history


if __name__ == "__main__":
    main()
