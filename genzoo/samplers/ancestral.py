"""Reverse steps of a VP diffusion driven by a noise predictor: DDPM ancestral, DDIM, RePaint.

Everything is written in terms of ``(alpha, sigma)`` pairs of a VP process
(``x_t = alpha_t x_0 + sigma_t eps``, see :mod:`genzoo.samplers.schedules`) and a noise
prediction ``eps_hat ~ E[eps | x_t]``. A step goes from a noisier level ``t`` to a cleaner
level ``s``; a sampler is a loop over any decreasing grid of levels, so one trained
network serves 1000 steps or 20 (respacing: Nichol & Dhariwal 2021, Song et al. 2021).

- :func:`ddpm_step` -- ancestral sampling (Ho et al. 2020): draw from the Gaussian posterior
  ``q(x_s | x_t, x_0)`` with ``x_0`` replaced by its prediction.
- :func:`ddim_step` -- DDIM (Song, Meng & Ermon 2021); ``eta = 0`` is deterministic (an Euler
  step of the probability-flow ODE in the variables ``x / alpha`` and ``sigma / alpha``),
  ``eta = 1`` matches the ancestral step's variance.
- :func:`forward_jump` -- re-noise ``x_s -> x_t`` (``q(x_t | x_s)``), used by RePaint resampling.
- :func:`sample_loop` -- the loop, with optional inpainting (RePaint, Lugmayr et al. 2022, through
  :func:`genzoo.samplers.inpainting.repaint`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genzoo.samplers.inpainting import repaint
from genzoo.samplers.schedules import NoiseSchedule, alpha_sigma_from_log_snr

Tensor = torch.Tensor


def _transition(lam_t: Tensor, lam_s: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``alpha_t, sigma_t, alpha_s, sigma_s`` and ``sigma_{t|s}^2`` of ``q(x_t | x_s)``."""
    a_t, s_t = alpha_sigma_from_log_snr(lam_t)
    a_s, s_s = alpha_sigma_from_log_snr(lam_s)
    # sigma_{t|s}^2 = sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2 = sigma_t^2 (1 - e^{lam_t - lam_s}), no cancellation
    var_ts = s_t**2 * -torch.expm1(lam_t - lam_s)
    return a_t, s_t, a_s, s_s, var_ts


def ddpm_step(x_t: Tensor, eps_hat: Tensor, lam_t: Tensor, lam_s: Tensor, noise: Tensor | None) -> Tensor:
    """One ancestral step ``t -> s`` (``lam_s > lam_t``): a draw from ``q(x_s | x_t, x_0 = x0_hat)``.

    Mean ``(x_t - sigma_{t|s}^2 / sigma_t * eps_hat) / alpha_{t|s}`` (Ho et al.'s eq. 11 for
    any pair of levels), variance ``sigma_{t|s}^2 sigma_s^2 / sigma_t^2``. ``noise=None``
    returns the mean (used for the last step).
    """
    a_t, s_t, a_s, s_s, var_ts = _transition(lam_t, lam_s)
    mean = (x_t - var_ts / s_t * eps_hat) * (a_s / a_t)
    if noise is None:
        return mean
    return mean + (var_ts * s_s**2 / s_t**2).sqrt() * noise


def ddim_step(x_t: Tensor, eps_hat: Tensor, lam_t: Tensor, lam_s: Tensor, eta: float = 0.0,
              noise: Tensor | None = None) -> Tensor:
    """One DDIM step ``t -> s``: ``x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z``.

    ``c = eta * sqrt(sigma_{t|s}^2 sigma_s^2 / sigma_t^2)``; ``eta = 0`` is deterministic.
    """
    a_t, s_t, a_s, s_s, var_ts = _transition(lam_t, lam_s)
    x0 = (x_t - s_t * eps_hat) / a_t
    c2 = eta**2 * var_ts * s_s**2 / s_t**2
    out = a_s * x0 + (s_s**2 - c2).clamp(min=0).sqrt() * eps_hat
    if eta > 0 and noise is not None:
        out = out + c2.sqrt() * noise
    return out


def forward_jump(x_s: Tensor, lam_s: Tensor, lam_t: Tensor, noise: Tensor) -> Tensor:
    """Draw ``x_t ~ q(x_t | x_s) = N(alpha_{t|s} x_s, sigma_{t|s}^2 I)`` for ``lam_t < lam_s``."""
    a_t, s_t, a_s, s_s, var_ts = _transition(lam_t, lam_s)
    return (a_t / a_s) * x_s + var_ts.sqrt() * noise


def log_snr_grid(schedule: NoiseSchedule, steps: int, device=None) -> Tensor:
    """``steps + 1`` log-SNR levels from ``t = 1`` (noise) to ``t = 0`` (data), uniform in ``t``."""
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    t = torch.linspace(1.0, 0.0, int(steps) + 1, dtype=torch.float64)
    return schedule.log_snr(t).to(device=device, dtype=torch.float32)


def sample_loop(eps_fn: Callable[[Tensor, Tensor], Tensor], x_T: Tensor, lams: Tensor, *,
                sampler: str = "ancestral", eta: float = 0.0,
                known: Tensor | None = None, mask: Tensor | None = None, resample: int = 1,
                generator: torch.Generator | None = None, return_path: bool = False) -> Tensor | list[Tensor]:
    """Run a reverse chain from ``x_T`` through the decreasing-noise levels ``lams`` (increasing lambda).

    ``eps_fn(x, lam)`` returns the noise prediction (``lam`` a scalar tensor). ``sampler`` is
    'ancestral' (DDPM) or 'ddim'. The last step returns the mean (no noise is added at the
    data end). Inpainting (RePaint, Lugmayr et al. 2022; the loop is
    :func:`genzoo.samplers.inpainting.repaint`): where ``mask`` is True the coordinates are
    replaced, before every step, by ``known`` noised forward to that level; each step but the
    last is repeated ``resample`` times, re-noising the result back one level in between
    (:func:`forward_jump`), so the free coordinates can harmonise with the known ones. The
    observed values come back exactly at the end. ``return_path=True`` returns the list of
    states, start and every level.
    """
    if sampler not in ("ancestral", "ddim"):
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ancestral' or 'ddim'")
    if int(resample) < 1:
        raise ValueError(f"resample must be >= 1; got {resample}")

    def randn() -> Tensor:
        return torch.randn(x_T.shape, generator=generator, device=x_T.device, dtype=x_T.dtype)

    def step(x: Tensor, lam_t: Tensor, lam_s: Tensor, last: bool) -> Tensor:
        eps = eps_fn(x, lam_t)
        if sampler == "ancestral":
            return ddpm_step(x, eps, lam_t, lam_s, None if last else randn())
        return ddim_step(x, eps, lam_t, lam_s, eta, None if (last or eta == 0) else randn())

    if mask is not None:
        def marginal(k: Tensor, lam: Tensor) -> Tensor:
            a, s = alpha_sigma_from_log_snr(lam)
            return a * k + s * randn()

        out, _ = repaint(step, marginal, lambda x, lam_s, lam_t: forward_jump(x, lam_s, lam_t, randn()), x_T,
                         lams, known, mask, resample=resample, resample_last=False, return_path=return_path)
        return out
    x = x_T
    path = [x] if return_path else None
    n = len(lams) - 1
    for i in range(n):
        x = step(x, lams[i], lams[i + 1], i == n - 1)
        if path is not None:
            path.append(x)
    return path if path is not None else x


__all__ = ["ddpm_step", "ddim_step", "forward_jump", "log_snr_grid", "sample_loop"]
