"""Energy-based model: normalisation by quadrature and AIS checked on energies with a known log Z.

An energy that is exactly a Gaussian quadratic, ``E(z) = |z - mu|^2 / (2 s^2)``, has
``log Z = (d / 2) log(2 pi s^2)``; plugging it in place of the network checks the quadrature,
AIS, both samplers and the DSM objective without training. A small fit checks the rest.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.families.ebm import EBM, EnergyNet


class QuadraticEnergy(EnergyNet):
    """The Gaussian energy ``|z - mu|^2 / (2 s^2)`` (times ``c``), with the family's wall."""

    def __init__(self, mu: list[float], s: float, c: float = 1.0):
        super().__init__(len(mu), 4, 1)
        self.mu, self.s, self.c = torch.tensor(mu), s, c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = torch.relu((z - self.wall_center).abs() - self.wall_half) / self.wall_tau
        return self.c * ((z - self.mu) ** 2).sum(1) / (2 * self.s**2) + 0.5 * (out * out).sum(1)


def gaussian_ebm(mu: list[float], s: float, half: float = 1.5, **kw) -> EBM:
    """An EBM "fitted" on [-half, half]^d whose energy is the Gaussian quadratic."""
    d = len(mu)
    m = EBM(**kw)
    m.n_features_in_, m.loc_, m.scale_ = d, np.zeros(d), np.ones(d)
    m.z_lo_, m.z_hi_, m.device_, m.n_classes_ = np.full(d, -half), np.full(d, half), "cpu", 0
    m.module_ = QuadraticEnergy(mu, s)
    m._prepare(None)
    return m


@pytest.mark.parametrize("s", [0.3, 0.014])
def test_quadrature_log_z_of_a_gaussian_energy(s):
    """Broad and gaussians8-thin (0.014 after standardisation) wells: the midpoint rule is exact."""
    m = gaussian_ebm([0.2, -0.1], s)
    assert abs(m._quadrature_log_z(512) - math.log(2 * math.pi * s * s)) < 1e-4


def test_score_samples_is_the_gaussian_log_density_and_integrates_to_one():
    m = gaussian_ebm([0.2, -0.1], 0.3)
    m.log_z_ = m._quadrature_log_z(512)
    X = np.array([[0.2, -0.1], [0.5, 0.3], [-1.0, 1.0]])
    ref = -((X - [0.2, -0.1]) ** 2).sum(1) / (2 * 0.09) - math.log(2 * math.pi * 0.09)
    assert np.allclose(m.score_samples(X), ref, atol=1e-5)
    g = np.linspace(-3, 3, 401)
    P = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    assert abs(np.exp(m.score_samples(P)).sum() * (g[1] - g[0]) ** 2 - 1) < 1e-3


def test_ais_log_z_beyond_two_dimensions():
    s = 0.4
    m = gaussian_ebm([0.1, 0.0, -0.2], s, ais_steps=300, ais_chains=512)
    est = m._ais_log_z(seed=0)
    assert abs(est - 1.5 * math.log(2 * math.pi * s * s)) < 0.1


def test_samplers_draw_the_energy_s_law():
    mu, s = [0.2, -0.1], 0.3
    m = gaussian_ebm(mu, s, sample_steps=300)
    m.log_z_, m.chains_ = m._quadrature_log_z(512), None
    for opts in (dict(init="uniform"), dict(sampler="grid")):
        S = m._sample_std(6000, None, seed=0, **opts).numpy()
        assert np.allclose(S.mean(0), mu, atol=0.02), opts
        assert np.allclose(np.cov(S.T), s * s * np.eye(2), atol=0.01), opts
    assert m.last_nfe_ > 0


