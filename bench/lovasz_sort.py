"""What ``torch.sort(keys, dim=1, stable=True)`` moves on CUDA, and the Lovász steps charged with it.

``bench.traffic`` counts an aten op as its inputs plus outputs, but a sort's I/O (16 B per fp32
key with its int64 index) is far less than a GPU sort moves, so it charges sorts by the model
below. The model follows torch's CUDA code
(aten/src/ATen/native/cuda/Sort.cpp, SortStable.cu, Sort.h) and CUB's radix-sort policies
(onesweep, 8-bit digits, for keys of >= 4 bytes on sm_60+; DeviceSegmentedSort's large
segments: 6-bit digits, an upsweep read of the keys plus a downsweep read and write of keys
and values per pass). Bytes per sorted element, key size k, int64 index 8:

* nsort <= 4096 (small sort): arange + copy into indices 8, values.copy_(self) 2k,
  in-place block sort read and write of keys and indices 2(k + 8).
* one segment, or nsort >= 1e6 (a loop of one radix sort per segment): indices filled once
  (8 / nsegments), histogram k, ceil(8k / 8) onesweep passes of 2(k + 8).
* 2..127 segments ("by full sort": the keys sorted globally with an int2 (segment, index)
  payload, then a stable sort of the int2 words on the segment bits, then a gather):
  fill 8, histogram k, passes 2(k + 8) each, segment sort 8 + 16 per pass, gather 8 + 8 + 2k.
* >= 128 segments (cub DeviceSegmentedSort): fill 8, ceil(8k / 6) passes of k + 2(k + 8).

``python -m bench.lovasz_sort`` prints, for the Lovász shapes, each step's bytes per logit
element: the kernels counted in the interpreter plus the modeled sort when ``torch.sort`` runs.
Segments of at most ``kernels.REG_SORT_MAX`` pixels (fp32 errors) take the register-sort path:
one program per segment sorts packed int64 keys with ``tl.sort`` in registers and walks them,
so no sort op is called and nothing is charged by the model; what that kernel loads from and
stores to global memory (its logits and target, or the errors kernel's keys and flags, and d)
is counted lane by lane like every kernel's. The last column divides the step by the model of
one torch.sort of the step's fp32 keys (its ``(SEG, P)`` rows), whether or not it ran: the
issue's goal is step <= 1.5x that. ``--sort-path`` forces ``torch.sort`` (``REG_SORT_MAX = 0``,
the path before the register sort); ``--spills`` compiles the register-sort kernel for
sm_80 / sm_90 (no interpreter) and prints registers and ptxas spill bytes per BLOCK.
"""

from __future__ import annotations

import math
import os


def sort_bytes_per_elem(nsegments: int, nsort: int, key_bytes: int = 4) -> tuple[str, float]:
    """(path, bytes per sorted element) of a stable torch.sort along the last dim on CUDA."""
    k, v = key_bytes, 8
    if nsort <= 4096:
        return "small in-place sort", 8 + 2 * k + 2 * (k + v)
    passes8 = math.ceil(8 * k / 8)
    if nsegments == 1 or nsort >= 1_000_000:
        return f"{nsegments} radix sort(s), {passes8} passes", 8 / nsegments + k + passes8 * 2 * (k + v)
    if nsegments < 128:
        seg_passes = math.ceil(max(1, math.ceil(math.log2(nsegments))) / 8)
        return ("by full sort", 8 + k + passes8 * 2 * (k + 8) + 8 + 16 * seg_passes + (8 + 8 + 2 * k))
    passes6 = math.ceil(8 * k / 6)
    return "cub segmented sort", 8 + passes6 * (k + 2 * (k + v))


def _step(fn, x, t, seg_p):
    """(path, step B/logit, of which the torch.sort model, sort I/O B/logit, the reference sort
    B/logit: the model of one sort of the (SEG, P) fp32 keys)."""
    from bench import traffic

    st = traffic.count_step(fn, x, t)  # charges a torch.sort by the model above (traffic.SORT_MODEL)
    sort = sum(b for op, b in st.aten_by_op.items() if "sort" in op)
    nseg, p = seg_p
    path, per = sort_bytes_per_elem(nseg, p)
    ref = per * nseg * p
    reg = any("_lovasz_reg_sort_kernel" in op for op in st.kernel_by_op)
    if reg:
        assert sort == 0, st.aten_by_op  # no sort op on the register path
        path = f"register sort (tl.sort), not {path}"
    else:
        assert abs(sort - ref) <= 2, (sort, ref)  # the counter's sort is this one
    n = x.numel()
    return path, st.total / n, sort / n, st.sort_io / n, ref / n


