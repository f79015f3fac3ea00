"""The wide check's numbers for one family (../shared/tools/acceptance.py wide: its own 10-D mixture and
three rings in 6-D, 10,000 training rows), with any hyperparameters; run from the project root.

    python benchmarks/probe_wide.py flow                       # both data sets, random_state=0
    python benchmarks/probe_wide.py diffusion which=6 seed=1   # the rings only, random_state=1
    python benchmarks/probe_wide.py autoregressive factorise=false prior='"none"'

Values are JSON (strings quoted). Prints the held-out NLL - H, the training rows' NLL - H (overfitting),
the on-support share (10-D), fit seconds and, where kept, the independent blocks.
"""
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

import genzoo as gz

spec = importlib.util.spec_from_file_location("acc", Path(__file__).resolve().parents[2] / "shared/tools/acceptance.py")
acc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(acc)

fam = sys.argv[1]
kw = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[2:])}
which, seed = str(kw.pop("which", "both")), int(kw.pop("seed", 0))


def fit(X):
    t0 = time.perf_counter()
    m = gz.make(fam, random_state=seed, verbose=0, **kw).fit(X)
    return m, time.perf_counter() - t0


def nll(m, X):
    return -float(np.mean(np.asarray(m.score_samples(np.asarray(X, np.float32)), float)))


if which in ("both", "10"):
    smp, lp, _ = acc._mixture10()
    r = np.random.default_rng(0)
    X, Xte, Xref = smp(10_000, r).astype(np.float32), smp(10_000, r), smp(20_000, r)
    H = float(-lp(smp(100_000, np.random.default_rng(1))).mean())
    m, fs = fit(X)
    S = np.asarray(m.sample(5000, random_state=1), float)
    sup = float(np.mean(lp(S) > np.quantile(lp(Xref), 0.01)))
    print(f"10-D {fam} {kw} seed {seed}: gap {nll(m, Xte) - H:+.3f} training rows {nll(m, X[:3000]) - H:+.3f} "
          f"on support {sup:.3f} fit {fs:.0f}s", flush=True)
if which in ("both", "6"):
    smp6, lp6 = acc._rings6()
    X6, X6te = smp6(10_000, np.random.default_rng(2)).astype(np.float32), smp6(10_000, np.random.default_rng(3))
    H6 = float(-lp6(smp6(200_000, np.random.default_rng(4))).mean())
    m, fs = fit(X6)
    print(f"6-D rings {fam} {kw} seed {seed}: gap {nll(m, X6te) - H6:+.3f} training rows {nll(m, X6[:3000]) - H6:+.3f} "
          f"fit {fs:.0f}s blocks {getattr(m, 'blocks_', None)} held-out choice {getattr(m, 'factorise_losses_', None)}",
          flush=True)
