"""Noise schedules and the DDPM / DDIM / RePaint samplers, driven by the exact noise predictor of a Gaussian.

For data ``x_0 ~ N(mu, S)`` the VP marginal is ``x_t ~ N(alpha mu, alpha^2 S + sigma^2 I)`` and
the optimal noise prediction is ``E[eps | x_t] = sigma C_t^{-1} (x_t - alpha mu)`` with
``C_t = alpha^2 S + sigma^2 I``; a correct sampler fed it returns N(mu, S).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genzoo.samplers.ancestral import ddim_step, ddpm_step, forward_jump, log_snr_grid, sample_loop
from genzoo.samplers.schedules import (
    CosineSchedule,
    LinearSchedule,
    LogSNRLinearSchedule,
    alpha_sigma_from_log_snr,
    ddpm_cosine,
    ddpm_linear,
    get_schedule,
)

MU = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
S = torch.tensor([[1.0, 0.6, 0.0], [0.6, 0.5, 0.1], [0.0, 0.1, 0.3]], dtype=torch.float64)

ALL = [CosineSchedule(), LogSNRLinearSchedule(), LinearSchedule(), ddpm_linear(), ddpm_cosine()]


def gaussian_eps(mu: torch.Tensor, cov: torch.Tensor):
    def eps(x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        a, s = alpha_sigma_from_log_snr(lam.double())
        C = a * a * cov + s * s * torch.eye(len(mu), dtype=torch.float64)
        return (s * torch.linalg.solve(C, (x.double() - a * mu).T).T).to(x.dtype)
    return eps


def moments_error(X: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> float:
    X = X.double()
    return float((X.mean(0) - mu).abs().max() + (torch.cov(X.T) - cov).abs().max())


# ----------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("sched", ALL, ids=lambda s: repr(s))
def test_forward_noising_matches_closed_form(sched):
    """x_t | x_0 has mean alpha_t x_0 and variance sigma_t^2, with alpha^2 + sigma^2 = 1."""
    torch.manual_seed(0)
    x0 = torch.tensor([0.8, -1.5], dtype=torch.float64)
    for t in (0.05, 0.3, 0.7, 0.95):
        a, s = sched.alpha_sigma(torch.tensor(t, dtype=torch.float64))
        assert abs(float(a * a + s * s) - 1) < 1e-12
        xt = sched.marginal(x0.expand(200_000, 2), t, torch.randn(200_000, 2, dtype=torch.float64))
        np.testing.assert_allclose(xt.mean(0), a * x0, atol=4 * float(s) / math.sqrt(200_000) + 1e-12)
        np.testing.assert_allclose(xt.var(0), s * s * torch.ones(2, dtype=torch.float64), rtol=0.01)


def test_schedules_match_their_papers():
    t = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    # cosine without truncation: alpha = cos(pi t / 2)
    cos = CosineSchedule(lambda_min=-60.0, lambda_max=60.0)
    np.testing.assert_allclose(cos.alpha_sigma(t)[0], torch.cos(math.pi * t / 2), atol=1e-9)
    # continuous linear VP-SDE: alpha^2 = exp(-int beta) with beta = 0.1 + 19.9 t
    lin = LinearSchedule(t_min=0.0)
    np.testing.assert_allclose(lin.alpha_sigma(t)[0] ** 2, torch.exp(-(0.1 * t + 0.5 * 19.9 * t * t)), rtol=1e-9)
    # discrete DDPM: alpha_bar_i = prod (1 - beta_j) at t = i / T
    sched = ddpm_linear(1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    i = torch.tensor([1, 10, 500, 1000], dtype=torch.float64)
    np.testing.assert_allclose(sched.alpha_sigma(i / 1000.0)[0] ** 2, abar[i.long() - 1], rtol=1e-9)
    # the VP SDE rate: beta(t) = -d log alpha^2 / dt, checked by finite differences
    for sch in (CosineSchedule(), lin, LogSNRLinearSchedule()):
        h = 1e-6
        fd = -2 * (torch.log(sch.alpha_sigma(t + h)[0]) - torch.log(sch.alpha_sigma(t - h)[0])) / (2 * h)
        np.testing.assert_allclose(sch.beta(t), fd, rtol=1e-4)


@pytest.mark.parametrize("sched", ALL, ids=lambda s: repr(s))
def test_log_snr_is_decreasing_and_invertible(sched):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    lam = sched.log_snr(t)
    assert (lam[1:] < lam[:-1]).all()
    np.testing.assert_allclose(sched.t_of_log_snr(lam), t, atol=1e-9)


def test_cosine_reaches_small_noise_and_bad_names_raise():
    a, s = CosineSchedule().alpha_sigma(torch.tensor(0.0))
    assert float(s) < 1e-3  # finer than a mode of std 0.01
    with pytest.raises(ValueError, match="unknown schedule"):
        get_schedule("quadratic")


# ----------------------------------------------------------------------------- steps
def test_ddpm_step_is_the_posterior_of_two_levels():
    """Ancestral mean/variance equal q(x_s | x_t, x_0) computed from Bayes' rule for a known x_0."""
    lam_t, lam_s = torch.tensor(-1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    a_t, s_t = alpha_sigma_from_log_snr(lam_t)
    a_s, s_s = alpha_sigma_from_log_snr(lam_s)
    x0 = torch.tensor([[0.7]], dtype=torch.float64)
    xt = torch.tensor([[-0.4]], dtype=torch.float64)
    eps = (xt - a_t * x0) / s_t
    # q(x_s | x_0) = N(a_s x0, s_s^2); q(x_t | x_s) = N(a_ts x_s, v_ts): Gaussian product
    a_ts, v_ts = a_t / a_s, s_t**2 - (a_t / a_s) ** 2 * s_s**2
    prec = 1 / s_s**2 + a_ts**2 / v_ts
    mean = (a_s * x0 / s_s**2 + a_ts * xt / v_ts) / prec
    np.testing.assert_allclose(ddpm_step(xt, eps, lam_t, lam_s, None), mean, rtol=1e-10)
    z = torch.ones_like(xt)
    np.testing.assert_allclose(ddpm_step(xt, eps, lam_t, lam_s, z) - mean, prec.rsqrt() * z, rtol=1e-10)
    # re-noising is q(x_t | x_s)
    np.testing.assert_allclose(forward_jump(mean, lam_s, lam_t, z), a_ts * mean + v_ts.sqrt(), rtol=1e-10)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_sampler_with_exact_gaussian_eps_returns_the_gaussian(sampler):
    torch.manual_seed(0)
    x = torch.randn(20_000, 3, dtype=torch.float64)
    out = sample_loop(gaussian_eps(MU, S), x, log_snr_grid(CosineSchedule(), 400).double(), sampler=sampler)
    assert moments_error(out, MU, S) < 0.05


def test_ddim_converges_to_the_exact_ode_map_with_order_one():
    """DDIM (eta=0) is Euler on the probability-flow ODE; for Gaussian data that ODE's map is known.

    In ``y = x / alpha``, ``r = sigma / alpha`` the ODE is ``dy/dr = r (S + r^2 I)^{-1} (y - mu)``, so
    ``y(r) - mu = (S + r^2 I)^{1/2} (S + r_T^2 I)^{-1/2} (y_T - mu)``: each start point has a known
    end point, and the error per sample halves as the steps double.
    """
    torch.manual_seed(1)
    sched = CosineSchedule()
    x = torch.randn(2000, 3, dtype=torch.float64)
    (a0, s0), (a1, s1) = (alpha_sigma_from_log_snr(torch.tensor(v, dtype=torch.float64))
                          for v in (sched.lambda_min, sched.lambda_max))
    ev, U = torch.linalg.eigh(S)
    C = U @ torch.diag(((ev + (s1 / a1) ** 2) / (ev + (s0 / a0) ** 2)).sqrt()) @ U.T
    exact = (MU + (x / a0 - MU) @ C.T) * a1
    errs = [float((sample_loop(gaussian_eps(MU, S), x, log_snr_grid(sched, k).double(), sampler="ddim")
                   - exact).abs().mean()) for k in (10, 20, 40, 80)]
    ratios = [errs[i] / errs[i + 1] for i in range(3)]
    assert all(1.7 < r < 2.3 for r in ratios), errs  # first order
    assert errs[-1] < 0.02


def test_ancestral_on_a_respaced_ddpm_schedule_converges():
    """The discrete DDPM schedule respaced from 1000 to fewer steps: the (covariance) bias shrinks with steps."""
    torch.manual_seed(2)
    x = torch.randn(20_000, 3, dtype=torch.float64)
    errs = [moments_error(sample_loop(gaussian_eps(MU, S), x, log_snr_grid(ddpm_cosine(), k).double()), MU, S)
            for k in (25, 400)]
    assert errs[0] > 2 * errs[1] and errs[1] < 0.05, errs


def test_repaint_keeps_observed_and_samples_the_conditional():
    """Inpainting a 2-D Gaussian with correlation 0.9: the free coordinate follows N(0.9 x_1, 0.19).

    RePaint is approximate at a finite budget: with 50 levels and 5 resamplings the mean comes
    out at 0.848 +- 0.001 (six seeds of 40,000 rows), against 0.615 without resampling, so the
    test asserts both that resampling removes most of the gap and that it stays within 0.07.
    """
    mu, cov = torch.zeros(2, dtype=torch.float64), torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    n = 10_000
    known = torch.zeros(n, 2, dtype=torch.float64)
    known[:, 0] = 1.0
    mask = torch.zeros(n, 2, dtype=torch.bool)
    mask[:, 0] = True
    means = {}
    for resample in (1, 5):
        torch.manual_seed(3)
        out = sample_loop(gaussian_eps(mu, cov), torch.randn(n, 2, dtype=torch.float64),
                          log_snr_grid(CosineSchedule(), 50).double(), known=known, mask=mask, resample=resample)
        assert (out[:, 0] == 1.0).all()
        means[resample] = float(out[:, 1].mean())
    assert abs(means[5] - 0.9) < 0.07 and abs(means[5] - 0.9) < 0.4 * abs(means[1] - 0.9), means
    assert abs(float(out[:, 1].var()) - 0.19) < 0.04


def test_ddim_step_with_eta_one_matches_ancestral_variance():
    lam_t, lam_s = torch.tensor(0.0), torch.tensor(1.5)
    x = torch.zeros(1, 1)
    e = torch.zeros(1, 1)
    z = torch.ones(1, 1)
    anc = ddpm_step(x, e, lam_t, lam_s, z) - ddpm_step(x, e, lam_t, lam_s, None)
    ddim = ddim_step(x, e, lam_t, lam_s, eta=1.0, noise=z) - ddim_step(x, e, lam_t, lam_s, eta=1.0, noise=None)
    torch.testing.assert_close(anc, ddim)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="sampler"):
        sample_loop(gaussian_eps(MU, S), torch.zeros(2, 3), log_snr_grid(CosineSchedule(), 3), sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        log_snr_grid(CosineSchedule(), 0)
