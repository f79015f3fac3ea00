"""Imputation at any width by Markov chain Monte Carlo on a model's own density.

The grid-Gibbs route (:func:`genzoo.samplers.conditional.grid_gibbs_impute`) evaluates about a
thousand densities per missing coordinate per sweep per distinct row: exact and cheap in 2-D,
hours for a thousand 10-D rows. :func:`mala_impute` instead runs one preconditioned
Metropolis-adjusted Langevin chain per row on the missing coordinates of ``log p(z)`` (the
observed ones held fixed), so each step costs one forward and one backward pass of the model
for all rows together:

1. start: each row's missing values from a draw of the model whose observed values are near
   the row's (``nearest_conditional`` over a pool of the model's own samples): already roughly
   the conditional, spread over its modes in about the right proportions;
2. ``burn`` adaptive steps: rows that share a conditional (the same observed values and missing
   pattern) estimate its covariance from their current states, which becomes the proposal's
   preconditioner (refreshed four times), and each chain's step size is nudged towards 57%
   acceptance (Roberts & Rosenthal 1998);
3. ``steps`` steps with the preconditioner and step sizes frozen: plain MALA (Roberts & Tweedie
   1996), which leaves ``p(z_missing | z_observed)`` exactly invariant, so the draws are exact
   for the model in the limit of many steps. The start and the adaptation only change how fast
   that limit is approached.

Cost: ``(burn + steps + 1)`` density-and-gradient evaluations of every row to fill;
:func:`mcmc_cost` names it, and families refuse above ``MAX_ROW_EVALUATIONS`` with a message
that says so, instead of running for hours.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

#: the default number of frozen MALA steps after burn-in, and of adaptive burn-in steps
MCMC_STEPS, MCMC_BURN = 150, 250
#: the cost guard: rows x evaluations above this (e.g. 20,000 rows x 400 steps) are refused by default
MAX_ROW_EVALUATIONS = 8_000_000
#: most model samples in the pool that the chains start from (32 per row to fill, at least 4,096)
POOL = 65_536
_TARGET_ACCEPT = 0.57


def mcmc_cost(n_rows: int, steps: int = MCMC_STEPS, burn: int = MCMC_BURN) -> int:
    """Density-and-gradient evaluations :func:`mala_impute` spends: one per row per step (plus the start)."""
    return int(n_rows) * (int(steps) + int(burn) + 1)


def check_cost(n_rows: int, steps: int, burn: int, family: str, per_eval: str = "one pass of the network",
               limit: int = MAX_ROW_EVALUATIONS) -> None:
    """Raise a ValueError naming the cost when an MCMC imputation would exceed ``limit`` row-evaluations."""
    cost = mcmc_cost(n_rows, steps, burn)
    if cost > limit:
        raise ValueError(f"{family} impute: {n_rows} rows x {steps + burn + 1} MCMC steps = {cost:,} density-and-"
                         f"gradient evaluations ({per_eval} each) exceeds the cost guard of {limit:,}; impute fewer "
                         f"rows at a time, or pass steps= / burn= (fewer steps mix less), or max_cost= to allow it")


def _groups(Z: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """Group index per row: rows with the same missing pattern and observed values share a conditional."""
    key = np.where(miss, np.inf, Z)
    _, inv = np.unique(np.concatenate([key, miss.astype(np.float64)], 1), axis=0, return_inverse=True)
    return inv.ravel()


def _preconditioners(x: np.ndarray, miss: np.ndarray, group: np.ndarray, ridge: float = 1e-4
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``L`` and ``L^-1`` (n, d, d), zero outside the row's missing block.

    ``L L^T`` is the covariance of the row's group's current states on its missing coordinates
    (plus a ridge) when the group has at least ``2 k + 2`` rows for ``k`` missing coordinates;
    otherwise the identity on the missing block.
    """
    n, d = x.shape
    L = np.zeros((n, d, d))
    Li = np.zeros((n, d, d))
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        m = miss[rows[0]]
        k = int(m.sum())
        if k == 0:
            continue
        idx = np.ix_(m, m)
        if len(rows) >= 2 * k + 2:
            C = np.cov(x[np.ix_(rows, np.flatnonzero(m))], rowvar=False).reshape(k, k)
            v = np.trace(C) / k
            try:  # chains that all sit at one point (a degenerate start) get the identity
                c = np.linalg.cholesky(C + ridge * v * np.eye(k)) if v > 1e-8 else np.eye(k)
            except np.linalg.LinAlgError:
                c = np.eye(k)
        else:
            c = np.eye(k)
        ci = np.linalg.inv(c)
        Lb, Lib = np.zeros((d, d)), np.zeros((d, d))
        Lb[idx], Lib[idx] = c, ci
        L[rows], Li[rows] = Lb, Lib
    return L, Li


