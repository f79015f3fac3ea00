"""Timings of every metric and of ``genzoo.evaluate`` at n = 2,000 and 10,000 points in 2-D.

A script, not a test: ``python benchmarks/bench_metrics.py [--sizes 2000,10000] [--repeats 3]``.
Prints the best-of-repeats wall time per metric. The evaluated model is a perfect one
(it samples the dataset itself), so only the metrics' cost is measured; the cached
floors are cleared before each first ``evaluate`` call and reused by the second.
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

import genzoo as gz
from genzoo import metrics as M


class TrueModel:
    """The dataset itself as a model: the cost of evaluate without any network."""

    capabilities = frozenset({"sample", "log_prob"})
    likelihood_kind = "exact"

    def __init__(self, dist):
        self.dist = dist

    def sample(self, n, y=None, random_state=None):
        self.last_nfe_ = 0
        return self.dist.sample(n, random_state=random_state)

    def score_samples(self, X):
        return self.dist.log_prob(X)


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_size(ds, n: int, repeats: int) -> None:
    """Print the timings at sample size n (both sets n points)."""
    X = ds.sample(n, random_state=0)
    Y = ds.sample(n, random_state=1)
    modes = ds.modes()
    cases: dict[str, Callable[[], object]] = {
        "frechet_distance": lambda: M.frechet_distance(X, Y),
        "wasserstein p=2": lambda: M.wasserstein(X, Y, p=2),
        "wasserstein p=1": lambda: M.wasserstein(X, Y, p=1),
        "mmd rbf": lambda: M.mmd(X, Y),
        "mmd poly (KID)": lambda: M.mmd(X, Y, kernel="poly"),
        "precision_recall": lambda: M.precision_recall(X, Y),
        "density_coverage": lambda: M.density_coverage(X, Y),
        "manifold_metrics": lambda: M.manifold_metrics(X, Y),
        "on_support": lambda: M.on_support(Y, ds),
    }
    if ds.n_classes:
        cases["inception_score"] = lambda: M.inception_score(Y, ds)
    if modes is not None:
        cases["mode_metrics"] = lambda: M.mode_metrics(Y, modes["centers"], modes["std"], modes["weights"])
    slow = {"wasserstein p=2", "wasserstein p=1"} if n > 4000 else set()
    for name, fn in cases.items():
        t = best_of(fn, 1 if name in slow else repeats)
        print(f"n={n:>6}  {name:<20} {t:8.3f}", flush=True)
    model = TrueModel(ds)
    M.clear_cache()
    t0 = time.perf_counter()
    M.evaluate(model, ds, n=n, random_state=0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    M.evaluate(model, ds, n=n, random_state=0)
    cached = time.perf_counter() - t0
    print(f"n={n:>6}  {'evaluate (floors)':<20} {first:8.3f}")
    print(f"n={n:>6}  {'evaluate (cached)':<20} {cached:8.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,10000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default="grid25")
    args = ap.parse_args()
    ds = gz.datasets.get(args.data)
    M.wasserstein(np.zeros((2, 2)), np.ones((2, 2)))  # import POT before timing
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"data={args.data} cores={os.cpu_count()} load={load:.1f} repeats={args.repeats} (seconds, best of)")
    for n in (int(s) for s in args.sizes.split(",")):
        bench_size(ds, n, args.repeats)


if __name__ == "__main__":
    main()
