"""Row-keyed noise: a row's draws depend on the row and the seed only, and are standard normal."""

from __future__ import annotations

import numpy as np
from scipy import stats

from genzoo.base import row_keyed_normal


def test_row_keyed_normal_is_per_row_and_seeded():
    Z = np.random.default_rng(0).normal(size=(500, 3))
    a = row_keyed_normal(Z, 7, seed=1)
    np.testing.assert_array_equal(row_keyed_normal(Z[100:120], 7, seed=1), a[100:120])
    np.testing.assert_array_equal(row_keyed_normal(Z[::-1], 7, seed=1), a[::-1])
    assert not np.allclose(row_keyed_normal(Z, 7, seed=2), a)
    assert a.shape == (500, 7) and np.isfinite(a).all()


def test_row_keyed_normal_is_standard_normal():
    Z = np.random.default_rng(1).normal(size=(4000, 2))
    d = row_keyed_normal(Z, 10, seed=0)
    assert stats.kstest(d.ravel(), "norm").pvalue > 1e-3
    c = np.corrcoef(d, rowvar=False)
    assert np.abs(c - np.eye(10)).max() < 0.06
