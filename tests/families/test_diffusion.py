"""Diffusion (DDPM) family: objective plumbing, samplers, guidance, RePaint and the PF-ODE likelihood.

The likelihood and sampler plumbing are checked with the network replaced by the exact noise
predictor of Gaussian data (closed form), so they are tested without training; the rest on
small budgets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import genzoo as gz
from genzoo.samplers.schedules import alpha_sigma_from_log_snr

SMALL = dict(max_steps=400, batch_size=256, hidden=128, layers=3, verbose=0, device="cpu", random_state=0)


def exact_gaussian(model, mu: np.ndarray, cov: np.ndarray):
    """Replace the model's network by the exact eps-predictor of N(mu, cov) (in its standardised space)."""
    m = torch.tensor((mu - model.loc_) / model.scale_, dtype=torch.float64)
    C0 = torch.tensor(cov / np.outer(model.scale_, model.scale_), dtype=torch.float64)
    eye = torch.eye(len(mu), dtype=torch.float64)

    def eps_fn(y, w):
        def eps(x, lam):
            a, s = alpha_sigma_from_log_snr(lam.double())
            C = a * a * C0 + s * s * eye
            return (s * torch.linalg.solve(C, (x.double() - a * m).T).T).to(x.dtype)
        return eps, 1

    model._eps_fn = eps_fn
    return model


@pytest.fixture(scope="module")
def gauss3():
    rng = np.random.default_rng(0)
    mu = np.array([2.0, -1.0, 0.5])
    A = rng.standard_normal((3, 3))
    cov = A @ A.T / 3 + 0.2 * np.eye(3)
    X = rng.multivariate_normal(mu, cov, size=500)
    m = gz.make("diffusion", max_steps=1, verbose=0, random_state=0, device="cpu").fit(X)
    return exact_gaussian(m, mu, cov), mu, cov


def test_pf_ode_likelihood_is_exact_for_the_exact_gaussian_predictor(gauss3):
    """With the true eps, the probability-flow ODE density is the data density (3-D, own units)."""
    m, mu, cov = gauss3
    Xq = np.random.default_rng(1).multivariate_normal(mu, cov, size=200)
    lp = m.score_samples(Xq)
    truth = multivariate_normal(mu, cov).logpdf(Xq)
    np.testing.assert_allclose(lp, truth, atol=2e-3)
    assert m.last_nfe_ == 4 * m.likelihood_steps  # RK4


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_family_sampler_plumbing_returns_the_gaussian(gauss3, sampler):
    m, mu, cov = gauss3
    S = m.sample(10_000, random_state=0, sampler=sampler, steps=200)
    assert m.last_nfe_ == 200
    assert np.abs(S.mean(0) - mu).max() < 0.05
    assert np.abs(np.cov(S.T) - cov).max() < 0.08


def test_repaint_samples_the_gaussian_conditional(gauss3):
    """Impute x_2 given (x_0, x_1): mean and variance of the exact Gaussian conditional."""
    m, mu, cov = gauss3
    obs = np.array([2.5, -1.5])
    Q = np.tile(np.r_[obs, np.nan], (2000, 1))
    F = m.impute(Q, random_state=0)
    assert (F[:, :2] == obs).all()
    S11, S12 = cov[:2, :2], cov[:2, 2]
    cm = mu[2] + S12 @ np.linalg.solve(S11, obs - mu[:2])
    cv = cov[2, 2] - S12 @ np.linalg.solve(S11, S12)
    assert abs(F[:, 2].mean() - cm) < 0.1 * math.sqrt(cv) + 0.02
    assert abs(F[:, 2].var() / cv - 1) < 0.2


@pytest.fixture(scope="module")
def g8():
    X, y = gz.datasets.get("gaussians8").sample(2000, random_state=0, return_labels=True)
    return X, y, gz.make("diffusion", **SMALL).fit(X, y)


def test_short_training_puts_samples_on_support(g8):
    X, y, m = g8
    ds = gz.datasets.get("gaussians8")
    S = m.sample(1000, random_state=0, steps=100)
    R = ds.sample(20_000, random_state=1)
    thr = np.quantile(ds.log_prob(R), 0.01)
    assert np.mean(ds.log_prob(S) > thr) > 0.8
    # every mode is visited
    ang = np.round(np.arctan2(S[:, 1], S[:, 0]) / (np.pi / 4)) % 8
    assert len(np.unique(ang)) == 8


def test_guidance_increases_alignment(g8):
    X, y, m = g8
    centre = X[y == 3].mean(0)

    def align(w):
        S = m.sample(400, y=3, guidance=w, random_state=1, steps=100)
        modes = np.stack([X[y == k].mean(0) for k in range(8)])
        return np.mean(np.argmin(((S[:, None] - modes[None]) ** 2).sum(-1), 1) == 3), S

    a0, _ = align(0.0)
    a3, S3 = align(3.0)
    assert a0 < 0.4 and a3 > 0.9 and a3 > a0 + 0.5
    assert np.median(np.linalg.norm(S3 - centre, axis=1)) < 0.1
    assert m.last_nfe_ == 200  # guided: two evaluations per step


