"""The VAE family: its bounds are real lower bounds (ELBO <= IWAE_k <= log p, checked against the
model's own log-density by quadrature over the latent), the KL term is the closed form, training
reconstructs, conditioning and imputation land where they should, on small budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.families.vae import gaussian_log_prob, kl_to_standard_normal, standard_normal_log_prob


def _blobs(n: int, seed: int = 0, dim: int = 2):
    """Two well-separated Gaussian blobs (std 0.3 at -+1.5 on every axis); label = blob."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (2 * y[:, None] - 1) * 1.5 + 0.3 * rng.standard_normal((n, dim))
    return X, y


def _params(**kw) -> dict:
    p = dict(max_steps=800, batch_size=128, hidden=64, random_state=0, verbose=0, device="cpu")
    p.update(kw)
    return p


@pytest.fixture(scope="module")
def ring_model():
    X = gz.datasets.get("ring").sample(2000, random_state=0)
    return gz.make("vae", **_params()).fit(X)


@pytest.fixture(scope="module")
def blob_model():
    X, y = _blobs(2000)
    return gz.make("vae", **_params(max_steps=600)).fit(X, y)


# ----------------------------------------------------------------------------- closed forms
def test_kl_matches_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 3, generator=g)
    log_s = 0.5 * torch.randn(5, 3, generator=g)
    ours = kl_to_standard_normal(mu, log_s)
    q = torch.distributions.Normal(mu, log_s.exp())
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    u = q.sample((200_000,))                                               # (S, 5, 3)
    mc = (gaussian_log_prob(u, mu, log_s) - standard_normal_log_prob(u)).mean(0)
    torch.testing.assert_close(mc, ours, rtol=0.02, atol=0.02)


def test_gaussian_log_prob_matches_torch():
    x, mu, ls = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3) * 0.3
    ref = torch.distributions.Normal(mu, ls.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(x, mu, ls), ref)


# ----------------------------------------------------------------------------- bounds
def _quadrature_log_p(model, Z: np.ndarray, lim: float = 6.0, n: int = 301) -> np.ndarray:
    """log p(z) = log int p(z | u) p(u) du on a grid over a 2-D latent (standardised space)."""
    g = torch.linspace(-lim, lim, n)
    U = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)  # (n*n, 2)
    cell = math.log(float(g[1] - g[0]) ** 2)
    out = []
    with torch.no_grad():
        mu, ls = model.module_.decode(U, None)
        for z in torch.as_tensor(Z, dtype=torch.float32):
            lj = gaussian_log_prob(z.expand_as(mu), mu, ls) + standard_normal_log_prob(U)
            out.append(float(torch.logsumexp(lj, 0)) + cell)
    return np.array(out)


def test_elbo_below_iwae_below_true_log_likelihood(ring_model):
    m = ring_model
    assert m.module_.latent_dim == 2 and m.likelihood_kind == "bound"
    X = gz.datasets.get("ring").sample(200, random_state=3)
    Z = (X - m.loc_) / m.scale_
    exact = _quadrature_log_p(m, Z) - np.log(m.scale_).sum()             # the model's own log p(x)
    elbo = m.score_samples(X)
    iw10, iw200 = m.score_samples(X, k=10), m.score_samples(X, k=200)
    assert elbo.mean() < iw10.mean() < iw200.mean()                        # tighter with k
    assert iw200.mean() <= exact.mean() + 0.01                             # never above log p
    assert elbo.mean() <= exact.mean() - 0.005                             # the ELBO has a real gap
    assert exact.mean() - iw200.mean() < 0.5 * (exact.mean() - elbo.mean())  # and IWAE closes most of it


def test_bound_not_above_minus_entropy(ring_model):
    ds = gz.datasets.get("ring")
    Xte = ds.sample(4000, random_state=11)
    for k in (1, 50):
        lp = ring_model.score_samples(Xte, k=k)
        se = lp.std() / np.sqrt(len(lp))
        assert lp.mean() <= -ds.entropy() + 3 * se + 0.01
    assert -ring_model.score_samples(Xte).mean() < ds.entropy() + 1.0     # and it learned something


def test_iw_samples_hyperparameter_sets_the_default():
    X = gz.datasets.get("ring").sample(500, random_state=0)
    a = gz.make("vae", **_params(max_steps=50)).fit(X)
    b = gz.make("vae", **_params(max_steps=50, iw_samples=20)).fit(X)
    np.testing.assert_allclose(b.score_samples(X[:50]), a.score_samples(X[:50], k=20), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="k"):
        a.score_samples(X[:5], k=0)


