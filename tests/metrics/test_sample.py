"""Frechet distance, Wasserstein and MMD/KID against known answers."""
from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy import linalg, stats

from genzoo import metrics as M
from genzoo.metrics.sample import _mmd2_unbiased, _rbf


def _fd_closed_form(m1, S1, m2, S2):
    return float(((m1 - m2) ** 2).sum() + np.trace(S1 + S2 - 2 * linalg.sqrtm(S1 @ S2).real))


def test_frechet_matches_closed_form_between_gaussians():
    rng = np.random.default_rng(0)
    m1, m2 = np.array([0.0, 0.0]), np.array([1.0, -2.0])
    S1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    S2 = np.array([[2.0, -0.4], [-0.4, 1.0]])
    X = rng.multivariate_normal(m1, S1, 200_000)
    Y = rng.multivariate_normal(m2, S2, 200_000)
    truth = _fd_closed_form(m1, S1, m2, S2)
    assert M.frechet_distance(X, Y) == pytest.approx(truth, rel=0.02)
    # and exactly the formula on the sample moments
    sample = _fd_closed_form(X.mean(0), np.cov(X.T), Y.mean(0), np.cov(Y.T))
    assert M.frechet_distance(X, Y) == pytest.approx(sample, rel=1e-9)


def test_frechet_features_and_1d_and_bias():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 1))
    assert M.frechet_distance(X, X + 2.0) == pytest.approx(4.0, rel=1e-9)
    assert M.frechet_distance(X, 3 * X) == pytest.approx(4 * (X.mean() ** 2 + np.var(X, ddof=1)), rel=1e-9)
    # a feature map that doubles the coordinates multiplies FD by 4
    Y = rng.standard_normal((3000, 1)) + 1
    assert M.frechet_distance(X, Y, features=lambda A: 2 * A) == pytest.approx(4 * M.frechet_distance(X, Y))
    # positive bias for equal distributions, shrinking with n
    small = np.mean([M.frechet_distance(rng.standard_normal((100, 2)), rng.standard_normal((100, 2)))
                     for _ in range(20)])
    big = np.mean([M.frechet_distance(rng.standard_normal((10_000, 2)), rng.standard_normal((10_000, 2)))
                   for _ in range(5)])
    assert small > 5 * big > 0


def test_w2_of_a_shift_is_the_shift_length():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((700, 2))
    assert M.wasserstein(X, X + [3.0, 4.0], p=2) == pytest.approx(5.0, rel=1e-9)
    assert M.wasserstein(X, X + [0.3, 0.4], p=1) == pytest.approx(0.5, rel=1e-9)


def test_w2_matches_exact_pot_and_scipy_in_1d():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((600, 2)), rng.standard_normal((500, 2)) * [2, 0.5] + 1
    exact = np.sqrt(ot.emd2(ot.unif(600), ot.unif(500), ot.dist(A, B), numItermax=10**7))
    assert M.wasserstein(A, B, p=2) == pytest.approx(exact, rel=1e-9)
    a, b = rng.standard_normal((3000, 1)), rng.exponential(size=(2500, 1))
    assert M.wasserstein(a, b, p=1) == pytest.approx(stats.wasserstein_distance(a[:, 0], b[:, 0]), rel=1e-9)


def test_wasserstein_beyond_max_exact_is_a_subset_average():
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((900, 2)), rng.standard_normal((900, 2)) + [2.0, 0.0]
    exact = M.wasserstein(A, B)
    approx = M.wasserstein(A, B, max_exact=300, random_state=0)
    assert approx == M.wasserstein(A, B, max_exact=300, random_state=0)  # deterministic
    assert exact < approx < exact * 1.15  # upward bias, small against a large distance


def test_mmd_zero_for_same_positive_for_shifted():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3000, 2))
    B = rng.standard_normal((1500, 2)) * [2.0, 0.5] + [1.0, -1.0]
    same, diff = M.mmd(A[:1500], A[1500:]), M.mmd(A[:1500], B)
    assert abs(same) < 0.01 and diff > 10 * max(abs(same), 1e-3)
    kid_same, kid_diff = M.mmd(A[:1500], A[1500:], kernel="poly"), M.mmd(A[:1500], B, kernel="poly")
    assert abs(kid_same) < 0.05 and kid_diff > 10 * abs(kid_same)  # the cubic kernel is noisier


def test_mmd_blocked_sum_equals_dense_u_statistic():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((300, 3)), rng.standard_normal((200, 3)) + 0.2
    h = 1.3
    K = lambda x, y: np.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / (2 * h * h))  # noqa: E731
    kxx, kyy = K(a, a), K(b, b)
    dense = ((kxx.sum() - np.trace(kxx)) / (300 * 299) + (kyy.sum() - np.trace(kyy)) / (200 * 199)
             - 2 * K(a, b).mean())
    assert _mmd2_unbiased(a, b, _rbf(h), block=37) == pytest.approx(dense, rel=1e-10)
    assert M.mmd(a, b, bandwidth=h) == pytest.approx(dense, rel=1e-10)


def test_median_bandwidth_is_the_pooled_median_distance():
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((101, 2)), rng.standard_normal((100, 2))
    assert M.median_bandwidth(a, b) == pytest.approx(np.median(pdist(np.vstack([a, b]))), rel=1e-6)


def test_column_metrics_see_a_shifted_column_and_a_flipped_correlation():
    from genzoo.metrics import column_distances, column_metrics, correlation_error

    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 1))
    X = np.hstack([z, z + 0.1 * rng.standard_normal((4000, 1)), 100 * rng.standard_normal((4000, 1))])
    assert np.allclose(column_distances(X, X), 0) and column_metrics(X, X)["corr_error"] == 0
    Y = X.copy()
    Y[:, 2] += 50.0  # half a standard deviation of the wide column
    assert column_distances(X, Y) == pytest.approx([0, 0, 0.5], abs=0.02)
    Y = X.copy()
    Y[:, 1] = -Y[:, 1]  # the strong correlation flips sign
    E = correlation_error(X, Y)
    assert E[0, 1] == pytest.approx(2 * abs(np.corrcoef(X[:, 0], X[:, 1])[0, 1]), abs=1e-9) and E[0, 1] > 1.9
    m = column_metrics(X, Y)
    assert m["corr_error"] > 0.6 and m["marginal_w1_worst"] < 0.05
