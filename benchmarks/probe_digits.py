"""Acceptance-style digits row per family (the metrics of ../shared/tools/acceptance.py digits).

    python benchmarks/probe_digits.py latent_diffusion vq_masked:max_steps=2000
"""
import sys
import time

import numpy as np
from scipy import linalg
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

import genzoo as gz


def frechet(a, b):
    m1, m2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = linalg.sqrtm(c1 @ c2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * s))

d = load_digits()
imgs, lab = d.images.astype(np.int64), d.target
Xtr, ytr, Xte, yte = imgs[:1000], lab[:1000], imgs[1350:], lab[1350:]
clf = MLPClassifier((64,), max_iter=2000, random_state=0).fit(imgs[:1350].reshape(-1, 64) / 16, lab[:1350])


def feats(A):
    return np.maximum(0, (np.asarray(A, float).reshape(len(A), 64) / 16) @ clf.coefs_[0] + clf.intercepts_[0])



floor = frechet(feats(Xtr), feats(Xte))
print(f"FD floor {floor:.2f}", flush=True)
for arg in sys.argv[1:]:
    fam, *kv = arg.split(":")
    kw = {k: (float(v) if "." in v else int(v)) for k, v in (x.split("=") for x in kv)}
    kw.setdefault("random_state", 0)
    t0 = time.perf_counter()
    m = gz.make(fam, **kw).fit(Xtr, ytr)
    row = {"fit_s": time.perf_counter() - t0}
    t1 = time.perf_counter()
    S = np.asarray(m.sample(1000, random_state=1))
    row["sps"] = 1000 / (time.perf_counter() - t1)
    assert S.shape == (1000, 8, 8) and S.min() >= 0 and S.max() <= 16 and np.allclose(S, np.round(S))
    row["fd"] = frechet(feats(S), feats(Xte)) / floor
    if m.likelihood_kind != "none":
        row["nll"] = float(-np.asarray(m.score_samples(Xte), float).mean())
    if "conditional" in m.capabilities:
        yc = np.repeat(np.arange(10), 50)
        Sc = np.asarray(m.sample(500, y=yc, guidance=1.0, random_state=2))
        row["acc"] = float(np.mean(clf.predict(Sc.reshape(-1, 64) / 16) == yc))
    if "impute" in m.capabilities:
        Q = Xte[:200].astype(float).copy()
        Q[:, 4:, :] = np.nan
        F = np.asarray(m.impute(Q, random_state=3), float)
        assert np.allclose(F[:, :4], Xte[:200, :4])
        row["inpaint"] = float(np.mean(clf.predict(F.reshape(-1, 64) / 16) == yte[:200]))
    print(arg, " ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