def test_dsm_objective_is_minimised_by_the_blurred_data_energy():
    """For data N(0, I) the DSM optimum is the energy of N(0, (1 + sigma^2) I): E = |z|^2 / (2 (1 + sigma^2))."""
    sigma = 0.5
    m = gaussian_ebm([0.0, 0.0], 1.0, half=10.0, objective="dsm", dsm_sigma=sigma)  # wall out of reach
    z = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    losses = {}
    for c in (0.6, 1 / (1 + sigma**2), 1.0):
        m.module_.c = c
        with torch.random.fork_rng():
            torch.manual_seed(1)
            losses[c] = float(m._loss(z, None).detach())
    best = min(losses, key=losses.get)
    assert math.isclose(best, 1 / (1 + sigma**2))


@pytest.fixture(scope="module")
def fitted_ring():
    X = gz.datasets.get("ring").sample(2000, random_state=0)
    return X, gz.make("ebm", max_steps=500, random_state=0, verbose=0).fit(X)


def test_fitted_density_integrates_to_one_and_log_z_is_converged(fitted_ring):
    X, m = fitted_ring
    assert m.likelihood_kind == "exact"
    lo, hi = X.min(0) - 0.4 * np.ptp(X, 0), X.max(0) + 0.4 * np.ptp(X, 0)
    gx, gy = np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300)
    P = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    mass = np.exp(m.score_samples(P)).sum() * (gx[1] - gx[0]) * (gy[1] - gy[0])
    assert abs(mass - 1) < 0.02
    assert abs(m._quadrature_log_z(1024) - m.log_z_) < 1e-3
    assert m.chains_ is not None and m.chains_.shape == (m.buffer_size, 2)


def test_langevin_samples_follow_the_normalised_density(fitted_ring):
    """The MALA sampler and the exact grid sampler draw the same law (a short fit: still broad)."""
    _, m = fitted_ring
    r_mala = np.linalg.norm(m.sample(2000, random_state=0), axis=1)
    assert m.last_nfe_ == m.sample_steps + 1
    r_grid = np.linalg.norm(m.sample(2000, random_state=0, sampler="grid"), axis=1)
    for q in (10, 50, 90):
        assert abs(np.percentile(r_mala, q) - np.percentile(r_grid, q)) < 0.06
    assert np.mean(np.abs(r_grid - 1) < 0.35) > 0.6  # and it has learned the ring, if coarsely


def test_beyond_two_dimensions_uses_an_ais_estimate():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 3)) * 0.5
    m = gz.make("ebm", max_steps=60, ais_steps=50, ais_chains=128, random_state=0, verbose=0).fit(X)
    assert m.likelihood_kind == "estimate" and type(m).likelihood_kind == "exact"
    lp = m.score_samples(X[:10])
    assert np.isfinite(lp).all()
    np.testing.assert_array_equal(m.score_samples(X[:10]), lp)  # log Z fixed at fit: the same numbers
    assert 0 < m.log_z_se_ < 1
    with pytest.raises(gz.UnsupportedError):
        m.sample(5, sampler="grid")


def test_ais_standard_error_and_the_direction_of_its_bias():
    """AIS's log Z is the log of an unbiased estimate of Z: over seeds its mean sits at or below
    the truth (Jensen), within a few reported standard errors."""
    s = 0.4
    m = gaussian_ebm([0.1, 0.0, -0.2], s, ais_steps=40, ais_chains=64)
    est, ses = [], []
    for seed in range(8):
        est.append(m._ais_log_z(seed=seed))
        ses.append(m.log_z_se_)
    assert m._ais_log_z(seed=3) == est[3]
    err = np.array(est) - 1.5 * math.log(2 * math.pi * s * s)
    assert err.mean() < 3 * np.mean(ses) / math.sqrt(len(est))
    assert 0.2 < np.std(err) / np.mean(ses) < 5  # the reported error is the right size


