"""Forward SDEs of score-based diffusion and the Euler-Maruyama solver of their reverse (Song et al. 2021).

A forward SDE ``dx = f(x, t) dt + g(t) dW`` on ``t`` in [0, T] has the reverse-time SDE

    dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dW_bar      (t running from T down to 0)

and the probability-flow ODE ``dx/dt = f(x, t) - g(t)^2 score(x, t) / 2`` with the same
marginals. Two processes:

- :class:`VPSDE` -- variance preserving, ``f = -beta(t) x / 2``, ``g = sqrt(beta(t))``, built on
  any :class:`~genzoo.samplers.schedules.NoiseSchedule` (``beta = -sigma_t^2 dlambda/dt``);
  ``LinearSchedule()`` gives Song et al.'s VP-SDE (beta 0.1 .. 20).
- :class:`VESDE` -- variance exploding, ``f = 0``, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``,
  ``g = sigma(t) sqrt(2 log(sigma_max/sigma_min))`` (NCSN++'s SDE). As in Song et al., ``t = 0``
  means the data perturbed by ``sigma_min``: ``x_t ~ N(x_0, sigma(t)^2 I)``.

:func:`reverse_euler_maruyama` integrates the reverse SDE on a grid; ``score_fn(x, t)``
is the model's (or an exact) score.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from genzoo.samplers.schedules import LinearSchedule, NoiseSchedule

Tensor = torch.Tensor


class VPSDE:
    """Variance-preserving SDE of a schedule: marginal ``x_t = alpha_t x_0 + sigma_t eps``."""

    T: float = 1.0

    def __init__(self, schedule: NoiseSchedule | None = None):
        self.schedule = schedule if schedule is not None else LinearSchedule()

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return -0.5 * self.schedule.beta(t).to(x.dtype) * x

    def diffusion(self, t: Tensor) -> Tensor:
        return self.schedule.beta(t).clamp(min=0).sqrt()

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean coefficient, std)`` of ``x_t | x_0``: ``(alpha_t, sigma_t)``."""
        return self.schedule.alpha_sigma(t)

    def prior_sample(self, shape, generator: torch.Generator | None = None, device=None) -> Tensor:
        return torch.randn(shape, generator=generator, device=device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        return -0.5 * (x * x).sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)

    def probability_flow(self, x: Tensor, t: Tensor, score: Tensor) -> Tensor:
        """``dx/dt`` of the probability-flow ODE given the score at ``(x, t)``."""
        g = self.diffusion(t).to(x.dtype)
        return self.drift(x, t) - 0.5 * g * g * score


class VESDE:
    """Variance-exploding SDE: ``x_t = x_0 + sigma(t) eps`` with a geometric ``sigma(t)``."""

    T: float = 1.0

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t) -> Tensor:
        t = torch.as_tensor(t)
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        s = self.sigma(t)
        return torch.ones_like(s), s

    def prior_sample(self, shape, generator: torch.Generator | None = None, device=None) -> Tensor:
        return self.sigma_max * torch.randn(shape, generator=generator, device=device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        return -0.5 * (x * x).sum(-1) / self.sigma_max**2 - d * math.log(self.sigma_max) - 0.5 * d * math.log(
            2 * math.pi)

    def probability_flow(self, x: Tensor, t: Tensor, score: Tensor) -> Tensor:
        g = self.diffusion(t).to(x.dtype)
        return -0.5 * g * g * score


def time_grid(steps: int, t_min: float = 1e-3, T: float = 1.0, device=None) -> Tensor:
    """``steps + 1`` times from ``T`` down to ``t_min``, evenly spaced."""
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    return torch.linspace(T, t_min, int(steps) + 1, device=device)


def reverse_euler_maruyama(sde: VPSDE | VESDE, score_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                           ts: Tensor, generator: torch.Generator | None = None,
                           noise_last: bool = False) -> Tensor:
    """Integrate the reverse SDE from ``ts[0]`` down to ``ts[-1]`` by Euler-Maruyama; returns the end state.

    Per step ``dt = t_{i+1} - t_i < 0``:
    ``x <- x + [f(x, t) - g(t)^2 score(x, t)] dt + g(t) sqrt(-dt) z``. The last step adds no
    noise unless ``noise_last`` (the usual "denoised" output, Song et al. 2021). Converges
    weakly with order 1 in the step.
    """
    ts = torch.as_tensor(ts, dtype=x.dtype, device=x.device)
    n = len(ts) - 1
    for i in range(n):
        t, dt = ts[i], ts[i + 1] - ts[i]
        g = sde.diffusion(t).to(x.dtype)
        x = x + (sde.drift(x, t) - g * g * score_fn(x, t)) * dt
        if i < n - 1 or noise_last:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + g * (-dt).sqrt() * z
    return x


__all__ = ["VPSDE", "VESDE", "time_grid", "reverse_euler_maruyama"]
