"""Side by side on the CPU: the PyTorch path of BCE, focal and CE against its peers (fwd+bwd).

    python -m bench.cpu_peers                       # 8x1x256x256 binary, 4x21x128x128 multiclass, 2 threads
    python -m bench.cpu_peers --reps 21 --rounds 3  # three interleaved rounds, the median of the medians
    python -m bench.cpu_peers --compile             # also torch_compile (Inductor; first call ~20 s)

Every case of ``bench/bce.py``, ``bench/focal.py`` and ``bench/ce.py`` is timed with the
providers of that case interleaved round-robin in one process (``common.time_cpu``); the
ratio is tsl's median over the fastest peer's (``torch_compile`` only counted with
``--compile``, and then reported in its own column, not as a peer).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from . import bce, ce, focal
from .common import build_providers, make_labels

FAMILIES = {"bce": bce, "focal": focal, "ce": ce}


def _shapes(case, binary, multi):
    """Binary (C = 1) cases get ``binary``, multiclass (label) cases ``multi``, multilabel (mask) cases both."""
    if case.shape((2, 3, 4, 4))[1] == 1:
        return [binary]
    return [multi] if case.make is make_labels else [binary, multi]


def _samples(fns, logits, target, reps, warmup, clock):
    """Per provider, ``reps`` fwd+bwd times (ms), the providers interleaved round-robin with the start
    rotated each round (as ``common.time_cpu``). ``clock`` "process": this process's CPU time, so time
    spent descheduled by other jobs on a shared machine does not count (use it with --threads 1; with
    more threads it adds up every thread's busy time, spin-waits included)."""
    now = time.process_time if clock == "process" else time.perf_counter
    steps = {}
    for name, fn in fns.items():
        x = logits.detach().clone().requires_grad_(True)
        steps[name] = (lambda f, x: lambda: torch.autograd.grad(f(x, target), x))(fn, x)
        for _ in range(warmup):
            steps[name]()
    samples = {name: [] for name in steps}
    names = list(steps)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            t0 = now()
            steps[name]()
            samples[name].append((now() - t0) * 1e3)
    return samples


def _time(fam, case, fns, shape, gen, args):
    logits, target = case.make(shape, torch.device("cpu"), torch.float32, gen)
    samples = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, v in _samples(fns, logits, target, args.reps, args.warmup, args.clock).items():
            samples[name] += v
    med = {name: statistics.median(v) for name, v in samples.items() if v}
    peers = {n: m for n, m in med.items() if n not in ("tsl", "torch_compile")}
    best = min(peers, key=peers.get)
    # the median of the ratios of the same round's two runs: drifts in the machine's load cancel
    paired = statistics.median(a / b for a, b in zip(samples["tsl"], samples[best]))
    fastest = min(samples["tsl"]) / min(samples[best])  # best runs: the least disturbed by other jobs
    print(f"{fam}/{case.name} {'x'.join(map(str, shape))}: " + ", ".join(
        f"{n} {m:.3f}" for n, m in med.items()) + f"  -> tsl / {best} = {med['tsl'] / peers[best]:.2f}x"
        f" (paired {paired:.2f}x, min/min {fastest:.2f}x)", flush=True)
    return fam, case.name, "x".join(map(str, shape)), med, best, paired, fastest


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.cpu_peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", action="append", choices=list(FAMILIES))
    p.add_argument("--case", action="append", help="only cases of these names (multilabel, balanced, ...)")
    p.add_argument("--binary", default="8x1x256x256", help="shape of the C = 1 cases")
    p.add_argument("--multi", default="4x21x128x128", help="shape of the other cases")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="repeat the interleaved timing; report median of medians")
    p.add_argument("--compile", action="store_true", help="include torch_compile")
    p.add_argument("--clock", choices=["wall", "process"], default="wall",
                   help="wall: perf_counter, as common.time_cpu; process: this process's CPU time (for "
                        "--threads 1 on a loaded machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    binary = tuple(int(v) for v in args.binary.split("x"))
    multi = tuple(int(v) for v in args.multi.split("x"))

    import triton_segloss as tsl

    rows = []
    gen = torch.Generator().manual_seed(0)
    with tsl.use_backend("torch"):
        for fam in args.family or list(FAMILIES):
            for case in FAMILIES[fam].cases():
                if args.case and case.name not in args.case:
                    continue
                fns, _missing = build_providers(case, None)
                if not args.compile:
                    fns.pop("torch_compile", None)
                for shape in _shapes(case, binary, multi):
                    rows.append(_time(fam, case, fns, shape, gen, args))
    print()
    print(f"fwd+bwd, fp32, {args.threads} threads, {args.clock} clock, median ms of {args.reps} interleaved reps"
          + (f" (median of {args.rounds} rounds)" if args.rounds > 1 else ""))
    print()
    print("| family | case | shape | tsl | fastest peer | peer ms | tsl / peer | paired ratio | min / min | others |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fam, name, shape, med, best, paired, fastest in rows:
        others = ", ".join(f"{n} {m:.2f}" for n, m in med.items() if n not in ("tsl", best))
        print(f"| {fam} | {name} | {shape} | {med['tsl']:.2f} | {best} | {med[best]:.2f} | "
              f"{med['tsl'] / med[best]:.2f}x | {paired:.2f}x | {fastest:.2f}x | {others} |")


if __name__ == "__main__":
    main()
