"""Shared pieces for the array families beyond 2-D: defaults that scale with the width ``D``, and
the imputation route choice with its cost guard.

Width-dependent defaults (each reduces to the 2-D value at ``D = 2``):

- network width ``None`` -> :func:`scaled_width`: the family's 2-D width up to ``D = 32``, then
  ``4 D`` rounded up to a multiple of 32 (a layer narrower than a few times its input loses
  information at the first layer);
- random Fourier features: the projection's spread is divided by ``sqrt(D / 2)``
  (:class:`genzoo.nn.mlp.FourierFeatures`), so ``x B`` keeps the same spread at any width;
- GAN latent ``None`` -> ``max(8, D)``;
- the flow's Gaussians per coordinate ``None`` -> 16 in 2-D, 4 beyond (sixteen overfit: on a 10-D
  mixture the held-out NLL gap fell 0.80 -> 0.41 nats, on three rings in 6-D 0.24 -> 0.10);
- a Gaussian-mixture start for the exact-density families (flow: ``base=None``; flow_matching,
  diffusion, autoregressive: ``prior=None``): beyond 2-D each is fitted with and without a
  full-covariance mixture fitted to the rows (size by BIC) and the better held-out likelihood is kept
  (``genzoo.families._prior``; 10-D mixture gaps 0.25-0.41 -> 0.03-0.06 nats), at twice the fit time.

Imputation beyond 2-D: the grid-Gibbs route costs about a thousand density evaluations per
missing coordinate per sweep per distinct row (hours for a thousand 10-D rows), so families with
a differentiable density use :func:`genzoo.samplers.mcmc.model_impute` (preconditioned MALA on the
model's own density, exact in the limit of many steps) and every route checks its cost first.
What ``impute`` costs per row to fill beyond 2-D, at the defaults ("pass" = one network evaluation):

================  ====================================================================================
flow, ebm         MCMC: 400 density-and-gradient passes (plus a pool of ``min(65536, max(4096, 32 n))``
                  samples to start from); guard ``genzoo.samplers.mcmc.MAX_ROW_EVALUATIONS``
autoregressive    a missing suffix: exact, one pass per missing coordinate; any other pattern: as flow
diffusion, score  up to 16 distinct rows and 16 columns: importance resampling ('sir'), ``SIR_PROPOSALS`` (4,096) ODE
                  likelihoods per distinct row plus a 20,000-sample pool, exact for the model as the
                  proposals grow; more rows: RePaint, ``impute_steps x resample`` = 1,000 passes
                  (approximate); ``method='grid'``: about 2,000 ODE likelihoods (~256 passes each) per
                  distinct row, missing coordinate and sweep, refused above ``ODE_GRID_MAX_EVALUATIONS``
flow_matching,    as diffusion; RePaint: ``impute_steps x resample`` = 500 passes (approximate)
rectified_flow
consistency       nearest draws of a pool of ``max(65536, 64 n)`` samples x ``sample_steps`` passes
gan               nearest draws of a pool of ``max(impute_pool, 128 n)`` generator passes
vae               ``max(impute_proposals, 20 r)`` decoder passes per distinct row, then ``impute_steps``
                  encoder/decoder sweeps
masked_diffusion  its unmasking sampler, ``steps`` passes
gmm, kde          closed form
================  ====================================================================================

MCMC on an ODE density (diffusion, flow matching, score) is not offered: every step would
backpropagate through an ODE solve, about 250 times the cost of a flow's step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

#: widths stay at the family's 2-D default up to this many columns
WIDE_FROM = 32
#: the grid-Gibbs route refuses above this many density evaluations (about 10 minutes of a small network)
GRID_MAX_EVALUATIONS = 50_000_000
#: ... and for a density that is an ODE solve (diffusion, flow matching, score: ~256 network passes each)
ODE_GRID_MAX_EVALUATIONS = 500_000


def scaled_width(hidden: int | None, dim: int, base: int = 128) -> int:
    """``hidden`` if given, else ``base`` up to ``WIDE_FROM`` columns and ``4 * dim`` (to a multiple of 32) beyond."""
    if hidden is not None:
        return int(hidden)
    return int(base) if dim <= WIDE_FROM else max(int(base), 32 * math.ceil(4 * dim / 32))


def impute_route(method: str | None, dim: int, choices: tuple[str, ...] = ("grid", "mcmc")) -> str:
    """'auto' (or None): 'grid' (grid-Gibbs on the density, the 2-D route) up to 2 columns, else 'mcmc'."""
    method = "auto" if method is None else method
    if method not in ("auto", *choices):
        raise ValueError(f"impute method must be one of {('auto', *choices)}; got {method!r}")
    if method == "auto":
        return "grid" if dim <= 2 else "mcmc"
    return method


def grid_cost(Z: np.ndarray, miss: np.ndarray, sweeps: int = 30, grid: int = 1024) -> int:
    """Density evaluations of grid-Gibbs: about ``2 grid`` per distinct row missing one coordinate, and
    per missing coordinate per sweep of every row missing several (their chains diverge after one sweep)."""
    from genzoo.samplers.conditional import distinct_rows

    k = miss.sum(1)
    one = k == 1
    return int((distinct_rows(Z[one], miss[one]) + np.sum(k[~one]) * int(sweeps)) * 2 * int(grid))


def check_grid_cost(Z: np.ndarray, miss: np.ndarray, family: str, sweeps: int = 30, grid: int = 1024,
                    limit: int = GRID_MAX_EVALUATIONS) -> None:
    """Raise a ValueError naming the cost when grid-Gibbs imputation would exceed ``limit`` evaluations."""
    cost = grid_cost(Z, miss, sweeps, grid)
    if cost > limit:
        raise ValueError(f"{family} impute(method='grid'): {len(miss)} rows missing {int(miss.sum())} values would "
                         f"take about {cost:,} density evaluations (cost guard {limit:,}); use method='mcmc' "
                         f"(about 400 per row) or impute fewer rows at a time")


def marginal_log_prob(model, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
                      ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable ``log p(z)`` for a torch family: ``fn(z, y)`` itself, or for a model fitted with
    labels the class marginal ``logsumexp_k [log prior_k + fn(z, k)]`` (what ``sample(n)`` draws)."""
    if not getattr(model, "n_classes_", 0):
        return lambda z: fn(z, None)
    dev = torch.device(model.device_)
    K = int(model.n_classes_)
    log_prior = torch.log(torch.as_tensor(np.maximum(model.class_prior_, 1e-300), dtype=torch.float32, device=dev))

    def lp(z: torch.Tensor) -> torch.Tensor:
        ys = torch.arange(K, device=dev).repeat_interleave(len(z))
        lk = fn(z.repeat(K, 1), ys).reshape(K, len(z)) + log_prior[:, None]
        return torch.logsumexp(lk, 0)

    return lp


__all__ = ["scaled_width", "impute_route", "grid_cost", "check_grid_cost", "marginal_log_prob", "WIDE_FROM",
           "GRID_MAX_EVALUATIONS", "ODE_GRID_MAX_EVALUATIONS"]
