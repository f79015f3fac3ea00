"""Infill per slice and its cost: every imputing family at its defaults on the 2-D built-ins.

    python benchmarks/bench_infill.py [--data gaussians8,pinwheel,checkerboard,moons]
                                      [--families flow,gmm,...] [--models DIR] [--n 2000]

For each dataset and family: fit at the defaults on 10,000 rows (random_state=0; with
``--models DIR`` the fits are saved there and reused), then impute x1 given x0 on the
acceptance slices (x0 at the 3/25/50/75/97% quantiles of the training x0, ``--n`` identical
rows each) and print W1 / floor per slice against exact conditional draws (the floor: W1
between two exact draws of the same size), the worst slice, and the cost targets of issue 14:

- ``same``: seconds to impute the ``--n`` identical rows of one slice / seconds to sample ``--n``
  rows (the density routes compute one conditional for identical rows);
- ``distinct``: the same for ``--n`` distinct rows (held-out data with x1 removed), where the
  density routes' cost guard hands the ODE families to their approximate samplers.

Target: both ratios <= 10. Timings on a shared machine are noisy; the ratios are measured in
one run, side by side.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.stats import wasserstein_distance

import genzoo as gz

DATASETS = ("gaussians8", "pinwheel", "checkerboard", "moons")
FAMILIES = ("flow", "autoregressive", "gmm", "kde", "flow_matching", "diffusion", "score", "rectified_flow",
            "ebm", "vae", "gan", "consistency")
QUANTILES = (0.03, 0.25, 0.5, 0.75, 0.97)


def exact_conditional(ds, x0: float, n: int, rng: np.random.Generator, lo: float, hi: float,
                      grid: int = 4001) -> np.ndarray:
    """Draws of x1 given x0 by inverse CDF of the exact density on a grid (as the acceptance check does)."""
    g = np.linspace(lo, hi, grid)
    lp = np.asarray(ds.log_prob(np.stack([np.full(grid, x0), g], 1)), float)
    cdf = np.cumsum(np.exp(lp - lp.max()))
    return np.interp(rng.random(n), cdf / cdf[-1], g)


def fitted(fam: str, dname: str, X: np.ndarray, models: str | None):
    path = os.path.join(models, f"{dname}_{fam}.genzoo") if models else None
    if path and os.path.exists(path):
        return gz.load(path), float("nan")
    kw = {"random_state": 0}
    try:
        m = gz.make(fam, verbose=0, **kw)
    except TypeError:
        m = gz.make(fam, **kw)
    t0 = time.perf_counter()
    m.fit(X)
    fit_s = time.perf_counter() - t0
    if path:
        m.save(path)
    return m, fit_s


def slice_ratios(m, ds, X: np.ndarray, n: int) -> tuple[list[float], float]:
    """W1 / floor per acceptance slice, and the seconds one slice's imputation took (median)."""
    qs = np.quantile(X[:, 0], QUANTILES)
    lo, hi = float(X[:, 1].min() - 1), float(X[:, 1].max() + 1)
    ratios, secs = [], []
    for j, x0 in enumerate(qs):
        Q = np.full((n, 2), np.nan)
        Q[:, 0] = x0
        t0 = time.perf_counter()
        F = np.asarray(m.impute(Q, random_state=j), float)
        secs.append(time.perf_counter() - t0)
        rng = np.random.default_rng(50 + j)
        t = [exact_conditional(ds, x0, n, rng, lo, hi) for _ in range(4)]
        floor = np.mean([wasserstein_distance(t[0], t[1]), wasserstein_distance(t[2], t[3])])
        ratios.append(float(np.mean([wasserstein_distance(F[:, 1], t[i]) for i in range(2)]) / max(floor, 1e-12)))
    return ratios, float(np.median(secs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=",".join(DATASETS))
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--models", default=None, help="folder to save fits in and reuse them from")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    if args.models:
        os.makedirs(args.models, exist_ok=True)
    head = f"{'data':<13}{'family':<15}" + "".join(f"{f'q{int(q * 100)}':>7}" for q in QUANTILES)
    print(head + f"{'worst':>8}{'same':>8}{'distinct':>10}{'fit s':>8}")
    for dname in args.data.split(","):
        ds = gz.datasets.get(dname)
        X = ds.sample(10_000, random_state=0).astype(np.float32)
        held = ds.sample(args.n, random_state=1)
        Qd = held.copy()
        Qd[:, 1] = np.nan
        for fam in args.families.split(","):
            m, fit_s = fitted(fam, dname, X, args.models)
            ratios, t_same = slice_ratios(m, ds, X, args.n)
            t0 = time.perf_counter()
            m.sample(args.n, random_state=0)
            t_sample = time.perf_counter() - t0
            t0 = time.perf_counter()
            m.impute(Qd, random_state=0)
            t_distinct = time.perf_counter() - t0
            print(f"{dname:<13}{fam:<15}" + "".join(f"{r:7.2f}" for r in ratios)
                  + f"{max(ratios):8.2f}{t_same / t_sample:8.1f}{t_distinct / t_sample:10.1f}{fit_s:8.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
