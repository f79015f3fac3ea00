"""DPM-Solver++ on a Gaussian whose noise predictor is known in closed form."""

import math

import pytest
import torch

from genzoo.samplers.fewstep import dpm_solver_pp, log_snr_levels, steps_for_budget
from genzoo.samplers.schedules import alpha_sigma_from_log_snr, get_schedule

M, S = 0.7, 0.3  # data ~ N(M, S^2) per coordinate


def eps_exact(x, lam):
    a, s = alpha_sigma_from_log_snr(lam)
    return s * (x - a * M) / (a**2 * S**2 + s**2)


def exact_flow(x, lam_t, lam_s):
    """The PF-ODE's exact map between two levels for Gaussian data (an affine rescaling)."""
    a_t, s_t = alpha_sigma_from_log_snr(lam_t)
    a_s, s_s = alpha_sigma_from_log_snr(lam_s)
    return a_s * M + torch.sqrt((a_s**2 * S**2 + s_s**2) / (a_t**2 * S**2 + s_t**2)) * (x - a_t * M)


def _error(steps, order):
    torch.manual_seed(0)
    sched = get_schedule("logsnr", lambda_min=-6.0, lambda_max=6.0)
    lams = log_snr_levels(sched, steps, spacing="log_snr").double()
    x = torch.randn(2000, 2, dtype=torch.float64)
    out = dpm_solver_pp(eps_exact, x, lams, order=order, lower_order_final=False)
    return float((out - exact_flow(x, lams[0], lams[-1])).abs().max())


@pytest.mark.parametrize("order,rate", [(1, 2.0), (2, 4.0)])
def test_convergence_order(order, rate):
    errs = [_error(k, order) for k in (16, 32, 64)]
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    assert all(0.75 * rate < r < 1.4 * rate for r in ratios), (errs, ratios)


def test_second_order_beats_ddim_at_equal_calls():
    assert _error(10, 2) < 0.2 * _error(10, 1)


def test_few_steps_reach_the_data_distribution():
    sched = get_schedule("cosine", lambda_min=-15.0, lambda_max=15.0)
    torch.manual_seed(1)
    x = torch.randn(20000, 1, dtype=torch.float64)
    lams = log_snr_levels(sched, 20).double()
    out = dpm_solver_pp(eps_exact, x, lams)
    ddim = dpm_solver_pp(eps_exact, x, lams, order=1)
    assert abs(float(out.mean()) - M) < 0.01 and abs(float(out.std()) - S) < 0.01
    assert abs(float(ddim.std()) - S) > 2 * abs(float(out.std()) - S)  # DDIM at 20 calls is still off
    assert math.isfinite(float(out.abs().max()))


def test_levels_and_budget():
    sched = get_schedule("cosine", lambda_min=-15.0, lambda_max=15.0)
    for spacing in ("time", "log_snr"):
        lams = log_snr_levels(sched, 7, spacing)
        assert len(lams) == 8 and bool((lams[1:] > lams[:-1]).all())
        assert float(lams[0]) == pytest.approx(-15.0, abs=1e-3) and float(lams[-1]) == pytest.approx(15.0, abs=1e-3)
    assert steps_for_budget(20, 2) == 10 and steps_for_budget(3, 1) == 3
    with pytest.raises(ValueError, match="nfe"):
        steps_for_budget(0)
    with pytest.raises(ValueError, match="below one step"):
        steps_for_budget(1, 2)
    with pytest.raises(ValueError, match="spacing"):
        log_snr_levels(sched, 4, "bogus")
