"""Langevin samplers fed the exact score of a Gaussian: their output must have its mean and covariance."""

from __future__ import annotations

import math

import pytest
import torch

from genzoo.samplers.langevin import annealed_langevin, geometric_schedule, langevin, mala, score_from_log_prob

MU = torch.tensor([1.0, -2.0])
COV = torch.tensor([[1.0, 0.5], [0.5, 0.8]])
PREC = torch.linalg.inv(COV)


def gauss_score(x: torch.Tensor) -> torch.Tensor:
    return -(x - MU) @ PREC  # PREC is symmetric


def gauss_log_prob(x: torch.Tensor) -> torch.Tensor:
    d = x - MU
    return -0.5 * ((d @ PREC) * d).sum(1)


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = x.mean(0)
    c = (x - m).T @ (x - m) / (len(x) - 1)
    return m, c


def test_ula_converges_to_gaussian():
    torch.manual_seed(0)
    x0 = torch.randn(8000, 2) * 2
    res = langevin(gauss_score, x0, step_size=0.01, n_steps=800)
    m, c = moments(res.x)
    assert res.nfe == 800
    assert torch.allclose(m, MU, atol=0.05)
    assert torch.allclose(c, COV, atol=0.06)


def test_ula_step_bias_is_the_known_one():
    """ULA on N(0, 1) with step eps has stationary variance 1 / (1 - eps / 4), a known O(eps) bias."""
    torch.manual_seed(1)
    eps = 0.8
    res = langevin(lambda x: -x, torch.zeros(20000, 1), step_size=eps, n_steps=200)
    var = float(res.x.var())
    assert abs(var - 1 / (1 - eps / 4)) < 0.03
    assert abs(var - 1.0) > 0.15  # and it is visibly biased, unlike MALA below


def test_mala_is_exact_at_a_large_step():
    torch.manual_seed(2)
    res = mala(lambda x: -0.5 * (x * x).sum(1), torch.randn(20000, 1) * 2, step_size=0.8, n_steps=200)
    assert abs(float(res.x.var()) - 1.0) < 0.04
    assert abs(float(res.x.mean())) < 0.03
    assert 0.3 < res.accept_rate < 1.0


def test_mala_correlated_gaussian_with_adaptation_and_autograd_score():
    torch.manual_seed(3)
    x0 = torch.randn(4000, 2) * 3
    burn = mala(gauss_log_prob, x0, step_size=torch.full((4000, 1), 0.05), n_steps=100, adapt=True)
    res = mala(gauss_log_prob, burn.x, step_size=burn.step_size, n_steps=200)
    m, c = moments(res.x)
    assert torch.allclose(m, MU, atol=0.05)
    assert torch.allclose(c, COV, atol=0.07)
    # the autograd score helper agrees with the closed form
    x = torch.randn(5, 2)
    assert torch.allclose(score_from_log_prob(gauss_log_prob)(x), gauss_score(x), atol=1e-5)


def test_annealed_langevin_reaches_the_smallest_noise_level():
    """With the exact noisy score s(x, sigma) of N(mu, cov + sigma^2 I), chains end at the last level's law."""
    torch.manual_seed(4)
    eye = torch.eye(2)

    def noisy_score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(x - MU) @ torch.linalg.inv(COV + sigma**2 * eye)

    sigmas = geometric_schedule(10.0, 0.3, 10)
    x0 = torch.rand(6000, 2) * 40 - 20
    res = annealed_langevin(noisy_score, x0, sigmas=sigmas, steps_per_level=150, eps=0.05, denoise=False)
    m, c = moments(res.x)
    assert res.nfe == 10 * 150
    assert torch.allclose(m, MU, atol=0.06)
    assert torch.allclose(c, COV + 0.09 * eye, atol=0.06)
    # the Tweedie denoising step shrinks the noise: x + sigma^2 s(x) has covariance below the noisy one
    den = annealed_langevin(noisy_score, x0, sigmas=sigmas, steps_per_level=150, eps=0.05, denoise=True)
    assert den.nfe == 10 * 150 + 1
    assert torch.linalg.det(moments(den.x)[1]) < torch.linalg.det(c)


def test_schedules_and_bad_input():
    s = geometric_schedule(1.0, 0.01, 5)
    assert len(s) == 5 and math.isclose(s[0], 1.0) and math.isclose(s[-1], 0.01)
    assert all(a > b for a, b in zip(s, s[1:]))
    x = torch.zeros(3, 2)
    res = langevin(gauss_score, x, step_size=[0.1, 0.05], n_steps=2)
    assert res.x.shape == (3, 2)
    with pytest.raises(ValueError):
        langevin(gauss_score, x, step_size=[0.1], n_steps=2)
    with pytest.raises(ValueError):
        langevin(gauss_score, x, step_size=-1.0, n_steps=2)
    with pytest.raises(ValueError):
        annealed_langevin(lambda v, s: v, x, sigmas=[], steps_per_level=2, eps=0.1)
