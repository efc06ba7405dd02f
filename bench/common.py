"""What every family script shares: cases, providers, sizes, timing, CSV / markdown output.

A family script (``bench/bce.py`` ...) defines ``cases()``: a list of
:class:`Case`, each with its input maker and its providers (``tsl``, ``eager``,
``torch_compile`` and any installed peer). :func:`run_family` times them or
counts their traffic and writes the results.

Nothing here imports ``triton`` or ``triton_segloss`` at module level, so
``python -m bench --traffic`` can still set ``TRITON_INTERPRET=1`` first.
"""

from __future__ import annotations

import csv
import datetime
import importlib
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Generic sizes (N, C, *spatial); each case maps them to its own shape (binary cases set C = 1).
SIZES = {
    "tiny": [(2, 3, 8, 8)],
    "small": [(2, 4, 64, 64), (4, 8, 128, 128)],
    "full": [(2, 4, 64, 64), (4, 8, 128, 128), (8, 21, 256, 256), (8, 21, 512, 512), (2, 4, 64, 128, 128)],
}
# Traffic is counted with the kernels in Triton's interpreter: moderate sizes suffice (it is exact).
TRAFFIC_SIZES = {
    "tiny": [(2, 3, 8, 8)],
    "small": [(2, 4, 64, 64)],
    "full": [(2, 4, 64, 64), (2, 4, 16, 32, 32)],
}
MODES = ("forward", "backward", "full")

# Peak DRAM bandwidth in GB/s by device-name substring, tried in order (the first match wins).
PEAK_GBPS = [
    ("GH200", 4000), ("H200", 4800), ("H100 NVL", 3900), ("H100 PCIe", 2000), ("H100", 3350),
    ("B200", 8000), ("A100-SXM4-80GB", 2039), ("A100 80GB PCIe", 1935), ("A100", 1555),
    ("L40S", 864), ("L40", 864), ("L4", 300), ("A10G", 600), ("A10", 600), ("T4", 320), ("V100", 900),
    ("RTX 6000 Ada", 960), ("RTX A6000", 768), ("RTX 4090", 1008), ("RTX 3090", 936),
]


class Unavailable(Exception):
    """A provider that cannot run here (not installed, not implemented yet); the message says why."""


@dataclass
class Case:
    """One benchmarked configuration of a family.

    make(shape, device, dtype, gen) -> (logits, target); providers: name -> factory returning
    fn(logits, target) -> scalar loss (or raising Unavailable). ``shape`` maps a generic size to
    this case's shape (None skips the size). ``backward=False`` for metrics.
    """

    family: str
    name: str
    make: Callable
    providers: dict
    shape: Callable = lambda s: s
    backward: bool = True
    check_against: Optional[str] = "eager"  # the provider tsl's value is compared with (None: no check)
    note: str = ""


@dataclass
class Env:
    device: torch.device
    device_name: str
    threads: int
    torch_version: str = torch.__version__
    triton_version: str = ""
    date: str = field(default_factory=lambda: datetime.datetime.now().isoformat(timespec="seconds"))

    @staticmethod
    def detect(device: torch.device) -> "Env":
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        else:
            name = platform.processor() or platform.machine()
            try:
                with open("/proc/cpuinfo") as f:
                    for line in f:
                        if line.startswith("model name"):
                            name = line.split(":", 1)[1].strip()
                            break
            except OSError:
                pass
        try:
            import triton

            tv = triton.__version__
        except ImportError:
            tv = "none"
        return Env(device, name, torch.get_num_threads(), triton_version=tv)


def peak_gbps(device_name: str) -> Optional[float]:
    for key, gbps in PEAK_GBPS:
        if key.lower() in device_name.lower():
            return float(gbps)
    return None


# ---------------------------------------------------------------------------
# Inputs and providers
# ---------------------------------------------------------------------------

def binary_shape(s):
    return (s[0], 1, *s[2:])


