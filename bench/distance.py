"""CPU time of the PyTorch path vs MONAI (scipy-based) for the EDT, HD95 and surface Dice.

``python -m bench.distance [--only2d] [--reps N]``; never run in CI. Median of a few reps in one
process; random masks (a blob-like mask: a thresholded smoothed noise field) so borders
are realistic. Launches on the Triton path: the EDT is one launch per spatial axis.
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


def _blobs(shape, gen):
    x = torch.rand(shape, generator=gen)
    nd = len(shape) - 2
    pool = torch.nn.functional.avg_pool2d if nd == 2 else torch.nn.functional.avg_pool3d
    x = pool(x.reshape(-1, 1, *shape[2:]), 9, stride=1, padding=4).reshape(shape)
    return x > x.mean()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only2d", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    import triton_segloss as tsl
    from triton_segloss.distance import distance_transform
    from triton_segloss.surface import hausdorff_distance, surface_dice

    shapes = [(8, 1, 256, 256)] + ([] if args.only2d else [(2, 4, 64, 128, 128)])
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
          " the EDT's launches plus the PyTorch border/reduction ops (not fused yet), no host sync.")


if __name__ == "__main__":
    main()
