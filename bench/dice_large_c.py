"""Multiclass Dice at large C: bytes per element against the floor, and register spills.

    TRITON_INTERPRET=1 python -m bench.dice_large_c --traffic   # bytes/elem vs floor (interpreter)
    python -m bench.dice_large_c --spills                       # ptxas spill counts (no interpreter)

``--traffic`` counts one training step (forward + backward) of ``dice_loss(mode="multiclass")``
and ``ce_dice_loss`` (then ``cross_entropy`` and the softmax ``focal_loss``) with the project's counter (bench/traffic.py: Triton loads and stores lane
by lane in the interpreter, every aten op through a dispatch mode), at C in (4, 21, 150, 1024)
on small images. The floor is what any implementation must move: the logits and the int64
labels read in the forward, read again in the backward, the gradient written once
(``2 (4 + 8 / C) + 4`` B/elem for fp32 logits). Also printed: the partial-sum bytes the forward
kernel writes per logit byte it reads.

``--spills`` compiles the softmax forward and backward kernels ahead of time (ASTSource +
GPUTarget, as tests/aot_compile.py) with the tile and warps the launcher picks for C, and runs the
ptxas bundled with Triton with ``-v`` on the PTX for sm_80 and sm_90: bytes of spill stores and
loads and registers per thread, per (C_PAD, kernel, arch, dtype). Not a test; never run in CI.
"""

from __future__ import annotations

import argparse
import os
import sys

CLASSES = (4, 21, 150, 1024)