def make_mask(shape, device, dtype, gen, p=0.3):
    logits = torch.randn(shape, generator=gen).mul_(2.0).to(device=device, dtype=dtype)
    target = (torch.rand(shape, generator=gen) < p).float().to(device)
    return logits, target


def make_labels(shape, device, dtype, gen):
    logits = torch.randn(shape, generator=gen).mul_(2.0).to(device=device, dtype=dtype)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen).to(device)
    return logits, labels


def tsl_fn(name: str, extra: Optional[Callable] = None, **kwargs) -> Callable:
    """Factory for the fused function ``triton_segloss.<name>`` (dotted names allowed) called with kwargs.

    ``extra(logits)`` returns further keyword arguments computed from the input (a kernel size, C).
    """

    def factory():
        import triton_segloss as tsl

        obj = tsl
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise Unavailable(f"triton_segloss.{name} is not available yet")
        if extra is None:
            return lambda x, t: _first(obj(x, t, **kwargs))
        return lambda x, t: _first(obj(x, t, **kwargs, **extra(x)))

    return factory


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def compiled(eager_factory: Callable) -> Callable:
    """Factory for ``torch.compile`` of an eager provider."""

    def factory():
        return torch.compile(eager_factory())

    return factory


def peer(module: str, build: Callable) -> Callable:
    """Factory for a peer library's loss: ``build(mod)`` returns fn(logits, target); Unavailable if not installed."""

    def factory():
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure means "not here"
            raise Unavailable(f"{module} is not importable ({type(exc).__name__})") from None
        return build(mod)

    return factory


# ---------------------------------------------------------------------------
# Bytes
# ---------------------------------------------------------------------------

def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def min_bytes(logits, target, mode: str, backward: bool = True) -> int:
    """Bytes a provider must move: inputs once per pass, the gradient written once."""
    inputs = nbytes(logits) + nbytes(target)
    if not backward or mode == "forward":
        return inputs
    if mode == "backward":
        return inputs + nbytes(logits)
    return 2 * inputs + nbytes(logits)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def _runner(fn, logits, target, mode: str, backward: bool):
    """(setup, timed) for one call in ``mode``; setup's result is passed to timed (CPU timing only)."""
    x = logits.detach().clone().requires_grad_(backward)
    if mode == "forward":
        return None, lambda _: fn(x, target)
    if mode == "backward":
        return (lambda: fn(x, target)), (lambda loss: torch.autograd.grad(loss, x))
    return None, lambda _: torch.autograd.grad(fn(x, target), x)


def quantiles(samples: list) -> tuple[float, float, float]:
    """Median, 20% and 80% quantiles (linear interpolation)."""
    s = sorted(samples)
    if len(s) == 1:
        return s[0], s[0], s[0]
    q = statistics.quantiles(s, n=10, method="inclusive")
    return statistics.median(s), q[1], q[7]


def _drop(name: str, exc: Exception, what: str) -> None:
    print(f"  provider {name} failed in {what} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); dropped")


def time_cpu(fns: dict, logits, target, mode: str, backward: bool, reps: int, warmup: int) -> dict:
    """Wall-time quantiles (ms) per provider, the providers interleaved round-robin in one loop."""
    runners = {}
    for name, fn in fns.items():
        setup, timed = _runner(fn, logits, target, mode, backward)
        try:
            for _ in range(warmup):
                timed(setup() if setup else None)
        except Exception as exc:  # noqa: BLE001 - e.g. a compiled backward that fails: report, go on
            _drop(name, exc, mode)
            continue
        runners[name] = setup, timed
    samples = {name: [] for name in runners}
    names = list(runners)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:  # rotate the start each round
            setup, timed = runners[name]
            state = setup() if setup else None
            t0 = time.perf_counter()
            timed(state)
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: quantiles(s) + (None,) for name, s in samples.items()}


