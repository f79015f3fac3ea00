"""The classical baselines: gmm and kde against scikit-learn's own numbers."""

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity

import genzoo as gz


def test_kde_density_is_sklearns_and_integrates_to_one():
    X = gz.datasets.get("ring").sample(1500, random_state=0)
    m = gz.make("kde", random_state=0).fit(X)
    kd = m.models_[0]
    T = gz.datasets.get("ring").sample(500, random_state=1)
    ours = m.score_samples(T)
    theirs = kd.score_samples((T - m.loc_) / m.scale_) - np.log(m.scale_).sum()
    assert np.allclose(ours, theirs, atol=1e-8)
    xs = np.linspace(-2, 2, 400)
    g = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    mass = np.exp(m.score_samples(g)).sum() * (xs[1] - xs[0]) ** 2
    assert abs(mass - 1) < 0.01


def test_kde_bandwidth_is_the_cross_validated_best():
    """Our vectorised K-fold search picks the bandwidth scikit-learn's GridSearchCV picks."""
    X = gz.datasets.get("gaussians8").sample(900, random_state=2)
    m = gz.make("kde", random_state=5, cv=3).fit(X)
    Z = (X - m.loc_) / m.scale_
    n, d = Z.shape
    silverman = (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    grid = {"bandwidth": silverman * np.logspace(-1.5, 0.3, 16)}
    cv = KFold(3, shuffle=True, random_state=5)
    best = GridSearchCV(KernelDensity(), grid, cv=cv).fit(Z).best_params_["bandwidth"]
    assert np.isclose(m.models_[0].bandwidth, best)


def test_gmm_recovers_the_eight_modes():
    X = gz.datasets.get("gaussians8").sample(4000, random_state=0)
    m = gz.make("gmm", random_state=0).fit(X)
    S = m.sample(2000, random_state=1)
    res = gz.metrics.mode_metrics(S, **gz.datasets.get("gaussians8").modes())
    assert res["modes"] == 8 and res["high_quality"] > 0.95


def _line_draws(m, x0: float, n: int, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    """Quantile draws of x1 given x0 from the model's own density by the grid inverse CDF (the reference)."""
    from genzoo.samplers.conditional import inverse_cdf_draws, line_conditional

    G, L = line_conditional(m.score_samples, np.array([[x0, 0.0]]), 1, lo, hi, nodes=3000)
    return inverse_cdf_draws(G, L, (np.arange(n) + 0.5) / n, np.zeros(n, dtype=int))


def test_gmm_and_kde_impute_in_closed_form_what_their_density_says():
    """Between two modes of gaussians8 and on one: the closed-form conditional (component posterior, then
    the conditional Gaussian / kernel) against the grid inverse CDF of the same model's density."""
    from scipy.stats import wasserstein_distance

    X = gz.datasets.get("gaussians8").sample(3000, random_state=0)
    for fam in ("gmm", "kde"):
        m = gz.make(fam, random_state=0).fit(X)
        for x0 in (0.707, 0.35, 1.0):
            Q = np.full((3000, 2), np.nan)
            Q[:, 0] = x0
            F = m.impute(Q, random_state=1)
            assert np.all(F[:, 0] == x0)
            ref = _line_draws(m, x0, 3000)
            spread = wasserstein_distance(ref, np.full(1, np.median(ref)))  # the conditional's own scale
            assert wasserstein_distance(F[:, 1], ref) < 0.05 * spread + 1e-3, (fam, x0)


def test_labelled_baselines_impute_under_the_class_mixture():
    """Fitted with labels, imputation follows the marginal sample() draws: both modes at x = cos(pi/4)."""
    X, y = gz.datasets.get("gaussians8").sample(2000, random_state=0, return_labels=True)
    for fam, kw in (("gmm", {"max_components": 3}), ("kde", {})):
        m = gz.make(fam, random_state=0, **kw).fit(X, y)
        Q = np.full((1000, 2), np.nan)
        Q[:, 0] = np.cos(np.pi / 4)
        F = m.impute(Q, random_state=0)
        assert np.mean(np.abs(np.abs(F[:, 1]) - np.sin(np.pi / 4)) < 0.05) > 0.97
        assert 0.4 < np.mean(F[:, 1] > 0) < 0.6
