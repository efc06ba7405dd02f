"""Compile every ``@triton.jit`` kernel of the package for real GPUs, without a GPU.

Run as a script in a process where TRITON_INTERPRET is unset (the interpreter
replaces kernels with Python functions that cannot be compiled). Discovers the
kernels by walking every module of the package: each ``@triton.jit`` function
named ``*_kernel`` must be listed in its module's ``AOT_SPECS`` (the other jit
functions are device helpers, compiled inline as part of the kernels). Prints one JSON line per compiled variant and exits 1
on any failure or on a kernel without a spec. ``AOT_ONLY=<module substring>`` compiles only
the matching kernels (for working on one family; the test never sets it).
"""

import importlib
import json
import multiprocessing
import os
import pkgutil
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

import triton_segloss as pkg

TARGETS = {"sm_80": GPUTarget("cuda", 80, 32), "sm_90": GPUTarget("cuda", 90, 32)}


def discover():
    kernels, specs = {}, []
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
        if info.name.endswith(("__main__", ".demo")):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if isinstance(obj, JITFunction) and obj.__module__ == mod.__name__ and name.endswith("_kernel"):
                kernels[f"{mod.__name__}.{name}"] = obj
        specs += getattr(mod, "AOT_SPECS", [])
    return kernels, specs


_SPECS = None


def _init_worker():
    global _SPECS
    _SPECS = discover()[1]


def _compile(job):
    """Compile spec ``i`` for ``tname``; returns the JSON record (runs in a worker process)."""
    i, tname = job
    spec = _SPECS[i]
    sig, constexprs, attrs = spec.signature()
    rec = {"kernel": spec.fn.__name__, "variant": i, "target": tname, "num_warps": spec.num_warps}
    try:
        src = ASTSource(fn=spec.fn, signature=sig, constexprs=constexprs, attrs=attrs)
        k = triton.compile(src, target=TARGETS[tname], options={"num_warps": spec.num_warps})
        rec.update(ok=True, cubin_bytes=len(k.asm["cubin"]), vector_loads="ld.global.v" in k.asm["ptx"],
                   int64_ptx="mul.wide" in k.asm["ptx"] or ".s64" in k.asm["ptx"])
    except Exception as e:  # report every failure, not only the first
        rec.update(ok=False, error=f"{type(e).__name__}: {e}"[:2000])
    return rec


def main(workers=None):
    kernels, specs = discover()
    failed = False
    covered = {id(s.fn) for s in specs}
    for name, fn in sorted(kernels.items()):
        if id(fn) not in covered:
            print(json.dumps({"kernel": name, "ok": False, "error": "no AOT_SPECS entry"}))
            failed = True
    only = os.environ.get("AOT_ONLY")  # developer filter: a substring of the kernels' module, e.g. "cldice"
    jobs = [(i, t) for i in range(len(specs)) for t in TARGETS
            if not only or only in specs[i].fn.__module__]
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), 8))
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no inherited triton state
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        for rec in pool.imap_unordered(_compile, jobs, chunksize=4):
            failed |= not rec["ok"]
            print(json.dumps(rec), flush=True)
    print(json.dumps({"kernels": len(kernels), "variants": len(specs)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
