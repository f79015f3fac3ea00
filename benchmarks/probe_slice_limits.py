"""What the slice targets of issue 14 ask of a model, measured with ``acceptance.py slices``' own
slices and floors (x0 at the 3/25/50/75/97% quantiles of 10,000 training rows drawn with
random_state=0, W1 at n = 2,000 over W1 between two exact draws); run from the project root.

    python benchmarks/probe_slice_limits.py            # all five parts, a few minutes
    python benchmarks/probe_slice_limits.py blur kde   # some of them

- ``blur``: checkerboard's exact density blurred along x0 by a Gaussian of width s (raw units),
  i.e. a model right everywhere except within about s of a column edge. The check's 25/50/75%
  slices lie 0.018-0.026 from an edge, so the worst slice tells how sharp an edge must be.
- ``kde``: a Gaussian kernel density on all 10,000 rows at fixed bandwidths (standardised units):
  narrow kernels leave a few dozen rows per slice (variance), wide ones cross the edge (bias).
- ``gmm``: full-covariance Gaussian mixtures of 24-400 components (BIC picks about 20-24); the
  conditional by inverse CDF of the mixture's own density on a grid (exact for the model).
- ``share``: gaussians8's median slice (x0 = 0) crosses the modes at (0, 1) and (0, -1); a model
  that puts exactly the training rows' share in each scores what this prints (over imputation
  seeds), before any error of its own.
- ``oracle``: an exact imputer (a fresh exact conditional draw) in the model's place, on all four
  data sets: the spread of the worst-of-five statistic itself.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance
from sklearn.mixture import GaussianMixture

import genzoo as gz

spec = importlib.util.spec_from_file_location("acc", Path(__file__).resolve().parents[2] / "shared/tools/acceptance.py")
acc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(acc)

QUANTILES = [0.03, 0.25, 0.5, 0.75, 0.97]
N = 2000


def setup(dname, seed=0):
    """The check's data set, 10,000 training rows, slice positions and grid bounds (for ``seed``)."""
    ds = gz.datasets.get(dname)
    X = ds.sample(10_000, random_state=seed)
    qs = np.quantile(X[:, 0], QUANTILES)
    lo, hi = float(X[:, 1].min() - 1), float(X[:, 1].max() + 1)
    return ds, X, qs, lo, hi


def ratios(ds, qs, lo, hi, draw, first=0):
    """W1 / floor per slice, as the check computes it (slice j's exact draws seeded 50 + j);
    ``draw(j, x0)`` -> N imputed x1 values."""
    out = []
    for j, x0 in enumerate(qs, start=first):
        F = draw(j, x0)
        rng = np.random.default_rng(50 + j)
        t = [acc._exact_conditional(ds, x0, N, rng, lo, hi) for _ in range(4)]
        floor = np.mean([wasserstein_distance(t[0], t[1]), wasserstein_distance(t[2], t[3])])
        out.append(float(np.mean([wasserstein_distance(F, t[i]) for i in range(2)]) / floor))
    return np.round(out, 1).tolist()


def model_draw(m):
    """``draw`` for :func:`ratios`: the model's ``impute`` of N rows observed at x0, seeded by the slice."""
    return lambda j, x0: np.asarray(m.impute(np.array([[x0, np.nan]] * N), random_state=j), float)[:, 1]


def grid_draw(logpdf, lo, hi, j, x0):
    """Inverse-CDF draws of x1 from a 2-D log-density at x0 on a 4,001-point grid."""
    g = np.linspace(lo, hi, 4001)
    lp = logpdf(np.stack([np.full_like(g, x0), g], 1))
    w = np.exp(lp - lp.max())
    return np.interp(np.random.default_rng(j).random(N), np.cumsum(w) / w.sum(), g)


