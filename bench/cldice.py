"""clDice and Dice + clDice: CPU time of the PyTorch path beside MONAI's ``SoftclDiceLoss`` /
``SoftDiceclDiceLoss`` (forward + backward), and the Triton path's bytes per logit element.

``python -m bench.cldice [--only2d | --only3d] [--reps N] [--traffic]``; never run in CI.

Shapes: 8x1x256x256 (binary, sigmoid) and 2x4x64x128x128 (multiclass labels, softmax), MONAI's
defaults (iterations 3, smooth 1, include_background True; alpha 0.5 for the mix), MONAI given the
logits with ``sigmoid`` / ``softmax`` and ``to_onehot_y`` (as its tests and ours compare them). The
providers are interleaved rep by rep in one process; medians.

``--traffic`` counts the Triton path's training step exactly (``bench.traffic``, kernels in Triton's
interpreter, set before triton is imported) on one small image whose every tiled axis has several
tiles (1x1x128x128; 1x2x18x18x18, three 6^3 tiles per axis in the forward and in the 3D backward's
scatter form): the interpreter is too slow for the full shapes, and the per-element bytes depend on
the block / tile ratio, not on the size, once an axis is tiled. Two numbers: every load and store,
and without the per-program scratch slots (the neighbour exchange of each pool stage, L1/L2-sized
per program on a GPU: ``StepTraffic.scratch_bytes``), i.e. what crosses to the inputs, the
gradient and the partial sums.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

SHAPES_2D = [(8, 1, 256, 256)]
SHAPES_3D = [(2, 4, 64, 128, 128)]
TRAFFIC = {4: (1, 1, 128, 128), 5: (1, 2, 18, 18, 18)}


def _inputs(shape, gen):
    x = torch.randn(shape, generator=gen) * 2
    if shape[1] == 1:
        return x, (torch.rand(shape, generator=gen) < 0.3).float(), "binary"
    return x, torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen), "multiclass"


def _providers(target, mode):
    import triton_segloss as tsl

    prov = {
        "tsl cldice_loss": lambda a: tsl.cldice_loss(a, target, mode=mode),
        "tsl dice_cldice_loss": lambda a: tsl.dice_cldice_loss(a, target, mode=mode),
    }
    try:
        from monai.losses import SoftclDiceLoss, SoftDiceclDiceLoss
    except ImportError:
        return prov
    binary = mode == "binary"
    kw = dict(iter_=3, sigmoid=binary, softmax=not binary, to_onehot_y=not binary)
    cl, dcl = SoftclDiceLoss(**kw), SoftDiceclDiceLoss(**kw)
    mt = target if binary else target.unsqueeze(1)
    prov["MONAI SoftclDiceLoss"] = lambda a: cl(a, mt)
    prov["MONAI SoftDiceclDiceLoss"] = lambda a: dcl(a, mt)
    return prov


def _step(fn, x):
    a = x.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    fn(a).backward()
    return time.perf_counter() - t0


def _traffic(ndim, gen):
    import triton_segloss as tsl
    from bench import traffic

    x, t, mode = _inputs(TRAFFIC[ndim], gen)
    out = {}
    with tsl.use_backend("triton"):
        for name, fn in (("tsl cldice_loss", tsl.cldice_loss), ("tsl dice_cldice_loss", tsl.dice_cldice_loss)):
            step = traffic.count_step(lambda a, b, f=fn: f(a, b, mode=mode), x, t)
            out[name] = (step.total / x.numel(), (step.total - step.scratch_bytes) / x.numel())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only2d", action="store_true")
    ap.add_argument("--only3d", action="store_true")
    ap.add_argument("--reps", type=int, default=5, help="0: no timing (with --traffic: the bytes only)")
    ap.add_argument("--traffic", action="store_true", help="also count the Triton path's bytes per element")
    args = ap.parse_args(argv)
    if args.traffic:
        import os
        import sys

        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--traffic needs TRITON_INTERPRET=1 before triton is imported; run it in a fresh process")
        os.environ["TRITON_INTERPRET"] = "1"
    import triton_segloss as tsl

    shapes = ([] if args.only3d else SHAPES_2D) + ([] if args.only2d else SHAPES_3D)
    gen = torch.Generator().manual_seed(0)
    print("| shape | provider | fwd+bwd median (s) | reps | Triton path B/elem: all / without scratch (on) |")
    print("|---|---|---|---|---|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape in shapes:
            x, target, mode = _inputs(shape, gen)
            times = {}
            with tsl.use_backend("torch"):
                prov = _providers(target, mode)
                times = {k: [] for k in prov}
                if args.reps:
                    for fn in prov.values():  # warm-up
                        _step(fn, x)
                for _ in range(args.reps):
                    for name, fn in prov.items():
                        times[name].append(_step(fn, x))
            bpe = _traffic(len(shape), gen) if args.traffic else {}
            for name, ts in times.items():
                med = f"{statistics.median(ts):.3f}" if ts else "–"
                tr = (f"{bpe[name][0]:.1f} / {bpe[name][1]:.1f} ({'x'.join(map(str, TRAFFIC[len(shape)]))})"
                      if name in bpe else "")
                print(f"| {'x'.join(map(str, shape))} | {name} | {med} | {len(ts)} | {tr} |", flush=True)


if __name__ == "__main__":
    main()
