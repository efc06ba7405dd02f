"""Plot bench/results/timings.csv: one PNG per family, median time against size, a line per provider.

    python -m bench.plot                       # every family in the CSV, latest device
    python -m bench.plot --family dice --device-name "NVIDIA H100 80GB HBM3"

Only the newest row of each (case, mode, shape, provider, dtype) on the chosen
device is drawn; the shaded band is the 20%-80% quantile range.
"""

from __future__ import annotations

import argparse
import csv
import os
from typing import Optional

from .common import RESULTS


def _latest_rows(csv_path: str, family: str, device_name: Optional[str]) -> list:
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["family"] == family]
    if not rows:
        return []
    if device_name is None:
        device_name = max(rows, key=lambda r: r["date"])["device_name"]
    latest = {}
    for r in rows:
        if r["device_name"] != device_name:
            continue
        key = (r["case"], r["mode"], r["shape"], r["provider"], r["dtype"])
        if key not in latest or r["date"] >= latest[key]["date"]:
            latest[key] = r
    return list(latest.values())


def plot_family(family: str, csv_path: str = os.path.join(RESULTS, "timings.csv"), out_dir: str = RESULTS,
                device_name: Optional[str] = None) -> Optional[str]:
    """Write ``<out_dir>/<family>.png``; returns its path (None when the CSV has no rows for the family)."""
    if not os.path.exists(csv_path):
        return None
    rows = _latest_rows(csv_path, family, device_name)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    panels = list(dict.fromkeys((r["case"], r["mode"]) for r in rows))
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    colors = {p: f"C{i}" for i, p in enumerate(providers)}
    for ax, (case, mode) in zip(axes.flat, panels):
        for p in providers:
            pts = sorted((int(r["elems"]), float(r["median_ms"]), float(r["p20_ms"]), float(r["p80_ms"]), r["shape"])
                         for r in rows if r["case"] == case and r["mode"] == mode and r["provider"] == p)
            if not pts:
                continue
            xs = [q[0] for q in pts]
            ax.plot(xs, [q[1] for q in pts], "o-", color=colors[p], label=p, ms=3)
            ax.fill_between(xs, [q[2] for q in pts], [q[3] for q in pts], color=colors[p], alpha=0.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({(int(r["elems"]), r["shape"]) for r in rows if r["case"] == case and r["mode"] == mode})
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks([e for e, _ in ticks], [sh for _, sh in ticks], rotation=25, ha="right", fontsize=7)
        ax.set_title(f"{family} / {case} / {mode}", fontsize=9)
        ax.set_xlabel("logits shape (log of elements)")
        ax.set_ylabel("median ms")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    r0 = rows[0]
    fig.suptitle(f"{r0['device_name']} · {r0['threads']} threads · torch {r0['torch']} · triton {r0['triton']}",
                 fontsize=9)
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{family}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", action="append", help="repeatable; default: every family in the CSV")
    p.add_argument("--csv", default=os.path.join(RESULTS, "timings.csv"))
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--device-name", default=None, help="default: the device of the newest row")
    args = p.parse_args(argv)
    if not os.path.exists(args.csv):
        raise SystemExit(f"no timings at {args.csv}: run python -m bench first")
    families = args.family
    if not families:
        with open(args.csv, newline="") as f:
            families = list(dict.fromkeys(r["family"] for r in csv.DictReader(f)))
    for fam in families:
        path = plot_family(fam, args.csv, args.out, args.device_name)
        print(path or f"{fam}: no rows")


if __name__ == "__main__":
    main()
