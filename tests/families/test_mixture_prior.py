"""The Gaussian-mixture prior of flow matching, diffusion and the autoregressive family
(``genzoo.families._prior``): a model that has not trained yet *is* the mixture (flow matching and
diffusion: the ODE likelihood is the mixture's density), the autoregressive family's gated mixture stays
normalised, and beyond 2-D the better of 'with' and 'without' is kept by held-out likelihood."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import genzoo as gz

SMALL = {"flow_matching": {"likelihood_steps": 32, "sample_steps": 20},
         "diffusion": {"likelihood_steps": 32, "sample_steps": 50}, "autoregressive": {}}


def _blobs(n, seed=0):
    """Three thin, tilted, well-separated 4-D Gaussians with unequal weights."""
    rng = np.random.default_rng(seed)
    k = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    centres = np.array([[3.0, 0, 0, 0], [-3.0, 1, 0, 1], [0, -3.0, 2, 0]])
    A = np.array([[0.3, 0.2, 0, 0], [0, 0.1, 0.05, 0], [0, 0, 0.4, 0.1], [0, 0, 0, 0.15]])
    return (centres[k] + rng.standard_normal((n, 4)) @ A).astype(np.float32)


def _mixture_log_prob(model, X):
    """The log-density of the model's own prior mixture, in data units."""
    f = model.module_.net.prior if model.family == "flow_matching" else model.module_.prior
    U, lam, mu = f.basis.double().numpy(), f.variances.double().numpy(), f.means.double().numpy()
    w = np.exp(f.log_weights.double().numpy())
    Z = (X - model.loc_) / model.scale_
    dens = sum(w[k] * multivariate_normal(mu[k], U[k] @ np.diag(lam[k]) @ U[k].T).pdf(Z) for k in range(len(w)))
    return np.log(dens) - np.log(model.scale_).sum()


@pytest.mark.parametrize("family", ["flow_matching", "diffusion"])
def test_an_untrained_model_with_the_prior_is_the_mixture(family):
    """With its network's last layer at zero (lr ~ 0, one step) the model's ODE likelihood is the
    mixture's density: the closed-form field transports N(0, I) onto the mixture exactly, up to the solver."""
    X = _blobs(3000)
    m = gz.make(family, prior="mixture", max_steps=1, lr=1e-12, random_state=0, verbose=0, **SMALL[family]).fit(X)
    assert m.prior_ == "mixture" and m.prior_components_ >= 3
    Xte = _blobs(300, seed=1)
    got, want = m.score_samples(Xte), _mixture_log_prob(m, Xte)
    assert np.abs(got - want).mean() < 0.03  # measured: 0.003 (flow matching), 0.012 (diffusion)


@pytest.mark.parametrize("family", ["flow_matching", "diffusion", "autoregressive"])
def test_beyond_two_columns_the_better_prior_is_kept(family, tmp_path):
    """prior=None fits with and without the mixture and keeps the lower held-out NLL; on thin separated
    blobs the mixture wins; the choice survives a save / load."""
    X = _blobs(3000)
    kw = dict(max_steps=150, random_state=0, verbose=0, **SMALL[family])
    m = gz.make(family, **kw).fit(X)
    assert set(m.prior_losses_) == {"mixture", "none"}
    assert m.prior_ == "mixture" and m.prior_losses_["mixture"] < m.prior_losses_["none"]
    assert [p["name"] for p in m.phases_] == ["fit (no prior)", "fit (mixture prior)"]
    loss = m.prior_losses_
    assert m.fit_choices() == [f"kept the mixture prior: held-out NLL per row, standardised columns, "
                               f"{loss['mixture']:.4f} (no prior {loss['none']:.4f})"]
    Xte = _blobs(300, seed=1)
    m.save(tmp_path / "m.genzoo")
    again = gz.load(tmp_path / "m.genzoo")
    assert again.prior_ == "mixture" and again.prior_components_ == m.prior_components_
    assert again.prior_losses_ == pytest.approx(m.prior_losses_)
    assert again.fit_choices() == m.fit_choices()  # read from the checkpoint
    np.testing.assert_allclose(again.score_samples(Xte[:20]), m.score_samples(Xte[:20]), rtol=1e-5, atol=1e-5)
    plain = gz.make(family, prior="none", **kw).fit(X)
    assert plain.prior_ == "none" and plain.prior_components_ == 0 and len(plain.phases_) == 1
    assert plain.fit_choices() == []  # one candidate: nothing chosen
    two_d = gz.make(family, **kw).fit(X[:, :2])
    assert two_d.prior_ == "none" and len(two_d.phases_) == 1  # in 2-D the network alone, as before


def test_the_autoregressive_gate_keeps_the_density_normalised():
    """Each conditional is g p_mixture + (1 - g) p_network with a learned gate g: the density still
    integrates to 1 (2-D grid), the missing suffix is still drawn exactly (every draw lands on a mode) and
    a prior needs continuous columns."""
    ds = gz.datasets.get("gaussians8")
    X = ds.sample(3000, random_state=0)
    m = gz.make("autoregressive", prior="mixture", max_steps=300, random_state=0, verbose=0).fit(X)
    assert m.prior_ == "mixture" and m.prior_components_ >= 2
    g = np.linspace(-1.4, 1.4, 600)
    P = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    assert np.exp(m.score_samples(P)).sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=0.01)
    S = m.sample(2000, random_state=1)
    assert np.mean(ds.log_prob(S) > np.quantile(ds.log_prob(ds.sample(20_000, random_state=2)), 0.01)) > 0.9
    Q = np.column_stack([np.full(500, 1.0), np.full(500, np.nan)])  # on the mode at (1, 0)
    F = m.impute(Q, random_state=0)
    assert np.all(F[:, 0] == 1.0) and np.mean(np.abs(F[:, 1]) < 0.1) > 0.95
    counts = np.random.default_rng(0).poisson(3, (500, 3))
    with pytest.raises(ValueError, match="continuous"):
        gz.make("autoregressive", prior="mixture", max_steps=5).fit(counts)
