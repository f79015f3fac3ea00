"""Few-step samplers: the diffusion probability-flow ODE solved in a handful of network calls.

DDIM is the Euler method of the probability-flow ODE written in the half log-SNR
``h = log(alpha / sigma)``; its error is first order in the step, so 250 steps are needed for
thin modes. DPM-Solver++ (Lu et al. 2022) keeps the exact linear part of the ODE and
extrapolates the *data prediction* ``x0_hat`` between levels: with the previous step's
``x0_hat`` it is second order (the multistep "2M" form) at one network call per step.

- :func:`multistep_data_solver` -- the 2M solver on any Gaussian path, a flow-matching path
  ``x = t x1 + (1 - t) noise`` too (first order on the first step, and on the last one, where
  the step is the largest in ``h`` and extrapolation overshoots, unless asked otherwise);
  :func:`dpm_solver_pp` -- its VP form for a noise predictor.
- :func:`log_snr_levels` -- ``steps + 1`` levels of a schedule, uniform in time or in log-SNR;
  :func:`path_levels` -- the times of a flow-matching path; :func:`karras_sigmas` -- a VE ladder.
- :func:`steps_for_budget` -- how many steps of a solver fit a budget of network calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from genzoo.samplers.schedules import NoiseSchedule, alpha_sigma_from_log_snr

Tensor = torch.Tensor
EpsFn = Callable[[Tensor, Tensor], Tensor]


def log_snr_levels(schedule: NoiseSchedule, steps: int, spacing: str = "time", power: float = 1.0,
                   device=None) -> Tensor:
    """``steps + 1`` increasing log-SNR levels from noise (``t = 1``) to data (``t = 0``).

    ``spacing='time'`` takes ``t = u ** power`` for ``u`` uniform from 1 to 0: ``power = 1`` is
    DDPM / DDIM respacing, ``power > 1`` moves steps towards the data, where thin modes are
    resolved (on ``grid25``, 2M at 20 calls: 96.6% of samples on a mode with ``power = 1``,
    99.6% with 1.5). ``'log_snr'`` is uniform in log-SNR.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    if not power > 0:
        raise ValueError(f"power must be positive; got {power}")
    ends = schedule.log_snr(torch.tensor([1.0, 0.0], dtype=torch.float64))
    if spacing == "time":
        lams = schedule.log_snr(torch.linspace(1.0, 0.0, int(steps) + 1, dtype=torch.float64) ** float(power))
    elif spacing == "log_snr":
        lams = torch.linspace(float(ends[0]), float(ends[1]), int(steps) + 1, dtype=torch.float64)
    else:
        raise ValueError(f"spacing must be 'time' or 'log_snr'; got {spacing!r}")
    return lams.to(device=device, dtype=torch.float32)


def dpm_solver_pp(eps_fn: EpsFn, x_T: Tensor, lams: Tensor, *, order: int = 2,
                  lower_order_final: bool = True, return_path: bool = False) -> Tensor | list[Tensor]:
    """Solve a VP diffusion's PF-ODE from ``x_T`` through the increasing log-SNR levels ``lams``.

    ``eps_fn(x, lam)`` predicts the noise; the solver works with its data prediction
    ``x0 = (x - sigma eps) / alpha`` (:func:`multistep_data_solver`), one call per step.
    """
    alphas, sigmas = alpha_sigma_from_log_snr(lams)

    def data_fn(x: Tensor, i: int) -> Tensor:
        return (x - sigmas[i] * eps_fn(x, lams[i])) / alphas[i]

    return multistep_data_solver(data_fn, x_T, alphas, sigmas, order=order, lower_order_final=lower_order_final,
                                 return_path=return_path)


def multistep_data_solver(data_fn: Callable[[Tensor, int], Tensor], x_T: Tensor, alphas: Tensor, sigmas: Tensor, *,
                          order: int = 2, lower_order_final: bool = True,
                          return_path: bool = False) -> Tensor | list[Tensor]:
    """DPM-Solver++ on any Gaussian path ``x = alpha x0 + sigma noise``, levels ``i = 0..n`` noise -> data.

    ``data_fn(x, i)`` predicts ``x0`` at level ``i``. With ``h = log(alpha / sigma)`` (``-inf`` at pure
    noise, ``+inf`` at clean data are allowed) and ``dh`` a step, the exact linear part gives
    ``x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - e^{-dh}) D``, where ``D`` is ``x0_hat`` at ``t``
    (order 1: DDIM) or, with the previous prediction, the extrapolation
    ``(1 + 1/(2r)) x0_t - 1/(2r) x0_prev``, ``r`` the ratio of the previous step to this one
    (order 2). Steps of infinite ``dh`` (the ends of a flow-matching path) are first order.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2; got {order}")
    n = len(alphas) - 1
    if n < 1 or len(sigmas) != len(alphas):
        raise ValueError("need matching alphas and sigmas for at least two levels")
    h = torch.log(alphas.double()) - torch.log(sigmas.double())  # log(alpha / sigma), may be -inf / +inf
    x = x_T
    path = [x] if return_path else None
    prev_x0, prev_dh = None, None
    for i in range(n):
        x0 = data_fn(x, i)
        dh = float(h[i + 1] - h[i])
        D = x0
        last = i == n - 1
        if (order == 2 and prev_x0 is not None and math.isfinite(dh) and math.isfinite(prev_dh)
                and not (last and lower_order_final)):
            r = prev_dh / dh
            D = (1 + 0.5 / r) * x0 - (0.5 / r) * prev_x0
        ratio = float(sigmas[i + 1] / sigmas[i])
        x = ratio * x - float(alphas[i + 1]) * math.expm1(-dh) * D
        prev_x0, prev_dh = x0, dh
        if path is not None:
            path.append(x)
    return path if path is not None else x


def path_levels(steps: int, power: float = 1.5) -> Tensor:
    """``steps + 1`` times of a flow-matching path from noise (0) to data (1): ``t = 1 - (1 - u) ** power``.

    ``power > 1`` shortens the steps near the data, where the field contracts onto thin modes
    (on ``grid25``, 2M at 10 calls: 87.6% of samples on a mode with ``power = 1``, 97.2% with 1.5).
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    if not power > 0:
        raise ValueError(f"power must be positive; got {power}")
    u = torch.linspace(0.0, 1.0, int(steps) + 1, dtype=torch.float64)
    return 1.0 - (1.0 - u) ** float(power)


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """``steps + 1`` noise levels from ``sigma_max`` down to ``sigma_min``, uniform in ``sigma ** (1 / rho)``
    (Karras et al. 2022): a VE path's steps crowded towards the data."""
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
    u = torch.linspace(0.0, 1.0, int(steps) + 1, dtype=torch.float64)
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (hi + u * (lo - hi)) ** rho


def steps_for_budget(nfe: int, evals_per_step: int = 1) -> int:
    """The most steps of a solver with ``evals_per_step`` calls each that fit ``nfe`` calls (at least one)."""
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"nfe must be a positive integer; got {nfe!r}")
    if nfe < evals_per_step:
        raise ValueError(f"nfe={nfe} is below one step of this sampler ({evals_per_step} evaluations)")
    return nfe // evals_per_step


__all__ = ["dpm_solver_pp", "karras_sigmas", "log_snr_levels", "multistep_data_solver", "path_levels",
           "steps_for_budget"]
