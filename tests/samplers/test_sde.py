"""Euler-Maruyama on the reverse VP and VE SDEs, fed the exact score of Gaussian data.

For data N(mu, S) the VP marginal is N(alpha mu, alpha^2 S + sigma^2 I) and the VE marginal
(with ``t = 0`` meaning noise ``sigma_min``) is N(mu, S + sigma(t)^2 I); their scores are
known in closed form, so the reverse SDE must return N(mu, S) (VE: plus ``sigma_min^2 I``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genzoo.samplers.schedules import CosineSchedule, LinearSchedule
from genzoo.samplers.sde import VESDE, VPSDE, reverse_euler_maruyama, time_grid

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
S = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=torch.float64)
I2 = torch.eye(2, dtype=torch.float64)


def exact_score(sde):
    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m, s = sde.marginal(t.double())
        C = m * m * S + s * s * I2
        return -torch.linalg.solve(C, (x - m * MU).T).T
    return score


def moments_error(X, mu, cov) -> float:
    return float((X.mean(0) - mu).abs().max() + (torch.cov(X.T) - cov).abs().max())


@pytest.mark.parametrize("sde", [VPSDE(LinearSchedule()), VPSDE(CosineSchedule(-10.0, 10.0))],
                         ids=["vp-linear", "vp-cosine"])
def test_reverse_vp_sde_with_exact_score_returns_the_gaussian(sde):
    torch.manual_seed(0)
    # uniform steps in t suit the linear VP; the cosine VP's beta explodes near t = 1, so start at
    # t = 0.95 from the exact marginal there
    T = 1.0 if isinstance(sde.schedule, LinearSchedule) else 0.95
    m, s = sde.marginal(torch.tensor(T, dtype=torch.float64))
    L = torch.linalg.cholesky(m * m * S + s * s * I2)
    x = m * MU + torch.randn(20_000, 2, dtype=torch.float64) @ L.T
    out = reverse_euler_maruyama(sde, exact_score(sde), x, time_grid(500, 1e-3, T).double())
    m, s = sde.marginal(torch.tensor(1e-3, dtype=torch.float64))
    assert moments_error(out, m * MU, m * m * S + s * s * I2) < 0.05


def test_reverse_ve_sde_with_exact_score_returns_the_gaussian():
    torch.manual_seed(1)
    sde = VESDE(sigma_min=0.01, sigma_max=20.0)
    x = MU + sde.prior_sample((20_000, 2)).double()
    out = reverse_euler_maruyama(sde, exact_score(sde), x, time_grid(500, 0.0).double())
    assert moments_error(out, MU, S + 1e-4 * I2) < 0.05


def test_euler_maruyama_error_shrinks_with_steps():
    """Weak convergence: the covariance error at 20 steps exceeds that at 320 several-fold."""
    sde = VPSDE(LinearSchedule())
    errs = []
    for steps in (20, 320):
        torch.manual_seed(2)
        x = sde.prior_sample((20_000, 2)).double()
        out = reverse_euler_maruyama(sde, exact_score(sde), x, time_grid(steps).double())
        errs.append(float((torch.cov(out.T) - S).abs().max()))
    assert errs[0] > 3 * errs[1], errs


def test_sde_coefficients():
    """VP: drift -beta x / 2, diffusion sqrt(beta), beta(t) linear; VE: g^2 = d sigma^2 / dt."""
    vp = VPSDE(LinearSchedule(t_min=0.0))
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    beta = 0.1 + 19.9 * t
    np.testing.assert_allclose(vp.diffusion(t) ** 2, beta, rtol=1e-6)
    x = torch.ones(2, 1, dtype=torch.float64)
    np.testing.assert_allclose(vp.drift(x, t[:, None]), -0.5 * beta[:, None], rtol=1e-6)
    ve = VESDE(0.01, 50.0)
    h = 1e-6
    ds2 = (ve.sigma(t + h) ** 2 - ve.sigma(t - h) ** 2) / (2 * h)
    np.testing.assert_allclose(ve.diffusion(t) ** 2, ds2, rtol=1e-6)
    # probability-flow drift = f - g^2 score / 2
    sc = torch.full((2, 1), 0.3, dtype=torch.float64)
    np.testing.assert_allclose(ve.probability_flow(x, t[:, None], sc), -0.5 * ds2[:, None] * 0.3, rtol=1e-6)
    # prior log-density is normalised: N(0, sigma_max^2 I)
    z = torch.zeros(1, 2, dtype=torch.float64)
    assert abs(float(ve.prior_log_prob(z)) + math.log(2 * math.pi * 50.0**2)) < 1e-9


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="steps"):
        time_grid(0)
    with pytest.raises(ValueError, match="sigma_min"):
        VESDE(1.0, 0.5)
