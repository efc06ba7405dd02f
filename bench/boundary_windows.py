"""Boundary BCE+Dice traffic across window widths, image sizes, mask dtypes and 2D / 3D.

    TRITON_INTERPRET=1 python -m bench.boundary_windows [--quick]

``python -m bench --traffic --family boundary`` measures one small shape, where the windows
(k = 5) and the halos are small. Here each row is one training step (forward + backward) of
``boundary_bce_dice_loss`` on the Triton kernels, counted in the interpreter as ``bench.traffic``
counts it (active lanes only; scratch apart), for the fused forward (``FUSED_2D`` / ``FUSED_3D``
on) and, side by side in the same run, for the window-sum pass (off). The floor is the usual
one: logits and mask read in forward and backward, the gradient written once.
"""

from __future__ import annotations

import argparse
import os

import torch

CASES = [  # (shape, kernel size): the seed's table heights and volumes
    ((2, 1, 64, 64), 5),
    ((1, 1, 256, 256), 21),
    ((1, 1, 512, 512), 21),
    ((1, 1, 1024, 1024), 41),
    ((1, 1, 1280, 1280), 51),
    ((1, 1, 2048, 1024), 81),
    ((1, 1, 32, 64, 64), 5),
    ((1, 1, 32, 128, 128), 11),
]
QUICK = [CASES[0], ((1, 1, 256, 512), 41), ((1, 1, 16, 64, 64), 5)]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--target-dtypes", nargs="*", default=["float32", "uint8"])
    p.add_argument("--dims", nargs="*", type=int, default=[2, 3], help="spatial dims of the cases to run")
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("set TRITON_INTERPRET=1: the kernels' loads and stores are counted in the interpreter")
    import triton_segloss as tsl
    from bench import traffic
    from bench.common import _kernel_summary, min_bytes
    from triton_segloss.boundary import kernels

    flags = [f for f in ("FUSED_2D", "FUSED_3D") if hasattr(kernels, f)]
    gen = torch.Generator().manual_seed(0)
    print("| shape | k | mask | fused B/elem | ratio | window-sum pass B/elem | ratio | fused kernels: load+store B/elem |")
    print("|---|---|---|---|---|---|---|---|")
    for shape, k in (QUICK if a.quick else CASES):
        if len(shape) - 2 not in a.dims:
            continue
        x = torch.randn(shape, generator=gen) * 2
        coarse = [max(1, s // 16) for s in shape[2:]]
        blobs = torch.nn.functional.interpolate((torch.rand(shape[0], 1, *coarse, generator=gen) < 0.4).float(),
                                                size=shape[2:], mode="nearest")
        for tdt in a.target_dtypes:
            t = blobs.to(getattr(torch, tdt))
            need = min_bytes(x, t, "full")
            cols = []
            for on in (True, False):
                for f in flags:
                    setattr(kernels, f, on)
                with tsl.use_backend("triton"):
                    st = traffic.count_step(lambda a_, b_: tsl.boundary_bce_dice_loss(a_, b_, k), x, t)
                moved = st.total - st.scratch_bytes
                summary = _kernel_summary(st.kernel_by_op, x.numel())
                cols.append((moved / x.numel(), moved / need, summary, st.scratch_bytes / x.numel()))
            for f in flags:
                setattr(kernels, f, True)
            (fb, fr, fs, fscr), (wb, wr, _, _) = cols
            print(f"| {'x'.join(map(str, shape))} | {k} | {tdt} | {fb:.2f} | {fr:.3f}x | {wb:.2f} | {wr:.3f}x "
                  f"| scratch {fscr:.1f} apart; {fs} |", flush=True)


if __name__ == "__main__":
    main()
