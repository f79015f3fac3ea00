"""Score-based model: objective and samplers checked with the exact denoiser of Gaussian data.

For data N(mu, s^2 I) the perturbed law at noise sigma is N(mu, (s^2 + sigma^2) I), the optimal
denoiser is ``D*(x; sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu)`` and the score is
``-(x - mu) / (s^2 + sigma^2)``. Plugging ``D*`` in place of the network checks the DSM
objective (its minimum is known in closed form), the probability-flow likelihood and every
sampler without training; a small fit checks conditioning and imputation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import genzoo as gz
from genzoo.families.score import ScoreModel


class GaussianDenoiser(nn.Module):
    """The exact denoiser of N(mu, s^2 I) (``k`` scales its shrinkage: k = 1 is exact)."""

    def __init__(self, mu: list[float], s: float, k: float = 1.0):
        super().__init__()
        self.mu, self.s, self.k = torch.tensor(mu), s, k

    def forward(self, x, sigma, y=None, ema=False):
        sig = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
        shrink = self.k * self.s**2 / (self.s**2 + sig[:, None] ** 2)
        return self.mu + shrink * (x - self.mu)


def oracle(mu: list[float], s: float, k: float = 1.0, **kw) -> ScoreModel:
    m = ScoreModel(**kw)
    d = len(mu)
    m.n_features_in_, m.n_classes_, m.device_ = d, 0, "cpu"
    m.loc_, m.scale_ = np.zeros(d), np.ones(d)
    m.module_ = GaussianDenoiser(mu, s, k)
    return m


def test_dsm_loss_has_its_closed_form_minimum():
    """For N(0, I) data the EDM-weighted DSM loss of D* is exactly d at every noise level."""
    m = oracle([0.0, 0.0], 1.0)
    z = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        best = float(m._loss(z, None, stable=False))
    assert abs(best - 2.0) < 0.02
    for k in (0.9, 1.1):
        m.module_.k = k
        with torch.random.fork_rng():
            torch.manual_seed(1)
            assert float(m._loss(z, None, stable=False)) > best + 0.01
    # and the score the samplers use is the closed form -(x - mu) / (s^2 + sigma^2)
    m = oracle([0.3, -0.2], 0.5)
    s, per = m.score_fn()
    x = torch.randn(5, 2)
    assert per == 1
    assert torch.allclose(s(x, 0.7), -(x - torch.tensor([0.3, -0.2])) / (0.25 + 0.49), atol=1e-5)


@pytest.mark.parametrize("s, tol", [(1.0, 1e-3), (0.5, 0.015)])
def test_pf_ode_likelihood_of_the_exact_score_is_the_gaussian_log_density(s, tol):
    """Exact for unit-variance data up to dopri5's tolerance (rtol = atol = 1e-5: max error 4e-4 nats;
    1e-4 gave 4e-3); for s = 0.5 the N(0, 1 + sigma_max^2) prior is off by ~1e-2 nats at the edge."""
    m = oracle([0.0, 0.0], s)
    Z = np.random.default_rng(0).standard_normal((200, 2)) * s
    lp = m._log_prob_std(Z).numpy()
    var = s * s + m.sigma_min**2  # the model's density is the data's at sigma_min
    ref = -0.5 * (Z * Z).sum(1) / var - math.log(2 * math.pi * var)
    assert np.abs(lp - ref).max() < tol
    assert m.last_likelihood_nfe_ > 0


@pytest.mark.parametrize("opts", [dict(sampler="sde", sde="vp"), dict(sampler="sde", sde="ve"),
                                  dict(sampler="ode", steps=40), dict(sampler="ode", method="dopri5"),
                                  dict(sampler="langevin", steps=100)])
def test_every_sampler_draws_the_gaussian(opts):
    mu, s = [0.3, -0.2], 0.5
    m = oracle(mu, s)
    S = m._sample_std(6000, None, seed=0, **opts).numpy()
    assert np.allclose(S.mean(0), mu, atol=0.03), opts
    assert np.allclose(np.cov(S.T), s * s * np.eye(2), atol=0.03), opts
    assert m.last_nfe_ >= 1


def test_nfe_is_reported_per_sampler():
    m = oracle([0.0, 0.0], 0.5, langevin_steps=3)
    m._sample_std(10, None, seed=0, sampler="sde", steps=30)
    assert m.last_nfe_ == 30
    m._sample_std(10, None, seed=0, sampler="ode", steps=30, method="heun")
    assert m.last_nfe_ == 60
    m._sample_std(10, None, seed=0, sampler="langevin", steps=30)
    assert m.last_nfe_ == 30 * 3 + 1


def _blobs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    return centers[y] + 0.15 * rng.standard_normal((n, 2)), y, centers


@pytest.fixture(scope="module")
def fitted():
    X, y, centers = _blobs(2000, 0)
    m = gz.make("score", hidden=64, fourier_features=16, max_steps=400, sample_steps=100,
                random_state=0, verbose=0).fit(X, y)
    return m, centers


def test_guided_samples_land_on_the_asked_class(fitted):
    m, centers = fitted
    for g in (1.0, 3.0):
        S = m.sample(300, y=2, random_state=0, guidance=g)
        assert np.mean(np.linalg.norm(S - centers[2], axis=1) < 0.6) > 0.9
    assert m.last_nfe_ == 200  # guided: conditional and unconditional pass per step


def test_impute_keeps_observed_and_fills_near_the_conditional(fitted):
    m, centers = fitted
    X = np.column_stack([np.full(300, 2.0), np.full(300, np.nan)])  # x = 2: the blob at (2, 0)
    out = m.impute(X, random_state=0)
    assert np.all(out[:, 0] == 2.0)
    assert np.mean(np.abs(out[:, 1]) < 0.6) > 0.85


def test_stable_target_is_the_batch_posterior_mean():
    """The matmul form of the stable target equals the direct softmax over -|x - r|^2 / 2 sigma^2,
    also at the smallest noise level (float64 logits)."""
    m = oracle([0.0, 0.0], 1.0)
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(256, 2, generator=g)
    sigma = torch.exp(torch.empty(256).uniform_(math.log(1e-3), math.log(20.0), generator=g))
    x = ref + sigma[:, None] * torch.randn(256, 2, generator=g)
    got = m._stable_target(x, sigma, ref, None, None)
    logw = -((x.double()[:, None] - ref.double()[None]) ** 2).sum(-1) / (2 * sigma.double()[:, None] ** 2)
    want = torch.softmax(logw, 1) @ ref.double()
    assert torch.allclose(got.double(), want, atol=1e-5)


def test_bad_focus_raises():
    X = np.random.default_rng(0).standard_normal((100, 2))
    with pytest.raises(ValueError, match="focus"):
        gz.make("score", focus=1.5, max_steps=2, verbose=0).fit(X)
