"""One cell of ../shared/tools/acceptance.py slices (its own code: the five slices at the 3/25/50/75/97%
quantiles of x0, exact conditionals by inverse CDF on a grid, W1 / floor at n = 2,000); run from the
project root.

    python benchmarks/probe_slices.py pinwheel kde
    python benchmarks/probe_slices.py moons kde max_train=5000 seed=1

Values are JSON (strings quoted). Families with a likelihood also print NLL - H on 10,000 fresh rows
(random_state=99; the true density's log-likelihood of the same rows as H).
"""
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

import genzoo as gz

spec = importlib.util.spec_from_file_location("acc", Path(__file__).resolve().parents[2] / "shared/tools/acceptance.py")
acc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(acc)

dname, fam = sys.argv[1], sys.argv[2]
kw = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
seed = int(kw.pop("seed", 0))
ds = gz.datasets.get(dname)
X = ds.sample(10_000, random_state=seed).astype(np.float32)
qs = np.quantile(X[:, 0], [0.03, 0.25, 0.5, 0.75, 0.97])
lo, hi = float(X[:, 1].min() - 1), float(X[:, 1].max() + 1)
t0 = time.perf_counter()
m = gz.make(fam, random_state=seed, verbose=0, **kw).fit(X)
fit_s = time.perf_counter() - t0
ratios = []
for j, x0 in enumerate(qs):
    Q = np.full((2000, 2), np.nan)
    Q[:, 0] = x0
    F = np.asarray(m.impute(Q, random_state=j), float)
    rng = np.random.default_rng(50 + j)
    t = [acc._exact_conditional(ds, x0, 2000, rng, lo, hi) for _ in range(4)]
    floor = np.mean([wasserstein_distance(t[0], t[1]), wasserstein_distance(t[2], t[3])])
    ratios.append(float(np.mean([wasserstein_distance(F[:, 1], t[i]) for i in range(2)]) / max(floor, 1e-9)))
gap = ""
if m.likelihood_kind != "none":  # NLL - H on fresh rows, paired with the true density's log-likelihood
    R = ds.sample(10_000, random_state=99).astype(np.float32)
    gap = f", NLL - H {float(np.mean(ds.log_prob(R)) - np.mean(m.score_samples(R))):+.4f}"
print(f"{dname}/{fam} {kw} seed {seed}: worst W1/floor {max(ratios):.1f} slices {np.round(ratios, 1).tolist()} "
      f"(x0 = {np.round(qs, 3).tolist()}) fit {fit_s:.0f}s{gap}", flush=True)
