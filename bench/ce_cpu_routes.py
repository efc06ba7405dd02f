"""CPU routes for the softmax cross entropy's math, timed side by side (forward + backward, no autograd):
the route the PyTorch path takes (``ce/torch_impl.py``: shift by the label's logit, the arguments
clamped to exp's normal range, ``exp``, the label's slot zeroed, class sum) against the route it took
before (the label's slot at -inf, scale + ``exp2``), a ``torch.softmax`` route, a ``torch.log_softmax`` route, and
optionally Inductor on the same math, with ``F.cross_entropy`` (forward + autograd backward) as the
yardstick. Logits at two scales: 2-3 (the bench's inputs) and 30 (confident logits, where many class
gaps exceed 87 and ``exp`` of them is not a normal number).

    python -m bench.ce_cpu_routes [--threads 2] [--inductor] [--host]

``--host``: the host cost of one ``tsl.cross_entropy`` forward + backward on a 1x3x4x4 input (Python
and dispatch; the tensors are tiny), alone and right after a pass over a 5.5 MB tensor (as inside a
large step, where the loss's Python runs between passes that flush the caches).

Sketches of the math only (no value check, no reductions beyond the mean): they show where the time
goes, not what a user's call costs (``bench.cpu_peers`` times that).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

LOG2E = 1.4426950408889634


def _median_us(f, reps=30):
    for _ in range(3):
        f()
    ts = []
    for _ in range(reps):
        a = time.perf_counter()
        f()
        ts.append(time.perf_counter() - a)
    return statistics.median(ts) * 1e6


def routes(x, y):
    N, C, S = x.shape
    ninf = torch.full((), float("-inf"))
    a = 1.0 / (N * S)

    zero = torch.zeros(())

    def ours_fwd(exp2=False):
        xy = x.gather(1, y)
        u = torch.empty_like(x)
        torch.sub(x, xy, out=u)
        if exp2:  # the route before 2026-12-04: -inf label slots, scale + exp2
            u.scatter_(1, y, ninf.expand(y.shape))
            u.mul_(LOG2E).exp2_()
        else:
            u.clamp_(-87.0, 88.0).exp_()
            u.scatter_(1, y, zero.expand(y.shape))
        d = u.sum(1, keepdim=True)
        float(d.max())
        return u, d, torch.log1p(d).sum()

    def ours(exp2=False):
        u, d, _ = ours_fwd(exp2)
        r = (d + 1.0).reciprocal_().mul_(a)
        u.mul_(r)
        u.scatter_(1, y, d.mul_(r).neg_())
        return u

    def softmax_route():
        p = torch.softmax(x, 1)
        py = p.gather(1, y)
        p.scatter_(1, y, torch.zeros(()).expand(y.shape))
        q = p.sum(1, keepdim=True)  # 1 - p_y without cancellation
        torch.where(py > 0.5, -torch.log1p(-q), -torch.log(py)).sum()
        p.mul_(a)
        p.scatter_(1, y, q.mul_(-a))
        return p

    def log_softmax_fwd():
        ls = torch.log_softmax(x, 1)
        return ls, -ls.gather(1, y).sum()

    def log_softmax_route():
        ls, _ = log_softmax_fwd()
        ls.exp_().mul_(a)  # p / n, then - 1/n at the label: 1 - p_y by cancellation
        ls.scatter_add_(1, y, torch.full((), -a).expand(y.shape))
        return ls

    def f_ce():
        xx = x.detach().requires_grad_()
        F.cross_entropy(xx, y[:, 0]).backward()

    return {"ours fwd": lambda: ours_fwd(), "ours fwd+bwd": ours, "ours with exp2 fwd+bwd": lambda: ours(True),
            "softmax route fwd+bwd": softmax_route,
            "log_softmax fwd": lambda: log_softmax_fwd(), "log_softmax fwd+bwd": log_softmax_route,
            "F.cross_entropy fwd+bwd": f_ce}


def inductor(x, y):
    N, C, S = x.shape

    def fwd(x, y):
        u = x - x.gather(1, y)
        cls = torch.arange(x.shape[1]).view(1, -1, 1)
        e = torch.where(cls == y, 0.0, torch.exp2(u * LOG2E))
        do = e.sum(1, keepdim=True)
        return torch.log1p(do).mean(), e, do

    def bwd(e, do, y, a):
        ar = a / (do + 1.0)
        cls = torch.arange(e.shape[1]).view(1, -1, 1)
        return torch.where(cls == y, -do * ar, e * ar)

    t0 = time.perf_counter()
    cf, cb = torch.compile(fwd, dynamic=False), torch.compile(bwd, dynamic=False)
    _, e, do = cf(x, y)
    cb(e, do, y, 1.0 / (N * S))
    first = time.perf_counter() - t0

    def step():
        _, e, do = cf(x, y)
        cb(e, do, y, 1.0 / (N * S))

    return first, step


def host_cost(reps=100):
    import triton_segloss as tsl

    x = torch.randn(1, 3, 4, 4)
    y = torch.randint(0, 3, (1, 4, 4))
    big = torch.randn(4, 21, 128, 128)
    big2 = torch.empty_like(big)
    out = {}
    for mode in ("alone", "after a 5.5 MB pass") * 2:
        ts = []
        for _ in range(reps):
            if mode != "alone":
                torch.mul(big, 1.0, out=big2)
            a = time.perf_counter()
            xx = x.detach().requires_grad_()
            with tsl.use_backend("torch"):
                tsl.cross_entropy(xx, y).backward()
            ts.append(time.perf_counter() - a)
        out[mode] = statistics.median(ts[10:]) * 1e6  # the second round's
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shape", default="4x21x128x128")
    p.add_argument("--inductor", action="store_true", help="also Inductor on the same math (a first compile of ~20 s)")
    p.add_argument("--host", action="store_true", help="also the host cost of a tiny tsl.cross_entropy step")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.host:
        for mode, us in host_cost().items():
            print(f"host cost of a 1x3x4x4 tsl.cross_entropy step, {mode}: {us:.0f} us")
    N, C, H, W = (int(v) for v in a.shape.split("x"))
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, C, (N, 1, H * W), generator=gen)
    print(f"{a.shape}, fp32, {a.threads} threads, median us of 30 reps")
    print("| logit scale | route | us |")
    print("|---|---|---|")
    for scale in (3.0, 30.0):
        x = torch.randn(N, C, H * W, generator=gen) * scale
        for name, f in routes(x, y).items():
            print(f"| {scale:g} | {name} | {_median_us(f):.0f} |", flush=True)
        if a.inductor and scale == 3.0:
            first, step = inductor(x, y)
            print(f"| {scale:g} | Inductor fwd+bwd (first compile {first:.1f} s) | {_median_us(step):.0f} |", flush=True)


if __name__ == "__main__":
    main()
