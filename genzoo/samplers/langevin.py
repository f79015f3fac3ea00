"""Langevin dynamics: unadjusted (ULA), Metropolis-adjusted (MALA) and annealed (NCSN).

All three move a batch of chains ``x`` (B, D) along a score ``s(x) = grad log p(x)``:

    x <- x + (eps / 2) * s(x) + sqrt(eps * T) * xi,    xi ~ N(0, I)

- :func:`langevin` is the unadjusted chain (Roberts & Tweedie 1996). Its stationary law is
  p (at temperature T = 1) up to an O(eps) bias; ``step_size`` and ``temperature`` may be
  schedules (one value per step), which is how "annealed" step sizes or tempering are done.
- :func:`mala` adds the Metropolis-Hastings correction (Roberts & Tweedie 1996), so the chain
  leaves p exactly invariant whatever the step; it needs the unnormalised log-density.
- :func:`annealed_langevin` is Song & Ermon (2019, NCSN, Algorithm 1): a noise-conditional
  score ``s(x, sigma)`` is followed from the largest noise level to the smallest with step
  ``alpha_i = eps * sigma_i^2 / sigma_L^2``; optionally a final denoising step
  ``x + sigma_L^2 s(x, sigma_L)`` (Jolicoeur-Martineau et al. 2021) removes the last noise.

Every function counts network evaluations (``nfe``) per chain: one per score (or
log-density-and-gradient) evaluation. Randomness comes from torch's global RNG, so callers
wrap calls in ``genzoo.base.torch_seed`` for reproducibility.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (B, D) -> (B, D)
LogProbFn = Callable[[torch.Tensor], torch.Tensor]  # (B, D) -> (B,)


@dataclass
class LangevinResult:
    """Final chain states, network evaluations per chain; for MALA the acceptance rate and steps."""

    x: torch.Tensor
    nfe: int
    accept_rate: float | None = None
    step_size: torch.Tensor | None = None  # MALA's per-chain steps after adaptation (B, 1)


def score_from_log_prob(log_prob: LogProbFn) -> ScoreFn:
    """The score ``grad_x log p(x)`` of an (unnormalised) log-density, by autograd."""

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(log_prob(x).sum(), x)
        return g.detach()

    return score


def _schedule(value: float | Sequence[float] | torch.Tensor, n_steps: int, name: str) -> list[float]:
    """A per-step list from a constant or a sequence of length ``n_steps`` (all positive)."""
    if isinstance(value, torch.Tensor):
        value = value.tolist() if value.dim() else float(value)
    if isinstance(value, (int, float)):
        vals = [float(value)] * n_steps
    else:
        vals = [float(v) for v in value]
        if len(vals) != n_steps:
            raise ValueError(f"{name} has {len(vals)} values but n_steps is {n_steps}")
    if not all(v > 0 and math.isfinite(v) for v in vals):
        raise ValueError(f"{name} must be positive and finite")
    return vals


def geometric_schedule(start: float, end: float, n_steps: int) -> list[float]:
    """``n_steps`` values from ``start`` to ``end`` evenly spaced in log (a step-size or sigma ladder)."""
    if n_steps == 1:
        return [float(end)]
    r = math.log(end / start) / (n_steps - 1)
    return [float(start * math.exp(r * k)) for k in range(n_steps)]


def langevin(score: ScoreFn, x0: torch.Tensor, *, step_size: float | Sequence[float], n_steps: int,
             temperature: float | Sequence[float] = 1.0, final_noise: bool = True) -> LangevinResult:
    """Unadjusted Langevin: ``n_steps`` moves of ``x + eps/2 s(x) + sqrt(eps T) xi``.

    ``step_size`` (eps) and ``temperature`` (T) are constants or per-step schedules; with
    ``final_noise=False`` the last move is a pure gradient step (a common way to end a
    chain without its last injection of noise). Returns the chains and ``nfe = n_steps``.
    """
    n_steps = int(n_steps)
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0; got {n_steps}")
    eps = _schedule(step_size, n_steps, "step_size")
    temp = _schedule(temperature, n_steps, "temperature")
    x = x0.detach().clone()
    for k in range(n_steps):
        drift = 0.5 * eps[k] * score(x)  # (B, D)
        x = x + drift
        if final_noise or k < n_steps - 1:
            x = x + math.sqrt(eps[k] * temp[k]) * torch.randn_like(x)
    return LangevinResult(x, n_steps)


def mala(log_prob: LogProbFn, x0: torch.Tensor, *, step_size: float | Sequence[float] | torch.Tensor,
         n_steps: int, adapt: bool = False, target_accept: float = 0.57) -> LangevinResult:
    """Metropolis-adjusted Langevin: a Langevin proposal accepted with the Hastings ratio.

    ``log_prob`` is the unnormalised log-density (B, D) -> (B,); its gradient comes from
    autograd, so each step costs one forward and one backward pass (``nfe`` counts one per
    step). ``step_size`` may be a (B, 1) tensor (one step per chain). With ``adapt=True``
    each chain's step is nudged towards ``target_accept`` (Roberts & Rosenthal 1998's 0.574)
    -- use that for burn-in only, since adaptation breaks exact invariance.
    """
    n_steps = int(n_steps)
    x = x0.detach().clone()
    b = x.shape[0]
    if isinstance(step_size, torch.Tensor) and step_size.dim() == 2:
        eps_t = step_size.detach().clone().to(x)
        sched = None
    else:
        sched = _schedule(step_size, n_steps, "step_size")
        eps_t = None

    def lp_and_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            lp = log_prob(z)  # (B,)
            (g,) = torch.autograd.grad(lp.sum(), z)
        return lp.detach(), g.detach()

    lp, g = lp_and_grad(x)
    accepted = 0.0
    for k in range(n_steps):
        eps = eps_t if eps_t is not None else torch.full((b, 1), sched[k], dtype=x.dtype, device=x.device)
        mean_fwd = x + 0.5 * eps * g
        prop = mean_fwd + eps.sqrt() * torch.randn_like(x)
        lp_p, g_p = lp_and_grad(prop)
        mean_bwd = prop + 0.5 * eps * g_p
        # log q(x | prop) - log q(prop | x) for the Gaussian proposals N(mean, eps I)
        log_q_bwd = -((x - mean_bwd) ** 2).sum(1) / (2 * eps[:, 0])
        log_q_fwd = -((prop - mean_fwd) ** 2).sum(1) / (2 * eps[:, 0])
        log_alpha = lp_p - lp + log_q_bwd - log_q_fwd
        log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)
        acc = torch.rand(b, device=x.device).log() < log_alpha  # (B,)
        x = torch.where(acc[:, None], prop, x)
        lp = torch.where(acc, lp_p, lp)
        g = torch.where(acc[:, None], g_p, g)
        accepted += float(acc.float().mean())
        if adapt and eps_t is not None:
            eps_t = eps_t * torch.exp(0.1 * (acc.float()[:, None] - target_accept))
    rate = accepted / n_steps if n_steps else None
    return LangevinResult(x, n_steps + 1, rate, eps_t)


def annealed_langevin(score: Callable[[torch.Tensor, float], torch.Tensor], x0: torch.Tensor, *,
                      sigmas: Sequence[float], steps_per_level: int, eps: float,
                      denoise: bool = True) -> LangevinResult:
    """Annealed Langevin dynamics (Song & Ermon 2019): ULA at each noise level, largest first.

    ``score(x, sigma)`` is the score of the data convolved with N(0, sigma^2 I); ``sigmas``
    run from large to small; the step at level i is ``eps * sigma_i^2 / sigma_L^2``. With
    ``denoise`` a last Tweedie step ``x + sigma_L^2 s(x, sigma_L)`` returns the posterior mean
    of the clean point (one more evaluation).
    """
    sig = [float(s) for s in sigmas]
    if not sig or any(not (s > 0) for s in sig):
        raise ValueError("sigmas must be a non-empty sequence of positive noise levels")
    x = x0.detach().clone()
    nfe = 0
    for s in sig:
        alpha = eps * (s / sig[-1]) ** 2
        for _ in range(int(steps_per_level)):
            x = x + 0.5 * alpha * score(x, s) + math.sqrt(alpha) * torch.randn_like(x)
            nfe += 1
    if denoise:
        x = x + sig[-1] ** 2 * score(x, sig[-1])
        nfe += 1
    return LangevinResult(x, nfe)


__all__ = ["LangevinResult", "langevin", "mala", "annealed_langevin", "score_from_log_prob",
           "geometric_schedule"]
