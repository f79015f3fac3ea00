"""ODE integrators for ``dx/dt = f(x, t)`` and the instantaneous change-of-variables likelihood.

Every continuous-time family samples by integrating a velocity field: flow matching and
rectified flow directly, diffusion and score models through their probability-flow ODE
(Song et al. 2021), consistency models through a teacher's ODE. They all call the two
functions here:

``integrate(f, x0, t0, t1, method=..., steps=...) -> (x1, nfe)``
    Fixed-step Euler (order 1), Heun (order 2) and classic Runge-Kutta 4 (order 4), or an
    adaptive embedded Runge-Kutta solver from torchdiffeq (``'dopri5'``, ``'dopri8'``,
    ``'bosh3'``, ``'adaptive_heun'``) controlled by ``rtol``/``atol``.

``log_likelihood(f, x, t_data, t_noise, base_log_prob, ...) -> (log_p, nfe)``
    The instantaneous change of variables (Chen et al. 2018, "Neural ODEs"; Grathwohl et
    al. 2019, "FFJORD"): along a trajectory ``d log p(x_t)/dt = -div f(x_t, t)``, so

        log p_data(x) = log p_noise(x(t_noise)) + int_{t_data}^{t_noise} div f(x_t, t) dt.

    ``x`` and the log-determinant are integrated jointly. The divergence is exact (one
    backward pass per dimension) in low dimension and Hutchinson's unbiased trace
    estimate ``eps^T (df/dx) eps`` with Rademacher probes, fixed over the solve, beyond.

``ProbabilityFlow(f, t_noise, t_data, noise_std)``
    A model's deterministic sampling ODE as data: families with one expose it as
    ``model.probability_flow(y=None, guidance=0.0) -> ProbabilityFlow`` (in the model's
    standardised space, ``z = (x - model.loc_) / model.scale_``). Integrating ``f`` from
    ``t_noise`` (where ``x ~ N(0, noise_std^2 I)``) to ``t_data`` samples the model; the
    reverse direction gives ``log_likelihood``; the optional ``perturb(x, t, eps)`` is the
    forward noising kernel (needed by a student's multistep sampler). A consistency model distils from any
    estimator exposing it (the teacher is passed in, never imported).

Conventions: ``f(x, t)`` takes a batch ``x`` of shape ``(B, D)`` and a time tensor ``t`` of
shape ``(B,)`` (all entries equal) and returns the velocity ``(B, D)``; time may run
forwards or backwards (``t1 < t0`` is fine). ``nfe`` counts calls of ``f`` (network
evaluations per sample: one call evaluates the whole batch). ``f`` may close over
per-row context such as labels, so these functions never split or repeat the batch:
callers that score many rows pass them in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: f(x: (B, D), t: (B,)) -> velocity (B, D)
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]



@dataclass(frozen=True)
class ProbabilityFlow:
    """A deterministic sampling ODE ``dx/dt = f(x, t)`` between a Gaussian and the model's data.

    ``x(t_noise) ~ N(0, noise_std^2 I)``; integrating to ``t_data`` gives model samples (in
    the model's standardised space). ``t_noise`` may be larger or smaller than ``t_data``
    (diffusion: noise at 1, data at ~0; flow matching: noise at 0, data at 1).
    """

    f: VelocityFn
    t_noise: float
    t_data: float
    noise_std: float = 1.0
    #: optional forward marginal ``perturb(x_data, t, eps) -> x_t`` (eps ~ N(0, I)): lets a
    #: student (consistency model) re-noise to an intermediate time for multistep sampling;
    #: flow matching: ``(1 - t) eps + t x``, VP diffusion: ``alpha_t x + sigma_t eps``
    perturb: Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor] | None = None

    def sample(self, n: int, dim: int, *, method: str = "heun", steps: int = 100,
               device: torch.device | str = "cpu", **kw) -> tuple[torch.Tensor, int]:
        """``n`` samples ``(n, dim)`` by integrating from noise to data; ``(x, nfe)``."""
        x0 = self.noise_std * torch.randn(n, dim, device=device)
        return integrate(self.f, x0, self.t_noise, self.t_data, method=method, steps=steps, **kw)

    def log_prob(self, x: torch.Tensor, **kw) -> tuple[torch.Tensor, int]:
        """``log_likelihood`` of ``x`` under this flow with its Gaussian prior; ``(log_p, nfe)``."""
        s = float(self.noise_std)

        def prior(z: torch.Tensor) -> torch.Tensor:
            return standard_normal_log_prob(z / s) - z.shape[1] * math.log(s)

        return log_likelihood(self.f, x, self.t_data, self.t_noise, prior, **kw)


FIXED_METHODS = ("euler", "heun", "rk4")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "adaptive_heun")
METHODS = FIXED_METHODS + ADAPTIVE_METHODS


def _check(method: str, steps: int) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown ODE method {method!r}; choose from {', '.join(METHODS)}")
    if method in FIXED_METHODS and (isinstance(steps, bool) or int(steps) != steps or int(steps) < 1):
        raise ValueError(f"steps must be a positive integer; got {steps!r}")


def _time(t: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)  # (B,)


def _fixed_step(F: VelocityFn, x: torch.Tensor, t: float, h: float, method: str) -> torch.Tensor:
    """One step of size ``h`` from time ``t`` with Euler, Heun (explicit trapezoid) or RK4."""
    k1 = F(x, _time(t, x))
    if method == "euler":
        return x + h * k1
    if method == "heun":
        k2 = F(x + h * k1, _time(t + h, x))
        return x + 0.5 * h * (k1 + k2)
    k2 = F(x + 0.5 * h * k1, _time(t + 0.5 * h, x))
    k3 = F(x + 0.5 * h * k2, _time(t + 0.5 * h, x))
    k4 = F(x + h * k3, _time(t + h, x))
    return x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def evals_per_step(method: str) -> int:
    """Network evaluations one fixed step of ``method`` costs (Euler 1, Heun 2, RK4 4)."""
    return {"euler": 1, "heun": 2, "rk4": 4}[method]


def integrate(f: VelocityFn, x0: torch.Tensor, t0: float, t1: float, *, method: str = "heun",
              steps: int = 100, rtol: float = 1e-5, atol: float = 1e-5,
              return_path: bool = False) -> tuple[torch.Tensor, int]:
    """Solve ``dx/dt = f(x, t)`` from ``x(t0) = x0`` to ``t1``; returns ``(x(t1), nfe)``.

    ``method``: ``'euler'``, ``'heun'``, ``'rk4'`` take ``steps`` equal steps (``nfe`` =
    steps x 1, 2, 4; Heun's last step is not shortened to one evaluation, so the count is
    what was run). ``'dopri5'`` (and torchdiffeq's other adaptive solvers) choose their own
    steps to keep the local error below ``atol + rtol * |x|``; ``steps`` is ignored.
    With ``return_path=True`` (fixed-step methods only) the first element is the whole
    trajectory, shape ``(steps + 1, B, D)``, e.g. for path-straightness measurements.

    Gradients flow through the solve if the caller has them enabled; samplers call it
    under ``torch.no_grad()``.

    >>> x1, nfe = integrate(lambda x, t: -x, torch.ones(3, 2), 0.0, 1.0, method="rk4", steps=10)
    >>> round(float(x1[0, 0]), 5), nfe  # exp(-1) = 0.367879...
    (0.36788, 40)
    """
    _check(method, steps)
    nfe = 0

    def F(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return f(x, t)

    if method in ADAPTIVE_METHODS:
        if return_path:
            raise ValueError("return_path needs a fixed-step method (euler, heun, rk4)")
        from torchdiffeq import odeint

        ts = torch.tensor([float(t0), float(t1)], dtype=x0.dtype, device=x0.device)
        out = odeint(lambda t, x: F(x, t.expand(x.shape[0])), x0, ts, method=method,
                     rtol=float(rtol), atol=float(atol))
        return out[-1], nfe
    n = int(steps)
    h = (float(t1) - float(t0)) / n
    x = x0
    path = [x0] if return_path else None
    for k in range(n):
        x = _fixed_step(F, x, float(t0) + k * h, h, method)
        if path is not None:
            path.append(x)
    return (torch.stack(path) if path is not None else x), nfe


# ----------------------------------------------------------------------------- divergence
def divergence(f: VelocityFn, x: torch.Tensor, t: torch.Tensor, *, probes: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(x, t), div_x f(x, t))``; exact by autograd when ``probes`` is None, else Hutchinson.

    Exact: one forward pass and D backward passes (row ``i`` of the Jacobian's diagonal per
    pass), cheap for small D. Hutchinson (``probes`` of shape ``(K, B, D)``, zero-mean with
    identity covariance, e.g. Rademacher): ``mean_k eps_k^T (df/dx) eps_k``, one
    vector-Jacobian product per probe, unbiased for any D.
    Both outputs are detached.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = f(x, t)  # (B, D)
        D = x.shape[1]
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if not v.requires_grad:  # f does not depend on x at all
            return v.detach(), div
        if probes is None:
            for i in range(D):
                (g,) = torch.autograd.grad(v[:, i].sum(), x, retain_graph=i < D - 1, allow_unused=True)
                if g is not None:
                    div = div + g[:, i]
        else:
            K = probes.shape[0]
            for k in range(K):
                (g,) = torch.autograd.grad((v * probes[k]).sum(), x, retain_graph=k < K - 1, allow_unused=True)
                if g is not None:
                    div = div + (g * probes[k]).sum(1)
            div = div / K
    return v.detach(), div.detach()


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row, ``(B, D) -> (B,)``: the usual base density."""
    return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def log_likelihood(f: VelocityFn, x: torch.Tensor, t_data: float, t_noise: float,
                   base_log_prob: Callable[[torch.Tensor], torch.Tensor] = standard_normal_log_prob, *,
                   method: str = "rk4", steps: int = 64, rtol: float = 1e-5, atol: float = 1e-5,
                   divergence_kind: str = "auto", exact_max_dim: int = 10, n_probes: int = 1
                   ) -> tuple[torch.Tensor, int]:
    """``log p(x)`` at ``t_data`` under the flow of ``f``, via the change of variables; ``(log_p, nfe)``.

    Integrates ``[x, delta]`` with ``dx/dt = f`` and ``d delta/dt = div f`` from ``t_data``
    to ``t_noise`` and returns ``base_log_prob(x(t_noise)) + delta(t_noise)`` (shape ``(B,)``).
    ``divergence_kind``: ``'exact'`` (autograd), ``'hutchinson'`` (unbiased estimate, one
    Rademacher probe set per call drawn from torch's global RNG, so wrap in a seed for
    reproducibility) or ``'auto'`` (exact up to ``exact_max_dim`` dimensions). The result
    is an exact likelihood up to solver error for ``'exact'`` and an unbiased estimate of
    the log-determinant term (not of ``p``) for ``'hutchinson'``.
    ``nfe`` counts forward evaluations of ``f``; each also costs D backward passes (exact)
    or ``n_probes`` (Hutchinson).

    >>> # the flow x_t = exp(t) x pushes N(0, 1) at t = 0 to N(0, e^2) at t = 1
    >>> lp, _ = log_likelihood(lambda x, t: x, torch.zeros(1, 1), 1.0, 0.0, method="rk4", steps=20)
    >>> round(float(lp), 4), round(-0.5 * math.log(2 * math.pi) - 1.0, 4)
    (-1.9189, -1.9189)
    """
    if divergence_kind not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"divergence_kind must be 'auto', 'exact' or 'hutchinson'; got {divergence_kind!r}")
    B, D = x.shape
    exact = divergence_kind == "exact" or (divergence_kind == "auto" and D <= int(exact_max_dim))
    probes = None
    if not exact:
        probes = torch.randint(0, 2, (int(n_probes), B, D), device=x.device).to(x.dtype) * 2 - 1

    def aug(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # s: (B, D + 1) = [x, delta]
        v, div = divergence(f, s[:, :D], t, probes=probes)
        return torch.cat([v, div[:, None]], dim=1)

    s0 = torch.cat([x.detach(), torch.zeros(B, 1, dtype=x.dtype, device=x.device)], dim=1)
    with torch.no_grad():
        s1, nfe = integrate(aug, s0, t_data, t_noise, method=method, steps=steps, rtol=rtol, atol=atol)
        return base_log_prob(s1[:, :D]) + s1[:, D], nfe


__all__ = ["ProbabilityFlow", "integrate", "log_likelihood", "divergence", "standard_normal_log_prob",
           "evals_per_step", "METHODS", "FIXED_METHODS", "ADAPTIVE_METHODS", "VelocityFn"]