def mala_impute(log_prob: Callable[[torch.Tensor], torch.Tensor], Z: np.ndarray, miss: np.ndarray, init: np.ndarray,
                seed: int, *, steps: int = MCMC_STEPS, burn: int = MCMC_BURN, device: str | torch.device = "cpu",
                step_size: float = 0.5) -> np.ndarray:
    """Fill the ``miss`` entries of ``Z`` by preconditioned MALA on ``log_prob`` (see the module docstring).

    ``log_prob``: differentiable (B, d) -> (B,) unnormalised log-density in torch; ``init`` (n, d):
    starting values (only its missing entries are read). Observed entries never move. Returns (n, d).
    """
    Z = np.asarray(Z, dtype=np.float64)
    miss = np.asarray(miss, dtype=bool)
    n, d = Z.shape
    if n == 0 or not miss.any():
        return Z.copy()
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))
    x0 = np.where(miss, np.asarray(init, dtype=np.float64), Z)
    group = _groups(Z, miss)
    x = torch.as_tensor(x0, dtype=torch.float32, device=dev)
    eps = torch.full((n, 1), float(step_size), device=dev)

    def lp_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            lp = log_prob(z)
            (g,) = torch.autograd.grad(lp.sum(), z)
        lp, g = lp.detach(), g.detach()
        bad = ~torch.isfinite(lp)
        return lp.masked_fill(bad, -math.inf), torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)

    def set_pre(xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L, Li = _preconditioners(xs.double().cpu().numpy(), miss, group)
        return (torch.as_tensor(L, dtype=torch.float32, device=dev),
                torch.as_tensor(Li, dtype=torch.float32, device=dev))

    L, Li = set_pre(x)
    lp, g = lp_grad(x)
    refresh = {int(burn * f) for f in (0.2, 0.4, 0.6, 0.8)} if burn >= 10 else set()
    for t in range(int(burn) + int(steps)):
        if t in refresh:
            L, Li = set_pre(x)
            lp, g = lp_grad(x)
        C = L @ L.transpose(1, 2)  # (n, d, d), zero outside the missing block
        drift = 0.5 * eps * torch.einsum("nij,nj->ni", C, g)
        xi = torch.randn(n, d, generator=gen).to(dev)
        prop = x + drift + eps.sqrt() * torch.einsum("nij,nj->ni", L, xi)
        lp_p, g_p = lp_grad(prop)
        drift_p = 0.5 * eps * torch.einsum("nij,nj->ni", C, g_p)
        r_fwd = torch.einsum("nij,nj->ni", Li, prop - x - drift)  # = xi on the missing block
        r_bwd = torch.einsum("nij,nj->ni", Li, x - prop - drift_p)
        log_alpha = lp_p - lp - ((r_bwd ** 2).sum(1) - (r_fwd ** 2).sum(1)) / (2 * eps[:, 0])
        log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)
        u = torch.rand(n, generator=gen).to(dev)
        acc = (u.log() < log_alpha) & torch.isfinite(lp_p)
        x = torch.where(acc[:, None], prop, x)
        lp = torch.where(acc, lp_p, lp)
        g = torch.where(acc[:, None], g_p, g)
        if t < burn:  # adaptation, burn-in only (afterwards the chain is plain MALA)
            eps = eps * torch.exp(0.2 * (acc.float()[:, None] - _TARGET_ACCEPT))
    out = x.double().cpu().numpy()
    return np.where(miss, out, Z)


def model_impute(log_prob: Callable[[torch.Tensor], torch.Tensor], draw: Callable[[int, int], np.ndarray],
                 Z: np.ndarray, miss: np.ndarray, seed: int, *, family: str, steps: int | None = None,
                 burn: int | None = None, pool: int | None = None, max_cost: int | None = None,
                 device: str | torch.device = "cpu", per_eval: str = "one pass of the network") -> np.ndarray:
    """The whole route for a family with a differentiable density: cost guard, pooled start, MALA.

    ``draw(k, seed)`` returns k unconditional samples (k, d) of the model (the start's pool: ``pool``,
    default ``min(POOL, max(4096, 32 rows))``);
    ``log_prob`` as in :func:`mala_impute`. ``max_cost`` overrides ``MAX_ROW_EVALUATIONS``.
    """
    from genzoo.samplers.conditional import nearest_conditional

    steps = MCMC_STEPS if steps is None else int(steps)
    burn = MCMC_BURN if burn is None else int(burn)
    if steps < 0 or burn < 0:
        raise ValueError(f"steps and burn must be >= 0; got steps={steps}, burn={burn}")
    check_cost(len(Z), steps, burn, family, per_eval, MAX_ROW_EVALUATIONS if max_cost is None else int(max_cost))
    rng = np.random.default_rng(seed)
    M = int(min(POOL, max(4096, 32 * len(Z))) if pool is None else pool)
    P = np.asarray(draw(M, int(rng.integers(2**62))), dtype=np.float64)
    init = nearest_conditional(P, Z, miss, rng, k=min(256, M), per_row=2)
    return mala_impute(log_prob, Z, miss, init, int(rng.integers(2**62)), steps=steps, burn=burn, device=device)


__all__ = ["model_impute", "MCMC_STEPS", "MCMC_BURN", "MAX_ROW_EVALUATIONS", "POOL", "mcmc_cost", "check_cost",
           "mala_impute"]
