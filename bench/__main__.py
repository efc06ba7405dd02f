"""Benchmarks: ``python -m bench`` from the repository root.

    python -m bench                                   # every family, small sizes, all modes
    python -m bench --family dice --sizes full --mode full --threads 2
    python -m bench --traffic                         # bytes per element of one training step
    python -m bench --launches                        # device launches and host syncs of one training step
    python -m bench.plot                              # PNGs from bench/results/timings.csv

On CUDA: ``triton.testing.do_bench`` medians and 20/80 quantiles, achieved GB/s
of the bytes each loss must move, % of the device's peak bandwidth, peak extra
memory. On CPU: wall-time medians and 20/80 quantiles of the fused functions'
PyTorch path against the eager code and the peers, providers interleaved
round-robin after a warm-up. ``--traffic`` counts bytes exactly (Triton
kernels in the interpreter, aten ops by a dispatch mode) and runs no timing.

Results: rows appended to ``<out>/timings.csv`` (or ``traffic.csv``), a
markdown table printed and written to ``<out>/<family>.md`` (or
``<family>_traffic.md``), and ``<out>/<family>.png``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

FAMILIES = ("bce", "dice", "focal", "boundary", "lovasz", "ce", "metrics")


def parse_args(argv=None, family=None):
    from .common import MODES, RESULTS, SIZES

    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", action="append", choices=FAMILIES, help="repeatable; default: all")
    p.add_argument("--mode", action="append", choices=MODES, help="repeatable; default: all three")
    p.add_argument("--sizes", choices=list(SIZES), default="small",
                   help="small: up to 4x8x128x128; full: up to 8x21x512x512 and a 2x4x64x128x128 volume")
    p.add_argument("--traffic", action="store_true", help="count bytes per element instead of timing (CPU)")
    p.add_argument("--launches", action="store_true",
                   help="count device launches and host syncs per training step on the CUDA code path (CPU)")
    p.add_argument("--only", nargs="+", default=None, help="--launches: only cases whose name contains one of these")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="logits dtype")
    p.add_argument("--target-dtype", choices=["native", "uint8", "bool", "int32"], default="native",
                   help="native: fp32 masks / int64 labels; uint8: both as uint8; bool: masks as bool; "
                        "int32: labels as int32 (other providers convert back)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--providers", nargs="+", default=None,
                   help="only these providers (tsl eager torch_compile torch_native monai kornia smp)")
    p.add_argument("--reps", type=int, default=15, help="timed calls per provider (CPU)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per provider first (CPU)")
    p.add_argument("--out", default=RESULTS, help="results folder")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    if family is not None:
        args.family = [family]
    args.family = args.family or list(FAMILIES)
    args.mode = args.mode or list(MODES)
    return args


def main(argv=None, family=None) -> dict:
    """Run the chosen families; returns family -> result rows."""
    args = parse_args(sys.argv[1:] if argv is None else argv, family)
    if args.launches:
        os.environ["TRITON_INTERPRET"] = "1"
        from . import launches

        rows = launches.run(args.only)
        table = launches.markdown(rows)
        print(table)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "launches.md"), "w") as f:
            f.write(table)
        return {"launches": rows}
    if args.traffic:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
            raise SystemExit("--traffic needs TRITON_INTERPRET=1 before triton is imported; run it in a fresh process")
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: kernels run (and are counted) on the CPU
        args.device = "cpu"
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise SystemExit("TRITON_INTERPRET is set: CUDA timings would run the interpreter; unset it")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    from .common import run_family

    results = {}
    try:
        for fam in args.family:
            mod = importlib.import_module(f"bench.{fam}")
            print(f"== {fam}", flush=True)
            results[fam] = run_family(fam, mod.cases(), args)
    finally:
        torch.set_num_threads(threads)
    return results


if __name__ == "__main__":
    main()
