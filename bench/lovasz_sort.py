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

``python -m bench.lovasz_sort`` prints the sort model for the Lovász shapes and each step's
bytes per logit element: the kernels counted in the interpreter plus the modeled sort.
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
    from bench import traffic

    st = traffic.count_step(fn, x, t)  # charges the sort by the model below (traffic.SORT_MODEL)
    sort = sum(b for op, b in st.aten_by_op.items() if "sort" in op)
    nseg, p = seg_p
    path, per = sort_bytes_per_elem(nseg, p)
    assert abs(sort - per * nseg * p) <= 2, (sort, per * nseg * p)  # the counter's sort is this one
    other = st.total - sort
    return path, per, st.sort_io / x.numel(), st.total / x.numel(), sort / x.numel(), other / x.numel()


def main():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    import triton_segloss as tsl
    from bench.traffic import no_value_checks  # noqa: F401 (needs TRITON_INTERPRET first)

    torch.manual_seed(0)
    print("| case | shape | sort path | sort B/sorted elem (model) | aten-counted sort B/logit | "
          "step B/logit with the model | of which sort | rest | step / sort (goal <= 1.5) |")
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
            path, per, io, total, sort, other = _step(fn, x, t, sp)
            print(f"| {name} | {'x'.join(map(str, x.shape))} | {path} | {per:.0f} | {io:.1f} | {total:.1f} | "
                  f"{sort:.1f} | {other:.1f} | {total / sort:.2f} |")


if __name__ == "__main__":
    main()
