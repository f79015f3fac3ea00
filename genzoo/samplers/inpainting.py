"""Inpainting by RePaint (Lugmayr et al. 2022), written once for every reverse sampler.

A reverse sampler walks a grid of noise levels from pure noise to the data. To draw the
missing coordinates given the observed ones, RePaint runs the same walk and, before every
step, overwrites the observed coordinates with a fresh draw of their forward marginal at the
current level (the observed values noised to that level). One pass of this is biased: the
free coordinates are stepped with observed coordinates they never influenced. RePaint
therefore repeats each step ``resample`` times, jumping back from the new level to the old
one in between with the forward noising kernel, so the two parts settle into agreement.

:func:`repaint` is that loop over three callables (step, forward marginal, forward jump), so
it serves every process:

- VP diffusion (``genzoo.samplers.ancestral.sample_loop`` with ``known``/``mask``),
- the VE reverse SDE of the ``score`` family,
- the linear path of flow matching and rectified flow (:func:`inpaint_linear_path`, with the
  stochastic :func:`linear_path_step`).

:class:`LinearPathImputation` is the estimator side of the last one (the ``_impute_std`` of
the families whose sampler is a linear-path velocity field).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from genzoo.samplers.conditional import density_route
from genzoo.samplers.ode import VelocityFn

Tensor = torch.Tensor

#: step(x, t, s, last) -> x at level s: one reverse step from level t to the next level s
StepFn = Callable[[Tensor, Any, Any, bool], Tensor]
#: marginal(known, t) -> a draw of the observed values noised forward to level t
MarginalFn = Callable[[Tensor, Any], Tensor]
#: jump(x, s, t) -> a draw of the state at level t given the state at the cleaner level s
JumpFn = Callable[[Tensor, Any, Any], Tensor]


def repaint(step: StepFn, marginal: MarginalFn, jump: JumpFn, x: Tensor, levels: Sequence, known: Tensor,
            mask: Tensor, *, resample: int = 1, resample_last: bool = True,
            return_path: bool = False) -> tuple[Tensor | list[Tensor], int]:
    """Run a reverse sampler through ``levels`` with the coordinates where ``mask`` is True held to ``known``.

    ``x``: the start at ``levels[0]`` (noise); ``levels``: the grid from noise to data, in
    whatever parametrisation the callables use (times, log-SNRs, sigmas). For each step
    ``t -> s`` and each of its ``resample`` repetitions: the observed coordinates are replaced
    by ``marginal(known, t)``, the state is stepped by ``step(x, t, s, last)`` (``last``: the
    step onto the final level), and, between repetitions, taken back to level ``t`` by
    ``jump(x, s, t)``. ``resample_last=False`` runs the final step once (a sampler whose last
    step is a deterministic denoising has nothing to harmonise there). Returns the filled
    state (observed entries exactly ``known``), or with ``return_path=True`` the states after
    each level (start included), and the number of ``step`` calls.
    """
    resample = int(resample)
    if resample < 1:
        raise ValueError(f"resample must be >= 1; got {resample}")
    n = len(levels) - 1
    if n < 1:
        raise ValueError("repaint needs at least two levels")
    path = [x] if return_path else None
    nfe = 0
    for i in range(n):
        t, s = levels[i], levels[i + 1]
        last = i == n - 1
        reps = 1 if (last and not resample_last) else resample
        for r in range(reps):
            x = torch.where(mask, marginal(known, t), x)
            x = step(x, t, s, last)
            nfe += 1
            if r < reps - 1:
                x = jump(x, s, t)
        if path is not None:
            path.append(torch.where(mask, known, x) if last else x)
    x = torch.where(mask, known, x)
    return (path if path is not None else x), nfe


# ---------------------------------------------------------------- the linear path
def linear_path_step(f: VelocityFn, x: Tensor, t: float, s: float) -> Tensor:
    """One stochastic step ``t -> s`` (``s > t``) of the linear path, one evaluation of ``f``.

    On ``x_t = t x1 + (1 - t) x0``, ``x_t / t`` is a variance-exploding process around ``x1``
    with ``sigma_t = (1 - t) / t``; the step draws ``x_s`` from its Gaussian posterior
    ``q(x_s | x_t, x1)`` with ``x1`` replaced by the field's estimate ``x_t + (1 - t) v``
    (DDPM's ancestral step, Ho et al. 2020, written for this path). With ``r = (sigma_s /
    sigma_t)^2``: ``x_s = s (1 - r) x1_hat + (s r / t) x_t + (1 - s) sqrt(1 - r) eps``; finite
    at ``t = 0`` and exact (``x_s = x1_hat``) at ``s = 1``.
    """
    v = f(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    x1_hat = x + (1 - t) * v
    r = ((1 - s) * t / ((1 - t) * s)) ** 2
    keep = (1 - s) ** 2 * t / ((1 - t) ** 2 * s)  # s r / t without the 0 / 0 at t = 0
    return s * (1 - r) * x1_hat + keep * x + (1 - s) * math.sqrt(max(1 - r, 0.0)) * torch.randn_like(x)


def linear_path_jump(x: Tensor, s: float, t: float) -> Tensor:
    """Take ``x_s`` back to the noisier time ``t < s`` of the linear path, preserving its marginal:
    ``x_t = (t / s) x_s + sqrt((1 - t)^2 - (t / s)^2 (1 - s)^2) eps``."""
    sd = max((1 - t) ** 2 - (t / s) ** 2 * (1 - s) ** 2, 0.0) ** 0.5
    return (t / s) * x + sd * torch.randn_like(x)


@torch.no_grad()
def inpaint_linear_path(f: VelocityFn, known: Tensor, mask: Tensor, *, steps: int = 50,
                        resample: int = 10) -> tuple[Tensor, int]:
    """Fill the entries of ``known`` where ``mask`` is False by :func:`repaint` on the linear path.

    The observed coordinates are drawn from their path marginal ``t x_obs + (1 - t) eps``;
    the step is the stochastic :func:`linear_path_step` (a deterministic ODE step would not
    do: replacing the observed coordinates with fresh noise breaks the ODE's coupling, and on
    a ring the draws came out biased inwards, |y| 0.74 for 0.99); the jump back is
    :func:`linear_path_jump`. ``steps`` uniform steps in ``t``, each repeated ``resample``
    times. Returns the filled array (observed entries exactly as given) and the NFE per row.
    """
    ts = torch.linspace(0.0, 1.0, int(steps) + 1).tolist()
    x = torch.randn_like(known)
    return repaint(lambda x, t, s, last: linear_path_step(f, x, t, s),
                   lambda k, t: t * k + (1 - t) * torch.randn_like(k),
                   linear_path_jump, x, ts, known, mask, resample=resample)


class LinearPathImputation:
    """``_impute_std`` shared by the families whose sampler is a velocity field on the linear path.

    Put before ``TorchGenerativeModel`` in the bases (so ``super()._impute_std`` is the base
    class's grid Gibbs); the family provides ``_unconditional_field()`` and the hyperparameters
    ``impute_method``, ``impute_steps`` and ``resample``.
    """

    #: the approximate ``impute(method=...)`` that the report measures beside the exact route
    approximate_impute = "repaint"

    def _unconditional_field(self) -> VelocityFn:
        raise NotImplementedError

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, steps: int | None = None,
                    resample: int | None = None, method: str | None = None):
        """Draws from p(missing | observed): grid Gibbs on the exact ODE density, or RePaint.

        ``method`` (default ``impute_method``): ``'grid'``: the base class's grid inverse-CDF
        on this model's own ODE density, exact for the model up to the grid (one 1-D grid per
        distinct observed part; affordable in a few dimensions); ``'repaint'``:
        :func:`inpaint_linear_path`, which assumes the path marginal ``t x + (1 - t) eps`` of
        independent noise -- exact in the limit for ``coupling='independent'``, but biased
        after minibatch-OT pairing or a reflow, whose noise is correlated with the data (ring,
        x = 0 observed: |y| 0.74 instead of 0.99); ``'sir'``: importance resampling by the ODE
        density (``_sir_impute_std``), exact for the model as its proposals grow, its cost
        independent of the width; ``'auto'``: for up to 16 distinct rows to fill, the grid up to 3
        dimensions and 'sir' up to 16; more rows, RePaint (the cost guard of
        :func:`genzoo.samplers.conditional.density_route`: each distinct row costs a few thousand ODE
        density evaluations).
        """
        from genzoo.base import torch_seed  # the estimator contract, imported only when used

        route = density_route(method or self.impute_method, Z, miss, "repaint", wide="sir")
        if route == "grid":
            return super()._impute_std(Z, miss, seed)
        if route == "sir":
            return self._sir_impute_std(Z, miss, seed)
        steps = int(self.impute_steps if steps is None else steps)
        resample = int(self.resample if resample is None else resample)
        dev = torch.device(self.device_)
        with torch_seed(seed, dev):
            out, nfe = inpaint_linear_path(self._unconditional_field(), self._tensor(np.where(miss, 0.0, Z)),
                                           torch.as_tensor(~miss, device=dev), steps=steps, resample=resample)
        self.last_nfe_ = nfe
        return out


__all__ = ["repaint", "linear_path_step", "linear_path_jump", "inpaint_linear_path", "LinearPathImputation",
           "StepFn", "MarginalFn", "JumpFn"]
