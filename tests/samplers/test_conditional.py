"""Conditional samplers against conditionals known in closed form (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm, wasserstein_distance

from genzoo.samplers.conditional import (
    density_route,
    distinct_rows,
    gaussian_mixture_conditional,
    grid_gibbs_impute,
    importance_resample,
    inverse_cdf_draws,
    isotropic_mixture_conditional,
    line_conditional,
    mixture_proposal_impute,
    nearest_conditional,
    stratified_uniforms,
)

# an anisotropic 2-D mixture with unequal weights: a thin mode (std 0.01 in y), a wide one, a tilted one
W = np.array([0.15, 0.55, 0.30])
MU = np.array([[0.0, 1.0], [0.2, -0.5], [-0.3, 0.3]])
COV = np.array([[[0.3**2, 0.0], [0.0, 0.01**2]],
                [[0.4**2, 0.0], [0.0, 0.3**2]],
                [[0.25**2, 0.8 * 0.25 * 0.2], [0.8 * 0.25 * 0.2, 0.2**2]]])


def mixture_log_prob(P: np.ndarray) -> np.ndarray:
    return logsumexp([np.log(W[k]) + multivariate_normal(MU[k], COV[k]).logpdf(P) for k in range(3)], axis=0)


def exact_conditional_quantiles(x0: float, u: np.ndarray) -> np.ndarray:
    """Quantiles of p(y | x = x0) of the mixture: component posterior, then 1-D Gaussian CDFs, by bisection."""
    post = np.array([W[k] * norm.pdf(x0, MU[k, 0], np.sqrt(COV[k, 0, 0])) for k in range(3)])
    post /= post.sum()
    m = np.array([MU[k, 1] + COV[k, 0, 1] / COV[k, 0, 0] * (x0 - MU[k, 0]) for k in range(3)])
    s = np.array([np.sqrt(COV[k, 1, 1] - COV[k, 0, 1] ** 2 / COV[k, 0, 0]) for k in range(3)])
    lo, hi = np.full(len(u), -5.0), np.full(len(u), 5.0)
    for _ in range(80):
        mid = (lo + hi) / 2
        below = (post[:, None] * norm.cdf((mid[None] - m[:, None]) / s[:, None])).sum(0) < u
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("x0", [0.0, 0.45, -0.6])
def test_grid_inverse_cdf_reproduces_the_exact_conditional(x0):
    """Between modes, on the thin mode and in a tail: quantile draws from the adaptive grid match the
    exact conditional's quantiles to far below the W1 of two 2,000-draw samples (~0.01 here)."""
    n = 20_000
    u = (np.arange(n) + 0.5) / n
    G, L = line_conditional(mixture_log_prob, np.array([[x0, 0.0]]), 1, -4.0, 4.0, nodes=1024)
    draws = inverse_cdf_draws(G, L, u, np.zeros(n, dtype=int))
    assert np.mean(np.abs(np.sort(draws) - exact_conditional_quantiles(x0, u))) < 1e-4
    # the same number of uniform nodes is coarser on the thin mode (std 0.01; spacing 0.008)
    G0, L0 = line_conditional(mixture_log_prob, np.array([[x0, 0.0]]), 1, -4.0, 4.0, nodes=1024, refine=False)
    uniform = inverse_cdf_draws(G0, L0, u, np.zeros(n, dtype=int))
    assert np.mean(np.abs(np.sort(uniform) - exact_conditional_quantiles(x0, u))) > 2 * np.mean(
        np.abs(np.sort(draws) - exact_conditional_quantiles(x0, u)))


def test_log_linear_inverse_cdf_is_exact_for_an_exponential_density():
    g = np.array([0.0, 2.0])
    lp = np.array([[0.0, -3.0]])  # density exp(-1.5 x) on [0, 2]
    u = np.array([0.1, 0.5, 0.9])
    x = inverse_cdf_draws(g, np.repeat(lp, 3, 0), u)
    exact = -np.log(1 - u * (1 - np.exp(-3.0))) / 1.5
    np.testing.assert_allclose(x, exact, atol=1e-10)


def test_a_line_without_density_is_drawn_uniformly():
    x = inverse_cdf_draws(np.linspace(-1, 1, 5), np.full((4000, 5), -np.inf), np.random.default_rng(0).random(4000))
    assert abs(x.mean()) < 0.05 and x.min() >= -1 and x.max() <= 1


