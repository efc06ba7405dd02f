"""Registers and spills of the boundary family's fused forward kernels on sm_80 / sm_90.

    python -m bench.boundary_spills      # without TRITON_INTERPRET: compiles for real GPUs

Every AOT variant of the named kernels (``kernels.AOT_SPECS``) is compiled with ``triton.compile``
and the PTX is assembled by the ptxas bundled with Triton with ``-v``; prints one markdown row per
variant and architecture.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--kernels", nargs="*", default=["_bce_dice_fwd_strip_kernel", "_bce_dice_fwd3d_kernel"])
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("compiles for real GPUs: run it without TRITON_INTERPRET")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from bench.dice_large_c import _ptxas
    from triton_segloss.boundary import kernels as K

    targets = {"sm_80": GPUTarget("cuda", 80, 32), "sm_90": GPUTarget("cuda", 90, 32)}
    print("| kernel | constexprs | types | warps | arch | registers | spill stores | spill loads |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in K.AOT_SPECS:
        if spec.fn.__name__ not in a.kernels:
            continue
        sig, cx, attrs = spec.signature()
        for arch, target in targets.items():
            k = triton.compile(ASTSource(fn=spec.fn, signature=sig, constexprs=cx, attrs=attrs), target=target,
                               options={"num_warps": spec.num_warps})
            with tempfile.TemporaryDirectory() as d:
                ptx = os.path.join(d, "k.ptx")
                with open(ptx, "w") as f:
                    f.write(k.asm["ptx"])
                gpu = re.search(r"^\.target (\w+)", k.asm["ptx"], re.M).group(1)
                out = subprocess.run([_ptxas(arch), "-v", "--gpu-name", gpu, ptx, "-o", os.path.join(d, "k.cubin")],
                                     capture_output=True, text=True)
            text = out.stdout + out.stderr
            m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
            r = re.search(r"Used (\d+) registers", text)
            cxs = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in spec.constexprs.items())
            tys = ", ".join(f"{k}={v}" for k, v in spec.types.items() if k in ("x_ptr", "t_ptr", "scr_ring_ptr"))
            print(f"| {spec.fn.__name__} | {cxs} | {tys} | {spec.num_warps} | {arch} | {r.group(1) if r else '?'} "
                  f"| {m.group(1)} | {m.group(2)} |", flush=True)


if __name__ == "__main__":
    main()
