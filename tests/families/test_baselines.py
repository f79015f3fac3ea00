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