def test_stratified_uniforms_cover_each_group_once_per_stratum():
    which = np.repeat([3, 0, 7], [5, 1, 200])
    which = np.random.default_rng(0).permutation(which)
    u = stratified_uniforms(which, np.random.default_rng(1))
    for g in (3, 0, 7):
        ug = u[which == g]
        np.testing.assert_array_equal(np.sort(np.floor(ug * len(ug))), np.arange(len(ug)))
    # each row is still uniform: over many seeds a fixed row's value has mean 1/2 and variance 1/12
    vals = np.array([stratified_uniforms(which, np.random.default_rng(s))[0] for s in range(4000)])
    assert abs(vals.mean() - 0.5) < 0.015 and abs(vals.var() - 1 / 12) < 0.006
    assert not np.allclose(stratified_uniforms(which, np.random.default_rng(1), stratify=False), u)


def test_gmm_closed_form_matches_the_grid_inverse_cdf():
    """The conditional Gaussian mixture (closed form) and the grid route on the same density agree."""
    X = np.full((4000, 2), np.nan)
    X[:, 0] = 0.45
    miss = np.isnan(X)
    a = gaussian_mixture_conditional(W, MU, COV, X, miss, np.random.default_rng(0))[:, 1]
    b = grid_gibbs_impute(mixture_log_prob, X, miss, 1, lo=[-2, -2], hi=[2, 2])[:, 1]
    u = (np.arange(4000) + 0.5) / 4000
    truth = exact_conditional_quantiles(0.45, u)
    # stratified draws of 4,000 identical rows: both far closer to the truth than two iid samples are
    floor = wasserstein_distance(norm.ppf(np.random.default_rng(2).random(4000)),
                                 norm.ppf(np.random.default_rng(3).random(4000))) * 0.3
    assert wasserstein_distance(a, truth) < floor and wasserstein_distance(b, truth) < floor
    assert wasserstein_distance(a, b) < floor


def test_gmm_closed_form_in_three_dimensions_is_the_conditional_gaussian():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 3))
    S = A @ A.T + np.eye(3)
    mu = np.array([1.0, -2.0, 0.5])
    X = np.tile([[np.nan, 0.3, np.nan]], (40_000, 1))
    out = gaussian_mixture_conditional(np.ones(1), mu[None], S[None], X, np.isnan(X), rng)
    m, o = [0, 2], [1]
    cm = mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], 0.3 - mu[o])
    cS = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    np.testing.assert_allclose(out[:, m].mean(0), cm, atol=0.03)
    np.testing.assert_allclose(np.cov(out[:, m].T), cS, atol=0.05)
    assert np.all(out[:, 1] == 0.3)


def test_isotropic_mixture_is_the_kde_conditional():
    rng = np.random.default_rng(0)
    C = rng.normal(size=(300, 2)) * [1.0, 0.5]
    h = 0.2

    def kde_log_prob(P):
        d2 = ((P[:, None, :] - C[None]) ** 2).sum(-1)
        return logsumexp(-0.5 * d2 / h**2, axis=1)

    X = np.full((3000, 2), np.nan)
    X[:, 0] = 0.7
    miss = np.isnan(X)
    a = isotropic_mixture_conditional(C, h, X, miss, np.random.default_rng(1))[:, 1]
    b = grid_gibbs_impute(kde_log_prob, X, miss, 2, lo=[-3, -3], hi=[3, 3])[:, 1]
    assert wasserstein_distance(a, b) < 0.01  # both exact: only their sampling noise (stratified) is left


def test_gibbs_with_two_missing_coordinates_reaches_the_conditional_gaussian():
    S = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    dist = multivariate_normal(np.zeros(3), S)
    X = np.tile([[0.8, np.nan, np.nan]], (3000, 1))
    out = grid_gibbs_impute(dist.logpdf, X, np.isnan(X), 0, lo=[-3] * 3, hi=[3] * 3, grid=256, sweeps=25)
    cm = S[1:, :1] @ np.linalg.solve(S[:1, :1], [0.8])
    cS = S[1:, 1:] - S[1:, :1] @ np.linalg.solve(S[:1, :1], S[:1, 1:])
    np.testing.assert_allclose(out[:, 1:].mean(0), cm, atol=0.05)
    np.testing.assert_allclose(np.cov(out[:, 1:].T), cS, atol=0.06)


def test_systematic_resampling_keeps_each_particle_in_proportion():
    w = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    idx = importance_resample(lw, 800, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(idx, minlength=5), [400, 200, 100, 100, 0])
    with pytest.raises(ValueError, match="zero"):
        importance_resample(np.full(3, -np.inf), 2, np.random.default_rng(0))