class FarWellEnergy(EnergyNet):
    """A well at the origin and a deeper one at ``c``, outside the quadrature box (with the wall).

    ``E = -log(exp(-|z|^2 / 2 s0^2) + exp(depth - |z - c|^2 / 2 s1^2)) + wall``: the wall costs
    ~85 nats at the far well (thin, so the wall hardly moves it), which ``depth`` more than pays
    back, so much of the mass lies beyond the box that a quadrature over the box alone covers
    -- as a network's repeated wells could.
    """

    def __init__(self, c: list[float], s0: float, s1: float, depth: float):
        super().__init__(len(c), 4, 1)
        self.c, self.s0, self.s1, self.depth = torch.tensor(c), s0, s1, depth

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = torch.relu((z - self.wall_center).abs() - self.wall_half) / self.wall_tau
        a = -(z**2).sum(1) / (2 * self.s0**2)
        b = self.depth - ((z - self.c) ** 2).sum(1) / (2 * self.s1**2)
        return -torch.logaddexp(a, b) + 0.5 * (out * out).sum(1)


def test_log_z_covers_the_mass_beyond_the_quadrature_box():
    m = gaussian_ebm([0.0, 0.0], 0.3)  # range [-1.5, 1.5]: wall from 1.8, quadrature box to 2.55
    m.module_ = FarWellEnergy([3.0, 0.3], 0.3, 0.02, depth=91.0)
    m._prepare(None)
    # brute force: a fine midpoint grid over [-4.5, 4.5]^2, where the wall reaches 450 nats
    g = np.linspace(-4.5, 4.5, 1126)
    axes = [(g[1:] + g[:-1]) / 2] * 2
    ref = float(torch.logsumexp(-m._mesh_energies(axes), 0)) + 2 * math.log(g[1] - g[0])
    inside = m._quadrature_log_z(512)
    assert ref - inside > 0.5  # the box alone misses most of the mass
    full = m._normalising_log_z(512)
    assert abs(full - ref) < 2e-3
    assert 0.3 < m.tail_mass_ < 1
    # an ordinary energy: the shells add nothing measurable
    q = gaussian_ebm([0.2, -0.1], 0.3)
    assert abs(q._normalising_log_z(512) - math.log(2 * math.pi * 0.09)) < 1e-4 and q.tail_mass_ < 1e-12


def test_heavy_tailed_data_nll_is_not_below_the_entropy():
    """Student-t (3 dof) in each coordinate: outliers stretch the training box and the true law
    has mass beyond any box. The held-out NLL must not fall below the true entropy (an
    under-counted Z would let it), and the density must integrate to one over the whole plane."""
    from scipy import stats

    rng = np.random.default_rng(0)
    X, X_test = stats.t.rvs(3, size=(3000, 2), random_state=rng), stats.t.rvs(3, size=(2000, 2), random_state=rng)
    ref = stats.t.rvs(3, size=(200_000, 2), random_state=rng)
    lp_true = stats.t.logpdf(ref, 3).sum(1)  # exact log-density: Monte Carlo entropy
    entropy = -lp_true.mean()
    assert abs(entropy - 2 * 1.7735) < 0.02  # closed form of t_3: 1.7735 nats per coordinate
    m = gz.make("ebm", max_steps=150, random_state=0, verbose=0).fit(X)  # normalisation, not quality
    lp = m.score_samples(X_test)
    nll, se = -lp.mean(), lp.std() / math.sqrt(len(lp))
    assert nll >= entropy - 3 * se
    # mass over the plane by importance sampling from a wide Cauchy: most draws land far
    # outside the training box (3x the standard deviation as scale, heavier tails than t_3)
    q = stats.cauchy(scale=3 * X.std(0))
    Q = q.rvs(size=(100_000, 2), random_state=rng)
    outside = ((Q < X.min(0)) | (Q > X.max(0))).any(1).mean()
    assert outside > 0.2
    w = np.exp(m.score_samples(Q) - q.logpdf(Q).sum(1))
    assert abs(w.mean() - 1) < max(0.03, 4 * w.std() / math.sqrt(len(w)))
