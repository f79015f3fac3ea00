"""One cell of ../shared/tools/acceptance.py slices (its own code: the five slices at the 3/25/50/75/97%
quantiles of x0, exact conditionals by inverse CDF on a grid, W1 / floor at n = 2,000); run from the
project root.

    python benchmarks/probe_slices.py pinwheel kde
    python benchmarks/probe_slices.py moons kde max_train=5000 seed=1

Values are JSON (strings quoted). Families with a likelihood also print NLL - H on 10,000 fresh rows
(random_state=99; the true density's log-likelihood of the same rows as H).
"""
import json
import sys
import time

import numpy as np
from probe_slice_limits import model_draw, ratios, setup  # the check's slices and floors (same folder)

import genzoo as gz

dname, fam = sys.argv[1], sys.argv[2]
kw = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
seed = int(kw.pop("seed", 0))
ds, X, qs, lo, hi = setup(dname, seed)
t0 = time.perf_counter()
m = gz.make(fam, random_state=seed, verbose=0, **kw).fit(X.astype(np.float32))
fit_s = time.perf_counter() - t0
r = ratios(ds, qs, lo, hi, model_draw(m))
gap = ""
if m.likelihood_kind != "none":  # NLL - H on fresh rows, paired with the true density's log-likelihood
    R = ds.sample(10_000, random_state=99).astype(np.float32)
    gap = f", NLL - H {float(np.mean(ds.log_prob(R)) - np.mean(m.score_samples(R))):+.4f}"
print(f"{dname}/{fam} {kw} seed {seed}: worst W1/floor {max(r):.1f} slices {r} "
      f"(x0 = {np.round(qs, 3).tolist()}) fit {fit_s:.0f}s{gap}", flush=True)
