"""Bad input gets a one-line ValueError that names the problem, for every array metric."""
from __future__ import annotations

import numpy as np
import pytest

from genzoo import metrics as M

rng = np.random.default_rng(0)
GOOD = rng.standard_normal((50, 2))

PAIR_METRICS = {
    "frechet_distance": M.frechet_distance,
    "wasserstein": M.wasserstein,
    "mmd": M.mmd,
    "kid": lambda X, Y: M.mmd(X, Y, kernel="poly"),
    "precision_recall": M.precision_recall,
    "density_coverage": M.density_coverage,
    "manifold_metrics": M.manifold_metrics,
}

BAD = {
    "dims": (rng.standard_normal((50, 3)), GOOD, "X has 3 columns but Y has 2"),
    "nan": (GOOD, np.where(np.arange(100).reshape(50, 2) == 7, np.nan, GOOD), "Y contains NaN or inf in 1 row"),
    "inf": (np.where(np.arange(100).reshape(50, 2) == 3, np.inf, GOOD), GOOD, "X contains NaN or inf"),
    "empty": (np.empty((0, 2)), GOOD, "X is empty"),
    "1-D": (GOOD[:, 0], GOOD, "X is 1-D"),
    "3-D": (GOOD, GOOD[None], "Y must be 2-D"),
    "strings": ([["a", "b"]] * 50, GOOD, "X must be a numeric array"),
}


@pytest.mark.parametrize("metric", PAIR_METRICS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_the_problem(metric, case):
    X, Y, msg = BAD[case]
    with pytest.raises(ValueError, match=msg):
        PAIR_METRICS[metric](X, Y)


@pytest.mark.parametrize("fn, k", [(M.precision_recall, 3), (M.density_coverage, 5)])
def test_fewer_points_than_k_plus_one(fn, k):
    with pytest.raises(ValueError, match=f"has {k} points; this metric needs at least {k + 1}"):
        fn(GOOD, GOOD[:k], k=k)
    fn(GOOD, GOOD[: k + 1], k=k)  # k + 1 is enough


@pytest.mark.parametrize("kw, msg", [({"k": 0}, "k must be a positive integer"), ({"k": 2.5}, "k must be")])
def test_bad_k(kw, msg):
    with pytest.raises(ValueError, match=msg):
        M.precision_recall(GOOD, GOOD, **kw)


def test_bad_options():
    with pytest.raises(ValueError, match="kernel must be 'rbf' or 'poly'"):
        M.mmd(GOOD, GOOD, kernel="laplace")
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        M.mmd(GOOD, GOOD, bandwidth=-1.0)
    with pytest.raises(ValueError, match="p must be >= 1"):
        M.wasserstein(GOOD, GOOD, p=0.5)
    with pytest.raises(ValueError, match="std must be a positive number"):
        M.mode_metrics(GOOD, GOOD[:3], 0.0)
    with pytest.raises(ValueError, match="Y has 3 columns but centers have 2"):
        M.mode_metrics(np.ones((4, 3)), GOOD[:3], 0.1)
    with pytest.raises(ValueError, match="weights must be 3 non-negative numbers"):
        M.mode_metrics(GOOD, GOOD[:3], 0.1, weights=[1, 2])
    with pytest.raises(ValueError, match="Y has 1 points; this metric needs at least 2"):
        M.frechet_distance(GOOD, GOOD[:1])
