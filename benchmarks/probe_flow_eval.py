"""Flow on digits: where is the best held-out bound, and does checking the validation split more often find it?

    python benchmarks/probe_flow_eval.py 25 250     # the eval_every values to compare

Defaults, seed 0, fitted on the train split with labels; FD and the rest in genzoo's digits classifier's features.
"""
import sys
import time

import numpy as np

import genzoo as gz
from genzoo.metrics.images import image_scores

ds = gz.datasets.get("digits")
Xtr, ytr = ds.split("train")
Xte, yte = ds.split("test")
for ev in [int(a) for a in sys.argv[1:]]:
    m = gz.make("flow", random_state=0, verbose=0)
    m.eval_every = ev  # a class-level setting, overridden on this instance only
    t = time.perf_counter()
    m.fit(Xtr, ytr)
    fit = time.perf_counter() - t
    nll = -np.mean(m.score_samples(Xte))
    s = image_scores(m.sample(1000, random_state=1), Xte, Xtr)
    h = m.history_
    print(f"eval_every={ev}: fit {fit:.0f}s steps {getattr(m, 'n_steps_', None)} test NLL {nll:.2f} "
          f"FD/floor {s['fd_ratio']:.2f} P {s['precision']:.2f} R {s['recall']:.2f} copies {s['copies']:.3f}",
          flush=True)
    print("  val:", [(a, round(b, 1)) for a, b in zip(h["val_step"], h["val_loss"])], flush=True)