def _reg_sort_variant(block: int, hinge: bool, dt: str = "fp32"):
    """(constexprs, types) of the register-sort kernel as the launcher runs it: the hinge with
    ignore_index; softmax with a class list and class weights."""
    import triton.language as tl

    const = dict(HINGE=hinge, PER_IMAGE=True, HAS_IGNORE=hinge, ALL_CLASSES=hinge, PRESENT=False,
                 HAS_CW=not hinge, REDUCTION=0, ACC=tl.float32, BLOCK=block, BLOCK_K=32, BLOCK_CH=32)
    types = dict(x_ptr=f"*{dt}", t_ptr="*fp32", fg_ptr="*u8", tab_ptr="*i32", cw_ptr="*fp64", gts_ptr="*i32",
                 ticket_ptr="*i32", ig_hi="fp32", ig_lo="fp32", mn_hi="fp32", mn_lo="fp32", mp_hi="fp32",
                 mp_lo="fp32")
    return const, types


def spills(blocks=(256, 1024, 2048, 4096), warps=None):
    """Registers and ptxas spill bytes of _lovasz_reg_sort_kernel (hinge and softmax variants) for
    sm_80 and sm_90, compiled ahead of time with the launcher's num_warps (or each of ``warps``)."""
    from bench.common import AOT_ARCHS, ptxas_usage
    from triton_segloss._core.aot import aot_spec
    from triton_segloss.lovasz import kernels as K

    print("| BLOCK | num_warps | variant | arch | registers | spill stores | spill loads |")
    print("|---|---|---|---|---|---|---|")
    worst = 0
    for block in blocks:
        for w in (warps or [K._reg_sort_warps(block)]):
            for hinge in (True, False):
                const, types = _reg_sort_variant(block, hinge)
                sig, cx, attrs = aot_spec(K._lovasz_reg_sort_kernel, const, **types).signature()
                for arch in AOT_ARCHS:
                    regs, st, ld = ptxas_usage(K._lovasz_reg_sort_kernel, sig, cx, attrs, arch, w)
                    worst = max(worst, st + ld)
                    print(f"| {block} | {w} | {'hinge' if hinge else 'softmax'} | {arch} | {regs} | {st} | {ld} |",
                          flush=True)
    return worst


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.lovasz_sort", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sort-path", action="store_true", help="force torch.sort (REG_SORT_MAX = 0): the old path")
    ap.add_argument("--spills", action="store_true", help="registers and spills of the register sort (no interpreter)")
    a = ap.parse_args(argv)
    if a.spills:
        if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
            raise SystemExit("--spills compiles for real GPUs: run it without TRITON_INTERPRET")
        return spills()
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    import triton_segloss as tsl
    from bench.traffic import no_value_checks  # noqa: F401 (needs TRITON_INTERPRET first)
    from triton_segloss.lovasz import kernels

    if a.sort_path:
        kernels.REG_SORT_MAX = 0
    torch.manual_seed(0)
    print("| case | shape | sort path | sort B/sorted elem (model) | torch.sort I/O B/logit | step B/logit | "
          "of which torch.sort (model) | rest | step / one sort of the keys (goal <= 1.5) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for n, h in ((2, 64), (8, 128)):
        x = torch.randn(n, 1, h, h)
        t = (torch.rand(x.shape) < 0.4).float()
        for pi in (True, False):
            rows.append((f"hinge per_image={pi}", x, t, lambda a, b, pi=pi: tsl.lovasz_hinge(a, b, per_image=pi),
                         (n, h * h) if pi else (1, n * h * h)))
        xs = torch.randn(n, 4, h, h)
        y = torch.randint(0, 4, (n, h, h))
        for pi in (True, False):
            rows.append((f"softmax C=4 per_image={pi}", xs, y,
                         lambda a, b, pi=pi: tsl.lovasz_softmax(a, b, per_image=pi),
                         (n * 4, h * h) if pi else (4, n * h * h)))
    with tsl.use_backend("triton"):
        for name, x, t, fn, sp in rows:
            path, total, sort, io, ref = _step(fn, x, t, sp)
            per = ref * x.numel() / (sp[0] * sp[1])
            print(f"| {name} | {'x'.join(map(str, x.shape))} | {path} | {per:.0f} | {io:.1f} | {total:.1f} | "
                  f"{sort:.1f} | {total - sort:.1f} | {total / ref:.2f} |", flush=True)


if __name__ == "__main__":
    main()