def time_cuda(fns: dict, logits, target, mode: str, backward: bool, rep_ms: int = 100) -> dict:
    """triton.testing.do_bench median and 20/80 quantiles (ms) and peak extra memory (MiB) per provider."""
    from triton.testing import do_bench

    out = {}
    for name, fn in fns.items():
        x = logits.detach().clone().requires_grad_(backward)
        try:
            if mode == "forward":
                call = lambda: fn(x, target)  # noqa: E731
            elif mode == "backward":
                loss = fn(x, target)
                call = lambda: torch.autograd.grad(loss, x, retain_graph=True)  # noqa: E731
            else:
                call = lambda: torch.autograd.grad(fn(x, target), x)  # noqa: E731
            ms = do_bench(call, quantiles=[0.5, 0.2, 0.8], rep=rep_ms)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - report and go on with the other providers
            _drop(name, exc, mode)
            continue
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        out[name] = (*ms, peak)
        del call
    return out


# ---------------------------------------------------------------------------
# Running a family
# ---------------------------------------------------------------------------

def build_providers(case: Case, wanted: Optional[list]) -> tuple[dict, dict]:
    """(name -> fn for the providers of ``case`` that exist here, name -> why the others do not)."""
    fns, missing = {}, {}
    for name, factory in case.providers.items():
        if wanted and name not in wanted:
            continue
        try:
            fns[name] = factory()
        except Unavailable as exc:
            missing[name] = str(exc)
    return fns, missing


def usable_cases(family: str, cases: list, wanted: Optional[list]) -> list:
    """[(case, providers)] for the cases whose ``tsl`` function exists; one line printed per skip."""
    out, skipped, absent = [], [], {}
    for case in cases:
        fns, missing = build_providers(case, wanted)
        if "tsl" in missing:
            skipped.append((case, missing["tsl"]))
            continue
        absent.update(missing)
        out.append((case, fns))
    for name, why in absent.items():  # once per family
        print(f"  {family}: provider {name} skipped: {why}")
    if skipped and not out:
        print(f"{family}: skipped ({'; '.join(dict.fromkeys(why for _, why in skipped))})")
    else:
        for case, why in skipped:
            print(f"  {family}/{case.name}: skipped ({why})")
    return out


def _value_check(case: Case, fns: dict, logits, target, dtype: str = "fp32") -> dict:
    """One forward per provider: drop those that fail; warn where tsl disagrees with the reference provider."""
    values = {}
    x = logits.detach().requires_grad_(case.backward)  # as timed, so torch.compile compiles once
    for name in list(fns):
        try:
            values[name] = fns[name](x, target).detach().double().cpu()
        except Exception as exc:  # noqa: BLE001 - a provider that cannot run this input is reported and dropped
            print(f"  {case.family}/{case.name} {tuple(logits.shape)}: provider {name} failed "
                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); dropped")
            del fns[name]
    ref = case.check_against
    if ref in values and "tsl" in values:
        a, b = values["tsl"], values[ref]
        tol = 1e-3 if dtype in ("fp32", "fp64") else 3e-2  # eager code computes in bf16/fp16 itself
        if a.shape != b.shape or (a - b).abs().max() > tol * max(1.0, float(b.abs().max())):
            print(f"  WARNING {case.family}/{case.name} {tuple(logits.shape)}: tsl and {ref} disagree: "
                  f"{a.flatten()[:4].tolist()} vs {b.flatten()[:4].tolist()}")
    return values