def blur():
    ds, X, qs, lo, hi = setup("checkerboard")
    print("checkerboard slices at x0 =", np.round(qs, 3).tolist())
    nodes, weights = np.polynomial.hermite_e.hermegauss(41)  # E f(x0 + s e), e ~ N(0, 1)
    weights = weights / weights.sum()
    for s in [0.005, 0.01, 0.015, 0.02, 0.03, 0.04]:
        def logpdf(P, s=s):
            dens = sum(w * np.exp(ds.log_prob(P + np.array([s * e, 0.0]))) for e, w in zip(nodes, weights))
            return np.log(np.maximum(dens, 1e-300))
        r = ratios(ds, qs, lo, hi, lambda j, x0: grid_draw(logpdf, lo, hi, j, x0))
        print(f"  exact density blurred along x0 by s = {s}: worst {max(r)} slices {r}", flush=True)


def kde():
    ds, X, qs, lo, hi = setup("checkerboard")
    for bw in [0.005, 0.01, 0.02, 0.036]:
        m = gz.make("kde", bandwidth=bw, random_state=0).fit(X.astype(np.float32))
        r = ratios(ds, qs, lo, hi, model_draw(m))
        print(f"  kde, bandwidth {bw} (standardised): worst {max(r)} slices {r}", flush=True)


def gmm():
    ds, X, qs, lo, hi = setup("checkerboard")
    for k in [24, 64, 160, 400]:
        m = GaussianMixture(k, random_state=0, max_iter=300).fit(X)
        r = ratios(ds, qs, lo, hi, lambda j, x0, m=m: grid_draw(m.score_samples, lo, hi, j, x0))
        print(f"  gmm, {k} components (BIC {m.bic(X):.0f}): worst {max(r)} slices {r}", flush=True)


def share(reps=300):
    ds, X, qs, lo, hi = setup("gaussians8")
    x0 = qs[2]
    up = float(np.mean(X[np.abs(X[:, 0]) < 0.05, 1] > 0))
    print(f"gaussians8 median slice x0 = {x0:.5f}: training rows' share in the upper mode {up:.3f} (truth 0.5); "
          f"W1 / floor over {reps} imputation seeds of a model with that share, modes std 0.01 as the data's")
    rng = np.random.default_rng(52)  # the check's exact draws for this slice
    t = [acc._exact_conditional(ds, x0, N, rng, lo, hi) for _ in range(4)]
    floor = np.mean([wasserstein_distance(t[0], t[1]), wasserstein_distance(t[2], t[3])])
    for w in [0.5, up, 0.47]:
        r = []
        for k in range(reps):
            g = np.random.default_rng(10_000 + k)
            F = np.where(g.random(N) < w, 1.0, -1.0) + 0.01 * g.standard_normal(N)
            r.append(np.mean([wasserstein_distance(F, t[i]) for i in range(2)]) / floor)
        r = np.array(r)
        print(f"  upper share {w:.3f}: median {np.median(r):.2f}, 90th percentile {np.quantile(r, 0.9):.2f}, "
              f"P(> 3) {np.mean(r > 3):.2f}", flush=True)


def oracle(reps=40):
    """An exact imputer (a fresh exact draw) in the check's place: how often its worst slice passes."""
    for dname in ["gaussians8", "pinwheel", "checkerboard", "moons"]:
        ds, X, qs, lo, hi = setup(dname)
        worst = []
        for k in range(reps):
            g = np.random.default_rng(20_000 + k)
            def draw(j, x0, ds=ds, g=g, lo=lo, hi=hi):
                return acc._exact_conditional(ds, x0, N, g, lo, hi)
            worst.append(max(ratios(ds, qs, lo, hi, draw)))
        worst = np.array(worst)
        print(f"  {dname}: exact imputer's worst of five slices over {reps} draws: median {np.median(worst):.2f}, "
              f"max {worst.max():.2f}, P(> 3) {np.mean(worst > 3):.2f}", flush=True)


if __name__ == "__main__":
    parts = sys.argv[1:] or ["blur", "kde", "gmm", "share", "oracle"]
    for part in parts:
        print(f"[{part}]", flush=True)
        {"blur": blur, "kde": kde, "gmm": gmm, "share": share, "oracle": oracle}[part]()
