"""Conditional flow matching (Lipman et al. 2023; Liu et al. 2023; Tong et al. 2023).

One breath: draw noise ``x0`` and data ``x1``, pick a time ``t``, and regress a velocity field
at ``x_t = (1 - t) x0 + t x1`` on the velocity of the straight line between them, ``x1 - x0``
(or on its average over the batch given ``x_t``, the stable target); sample by integrating
``dx/dt = v`` from noise (t = 0) to data (t = 1).

Defaults, and why (the measurements, with the commands that reproduce them, are in
``benchmarks/RESULTS.md``, section ``flow_matching``):

- Path: the linear (rectified / OT-displacement) path with ``sigma_min = 0``; its target
  velocity ``x1 - x0`` is exact, and the marginal field it learns transports N(0, I) to the
  data exactly (Lipman et al., Thm. 2; Liu et al., Thm. 3.3).
- ``coupling='independent'`` with ``stable_target='auto'``: the regression target is the
  stable target field (Xu et al. 2023, as in ``score``), the marginal velocity
  ``(E[x1 | x_t] - x_t) / (1 - t)`` with ``E[x1 | x_t]`` averaged over the batch's data rows:
  the same minimiser as one pair's ``x1 - x0`` with far less variance. ``coupling='ot'``
  (minibatch optimal transport in 64-row blocks, Tong et al. 2023's OT-CFM) keeps the pair
  target: straighter paths, but it overfits and its density is worse (grid25 gap 0.022 for
  the default against 0.025-0.031 under OT, seed 0). With labels the batch average / the
  pairing is done within each class.
- Network: a 4 x 128 SiLU MLP on ``[x, sin(x B), cos(x B), features of logit(t), label]``
  with 64 random Fourier features of ``x`` (scale 5; Tancik et al. 2020), without which the
  thin modes of ``grid25`` are not reached; samplers and the likelihood use an exponential
  moving average of the weights. ``lr=4e-3`` and batch 512 for 6,000 steps: the best of the
  settings tried at the same time budget.
- ``prior=None``: in 2-D the network alone; beyond, fitted twice, with and without a Gaussian-mixture
  prior field (the network adds to the closed-form velocity of the path to a mixture fitted to the
  rows, ``genzoo.families._prior``), keeping the better held-out ODE likelihood (``prior_``; twice the
  fit). 10-D tilted mixture: held-out gap 0.281 -> 0.054 nats, on support 94 -> 98.7%; three rings in
  6-D keep the network alone (with the prior 1.05 against 0.22).
- ``early_stopping=False``: the validation loss is dominated by the target's irreducible
  variance, and stopping at its noisy minimum ends training too early.
- Sampling: fixed-step Euler / Heun / RK4 or adaptive dopri5 (``samplers.ode``) in log-time
  (``genzoo.samplers.ode.log_time``: steps geometric in ``1 - t``, where the field contracts
  onto thin modes), NFE per sample in ``last_nfe_``; or DPM-Solver++ 2M on the path
  (``sampler='dpm++'``, second order at one call per step; what ``sample(n, nfe=K)`` uses:
  on ``grid25`` 99.7% of samples on a mode at 20 calls, 97.2% at 10). Classifier-free guidance with one
  network trained with label dropout, genzoo's one convention
  ``v_uncond + g (v_cond - v_uncond)`` (``g = 1`` plain conditional, ``g = 0`` unconditional;
  ``genzoo.objectives.guidance``).
- Likelihood (``likelihood_kind='exact'``): the instantaneous change of variables
  (Chen et al. 2018) through the same ODE, fixed-step RK4 (64 steps, log-time; 256 steps
  agree to 0.001 nats), with the exact divergence up to 10 dimensions; beyond, a seeded
  multi-probe Hutchinson estimate and ``likelihood_kind='estimate'``. It is the density of
  the continuous normalising flow the sampler integrates, up to solver error. On a model
  fitted with labels, ``score_samples(X)`` is the marginal ``log sum_k prior_k p(x | k)``
  that ``sample(n)`` draws (``null_label=True``: the null-label density).
- Imputation (``impute_method``): up to 3 dimensions and 16 distinct rows to fill (the cost
  guard: each distinct row costs about a thousand ODE density evaluations), the base class's
  adaptive-grid inverse-CDF (Gibbs sweeps for several missing coordinates) on the exact ODE
  density: exact for the model up to solver and grid error. Wider data with as few distinct rows:
  importance resampling (``'sir'``: proposals from a Gaussian mixture fitted to the model's
  samples, weighted by its ODE density; exact for the model as the proposals grow; 10-D mixture,
  5 of 10 coordinates missing: energy distance 0.6-1.6x its floor where RePaint had 9-2,000x).
  Beyond, RePaint (Lugmayr et al. 2022) adapted to
  the linear path: the observed coordinates are replaced by fresh draws from their path
  marginal ``t x_obs + (1 - t) eps`` before every stochastic step, each step repeated
  ``resample`` times with an exact jump back in between. That marginal is the one of
  independent noise, so RePaint is right in the limit with ``coupling='independent'`` and
  biased under minibatch OT, which pairs noise with nearby data.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genzoo.base import TorchGenerativeModel, torch_seed
from genzoo.families._blocks import IndependentBlocks
from genzoo.families._prior import MixturePrior
from genzoo.families._wide import scaled_width
from genzoo.nn.velocity import VelocityModel, velocity_net
from genzoo.objectives.guidance import guided_velocity
from genzoo.objectives.paths import cfm_loss, use_stable_target
from genzoo.params import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    ODE_METHOD,
    POSITIVE,
    POSITIVE_INT,
    TRAINING,
    UNIT_OPEN_RIGHT,
    Options,
)
from genzoo.registry import register
from genzoo.samplers.fewstep import multistep_data_solver, path_levels, steps_for_budget
from genzoo.samplers.inpainting import LinearPathImputation
from genzoo.samplers.ode import (
    METHODS,
    ProbabilityFlow,
    TraceLikelihoodKind,
    integrate,
    log_likelihood,
    log_time,
    trace_options,
)

#: the ODE solvers of ``samplers.ode`` plus the few-step multistep solver
SAMPLER = [Options((*METHODS, "dpm++"))]


@register("flow_matching")
class FlowMatching(IndependentBlocks, MixturePrior, LinearPathImputation, TorchGenerativeModel):
    """Flow matching on the linear path (stable target field, or minibatch OT); ODE sampling, exact ODE likelihood.

    Fitted with labels, ``sample(n)`` draws the class from the training frequencies and
    ``score_samples(X)`` scores that marginal, ``log sum_k prior_k p(x | k)``; ``score_samples(X, y=k)``
    the class and ``null_label=True`` the null-label density.

    Parameters
    ----------
    coupling : str, default='independent'
        Noise-data pairing: 'independent' or 'ot' (exact minibatch optimal transport in 64-row blocks).
    hidden : int or None, default=None
        Width of the velocity MLP.
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=4
        Depth of the velocity MLP.
    time_dim : int, default=32
        Size of the sinusoidal time features.
    time_scale : float, default=4.0
        Frequency scale of the time features.
    fourier_features : int, default=64
        Random Fourier features sin/cos(x B) of the input (Tancik et al. 2020); 0 = raw coordinates
        only.
    fourier_scale : float, default=5.0
        Standard deviation of B per unit of standardised data at D <= 2, times sqrt(2 / D) beyond
        (``genzoo.nn.mlp.fourier_std``: the projection x B keeps its spread at any width).
    time_dist : str, default='uniform'
        Training times: 'uniform', or 'end' (half with 1 - t log-uniform, near the data).
    stable_target : 'auto' or bool, default='auto'
        Regress on the batch's stable target field (Xu et al. 2023) instead of the pair's ``x1 - x0``;
        'auto' = with independent noise only.
    label_dropout : float, default=0.1
        Share of training labels replaced by the null label, so one network also learns the
        unconditional model (guidance).
    guidance : float, default=1.0
        Classifier-free guidance ``uncond + g (cond - uncond)`` at sampling: 1 = plain conditional, 0 =
        unconditional, > 1 sharper (``genzoo.objectives.guidance``).
    ema_decay : float, default=0.999
        Decay of the weights' moving average, used for sampling and the likelihood.
    sampler : str, default='heun'
        ODE solver of ``sample``: 'euler', 'heun', 'rk4' (fixed steps, in log-time), 'dopri5'
        (adaptive) or 'dpm++' (DPM-Solver++ 2M, one call per step; ``nfe=K`` uses it).
    sample_steps : int, default=50
        Fixed steps of ``sample`` (ignored by 'dopri5'); NFE in ``last_nfe_``.
    likelihood_method : str, default='rk4'
        ODE solver of the likelihood (fixed steps unless 'dopri5').
    likelihood_steps : int, default=64
        Fixed steps of the likelihood solve.
    rtol : float, default=1e-5
        Relative tolerance of the adaptive ('dopri5') solves.
    atol : float, default=1e-5
        Absolute tolerance of the adaptive ('dopri5') solves.
    impute_method : str, default='auto'
        'grid' (inverse CDF / Gibbs on the exact ODE density), 'sir' (importance resampling by it),
        'repaint' or 'auto' (up to 16 distinct rows to fill: grid up to 3 dimensions, 'sir' up to 16;
        more rows: RePaint).
    impute_steps : int, default=50
        Reverse steps of RePaint imputation.
    resample : int, default=10
        RePaint resamplings per step (each with a jump back).
    prior : {'none', 'mixture'} or None, default=None
        'mixture': the network's velocity is added to the closed-form velocity of the path to a
        full-covariance Gaussian mixture fitted to the training rows (``genzoo.families._prior``), so it
        learns what the mixture misses; 'none': the network alone; None: 'none' in 2-D, on images and
        without held-out rows, otherwise both are fitted and the better held-out ODE likelihood is kept
        (``prior_``).
    prior_components : int or None, default=None
        Gaussians of the prior; None = the BIC choice among 1, 2, 4, 8, 16 on the training rows.
    factorise : bool or None, default=None
        Beyond 2-D, on continuous columns without labels: look for blocks of columns independent of each
        other and fit one model per block (``genzoo.families._blocks``). None: keep the product only when
        its held-out likelihood beats the joint fit's; True: keep it whenever blocks are found; False:
        the joint model only. Fitted: ``blocks_``, ``block_models_``, ``factorise_losses_``.
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("flow_matching", max_steps=200, verbose=0, random_state=0).fit(X)
    >>> m.sample(5, steps=10, sampler="euler", random_state=0).shape, m.last_nfe_
    ((5, 2), 10)
    """

    likelihood_kind = TraceLikelihoodKind()  # "estimate" when fitted on > 10 features (seeded Hutchinson trace)
    _capabilities = frozenset({"sample", "log_prob", "impute", "conditional"})
    _has_null_label = True
    summary = "flow matching (linear path, stable target or minibatch OT): ODE sampling, exact likelihood, guidance"
    _parameter_constraints = {
        **TRAINING, "coupling": [Options(("independent", "ot"))], "hidden": [*POSITIVE_INT, None],
        "layers": POSITIVE_INT,
        "time_dim": POSITIVE_INT, "time_scale": POSITIVE, "fourier_features": NON_NEGATIVE_INT,
        "fourier_scale": POSITIVE, "time_dist": [Options(("uniform", "end"))],
        "stable_target": [Options(("auto",)), "boolean"], "label_dropout": UNIT_OPEN_RIGHT,
        "guidance": NON_NEGATIVE, "ema_decay": UNIT_OPEN_RIGHT, "sampler": SAMPLER,
        "sample_steps": POSITIVE_INT, "likelihood_method": ODE_METHOD, "likelihood_steps": POSITIVE_INT,
        "rtol": POSITIVE, "atol": POSITIVE, "impute_method": [Options(("auto", "grid", "sir", "repaint"))],
        "impute_steps": POSITIVE_INT, "resample": POSITIVE_INT,
        "prior": [Options(("none", "mixture")), None], "prior_components": [*POSITIVE_INT, None],
        "factorise": ["boolean", None],
    }

    def __init__(self, *, coupling: str = "independent", hidden: int | None = None, layers: int = 4, time_dim: int = 32,
                 time_scale: float = 4.0, fourier_features: int = 64, fourier_scale: float = 5.0,
                 time_dist: str = "uniform", stable_target="auto",
                 label_dropout: float = 0.1, guidance: float = 1.0,
                 ema_decay: float = 0.999, sampler: str = "heun", sample_steps: int = 50,
                 likelihood_method: str = "rk4", likelihood_steps: int = 64, rtol: float = 1e-5,
                 atol: float = 1e-5, impute_method: str = "auto", impute_steps: int = 50, resample: int = 10,
                 prior: str | None = None, prior_components: int | None = None, max_steps: int = 6000,
                 factorise: bool | None = None,
                 batch_size: int = 512, lr: float = 4e-3,
                 validation_fraction: float = 0.1, early_stopping: bool = False, patience: int = 8,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.coupling = coupling
        self.hidden = hidden
        self.layers = layers
        self.time_dim = time_dim
        self.time_scale = time_scale
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
        self.time_dist = time_dist
        self.stable_target = stable_target
        self.label_dropout = label_dropout
        self.guidance = guidance
        self.ema_decay = ema_decay
        self.sampler = sampler
        self.sample_steps = sample_steps
        self.likelihood_method = likelihood_method
        self.likelihood_steps = likelihood_steps
        self.rtol = rtol
        self.atol = atol
        self.impute_method = impute_method
        self.impute_steps = impute_steps
        self.resample = resample
        self.prior = prior
        self.prior_components = prior_components
        self.factorise = factorise
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ network and objective
    def _build(self, dim: int, n_classes: int) -> nn.Module:
        use_stable_target(self.stable_target, self.coupling)  # stable_target=True needs independent noise
        return VelocityModel(velocity_net(dim, n_classes, hidden=scaled_width(self.hidden, dim, 128),
                                          layers=int(self.layers),
                                          time_dim=int(self.time_dim), time_scale=float(self.time_scale),
                                          fourier_features=int(self.fourier_features),
                                          fourier_scale=float(self.fourier_scale),
                                          prior_components=int(getattr(self, "prior_components_", 0))),
                             ema_decay=float(self.ema_decay))

    def _mixture_field(self):
        return self.module_.net.prior

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Conditional flow matching on the linear path: independent noise and the stable target, or minibatch OT."""
        return cfm_loss(self.module_.net, z, y, coupling=self.coupling,
                        label_dropout=float(self.label_dropout), n_classes=self.n_classes_,
                        time_dist=self.time_dist, stable_target=use_stable_target(self.stable_target, self.coupling))

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None, loss=None, batch_size: int | None = None) -> float:
        """The flow-matching loss of the EMA network on held-out rows: fixed noise, stratified times.

        ``loss(net, z, y, t)``: the per-chunk objective (default: the pair target on fresh noise,
        no label dropout); ``batch_size``: the chunk (default ``batch_size``).
        """
        net = lambda x, t, yy: self.module_(x, t, yy, ema=True)  # noqa: E731
        if loss is None:
            def loss(net, zz, yy, t):
                return cfm_loss(net, zz, yy, coupling=self.coupling, t=t, n_classes=self.n_classes_)
        bs = int(self.batch_size if batch_size is None else batch_size)
        total, reps = 0.0, 4
        with torch_seed(12345, z.device):
            for _ in range(reps):
                t = (torch.arange(len(z), device=z.device) + torch.rand(1, device=z.device)) / len(z)
                t = t[torch.randperm(len(z), device=z.device)]
                for a in range(0, len(z), bs):  # OT pairs within training-sized chunks, as in training
                    yy = None if y is None else y[a:a + bs]
                    total += float(loss(net, z[a:a + bs], yy, t[a:a + bs])) * len(z[a:a + bs])
        return total / (reps * len(z))

    # ------------------------------------------------------------------ the ODE
    #: sample in log-time (steps geometric in 1 - t, where the field contracts onto thin modes);
    #: rectified flow's straightened paths take uniform steps instead
    sample_log_time: ClassVar[bool] = True

    def _field(self, y: torch.Tensor | None, guidance: float):
        """The (guided) velocity field ``v(x, t)`` of the EMA network; also used while fitting."""
        net = lambda x, t, yy: self.module_(x, t, yy, ema=True)  # noqa: E731
        return guided_velocity(net, y, guidance, self.n_classes_)

    def probability_flow(self, y=None, guidance: float | None = None) -> ProbabilityFlow:
        """The sampling ODE in standardised space: noise N(0, I) at t = 0, data at t = 1.

        ``y``: None (unconditional) or label indices (a tensor, one per row of the batch the
        ODE will be integrated on); ``guidance`` defaults to the fitted ``guidance``.
        """
        self._check_fitted()
        g = float(self.guidance if guidance is None else guidance)
        return ProbabilityFlow(self._field(y, g), t_noise=0.0, t_data=1.0)

    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, steps: int | None = None,
                    sampler: str | None = None, guidance: float | None = None,
                    method: str | None = None) -> torch.Tensor:
        """Integrate from N(0, I) with ``sampler`` (alias ``method``) over ``steps``; NFE in ``last_nfe_``.

        ``y=None`` on a model fitted with labels draws each row's class from the training
        frequencies first; ``guidance=0`` samples the unconditional (null-label) field.
        Adaptive samplers (``'dopri5'``) use ``rtol``/``atol`` and ignore ``steps``.
        """
        sampler = sampler or method or self.sampler
        steps = int(self.sample_steps if steps is None else steps)
        g = float(self.guidance if guidance is None else guidance)
        dev = torch.device(self.device_)
        with torch_seed(seed, dev):
            if y is None and self.n_classes_ and g != 0:
                y = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_)
            yt = self._labels(y) if g != 0 else None
            f = self.probability_flow(yt, g).f
            x0 = torch.randn(n, int(self.n_features_in_), device=dev)
            if sampler == "dpm++":
                x1, nfe = self._few_step(f, x0, steps), steps
            else:
                x1, nfe = integrate(log_time(f) if self.sample_log_time else f, x0, 0.0, 1.0, method=sampler,
                                    steps=steps, rtol=float(self.rtol), atol=float(self.atol))
        self.last_nfe_ = nfe * (2 if (yt is not None and g != 1) else 1)
        return x1

    #: few-step sampling (``sampler='dpm++'``, ``nfe=``): times ``t = 1 - (1 - u) ** power`` and the
    #: solver's order; 1.5 and 2 crowd second-order steps towards the data, where the field
    #: contracts onto thin modes
    few_step_power: ClassVar[float] = 1.5
    few_step_order: ClassVar[int] = 2

    def _few_step(self, f, x0: torch.Tensor, steps: int) -> torch.Tensor:
        """DPM-Solver++ on the linear path ``x = t x1 + (1 - t) x0``, one call per step: the field's data
        prediction is ``x1_hat = x + (1 - t) v`` (at order 1 this is exactly Euler on the same times)."""
        ts = path_levels(steps, self.few_step_power)

        def data_fn(x: torch.Tensor, i: int) -> torch.Tensor:
            t = float(ts[i])
            return x + (1.0 - t) * f(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))

        return multistep_data_solver(data_fn, x0, ts, 1.0 - ts, order=self.few_step_order)

    def _nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """DPM-Solver++ (2M) with as many steps as ``nfe`` calls allow (a guided step costs two)."""
        opts = self._without_budget_options(opts, "steps", "sampler", "method")
        g = float(self.guidance if opts.get("guidance") is None else opts["guidance"])
        per = 2 if labelled and g not in (0.0, 1.0) else 1
        return {**opts, "sampler": "dpm++", "steps": steps_for_budget(nfe, per)}

    # ------------------------------------------------------------------ likelihood
    def _log_prob_std(self, Z: np.ndarray, y: np.ndarray | None = None, steps: int | None = None,
                      method: str | None = None, batch: int = 8192, return_se: bool = False):
        """log p(z | y) through the ODE: integrate [z, log det] from data (t = 1) back to noise (exact
        trace up to 10 dimensions; ``return_se``: also each row's standard error, 0 when exact)."""
        steps = int(self.likelihood_steps if steps is None else steps)
        method = method or self.likelihood_method
        yt = self._labels(y)
        out, ses, nfe = [], [], 0
        for a in range(0, len(Z), int(batch)):
            f = log_time(self._field(None if yt is None else yt[a:a + int(batch)], 1.0))
            lp, se, nfe = log_likelihood(f, self._tensor(Z[a:a + int(batch)]), 1.0, 0.0, method=method,
                                         steps=steps, rtol=float(self.rtol), atol=float(self.atol),
                                         return_se=True, **trace_options(self))
            out.append(lp.double())
            ses.append(se.double())
        self.last_nfe_ = nfe
        lp = torch.cat(out).cpu().numpy()
        return (lp, torch.cat(ses).cpu().numpy()) if return_se else lp

    # ------------------------------------------------------------------ imputation
    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, steps: int | None = None,
                    resample: int | None = None, method: str | None = None):
        """As ``LinearPathImputation._impute_std``; beyond 2-D ``method='grid'`` first checks its cost
        (about 2,000 ODE density evaluations per distinct row and missing coordinate per sweep) and
        refuses, naming it, above ``ODE_GRID_MAX_EVALUATIONS``."""
        from genzoo.families._wide import ODE_GRID_MAX_EVALUATIONS, check_grid_cost
        from genzoo.samplers.conditional import density_route

        if Z.shape[1] > 2 and density_route(method or self.impute_method, Z, miss, "repaint", wide="sir") == "grid":
            check_grid_cost(Z, miss, self.family, limit=ODE_GRID_MAX_EVALUATIONS)
        return super()._impute_std(Z, miss, seed, steps=steps, resample=resample, method=method)

    def _unconditional_field(self):
        """The field RePaint integrates (imputation: ``LinearPathImputation``)."""
        return self._field(None, 1.0)


__all__ = ["FlowMatching"]
