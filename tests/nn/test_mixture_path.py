"""The closed-form field of a noised Gaussian mixture (``genzoo.nn.gaussian_mixture.GaussianMixtureField``):
its linear-path velocity transports N(0, I) onto the mixture, and its denoiser predictions are the
posterior means that a Monte Carlo regression finds."""

import numpy as np
import torch

from genzoo.nn.gaussian_mixture import GaussianMixtureField, choose_mixture_components, fit_gaussian_mixture


def _mixture(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3))
    covs = np.stack([0.3 * A @ A.T + 0.01 * np.eye(3), np.diag([0.02, 0.5, 0.1])])
    return np.array([0.7, 0.3]), np.array([[2.0, 0.0, -1.0], [-2.0, 1.0, 1.0]]), covs


def test_integrating_the_field_from_noise_gives_the_mixture():
    """RK4 from t = 0 to 1 on 20,000 N(0, I) draws ends on the mixture: per-component share, mean and
    covariance (components told apart by the first coordinate's sign) match the mixture's own."""
    w, mu, covs = _mixture()
    field = GaussianMixtureField(3, 2).double()
    field.set_mixture(w, mu, covs)
    x = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = 150
    ts = 1 - (1 - torch.linspace(0, 1, n + 1, dtype=torch.float64)) ** 2  # finer steps near the data
    for a, b in zip(ts[:-1], ts[1:]):
        h = float(b - a)

        def f(xx, tt):
            t = torch.full((len(xx),), float(tt), dtype=torch.float64)
            return field(xx, t, 1 - t, "velocity")

        k1 = f(x, a)
        k2 = f(x + 0.5 * h * k1, a + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, a + 0.5 * h)
        k4 = f(x + h * k3, b)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    x = x.numpy()
    first = x[:, 0] > 0
    assert abs(first.mean() - w[0]) < 0.01
    for k, part in enumerate((x[first], x[~first])):
        assert np.allclose(part.mean(0), mu[k], atol=0.03)
        assert np.allclose(np.cov(part.T), covs[k], atol=0.04)


def test_the_field_at_the_ends():
    """At t = 0 the field is E[x1] - x0 (every component's mean, by weight); at t = 1 it is x itself."""
    w, mu, covs = _mixture()
    field = GaussianMixtureField(3, 2).double()
    field.set_mixture(w, mu, covs)
    x = torch.randn(5, 3, dtype=torch.float64)
    zero, one = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    assert torch.allclose(field(x, zero, one, "velocity"), torch.as_tensor(w @ mu) - x, atol=1e-10)
    assert torch.allclose(field(x, one, zero, "velocity"), x, atol=1e-8)


def test_denoiser_predictions_are_the_posterior_means():
    """For x = a x1 + s eps (a^2 + s^2 = 1) the 'x0', 'eps' and 'v' predictions match the Monte Carlo
    conditional means of x1, eps and a eps - s x1 given x (nearest-neighbour average over 400,000 draws),
    and they are consistent with each other: x = a x0_hat + s eps_hat, v_hat = a eps_hat - s x0_hat."""
    from scipy.spatial import cKDTree

    w, mu, covs = _mixture()
    field = GaussianMixtureField(3, 2).double()
    field.set_mixture(w, mu, covs)
    rng = np.random.default_rng(3)
    n = 400_000
    k = rng.choice(2, n, p=w)
    x1 = np.empty((n, 3))
    for i in range(2):
        x1[k == i] = rng.multivariate_normal(mu[i], covs[i], int((k == i).sum()))
    eps = rng.standard_normal((n, 3))
    a, s = 0.8, 0.6
    x = a * x1 + s * eps
    q = x[:20]
    _, idx = cKDTree(x).query(q, k=400)
    want_x0, want_eps = x1[idx].mean(1), eps[idx].mean(1)
    qa = torch.as_tensor(q)
    av, sv = torch.full((20,), a, dtype=torch.float64), torch.full((20,), s, dtype=torch.float64)
    x0_hat, eps_hat, v_hat = (field(qa, av, sv, t).numpy() for t in ("x0", "eps", "v"))
    assert np.abs(x0_hat - want_x0).mean() < 0.06 and np.abs(eps_hat - want_eps).mean() < 0.08
    assert np.allclose(a * x0_hat + s * eps_hat, q, atol=1e-10)
    assert np.allclose(v_hat, a * eps_hat - s * x0_hat, atol=1e-10)


def test_bic_finds_the_number_of_separated_components():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 0.2, (1500, 4)) for c in (-3, 0, 3)])
    assert choose_mixture_components(X, candidates=(1, 2, 3, 4, 8)) == 3
    assert fit_gaussian_mixture(X, 3).converged_


def test_the_chain_of_conditionals_is_the_mixture():
    """``GaussianMixtureChain``: the conditionals sum to the mixture's log-density (SciPy), and drawing
    the coordinates one after another gives the mixture's moments."""
    from scipy.stats import multivariate_normal

    from genzoo.nn.gaussian_mixture import GaussianMixtureChain

    w, mu, covs = _mixture()
    chain = GaussianMixtureChain(3, 2).double()
    chain.set_mixture(w, mu, covs)
    x = np.random.default_rng(0).normal(size=(50, 3)) * 2
    want = np.log(sum(w[k] * multivariate_normal(mu[k], covs[k]).pdf(x) for k in range(2)))
    got = chain.log_prob_coords(torch.as_tensor(x)).sum(1).numpy()
    assert np.allclose(got, want, atol=1e-9)
    torch.manual_seed(0)
    z = torch.zeros(100_000, 3, dtype=torch.float64)
    for i in range(3):
        z[:, i] = chain.sample_coord(z, i)
    z = z.numpy()
    mean = w @ mu
    cov = sum(w[k] * (covs[k] + np.outer(mu[k], mu[k])) for k in range(2)) - np.outer(mean, mean)
    assert np.allclose(z.mean(0), mean, atol=0.03) and np.allclose(np.cov(z.T), cov, atol=0.06)