def _traffic(shapes, dtype_name):
    import torch

    from . import traffic
    import triton_segloss as tsl
    from triton_segloss.dice import kernels as K

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    gen = torch.Generator().manual_seed(0)
    losses = {
        "dice_loss": lambda x, t: tsl.dice_loss(x, t, mode="multiclass", smooth=1.0),
        "ce_dice_loss": lambda x, t: tsl.ce_dice_loss(x, t),
    }
    print(f"| loss | shape | C_PAD x BLOCK x blocks/program | programs | B/elem | floor | x floor "
          f"| partials / logit bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        N, C = shape[0], shape[1]
        x = (torch.randn(shape, generator=gen) * 2).to(dtype)
        y = torch.randint(0, C, (N, *shape[2:]), generator=gen)
        S = x[0, 0].numel()
        floor = 2 * (x.numel() * x.element_size() + y.numel() * y.element_size()) + x.numel() * x.element_size()
        grid = K._softmax_grid(x.reshape(N, C, S))
        programs, n_blocks_s, c_pad, block = grid[:4]
        bpp = grid[4] if len(grid) > 5 else 1
        for name, fn in losses.items():
            with tsl.use_backend("triton"):
                step = traffic.count_step(fn, x, y)
            fwd_part = sum(v for k, v in step.kernel_by_op.items() if k == "_dice_softmax_fwd_kernel tl.store")
            fwd_x = x.numel() * x.element_size()
            print(f"| {name} | {'x'.join(map(str, shape))} | {c_pad} x {block} x {bpp} | {programs} "
                  f"| {step.total / x.numel():.3f} | {floor / x.numel():.3f} | {step.total / floor:.3f} "
                  f"| {fwd_part / fwd_x:.3f} |", flush=True)
    # the other multiclass losses over many classes: CE and softmax focal (one class sweep each way;
    # above one register tile the forward writes 12 B of per-pixel statistics for the backward)
    others = {
        "cross_entropy": lambda x, t: tsl.cross_entropy(x, t),
        "cross_entropy, label_smoothing=0.1": lambda x, t: tsl.cross_entropy(x, t, label_smoothing=0.1),
        "focal_loss multiclass": lambda x, t: tsl.focal_loss(x, t, mode="multiclass"),
    }
    print()
    print("| loss | shape | B/elem | floor | x floor |")
    print("|---|---|---|---|---|")
    for shape in shapes:
        N, C = shape[0], shape[1]
        x = (torch.randn(shape, generator=gen) * 2).to(dtype)
        y = torch.randint(0, C, (N, *shape[2:]), generator=gen)
        floor = 2 * (x.numel() * x.element_size() + y.numel() * y.element_size()) + x.numel() * x.element_size()
        for name, fn in others.items():
            with tsl.use_backend("triton"):
                step = traffic.count_step(fn, x, y)
            print(f"| {name} | {'x'.join(map(str, shape))} | {step.total / x.numel():.3f} | {floor / x.numel():.3f} "
                  f"| {step.total / floor:.3f} |", flush=True)


def _tile_takes_dtype(K) -> bool:
    import inspect

    return "fp64" in inspect.signature(K._tile_for).parameters  # after the large-C change


def _kernels_module(path):
    """triton_segloss.dice.kernels, or a copy of it at ``path`` (e.g. ``git show HEAD:...`` for "before")."""
    if not path:
        from triton_segloss.dice import kernels

        return kernels
    import importlib.util

    spec = importlib.util.spec_from_file_location("triton_segloss.dice._kernels_before", path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "triton_segloss.dice"
    spec.loader.exec_module(mod)
    return mod


def _spills(classes, dtypes, module=None, only=None):
    import triton.language as tl

    from bench.common import AOT_ARCHS, ptxas_usage
    from triton_segloss._core.aot import aot_spec

    K = _kernels_module(module)

    pix_pairs = ("lw0_hi", "lw0_lo", "lw1_hi", "lw1_lo", "fg_hi", "fg_lo", "fa_hi", "fa_lo", "ls_hi", "ls_lo")
    f32 = {k: "fp32" for k in pix_pairs}
    # every switch on (the heaviest variant), then CE + Dice as users call it, then focal (PIXEL 2)
    variants = {
        "all": dict(FROM_LOGITS=True, HAS_WEIGHT=True, HAS_IGNORE=True, LABEL_WEIGHT=True, SIGNED=True,
                    SQUARED=True, W_POW_I=2, W_POW_PT=1, PIXEL=1, LABEL_SMOOTH=True, FOCAL_ALPHA=False),
        "ce": dict(FROM_LOGITS=True, HAS_WEIGHT=False, HAS_IGNORE=True, LABEL_WEIGHT=False, SIGNED=False,
                   SQUARED=False, W_POW_I=1, W_POW_PT=1, PIXEL=1, LABEL_SMOOTH=False, FOCAL_ALPHA=False),
        "focal": dict(FROM_LOGITS=True, HAS_WEIGHT=False, HAS_IGNORE=True, LABEL_WEIGHT=False, SIGNED=False,
                      SQUARED=False, W_POW_I=1, W_POW_PT=1, PIXEL=2, LABEL_SMOOTH=False, FOCAL_ALPHA=False),
        "sfocal": dict(FROM_LOGITS=True, HAS_WEIGHT=True, HAS_IGNORE=True, LABEL_WEIGHT=False, SIGNED=False,
                       SQUARED=False, W_POW_I=1, W_POW_PT=1, PIXEL=3, LABEL_SMOOTH=False, FOCAL_ALPHA=True),
    }
    variants = {k: v for k, v in variants.items() if not only or k in only}
    print("| C | C_PAD x BLOCK, warps | kernel | variant | dtype | arch | registers | spill stores | spill loads |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0
    for C in classes:
        for dt in dtypes:
            c_pad, block, warps = K._tile_for(C, 1 << 20, *([dt == "fp64"] if _tile_takes_dtype(K) else []))
            acc = tl.float64 if dt == "fp64" else tl.float32
            accty = "*fp64" if dt == "fp64" else "*fp32"
            for kname, fn in (("fwd", K._dice_softmax_fwd_kernel), ("bwd", K._dice_softmax_bwd_kernel)):
                for vname, flags in variants.items():
                    const = dict(flags, ACC=acc, C_PAD=c_pad, BLOCK=block)
                    types = dict(x_ptr=f"*{dt}", y_ptr="*i64", **f32)
                    if kname == "fwd":
                        types.update(part_ptr=accty)
                    else:
                        const.update(PER_IMAGE=True, HAS_CLASSES=True)
                        types.update(coef_ptr=accty, g_ptr=accty, pos_ptr="*i32", dx_ptr=f"*{dt}")
                    sig, cx, attrs = aot_spec(fn, const, **types).signature()
                    for arch in AOT_ARCHS:
                        regs, st, ld = ptxas_usage(fn, sig, cx, attrs, arch, warps)
                        worst = max(worst, st + ld)
                        print(f"| {C} | {c_pad} x {block}, {warps} | {kname} | {vname} | {dt} | {arch} "
                              f"| {regs} | {st} | {ld} |", flush=True)
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traffic", action="store_true")
    p.add_argument("--spills", action="store_true")
    p.add_argument("--classes", type=int, nargs="*", default=list(CLASSES))
    p.add_argument("--hw", type=int, nargs=2, default=(32, 32), help="image height and width (traffic)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="fp32", help="traffic: fp32 | bf16")
    p.add_argument("--spill-dtypes", nargs="*", default=["fp32", "bf16", "fp64"])
    p.add_argument("--variants", nargs="*", default=None, help="spills: all | ce | focal | sfocal")
    p.add_argument("--module", default=None, help="spills: a kernels.py file to measure instead")
    a = p.parse_args(argv)
    if a.traffic:
        if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
            raise SystemExit("--traffic needs TRITON_INTERPRET=1 before triton is imported")
        _traffic([(a.batch, c, *a.hw) for c in a.classes], a.dtype)
    if a.spills:
        if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
            raise SystemExit("--spills compiles for real GPUs: run it without TRITON_INTERPRET")
        _spills(a.classes, a.spill_dtypes, a.module, a.variants)
    if not (a.traffic or a.spills):
        p.print_help()


if __name__ == "__main__":
    sys.exit(main())
