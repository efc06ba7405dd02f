"""Registers and spills of the boundary family's fused forward kernels on sm_80 / sm_90.

    python -m bench.boundary_spills      # without TRITON_INTERPRET: compiles for real GPUs

Every AOT variant of the named kernels (``kernels.AOT_SPECS``) is compiled with ``triton.compile``
and the PTX is assembled by the ptxas bundled with Triton with ``-v``; prints one markdown row per
variant and architecture.
"""

from __future__ import annotations

import argparse
import os


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--kernels", nargs="*", default=["_bce_dice_fwd_strip_kernel", "_bce_dice_fwd3d_kernel"])
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("compiles for real GPUs: run it without TRITON_INTERPRET")
    from bench.common import AOT_ARCHS, ptxas_usage
    from triton_segloss.boundary import kernels as K

    print("| kernel | constexprs | types | warps | arch | registers | spill stores | spill loads |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in K.AOT_SPECS:
        if spec.fn.__name__ not in a.kernels:
            continue
        sig, cx, attrs = spec.signature()
        for arch in AOT_ARCHS:
            regs, st, ld = ptxas_usage(spec.fn, sig, cx, attrs, arch, spec.num_warps)
            cxs = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in spec.constexprs.items())
            tys = ", ".join(f"{k}={v}" for k, v in spec.types.items() if k in ("x_ptr", "t_ptr", "scr_ring_ptr"))
            print(f"| {spec.fn.__name__} | {cxs} | {tys} | {spec.num_warps} | {arch} | {regs} | {st} | {ld} |",
                  flush=True)

if __name__ == "__main__":
    main()
