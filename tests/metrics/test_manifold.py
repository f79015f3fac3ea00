"""Precision/recall and density/coverage: brute-force agreement and the behaviours they are known for."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from genzoo import metrics as M


def _brute(X, Y, k_pr=3, k_dc=5):
    DX, DY, D = cdist(X, X), cdist(Y, Y), cdist(Y, X)
    rx, ry = np.sort(DX, 1)[:, k_pr], np.sort(DY, 1)[:, k_pr]
    rdc = np.sort(DX, 1)[:, k_dc]
    return {"precision": (D <= rx[None]).any(1).mean(), "recall": (D.T <= ry[None]).any(1).mean(),
            "density": (D <= rdc[None]).sum() / (k_dc * len(Y)), "coverage": (D.min(0) <= rdc).mean()}


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (0.1, 0.5), (4.0, 0.2), (1.0, 8.0)])
def test_agrees_with_dense_brute_force(scale, shift):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((700, 2))
    Y = rng.standard_normal((600, 2)) * scale + shift
    ref = _brute(X, Y)
    got = M.manifold_metrics(X, Y)
    assert got == pytest.approx(ref, abs=1e-12)
    assert M.precision_recall(X, Y) == pytest.approx((ref["precision"], ref["recall"]), abs=1e-12)
    assert M.density_coverage(X, Y) == pytest.approx((ref["density"], ref["coverage"]), abs=1e-12)


def test_collapsed_set_high_precision_low_recall_and_the_reverse():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 2))
    p, r = M.precision_recall(X, rng.standard_normal((2000, 2)) * 0.05 + [0.5, 0.5])
    assert p > 0.9 and r < 0.2
    p, r = M.precision_recall(X, rng.standard_normal((2000, 2)) * 4.0)
    assert p < 0.5 and r > 0.9


def test_density_one_coverage_969_for_identical_distributions():
    rng = np.random.default_rng(1)
    d, c = np.mean([M.density_coverage(rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2)))
                    for _ in range(3)], 0)
    assert d == pytest.approx(1.0, abs=0.05)
    assert c == pytest.approx(1 - 2**-5, abs=0.015)


def test_collapse_shows_in_coverage_not_in_precision_or_density():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((2000, 2))
    crowded = rng.standard_normal((2000, 2)) * 0.1  # all samples in the densest real region
    p, _ = M.precision_recall(X, crowded)
    d, c = M.density_coverage(X, crowded)
    assert p > 0.95 and d > 0.8 and c < 0.1