def run_family(family: str, cases: list, args) -> list:
    """Time (or count the traffic of) every case of ``family``; write CSV + markdown (+ plot). Returns rows."""
    device = torch.device(args.device)
    if args.traffic:
        return _run_traffic(family, cases, args)
    if not cases:
        return []
    env = Env.detect(device)
    rows = []
    import triton_segloss as tsl

    # On CPU the fused functions run their PyTorch path (the interpreter is for tests, not timing).
    backend = "torch" if device.type == "cpu" else "auto"
    gen = torch.Generator().manual_seed(0)
    with tsl.use_backend(backend):
        for case, fns_all in usable_cases(family, cases, args.providers):
            for size in SIZES[args.sizes]:
                shape = case.shape(size)
                if shape is None:
                    continue
                logits, target, fns = _inputs(case, shape, device, args, gen, fns_all)
                _value_check(case, fns, logits, target, args.dtype)
                modes = [m for m in args.mode if case.backward or m == "forward"]
                for mode in modes:
                    if device.type == "cuda":
                        res = time_cuda(fns, logits, target, mode, case.backward)
                    else:
                        res = time_cpu(fns, logits, target, mode, case.backward, args.reps, args.warmup)
                    need = min_bytes(logits, target, mode, case.backward)
                    peak = peak_gbps(env.device_name) if device.type == "cuda" else None
                    for name, (med, p20, p80, mem) in res.items():
                        gbps = need / (med * 1e-3) / 1e9
                        rows.append(dict(
                            date=env.date, device=device.type, device_name=env.device_name, threads=env.threads,
                            torch=env.torch_version, triton=env.triton_version, family=family, case=case.name,
                            provider=name, mode=mode, shape="x".join(map(str, shape)), dtype=args.dtype,
                            elems=logits.numel(), median_ms=round(med, 5), p20_ms=round(p20, 5),
                            p80_ms=round(p80, 5), min_bytes=need, gbps=round(gbps, 2),
                            pct_peak="" if peak is None else round(100 * gbps / peak, 1),
                            peak_mem_mib="" if mem is None else round(mem, 2),
                        ))
                    print(f"  {family}/{case.name} {'x'.join(map(str, shape))} {mode}: " + ", ".join(
                        f"{n} {r[0]:.3f} ms" for n, r in res.items()), flush=True)
    if rows:
        append_csv(os.path.join(args.out, "timings.csv"), rows)
        md = timing_markdown(family, rows, env)
        print(md)
        with open(os.path.join(args.out, f"{family}.md"), "w") as f:
            f.write(md)
        if not args.no_plot:
            from .plot import plot_family

            png = plot_family(family, os.path.join(args.out, "timings.csv"), args.out, device_name=env.device_name)
            if png:
                print(f"plot: {png}")
    return rows


def _kernel_summary(by_op, elems: int) -> str:
    """'kernel: loads+stores B/elem' per Triton kernel, e.g. '_ce_fwd_kernel 6.00+0.00'."""
    per = {}
    for key, n in by_op.items():
        kernel, kind = key.rsplit(" ", 1)
        load, store = per.get(kernel, (0, 0))
        per[kernel] = (load + n, store) if kind == "tl.load" else (load, store + n)
    return "; ".join(f"{k} {ld / elems:.2f}+{st / elems:.2f}" for k, (ld, st) in per.items())


def _inputs(case: Case, shape, device, args, gen, fns: dict):
    """(logits, target, providers) for one size; ``--target-dtype uint8|bool|int32`` hands tsl the
    target in that dtype (bool applies to masks only, int32 to labels only; otherwise the target
    stays native) and every other provider the same target converted back inside the call (as
    users must)."""
    logits, target = case.make(shape, device, _dtype(args.dtype), gen)
    fns = dict(fns)
    want = {"uint8": torch.uint8, "bool": torch.bool, "int32": torch.int32}.get(args.target_dtype)
    is_labels = not target.is_floating_point() and target.dtype != torch.bool
    if want is not None and (want == torch.uint8 or (want == torch.bool) != is_labels):
        native = target.dtype
        target = target.to(want)
        for name, fn in fns.items():
            if name != "tsl":
                fns[name] = (lambda f: lambda x, t: f(x, t.to(native)))(fn)
    return logits, target, fns


def _dtype(name: str) -> torch.dtype:
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}[name]