def test_nearest_neighbours_of_a_big_pool_give_the_conditional():
    """Pool from y = x^2 + 0.1 eps: the draws for x = 0.5 sit at 0.25 with spread 0.1."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400_000)
    pool = np.stack([x, x**2 + 0.1 * rng.normal(size=len(x))], 1)
    X = np.array([[0.5, np.nan]] * 2000 + [[np.nan, 1.0]] * 10)
    out = nearest_conditional(pool, X, np.isnan(X), rng)
    y = out[:2000, 1]
    assert abs(y.mean() - 0.25) < 0.01 and abs(y.std() - 0.1) < 0.01
    assert np.all(np.abs(np.abs(out[2000:, 0]) - 1) < 0.3)  # x given y = 1: near +-1


def test_density_route_guard_and_names():
    Z = np.zeros((2000, 2))
    miss = np.zeros((2000, 2), bool)
    miss[:, 1] = True
    assert distinct_rows(Z, miss) == 1
    assert density_route(None, Z, miss, "repaint") == "grid"
    Z[:, 0] = np.arange(2000)
    assert density_route("auto", Z, miss, "repaint") == "repaint"  # 2,000 distinct rows: too many
    assert density_route("grid", Z, miss, "repaint") == "grid"
    assert density_route("auto", np.zeros((3, 5)), np.ones((3, 5), bool), "repaint") == "repaint"
    with pytest.raises(ValueError, match="one of 'auto', 'grid', 'repaint'; got 'gird'"):
        density_route("gird", Z, miss, "repaint")
    # wider data: the width-independent exact route for few distinct rows, the approximate one for many
    wide_miss = np.zeros((3, 5), bool)
    wide_miss[:, 3:] = True
    assert density_route("auto", np.zeros((3, 5)), wide_miss, "repaint", wide="sir") == "sir"
    assert density_route("auto", np.arange(100.0)[:, None] * np.ones((1, 5)), np.tile(wide_miss[:1], (100, 1)),
                         "repaint", wide="sir") == "repaint"
    assert density_route("sir", Z, miss, "repaint", wide="sir") == "sir"
    many_cols = np.zeros((3, 64), bool)
    many_cols[:, 32:] = True  # an image's lower half: the ODE likelihood is too dear per proposal
    assert density_route("auto", np.zeros((3, 64)), many_cols, "repaint", wide="sir") == "repaint"


def test_importance_resampling_from_a_wrong_mixture_reaches_the_exact_conditional():
    """The proposal mixture is fitted to a pool from the wrong law (shifted, too wide); the weights
    by the true density still give the true conditional, and the truth between two modes, where the
    pool says little, is found (W1 of each missing coordinate near its two-sample floor)."""
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 1.0, -1.0], [2.0, 1.0, -1.0, 1.0], [1.0, 0.5, 2.0, 2.0]])
    covs = []
    for _ in range(3):
        A = rng.normal(0, 0.4, (4, 4))
        covs.append(A @ A.T + 0.05 * np.eye(4))
    covs = np.stack(covs)
    w = np.array([0.6, 0.3, 0.1])

    def log_prob(x):
        return logsumexp([np.log(w[k]) + multivariate_normal(means[k], covs[k]).logpdf(x) for k in range(3)], 0)

    def draw(n, r):
        c = r.choice(3, n, p=w)
        return np.stack([r.multivariate_normal(means[k], covs[k]) for k in c])

    pool = 1.3 * draw(5000, rng) + 0.3  # the wrong law
    X = np.full((800, 4), np.nan)
    X[:, :2] = [1.0, 0.5]
    miss = np.isnan(X)
    out, ess = mixture_proposal_impute(log_prob, pool, X, miss, rng, proposals=8000)
    assert np.all(out[:, :2] == X[:, :2]) and ess > 300
    truth = [gaussian_mixture_conditional(w, means, covs, X, miss, np.random.default_rng(s), stratify=False)
             for s in (1, 2)]
    for j in (2, 3):
        floor = wasserstein_distance(truth[0][:, j], truth[1][:, j])
        assert wasserstein_distance(out[:, j], truth[0][:, j]) < 3 * floor + 0.02
    # the pool's own conditional (what an unweighted fit to it would give) fails the same bound
    wrong = gaussian_mixture_conditional(w, 1.3 * means + 0.3, 1.69 * covs, X, miss, np.random.default_rng(3),
                                         stratify=False)
    assert max(wasserstein_distance(wrong[:, j], truth[0][:, j])
               - 3 * wasserstein_distance(truth[0][:, j], truth[1][:, j]) for j in (2, 3)) > 0.02
