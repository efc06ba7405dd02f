"""CPU time of the PyTorch path vs MONAI (scipy-based) for the EDT, HD95 and surface Dice, and
of one training step (forward + backward) of the Hausdorff DT loss beside MONAI's
``HausdorffDTLoss`` and kornia's erosion-based ``HausdorffERLoss`` / ``HausdorffERLoss3D``.

``python -m bench.distance [--only2d | --only3d] [--reps N] [--loss] [--kornia-3d-reps N] [--traffic]``;
never run in CI.
Median of a few reps in one process; random masks (a blob-like mask: a thresholded smoothed
noise field) so borders are realistic. ``--loss``: only the loss rows, the providers
interleaved rep by rep (so a burst of load on a shared machine hits all of them alike; the
numbers are still noisy under contention: medians). ``--traffic``: also the bytes per logit
element of the Triton path's training step, counted exactly by ``bench.traffic`` with the
kernels in Triton's interpreter (set before triton is imported; slow, so on one image).
Launches on the Triton path: the EDT is one launch per spatial axis; the loss step is the
EDT's passes (2D: 2, 3D: 3) + forward, finisher, backward.

kornia's losses are not the same loss (an erosion-based surrogate of the Hausdorff distance,
Karimi & Salcudean's other variant, k = 10 erosions): they are here as the other Hausdorff
loss a user would reach for. They take probabilities and integer labels over C >= 2 channels
(with C = 1 only label 0 is valid), so the binary 2D case gives them the two channels
``[1 - p, p]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def _median(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _smooth(shape, gen):
    x = torch.rand(shape, generator=gen)
    nd = len(shape) - 2
    pool = torch.nn.functional.avg_pool2d if nd == 2 else torch.nn.functional.avg_pool3d
    return pool(x.reshape(-1, 1, *shape[2:]), 9, stride=1, padding=4).reshape(shape)


def _blobs(shape, gen):
    x = _smooth(shape, gen)
    return x > x.mean()


def _loss_providers(shape, gen, kornia_reps):
    """(logits, target, {provider: (fn(logits) -> loss, reps cap or None)}) of the loss rows."""
    import triton_segloss as tsl

    n, c, *sp = shape
    x = torch.randn(shape, generator=gen) * 2
    if c == 1:
        m = _blobs(shape, gen).float()
        target, mode = m, "binary"
    else:
        y = _smooth(shape, gen).argmax(1)  # blob-shaped regions of every class
        target, mode = y, "multiclass"
    prov = {"tsl (torch path)": (lambda a: tsl.hausdorff_dt_loss(a, target, mode=mode, include_background=True),
                                 None)}
    try:
        from monai.losses import HausdorffDTLoss

        ml = HausdorffDTLoss(include_background=True, sigmoid=c == 1, softmax=c > 1, to_onehot_y=c > 1)
        mt = target if c == 1 else target.unsqueeze(1)
        prov["MONAI HausdorffDTLoss"] = (lambda a: ml(a, mt), None)
    except ImportError:
        pass
    try:
        import kornia.losses as KL

        kl = KL.HausdorffERLoss() if len(sp) == 2 else KL.HausdorffERLoss3D()
        if c == 1:  # its C = 1 accepts only label 0: background and foreground channels
            kt = target.long()
            prov["kornia HausdorffERLoss (2 ch)"] = (
                lambda a: kl(torch.cat([1 - torch.sigmoid(a), torch.sigmoid(a)], 1), kt), None)
        else:
            kt = target.unsqueeze(1)
            name = "kornia HausdorffERLoss" + ("3D" if len(sp) == 3 else "")
            prov[name] = (lambda a: kl(torch.softmax(a, 1), kt), kornia_reps if len(sp) == 3 else None)
    except ImportError:
        pass
    return x, target, mode, prov


def _step(fn, x):
    a = x.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss = fn(a)
    loss.backward()
    return time.perf_counter() - t0


def loss_rows(shapes, reps, kornia_reps, traffic):
    """The Hausdorff loss rows: fwd+bwd seconds per provider (interleaved reps, medians)."""
    import triton_segloss as tsl

    gen = torch.Generator().manual_seed(0)
    print("| shape | provider | fwd+bwd median (s) | reps | Triton path B/elem |")
    print("|---|---|---|---|---|")
    with tsl.use_backend("torch"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape in shapes:
            x, target, mode, prov = _loss_providers(shape, gen, kornia_reps)
            times = {k: [] for k in prov}
            if reps and len(shape) == 4:  # 3D steps take seconds each: no warm-up there (first-call costs are ms)
                for fn, _ in prov.values():
                    _step(fn, x)
            for r in range(reps):
                for name, (fn, cap) in prov.items():
                    if cap is None or r < cap:
                        times[name].append(_step(fn, x))
            bpe = _traffic(shape, mode, gen) if traffic else None
            for name, ts in times.items():
                tr = f"{bpe:.1f}" if (bpe is not None and name.startswith("tsl")) else ""
                med = f"{statistics.median(ts):.3f}" if ts else "–"
                if ts or tr:
                    print(f"| {shape} | {name} | {med} | {len(ts)} | {tr} |", flush=True)


def _traffic_shape(shape):
    """One image of a shape whose per-element traffic equals ``shape``'s: a pass along an axis of
    length n loads every element ceil(n / 64) times (each 64-long tile of outputs walks the whole
    line) and stores it once, and the loss kernels move a fixed number of bytes per element, so
    each axis is cut to the shortest length with the same number of 64-tiles (the interpreter is
    slow: a 64 x 128 x 128 volume would take half an hour)."""
    cut = [max(min(n, 16), 64 * (-(-n // 64) - 1) + 1) for n in shape[2:]]
    return (1, shape[1], *cut)


def _traffic(shape, mode, gen):
    """Bytes per logit element of the Triton path's training step (``_traffic_shape``)."""
    import triton_segloss as tsl
    from bench import traffic

    one = _traffic_shape(shape)
    x = torch.randn(one, generator=gen)
    if mode == "binary":
        t = _blobs(one, gen).float()
    else:
        t = _smooth(one, gen).argmax(1)
    with tsl.use_backend("triton"):
        step = traffic.count_step(lambda a, b: tsl.hausdorff_dt_loss(a, b, mode=mode, include_background=True), x, t)
    return step.total / x.numel()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only2d", action="store_true")
    ap.add_argument("--only3d", action="store_true")
    ap.add_argument("--reps", type=int, default=3, help="0: no timing (with --traffic: the bytes only)")
    ap.add_argument("--loss", action="store_true", help="only the Hausdorff loss rows (fwd+bwd)")
    ap.add_argument("--kornia-3d-reps", type=int, default=1, help="cap on kornia's 3D reps (slow on a CPU)")
    ap.add_argument("--traffic", action="store_true", help="also count the Triton path's bytes per element")
    args = ap.parse_args(argv)
    if args.traffic:
        import os
        import sys

        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--traffic needs TRITON_INTERPRET=1 before triton is imported; run it in a fresh process")
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is first imported
    shapes = ([] if args.only3d else [(8, 1, 256, 256)]) + ([] if args.only2d else [(2, 4, 64, 128, 128)])
    if args.loss:
        loss_rows(shapes, args.reps, args.kornia_3d_reps, args.traffic)
        return
    import triton_segloss as tsl
    from triton_segloss.distance import distance_transform
    from triton_segloss.surface import hausdorff_distance, surface_dice

    shapes = ([] if args.only3d else [(8, 1, 256, 256)]) + ([] if args.only2d else [(2, 4, 64, 128, 128)])
    gen = torch.Generator().manual_seed(0)
    try:
        import monai.metrics as M
        from scipy.ndimage import distance_transform_edt
    except ImportError:
        M = None
    print("| shape | what | triton_segloss torch path (s) | MONAI / scipy (s) |")
    print("|---|---|---|---|")
    with tsl.use_backend("torch"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape in shapes:
            a, b = _blobs(shape, gen), _blobs(shape, gen)
            rows = [
                ("EDT", lambda: distance_transform(a),
                 lambda: [distance_transform_edt(1 - a[n, c].numpy()) for n in range(shape[0]) for c in
                          range(shape[1])]),
                ("HD95", lambda: hausdorff_distance(a, b, percentile=95),
                 lambda: M.compute_hausdorff_distance(a.float(), b.float(), include_background=True, percentile=95)),
                ("surface Dice (tol 1)", lambda: surface_dice(a, b, tolerance=1.0),
                 lambda: M.compute_surface_dice(a.float(), b.float(), [1.0] * shape[1], include_background=True)),
            ]
            for name, ours, theirs in rows:
                t0 = _median(ours, args.reps)
                t1 = _median(theirs, args.reps) if M is not None else float("nan")
                print(f"| {shape} | {name} | {t0:.3f} | {t1:.3f} |", flush=True)
    print("\nTriton path launches: EDT = 1 per spatial axis (2D: 2, 3D: 3), no host sync; surface metrics:"
          " the EDT's launches plus the PyTorch border/reduction ops (not fused yet), no host sync.\n")
    loss_rows(shapes, args.reps, args.kornia_3d_reps, args.traffic)


if __name__ == "__main__":
    main()