def _run_traffic(family: str, cases: list, args) -> list:
    from . import traffic
    import triton_segloss as tsl

    device = torch.device("cpu")
    env = Env.detect(device)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for case, fns in usable_cases(family, cases, args.providers):
        fns.pop("torch_compile", None)  # compiled C++ kernels are not visible to the counters
        for size in TRAFFIC_SIZES[args.sizes]:
            shape = case.shape(size)
            if shape is None:
                continue
            logits, target, fns_now = _inputs(case, shape, device, args, gen, fns)
            variants = []
            for name, fn in fns_now.items():
                if name == "tsl":  # the Triton kernels (in the interpreter) and the PyTorch path
                    variants += [("tsl", fn, "triton"), ("tsl[torch path]", fn, "torch")]
                else:
                    variants.append((name, fn, "torch"))
            need = min_bytes(logits, target, "full", case.backward)
            elems = logits.numel()
            for name, fn, backend in variants:
                try:
                    with tsl.use_backend(backend):
                        step = traffic.count_step(fn, logits, target, backward=case.backward)
                except Exception as exc:  # noqa: BLE001
                    print(f"  {family}/{case.name}: traffic of {name} failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160]})")
                    continue
                # kernels' per-program scratch (parameters named scr*: a neighbour exchange a GPU serves
                # from L1/L2) is tallied apart: the kernels column lists it, bytes and ratios leave it out
                moved = step.total - step.scratch_bytes
                rows.append(dict(
                    date=env.date, torch=env.torch_version, triton=env.triton_version, family=family,
                    case=case.name, provider=name, shape="x".join(map(str, shape)), dtype=args.dtype,
                    target_dtype=str(target.dtype).replace("torch.", ""), elems=elems,
                    bytes=moved, kernel_bytes=step.kernel_bytes - step.scratch_bytes, aten_bytes=step.aten_bytes,
                    b_per_elem=round(moved / elems, 3), min_b_per_elem=round(need / elems, 3),
                    ratio=round(moved / need, 3), kernels=_kernel_summary(step.kernel_by_op, elems),
                ))
                apart = f"; scratch {step.scratch_bytes / elems:.1f} B/elem apart" if step.scratch_bytes else ""
                print(f"  {family}/{case.name} {rows[-1]['shape']} {name}: {rows[-1]['b_per_elem']} B/elem "
                      f"(min {rows[-1]['min_b_per_elem']}, x{rows[-1]['ratio']}{apart})", flush=True)
    if rows:
        append_csv(os.path.join(args.out, "traffic.csv"), rows)
        md = traffic_markdown(family, rows)
        print(md)
        with open(os.path.join(args.out, f"{family}_traffic.md"), "w") as f:
            f.write(md)
    return rows


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def append_csv(path: str, rows: list) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fields = list(rows[0])
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header != fields:  # a different layout: start a new file beside it rather than mix columns
            path = path[:-4] + "_" + datetime.datetime.now().strftime("%Y%m%d%H%M%S") + ".csv"
            new = True
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerows(rows)


def _cell(r: dict) -> str:
    s = f"{r['median_ms']:.3f} ({r['p20_ms']:.3f}–{r['p80_ms']:.3f})"
    if r["device"] == "cuda":
        s += f", {r['gbps']:.0f} GB/s"
        if r["pct_peak"] != "":
            s += f" ({r['pct_peak']}%)"
        if r["peak_mem_mib"] != "":
            s += f", {r['peak_mem_mib']:.1f} MiB"
    return s


