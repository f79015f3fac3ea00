"""Sampling throughput of the one-pass samplers at 100,000 samples, and where the flow's time goes.

    python benchmarks/bench_sampling.py [--families flow,gan,vae,consistency,rectified_flow]
                                        [--models DIR] [--n 100000] [--reps 3] [--no-profile]

Fits each family at its defaults on 10,000 grid25 rows (what ``acceptance.py speed`` does),
or loads ``DIR/FAMILY.genzoo`` when ``--models DIR`` has it (and saves it there after a fit),
then times ``sample(n)`` (``nfe=1`` for consistency and rectified_flow; the GAN both with its
default discriminator rejection sampling and with ``nfe=1``, one generator pass). Two rates
per family, median over ``--reps``: samples per wall-clock second, and per CPU second of this
process (``time.process_time``), which moves far less than wall time when other processes
share the cores. Compare numbers from one run; on a loaded machine prefer the CPU-second
column and ratios.

The flow's profile: CPU seconds in its conditioner networks, in the mixture-CDF inverse (its
float32 and float64 Newton passes apart), and the top torch operators (``torch.profiler``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

import genzoo as gz

FAMILIES = ["flow", "gan", "vae", "consistency", "rectified_flow"]


def fitted(family: str, models: str | None):
    path = os.path.join(models, f"{family}.genzoo") if models else None
    if path and os.path.exists(path):
        return gz.load(path)
    X = gz.datasets.get("grid25").sample(10_000, random_state=0).astype(np.float32)
    m = gz.make(family, random_state=0, verbose=0).fit(X)
    if path:
        os.makedirs(models, exist_ok=True)
        m.save(path)
    return m


def rates(m, n: int, reps: int, **opts) -> tuple[float, float]:
    """Median samples per wall second and per CPU second over ``reps`` calls (after one warm-up)."""
    m.sample(1000, random_state=0, **opts)
    wall, cpu = [], []
    for r in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        m.sample(n, random_state=1 + r, **opts)
        wall.append(n / (time.perf_counter() - t0))
        cpu.append(n / max(time.process_time() - c0, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def flow_profile(m, n: int) -> None:
    """CPU seconds of one ``sample(n)`` by part, then the top operators."""
    import genzoo.nn.coupling as C

    spent: dict[str, float] = {}

    def timed(name, f):
        def g(*a, **k):
            t = time.process_time()
            try:
                return f(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - t
        return g

    newton, quantile = C._safe_newton, C._mixture_quantile
    nets = [(b.net, b.net.forward) for b in m.module_.transform.blocks if hasattr(b, "net")]
    C._safe_newton = lambda v, *a, **k: timed(f"  Newton passes, {str(v.dtype)[6:]}", newton)(v, *a, **k)
    C._mixture_quantile = timed("mixture-CDF inverse (all)", quantile)
    for net, fwd in nets:
        net.forward = timed("conditioner networks", fwd)
    try:
        m.sample(1000, random_state=0)
        spent.clear()
        t = time.process_time()
        m.sample(n, random_state=1)
        total = time.process_time() - t
    finally:
        C._safe_newton, C._mixture_quantile = newton, quantile
        for net, _ in nets:
            del net.forward  # back to the class's method
    print(f"\nflow profile, sample({n:,}) on {torch.get_num_threads()} thread(s): {total:.2f} CPU s")
    for name, s in sorted(spent.items(), key=lambda kv: kv[0].startswith("  ")):
        print(f"  {name:34s} {s:6.2f} s  {100 * s / total:5.1f}%")
    rest = total - spent.get("mixture-CDF inverse (all)", 0.0) - spent.get("conditioner networks", 0.0)
    print(f"  {'other (weights, noise, copies)':34s} {rest:6.2f} s  {100 * rest / total:5.1f}%")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        m.sample(min(n, 20_000), random_state=1)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--models", default=None, help="folder to load fitted models from / save them to")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; {args.n:,} samples, median of {args.reps}")
    print(f"{'family':28s} {'samples/s':>10s} {'per CPU s':>10s}")
    flow = None
    for fam in args.families.split(","):
        m = fitted(fam, args.models)
        runs = [("", {})]
        if fam == "gan":
            runs.append((" (nfe=1)", {"nfe": 1}))
        elif fam in ("consistency", "rectified_flow"):
            runs = [(" (nfe=1)", {"nfe": 1})]
        for label, opts in runs:
            wall, cpu = rates(m, args.n, args.reps, **opts)
            print(f"{fam + label:28s} {wall:10,.0f} {cpu:10,.0f}", flush=True)
        flow = m if fam == "flow" else flow
    if flow is not None and not args.no_profile:
        flow_profile(flow, args.n)


if __name__ == "__main__":
    sys.exit(main())
