"""Integer, categorical and constant columns: dequantised training, valid samples, honest probabilities.

The key property: a model's scores of discrete values are log-probabilities (a lower bound), so
exp(score) summed over every possible value is at most 1 -- exactly 1 for the autoregressive
family, whose discrete conditionals are exact (discretised logistic mixtures, softmaxes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import genzoo as gz

FAST = {"flow": {"max_steps": 100}, "autoregressive": {"max_steps": 200}, "gmm": {}}


@pytest.fixture(scope="module")
def counts1d() -> np.ndarray:
    return np.random.default_rng(0).binomial(12, 0.3, (1500, 1)).astype(np.int64)


@pytest.fixture(scope="module")
def counts2d() -> np.ndarray:
    rng = np.random.default_rng(5)
    lam = rng.gamma(3, 1, 1500)
    return np.stack([rng.poisson(lam), rng.poisson(lam)], 1).clip(0, 15).astype(np.int64)


def _mass(model, X: np.ndarray) -> float:
    """Sum of exp(score) over every integer vector in the fitted ranges."""
    lo, hi = X.min(0), X.max(0)
    grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1)
    return float(np.exp(model.score_samples(grid.reshape(-1, X.shape[1]))).sum())


@pytest.mark.parametrize("family", ["autoregressive", "gmm"])
def test_1d_integer_probabilities_sum_to_at_most_one(family, counts1d):
    m = gz.make(family, random_state=0, **FAST[family]).fit(counts1d)
    exact = family == "autoregressive"
    assert m.spec_.columns[0].kind == "integer" and m.likelihood_kind == ("exact" if exact else "bound")
    mass = _mass(m, counts1d)
    if exact:  # a probability mass over the fitted range: sums to one
        assert abs(mass - 1) < 1e-4
        freq = np.bincount(counts1d[:, 0] - counts1d.min()) / len(counts1d)
        x = np.arange(counts1d.min(), counts1d.max() + 1)[:, None]
        assert np.abs(np.exp(m.score_samples(x)) - freq).max() < 0.03  # and it learned the frequencies
    else:
        assert 0.8 < mass <= 1.005  # a bound: below 1 by the Jensen gap, not far below on easy data
    S = m.sample(400, random_state=1)
    assert S.dtype == np.int64 and S.min() >= counts1d.min() and S.max() <= counts1d.max()


@pytest.mark.parametrize("family", ["flow", "autoregressive", "gmm"])
def test_2d_integer_probabilities_sum_to_at_most_one(family, counts2d):
    m = gz.make(family, random_state=0, **FAST[family]).fit(counts2d)
    mass = _mass(m, counts2d)
    assert 0.6 < mass <= 1.01
    if family == "autoregressive":
        assert m.likelihood_kind == "exact" and abs(mass - 1) < 1e-4
    S = m.sample(400, random_state=1)
    assert np.issubdtype(S.dtype, np.integer)
    assert (S >= counts2d.min(0)).all() and (S <= counts2d.max(0)).all()
    # determinism survives the discretisation
    np.testing.assert_array_equal(S, m.sample(400, random_state=1))


def test_score_is_the_dequantisation_bound_not_the_midpoint_density(counts1d):
    """The score is the mean of log p(x + u) over the rule, which sits below log P(cell) (Jensen)."""
    m = gz.make("gmm", random_state=0).fit(counts1d)
    x = np.arange(counts1d.min(), counts1d.max() + 1)[:, None]
    bound = m.score_samples(x)
    # the model's continuous density on each cell, by fine quadrature (internal, standardised units)
    u = (np.arange(400) + 0.5) / 400
    z = (x + u[None, :] - m.loc_[0]) / m.scale_[0]  # (values, 400)
    lp = m._labelled_log_prob_std(z.reshape(-1, 1)).reshape(z.shape) - np.log(m.scale_[0])
    log_cell = np.log(np.exp(lp).mean(1))
    assert (bound <= log_cell + 1e-3).all()
    np.testing.assert_allclose(bound, lp.mean(1), atol=0.02)  # the expectation over u, by the 16-point rule


def test_values_outside_the_range_have_probability_zero_and_fractions_are_refused(counts1d):
    m = gz.make("gmm", random_state=0).fit(counts1d)
    lp = m.score_samples(np.array([[counts1d.max() + 1], [counts1d.min() - 1], [counts1d.min()]]))
    assert lp[0] == -np.inf and lp[1] == -np.inf and np.isfinite(lp[2])
    with pytest.raises(ValueError, match="column 'x0' holds integers, but row 0 has 2.5"):
        m.score_samples(np.array([[2.5]]))


def test_float_arrays_stay_continuous_and_integer_arrays_do_not():
    X = np.random.default_rng(0).integers(0, 5, (300, 2))
    assert [c.kind for c in gz.make("gmm").fit(X.astype(float)).spec_.columns] == ["continuous"] * 2
    m = gz.make("gmm").fit(X)
    assert [c.kind for c in m.spec_.columns] == ["integer"] * 2
    assert (m.spec_.columns[0].low, m.spec_.columns[0].high) == (0, 4)
    assert gz.make("gmm").fit(X.astype(float)).likelihood_kind == "exact" and m.likelihood_kind == "bound"


def test_the_dequantisation_noise_is_fresh_every_step_and_keeps_the_integer(counts2d):
    m = gz.make("flow", random_state=0, max_steps=5).fit(counts2d)
    seen = []
    fresh = m._fresh_dequantisation(lambda z, y, i: seen.append(z.clone()) or 0.0)
    import torch

    z = torch.as_tensor(m._to_model(counts2d[:64].astype(float), u=0.5), dtype=torch.float32)
    fresh(z, None, 0)
    fresh(z, None, 1)
    x0, x1 = (s.double().numpy() * m.scale_ + m.loc_ for s in seen)
    np.testing.assert_array_equal(np.floor(x0), counts2d[:64])
    np.testing.assert_array_equal(np.floor(x1), counts2d[:64])
    assert np.abs(x0 - x1).min() > 0  # new noise on every row


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(6)
    n = 1200
    return pd.DataFrame({"height": rng.normal(170, 10, n), "visits": rng.poisson(4, n),
                         "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n, p=[.5, .3, .2])),
                         "member": rng.random(n) < 0.3, "city": rng.choice(["Oslo", "Rome"], n),
                         "country": "NO"})


@pytest.fixture(scope="module")
def table_model(table):
    return gz.make("autoregressive", random_state=0, max_steps=300).fit(table)


def test_a_table_is_typed_and_comes_back_with_its_columns_and_dtypes(table, table_model):
    spec = table_model.spec_
    assert spec.kinds == ["continuous", "integer", "categorical", "categorical", "categorical", "constant"]
    assert spec.columns[2].levels == ("blue", "green", "red") and table_model.dim_ == 5
    S = table_model.sample(300, random_state=1)
    assert isinstance(S, pd.DataFrame) and list(S.columns) == list(table.columns)
    assert (S.dtypes == table.dtypes).all()
    assert list(S["colour"].cat.categories) == ["blue", "green", "red"]
    assert set(S["city"]) <= {"Oslo", "Rome"} and (S["country"] == "NO").all()
    assert S["visits"].between(table["visits"].min(), table["visits"].max()).all()
    # the categories keep roughly their frequencies (red is the commonest)
    assert S["colour"].value_counts().idxmax() == "red"


def test_a_table_scores_imputes_and_round_trips(table, table_model, tmp_path):
    lp = table_model.score_samples(table.head(20))
    # the autoregressive family's discrete columns are exact: a density in height, a mass in the rest
    assert np.isfinite(lp).all() and table_model.likelihood_kind == "exact"
    # an unseen category, or another value in a constant column: probability 0
    odd = table.head(2).copy()
    odd["city"] = ["Paris", "Rome"]
    assert np.isneginf(table_model.score_samples(odd)[0]) and np.isfinite(table_model.score_samples(odd)[1])
    odd = table.head(1).assign(country="SE")
    assert np.isneginf(table_model.score_samples(odd)[0])
    Q = table.head(8).copy()
    Q["colour"] = Q["colour"].astype(object)
    Q.loc[0, "colour"] = None
    Q.loc[1, "height"] = np.nan
    Q.loc[2, "city"] = None
    F = table_model.impute(Q, random_state=0)
    assert F.loc[0, "colour"] in {"red", "green", "blue"} and np.isfinite(F.loc[1, "height"])
    assert F.loc[2, "city"] in {"Oslo", "Rome"}
    pd.testing.assert_series_equal(F["visits"], table.head(8)["visits"])
    with pytest.raises(ValueError, match="column 'city', row 0: a value never seen in fit"):
        table_model.impute(table.head(1).assign(city="Paris", height=np.nan))
    path = tmp_path / "m.genzoo"
    table_model.save(path)
    back = gz.load(path)
    assert back.spec_ == table_model.spec_ and back.likelihood_kind == "exact"
    np.testing.assert_allclose(back.score_samples(table.head(20)), lp)
    pd.testing.assert_frame_equal(back.sample(50, random_state=3), table_model.sample(50, random_state=3))


def test_constant_columns_are_carried_not_modelled():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=400), np.full(400, 7.5), rng.normal(size=400)])
    m = gz.make("flow", random_state=0, max_steps=30).fit(X)
    assert m.spec_.kinds == ["continuous", "constant", "continuous"] and m.dim_ == 2 and m.n_features_in_ == 3
    S = m.sample(50, random_state=0)
    assert S.shape == (50, 3) and (S[:, 1] == 7.5).all()
    lp = m.score_samples(np.array([[0.0, 7.5, 0.0], [0.0, 7.0, 0.0]]))
    assert np.isfinite(lp[0]) and lp[1] == -np.inf
    F = m.impute(np.array([[0.1, np.nan, np.nan]]), random_state=0)
    assert F[0, 1] == 7.5 and np.isfinite(F[0, 2]) and F[0, 0] == 0.1


def test_nothing_to_model_is_an_error():
    with pytest.raises(ValueError, match="every column holds a single value"):
        gz.make("gmm").fit(np.ones((10, 2)))


def test_bool_arrays_come_back_as_bools():
    X = np.random.default_rng(2).random((500, 2)) < [0.2, 0.7]
    m = gz.make("gmm", random_state=0).fit(X)
    S = m.sample(300, random_state=0)
    assert S.dtype == bool and 0.4 < S[:, 1].mean() < 0.95


def test_likelihood_kind_follows_the_data():
    """An exact density scores the dequantisation bound on discrete data; 'bound' and 'none' stay."""
    X = np.random.default_rng(3).poisson(3, (300, 2))
    for fam, on_floats in [("diffusion", "exact"), ("vae", "bound"), ("gan", "none")]:
        steps = {"max_steps": 5}
        assert gz.make(fam, random_state=0, **steps).fit(X.astype(float)).likelihood_kind == on_floats
        expected = "bound" if on_floats != "none" else "none"
        assert gz.make(fam, random_state=0, **steps).fit(X).likelihood_kind == expected
    assert type(gz.make("diffusion")).likelihood_kind == "exact"  # the class still says what the family is