def timing_markdown(family: str, rows: list, env: Env) -> str:
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    lines = [
        f"### {family}: median ms (20%–80%)" + (", achieved GB/s of the minimum bytes (% of peak), peak extra memory"
                                                if env.device.type == "cuda" else ""),
        "",
        f"{env.device_name}, {env.threads} threads, torch {env.torch_version}, triton {env.triton_version}, "
        f"{env.date}; dtype {rows[0]['dtype']}.",
        "",
        "| case | shape | mode | " + " | ".join(providers) + " | tsl speed-up vs eager |",
        "|---|---|---|" + "---|" * len(providers) + "---|",
    ]
    keyed = {}
    for r in rows:
        keyed.setdefault((r["case"], r["shape"], r["mode"]), {})[r["provider"]] = r
    for (case, shape, mode), by in keyed.items():
        cells = [_cell(by[p]) if p in by else "–" for p in providers]
        speed = (f"{by['eager']['median_ms'] / by['tsl']['median_ms']:.2f}x"
                 if "tsl" in by and "eager" in by and by["tsl"]["median_ms"] > 0 else "–")
        lines.append(f"| {case} | {shape} | {mode} | " + " | ".join(cells) + f" | {speed} |")
    return "\n".join(lines) + "\n"


def traffic_markdown(family: str, rows: list) -> str:
    lines = [
        f"### {family}: bytes moved per logit element, one training step (forward + backward)",
        "",
        "Counted exactly: Triton kernels' active-lane loads and stores in the interpreter, plus every aten op's "
        "tensor reads and writes (views and allocations excluded). Minimum: inputs read in forward and in "
        "backward, gradient written once. `tsl` = the Triton kernels (run in the interpreter to count them), "
        "`tsl[torch path]` = the CPU fallback; torch_compile is not counted (inductor's generated code is "
        "invisible to both counters). Value checks are off, as on CUDA by default. Loads and stores of a "
        "kernel's per-program scratch slot (listed as `scratch` in the last column) are left out of B/elem.",
        "",
        "| case | shape | target | provider | B/elem | minimum | ratio | kernel B | aten-op B | "
        "kernels: load+store B/elem |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['shape']} | {r['target_dtype']} | {r['provider']} | {r['b_per_elem']} | "
                     f"{r['min_b_per_elem']} | {r['ratio']}x | {r['kernel_bytes']} | {r['aten_bytes']} | "
                     f"{r['kernels'] or '–'} |")
    return "\n".join(lines) + "\n"


# -- ahead-of-time register and spill counts (no GPU, no interpreter) ---------------------------------

AOT_ARCHS = ("sm_80", "sm_90")


def _ptxas(arch: str) -> str:
    """The ptxas Triton itself runs for ``arch``: ``ptxas`` (CUDA 12.9) below sm_90, ``ptxas-blackwell``
    (CUDA 13, the only one that reads the PTX version Triton writes for sm_90) from sm_90 on."""
    import triton

    name = "ptxas" if arch < "sm_90" else "ptxas-blackwell"
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def ptxas_usage(fn, signature, constexprs, attrs, arch: str, num_warps: int) -> tuple[str, int, int]:
    """(registers, spill store bytes, spill load bytes) of ``fn`` compiled with ``triton.compile`` for
    ``arch`` ("sm_80" / "sm_90") and assembled by Triton's ptxas with ``-v``. Registers are "?" when
    ptxas does not print them; a missing spill line raises with ptxas's output."""
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", int(arch[3:]), 32)
    k = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs), target=target,
                       options={"num_warps": num_warps})
    with tempfile.TemporaryDirectory() as d:
        ptx = os.path.join(d, "k.ptx")
        with open(ptx, "w") as f:
            f.write(k.asm["ptx"])
        gpu = re.search(r"^\.target (\w+)", k.asm["ptx"], re.M).group(1)  # sm_90a on sm_90
        out = subprocess.run([_ptxas(arch), "-v", "--gpu-name", gpu, ptx, "-o", os.path.join(d, "k.cubin")],
                             capture_output=True, text=True)
    text = out.stdout + out.stderr
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if m is None:
        raise RuntimeError(text)
    r = re.search(r"Used (\d+) registers", text)
    return (r.group(1) if r else "?"), int(m.group(1)), int(m.group(2))