# ----------------------------------------------------------------------------- training
def test_training_improves_reconstruction():
    X = gz.datasets.get("ring").sample(2000, random_state=0)

    def recon_error(m) -> float:
        z = torch.as_tensor((X - m.loc_) / m.scale_, dtype=torch.float32)
        with torch.no_grad():
            mu, _ = m.module_.encode(z, None)
            xr, _ = m.module_.decode(mu, None)
        return float(((xr - z) ** 2).sum(1).mean())

    short = gz.make("vae", **_params(max_steps=10, early_stopping=False)).fit(X)
    long = gz.make("vae", **_params(max_steps=600)).fit(X)
    assert recon_error(long) < 0.3 * recon_error(short)
    assert long.history_["val_loss"][-1] < long.history_["val_loss"][0]


def test_samples_on_the_ring_and_mean_option(ring_model):
    ds = gz.datasets.get("ring")
    S = ring_model.sample(2000, random_state=0)
    r = np.sqrt((S**2).sum(1))
    assert np.mean(np.abs(r - 1) < 0.3) > 0.7  # 3 std of the ring's width (a Gaussian fit: ~0.35)
    M = ring_model.sample(2000, random_state=0, mean=True)
    assert np.isfinite(ds.log_prob(M)).all()
    noise = (S - M).std(0)  # same seed, same latents: the difference is the decoder's noise
    assert np.all(noise > 0.01) and np.all(noise < 0.3)
    with pytest.raises(ValueError, match="unknown"):
        ring_model.sample(3, temperature=2.0)


# ----------------------------------------------------------------------------- conditioning and imputation
def test_conditional_samples_land_on_the_asked_class(blob_model):
    for k, centre in ((0, -1.5), (1, 1.5)):
        S = blob_model.sample(400, y=k, random_state=1)
        assert np.mean(np.abs(S - centre).max(1) < 1.2) > 0.9
    # without y, labels are drawn from the class frequencies: both blobs appear
    S = blob_model.sample(1000, random_state=2)
    assert 0.3 < np.mean(S[:, 0] > 0) < 0.7


def test_conditional_score_with_and_without_labels(blob_model):
    X, y = _blobs(300, seed=5)
    mix = blob_model.score_samples(X)
    own = blob_model.score_samples(X, y=y)
    other = blob_model.score_samples(X, y=1 - y)
    assert own.mean() > other.mean() + 5                 # the right label explains the point
    assert np.all(mix >= own + np.log(0.4) - 0.5)        # mixture >= pi_y p(x | y), up to MC noise


@pytest.mark.parametrize("labels", [False, True])
def test_impute_keeps_observed_and_finds_the_blob(labels):
    X, y = _blobs(2000, dim=3)
    m = gz.make("vae", **_params(max_steps=600)).fit(X, y if labels else None)
    Q = np.full((200, 3), np.nan)
    Q[:100, 0] = 1.5                         # observe x0 in the right blob: x1, x2 must follow
    Q[100:, 0], Q[100:, 2] = -1.5, -1.5      # two observed, one missing
    F = m.impute(Q, random_state=0)
    obs = ~np.isnan(Q)
    np.testing.assert_array_equal(F[obs], Q[obs])
    assert np.isfinite(F).all()
    assert np.mean(np.abs(F[:100, 1:] - 1.5).max(1) < 1.0) > 0.9
    assert np.mean(np.abs(F[100:, 1] + 1.5) < 1.0) > 0.9
    assert F[:100, 1].std() > 0.05           # draws, not a point estimate
    np.testing.assert_array_equal(F, m.impute(Q, random_state=0))
    # 100 identical rows share one pool of >= 2,000 proposals; its effective size is reported
    assert m.last_impute_ess_ is not None and m.last_impute_ess_ >= 20


def test_bad_hyperparameters_raise():
    X = gz.datasets.get("ring").sample(100, random_state=0)
    for bad in ({"min_std": 0.0}, {"kl_warmup": 1.5}, {"latent_dim": 0}, {"hidden": 0}):
        with pytest.raises(ValueError):
            gz.make("vae", **_params(max_steps=5, **bad)).fit(X)
