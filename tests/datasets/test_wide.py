"""Built-in data beyond 2-D: exact densities, entropies checked by independent Monte Carlo,
exact conditionals; and scikit-learn's bundled tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import genzoo as gz
from genzoo.errors import UnsupportedError

WIDE = ["mixture10", "rings6", "funnel"]


def test_the_registry_lists_each_kind():
    assert gz.datasets.names("wide") == WIDE
    assert gz.datasets.names("table") == ["wine", "breast_cancer", "diabetes"]
    assert not set(WIDE) & set(gz.datasets.names())  # compare's default 2-D list is unchanged
    with pytest.raises(ValueError, match="unknown dataset kind 'nd'"):
        gz.datasets.names("nd")


@pytest.mark.parametrize("name, dim", [("mixture10", 10), ("rings6", 6), ("funnel", 10)])
def test_entropy_agrees_with_an_independent_monte_carlo_estimate(name, dim):
    ds = gz.datasets.get(name)
    X = ds.sample(40_000, random_state=77)
    assert X.shape == (40_000, dim) and np.isfinite(ds.log_prob(X)).all()
    lp = ds.log_prob(X)
    se = lp.std() / np.sqrt(len(lp))
    assert abs(-lp.mean() - ds.entropy()) < 4 * np.hypot(se, ds.entropy_se)
    assert ds.entropy_se < 0.01


def test_same_seed_same_rows_and_bad_input_is_named():
    ds = gz.datasets.get("rings6")
    np.testing.assert_array_equal(ds.sample(5, random_state=3), ds.sample(5, random_state=3))
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        ds.log_prob(np.zeros((3, 2)))


def test_mixture10_density_is_the_weighted_gaussian_sum():
    ds = gz.datasets.get("mixture10")
    X, y = ds.sample(200, random_state=0, return_labels=True)
    ref = np.log(sum(w * multivariate_normal(m, c).pdf(X) for w, m, c in zip(ds.weights, ds.means, ds.covs)))
    np.testing.assert_allclose(ds.log_prob(X), ref, rtol=1e-9, atol=1e-9)
    assert np.bincount(y, minlength=8).argmax() == 0 and len(set(ds.weights)) == 8  # unequal weights


def test_mixture10_conditional_is_bayes_rule():
    """log p(x_m | x_o) from the closed form equals log p(x) - log p(x_o) (the marginal mixture)."""
    ds = gz.datasets.get("mixture10")
    x = ds.sample(1, random_state=4)[0]
    obs = np.arange(10) < 6
    w, mus, covs = ds.conditional(x, obs)
    assert np.isclose(w.sum(), 1) and mus.shape == (8, 4) and covs.shape == (8, 4, 4)
    cond = np.log(sum(wk * multivariate_normal(mk, ck).pdf(x[~obs]) for wk, mk, ck in zip(w, mus, covs)))
    marg = np.log(sum(wk * multivariate_normal(m[obs], c[np.ix_(obs, obs)]).pdf(x[obs])
                      for wk, m, c in zip(ds.weights, ds.means, ds.covs)))
    np.testing.assert_allclose(cond, ds.log_prob(x[None])[0] - marg, atol=1e-8)
    draws = ds.sample_conditional(x, obs, 4000, random_state=0)
    mean = (w[:, None] * mus).sum(0)
    assert draws.shape == (4000, 4) and np.abs(draws.mean(0) - mean).max() < 0.1


def test_rings6_is_three_independent_rings():
    ds = gz.datasets.get("rings6")
    ring = gz.datasets.Ring(radius=2.0, std=0.1)
    X = ds.sample(1000, random_state=1)
    np.testing.assert_allclose(ds.log_prob(X), sum(ring.log_prob(X[:, 2 * j:2 * j + 2]) for j in range(3)))
    r = np.hypot(X[:, 0::2], X[:, 1::2])
    assert abs(r.mean() - 2.0) < 0.02 and abs(r.std() - 0.1) < 0.01
    assert abs(np.corrcoef(r[:, 0], r[:, 1])[0, 1]) < 0.1
    np.testing.assert_allclose(ds.entropy(), 3 * ring.entropy())


def test_funnel_density_and_its_conditional():
    ds = gz.datasets.Funnel(dim=4)
    X = ds.sample(30_000, random_state=2)
    assert abs(X[:, 0].std() - 3.0) < 0.05
    v = np.array([[1.0, 0.5, -0.2, 0.1]])
    ref = multivariate_normal(0, 9).logpdf(1.0) + multivariate_normal(np.zeros(3), np.e * np.eye(3)).logpdf(v[0, 1:])
    np.testing.assert_allclose(ds.log_prob(v)[0], ref)
    assert abs(ds.sample_conditional_on_v(2.0, 20_000, random_state=0).std() - np.e) < 0.05
    with pytest.raises(ValueError, match="dim must be >= 2"):
        gz.datasets.Funnel(dim=1)


@pytest.mark.parametrize("name, rows, dim, classes", [("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2),
                                                      ("diabetes", 442, 10, None)])
def test_tables_are_real_data_with_names(name, rows, dim, classes):
    t = gz.datasets.get(name)
    assert (t.n_rows, t.dim, t.n_classes) == (rows, dim, classes)
    df = t.load(as_frame=True)
    assert list(df.columns) == t.columns and df.shape == (rows, dim)
    X = t.sample(50, random_state=0)
    assert X.shape == (50, dim) and len(np.unique(X, axis=0)) == 50  # distinct rows
    if classes:
        _, y = t.sample(50, random_state=0, return_labels=True)
        assert set(np.unique(y)) <= set(range(classes))
    else:
        with pytest.raises(ValueError, match="no class labels"):
            t.sample(5, return_labels=True)
    with pytest.raises(ValueError, match=f"has {rows} rows"):
        t.sample(rows + 1)
    with pytest.raises(UnsupportedError, match="density is not known"):
        t.log_prob(X)


def test_a_model_fits_a_table_and_keeps_its_names():
    df = gz.datasets.get("wine").load(as_frame=True)
    m = gz.make("gmm", random_state=0).fit(df)
    assert list(m.feature_names_in_) == list(df.columns)
    assert list(m.sample(5, random_state=0).columns) == list(df.columns)