def test_repaint_on_the_trained_model_finds_both_modes(g8):
    """Observe x = cos(pi/4): y must be +-sin(pi/4), both signs (Lugmayr et al.'s resampling at work)."""
    X, y, m = g8
    Q = np.full((200, 2), np.nan)
    Q[:, 0] = math.cos(math.pi / 4)
    F = m.impute(Q, random_state=0, method="repaint")
    assert (F[:, 0] == Q[:, 0]).all()
    assert m.last_nfe_ == 99 * m.resample + 1
    err = np.abs(np.abs(F[:, 1]) - math.sin(math.pi / 4))
    assert np.mean(err < 0.1) > 0.7
    assert 0.1 < np.mean(F[:, 1] > 0) < 0.9  # both signs (a short fit does not balance them exactly)


def test_impute_takes_the_exact_density_route_for_few_rows(g8):
    """Identical rows: 'auto' is the grid inverse-CDF of the model's own ODE density, which puts the
    draws where that density's conditional is (its mass on each side matches the density's) and is
    sharper on a tip than RePaint; many distinct rows go to RePaint (the cost guard)."""
    X, y, m = g8
    Q = np.full((300, 2), np.nan)
    Q[:, 0] = 1.0  # the right-hand tip: one mode, y = 0
    F = m.impute(Q, random_state=0)
    assert m.last_nfe_ != 99 * m.resample + 1  # not RePaint
    g = np.linspace(-1.5, 1.5, 601)
    lp = m.score_samples(np.stack([np.full_like(g, 1.0), g], 1))
    p = np.exp(lp - lp.max())
    model_median = g[np.searchsorted(np.cumsum(p) / p.sum(), 0.5)]
    assert abs(np.median(F[:, 1]) - model_median) < 0.02
    R = m.impute(Q, random_state=0, method="repaint")
    assert np.mean(np.abs(F[:, 1]) < 0.05) >= np.mean(np.abs(R[:, 1]) < 0.05) - 0.05
    many = np.column_stack([np.linspace(-1, 1, 40), np.full(40, np.nan)])
    m.impute(many, random_state=0)
    assert m.last_nfe_ == 99 * m.resample + 1  # 40 distinct rows: RePaint
    with pytest.raises(ValueError, match="one of 'auto', 'grid', 'repaint', 'sir'; got 'exact'"):
        m.impute(Q[:2], method="exact")


def test_ddim_is_deterministic_given_the_start_and_options_are_checked(g8):
    X, y, m = g8
    a = m.sample(50, random_state=3, sampler="ddim", steps=20)
    b = m.sample(50, random_state=3, sampler="ddim", steps=20)
    c = m.sample(50, random_state=3, sampler="ancestral", steps=20)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(ValueError, match="sampler"):
        m.sample(5, sampler="heun")
    with pytest.raises(ValueError, match="unknown sampling option"):
        m.sample(5, temperature=2.0)
    with pytest.raises(ValueError, match="steps"):
        m.sample(5, steps=0)


def test_five_dimensions_fit_sample_score_impute():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 5)) @ rng.standard_normal((5, 5)) + 3.0
    m = gz.make("diffusion", **{**SMALL, "max_steps": 60}).fit(X)
    assert m.sample(7, random_state=0, steps=10).shape == (7, 5)
    lp = m.score_samples(X[:5], steps=4)
    assert lp.shape == (5,) and np.isfinite(lp).all()
    Q = X[:4].copy()
    Q[0, [1, 3]] = np.nan
    Q[2, 0] = np.nan
    F = m.impute(Q, random_state=0, steps=10, resample=2, method="repaint")  # 'sir' here: tests/families/test_wide.py
    obs = ~np.isnan(Q)
    np.testing.assert_array_equal(F[obs], Q[obs])
    assert np.isfinite(F).all()


def test_ema_weights_live_in_the_module_and_get_no_gradient():
    X = gz.datasets.get("ring").sample(300, random_state=0)
    m = gz.make("diffusion", **{**SMALL, "max_steps": 20}).fit(X)
    sd = m.module_.state_dict()
    ema = [k for k in sd if k.startswith("ema_")]
    assert ema and len(ema) == len(list(m.module_.net.parameters()))
    assert all(not k.startswith("ema_") for k, _ in m.module_.named_parameters())
    # the EMA lags the raw weights after training
    raw = dict(m.module_.net.named_parameters())
    assert any(not torch.equal(sd["ema_" + k.replace(".", "__")], p) for k, p in raw.items())


def test_bad_hyperparameters_raise():
    X = gz.datasets.get("ring").sample(200, random_state=0)
    for bad in ({"parameterization": "score"}, {"schedule": "quadratic"}, {"label_dropout": 1.5}):
        with pytest.raises(ValueError):
            gz.make("diffusion", **{**SMALL, "max_steps": 2}, **bad).fit(X)
