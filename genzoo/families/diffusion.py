"""Denoising diffusion (DDPM, Ho et al. 2020) with DDIM, guidance, RePaint and a probability-flow likelihood.

One breath: noise the data, ``x_t = alpha_t x_0 + sigma_t eps``, at a random level and teach
a network to undo it; sample by running the noising backwards from pure noise.

Defaults, and why (the measurements, with the commands that reproduce them, are in
``benchmarks/RESULTS.md``, section ``diffusion``):

- Schedule: the cosine schedule (Nichol & Dhariwal 2021) in continuous time, truncated to
  log-SNR ``lambda in [-15, 15]`` (``sigma`` from 1 down to 5.5e-4). Ho et al.'s linear
  schedule stops at ``sigma ~ 0.006``, coarser than the modes of ``gaussians8``
  (std 0.014 after standardisation), and spends most of its steps at high noise.
- Parameterisation: the network predicts ``v = alpha eps - sigma x_0`` (Salimans & Ho 2022)
  with a plain MSE on ``v``. On standardised data (unit variance) this is exactly EDM's
  preconditioning with ``sigma_data = 1`` (Karras et al. 2022): the target has unit scale at
  every noise level, so the low-noise regime that places samples on thin modes trains as
  well as the rest. Noise prediction stays the interface: ``eps = sigma x_t + alpha v``.
- Target (``stable_target=True``): the clean row ``x_0`` in the target is replaced by its
  posterior mean given ``x_t`` over the whole batch (Xu et al. 2023's stable target field,
  shared with ``score`` and ``flow_matching`` in ``genzoo.objectives.targets``), and ``eps`` by the
  noise that mean implies. Same minimiser, far less variance at middle noise levels: the
  plain target underfits (its ``grid25`` modes came out too narrow), the stable one brings
  the PF-ODE likelihood on ``grid25`` to 0.012 nats above the entropy (seed 0), at about
  1.3x the time per step; hence also 6,000 steps (3,000 were not enough).
- Network: an MLP (4 x 128, SiLU) on ``[x_t, sin/cos(x_t B), sinusoidal features of lambda,
  label]``. The random Fourier features of ``x_t`` (Tancik et al. 2020) matter most: without
  them the thin modes of ``grid25`` are not reached. For a fixed time budget, more steps of
  a narrower MLP beat fewer of a wider one. The sampler uses an exponential moving average
  of the weights (kept in the module, so saved).
- ``prior=None``: in 2-D the network alone; beyond, fitted twice, with and without a Gaussian-mixture
  prior (the network adds to the closed-form ``v`` of a mixture fitted to the rows,
  ``genzoo.families._prior``), keeping the better held-out PF-ODE likelihood (``prior_``). 10-D tilted
  mixture: held-out gap 0.408 -> 0.029 nats, on support 95 -> 99.6%; three rings in 6-D keep the
  network alone.
- Sampling: ancestral (DDPM) or DDIM (``eta = 0``) on any number of steps, uniform in the
  schedule's time (respacing), or DPM-Solver++ (2M, Lu et al. 2022; ``sampler='dpm++'``), a
  second-order solver of the probability-flow ODE at one network call per step, on levels
  ``t = u^1.5`` that crowd towards the data. ``sample(n, nfe=K)`` takes DPM-Solver++ with K
  calls (grid25: 99.6% of samples on a mode at 20 calls, against 93% for DDIM at 20 and
  99.9% for ancestral at 250). Classifier-free guidance (Ho & Salimans 2021) with one network
  trained with label dropout, genzoo's one convention (``genzoo.objectives.guidance``):
  ``eps = eps_uncond + g (eps_cond - eps_uncond)``, ``g = 1`` plain conditional, ``g = 0``
  unconditional (Ho & Salimans' ``w`` is ``g - 1``).
- Imputation: RePaint (Lugmayr et al. 2022): reverse process with the observed coordinates
  replaced by their forward-noised values at every level, each step repeated ``resample``
  times with a jump back in between. Approximate: replacement is not exact conditioning; the
  resampling reduces the mismatch, and it vanishes as steps and resamples grow.
- Likelihood: the probability-flow ODE (Song et al. 2021) of the EMA network, integrated in
  log-SNR time by fixed-step RK4 with the exact divergence (``samplers.ode``). It is the exact
  density of the ODE-defined model (a continuous normalising flow of N(0, I)), up to solver
  error; it is not the density the ancestral sampler draws from, which has none in closed form.
  Beyond 10 dimensions the divergence is a seeded Hutchinson estimate
  (``likelihood_kind='estimate'``). On a model fitted with labels, ``score_samples(X)`` is the
  marginal ``log sum_k prior_k p(x | k)`` that ``sample(n)`` draws (``null_label=True``: the
  null-label density).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from genzoo.base import TorchGenerativeModel, torch_seed
from genzoo.families._blocks import IndependentBlocks
from genzoo.families._prior import MixturePrior
from genzoo.families._wide import ODE_GRID_MAX_EVALUATIONS, check_grid_cost, scaled_width
from genzoo.nn.gaussian_mixture import GaussianMixtureField
from genzoo.nn.mlp import ConditionedMLP
from genzoo.objectives.guidance import drop_labels, guided
from genzoo.objectives.targets import batch_posterior_mean
from genzoo.params import (
    ANY_REAL,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    ODE_METHOD,
    POSITIVE,
    POSITIVE_INT,
    TRAINING,
    UNIT_OPEN_RIGHT,
    InstanceOf,
    Options,
)
from genzoo.registry import register
from genzoo.samplers.ancestral import log_snr_grid, sample_loop
from genzoo.samplers.conditional import density_route
from genzoo.samplers.fewstep import dpm_solver_pp, log_snr_levels, steps_for_budget
from genzoo.samplers.ode import TraceLikelihoodKind, log_likelihood, trace_options
from genzoo.samplers.schedules import NoiseSchedule, alpha_sigma_from_log_snr, get_schedule
from genzoo.training import EMA

SAMPLERS = ("ancestral", "ddim", "dpm++")
#: few-step levels ``t = u ** 1.5``: steps crowd towards the data (see ``log_snr_levels``)
FEW_STEP_POWER = 1.5


class Denoiser(nn.Module):
    """``(x_t, lambda, y) -> network output`` (``v``, ``eps`` or ``x_0``), plus an EMA copy of its weights.

    The EMA weights are buffers (``ema_<name>``, ``genzoo.training.EMA``), so they are saved with
    the module and get no gradient; ``forward(..., ema=True)`` evaluates the network with them.
    """

    def __init__(self, dim: int, n_classes: int, *, hidden: int, layers: int, time_dim: int,
                 time_scale: float, label_dim: int, fourier_features: int, fourier_scale: float,
                 ema_decay: float = 0.999, prior_components: int = 0, parameterization: str = "v"):
        super().__init__()
        self.n_classes = n_classes
        # random Fourier features of x_t: on grid25 they took 1,000 training steps from 2% to 97%
        # of samples on a mode
        self.net = ConditionedMLP(dim, dim, hidden, layers, time_dim=time_dim, n_classes=n_classes,
                                  label_dim=label_dim, time_scale=time_scale, fourier_features=fourier_features,
                                  fourier_scale=fourier_scale, zero_last=bool(prior_components))
        self.ema = EMA(self.net, ema_decay, host=self)
        # with a prior the network adds to a Gaussian mixture's closed-form prediction (genzoo.families._prior)
        self.prior = GaussianMixtureField(dim, prior_components) if prior_components else None
        self.parameterization = parameterization

    def forward(self, x: torch.Tensor, lam: torch.Tensor, y: torch.Tensor | None = None,
                ema: bool = False) -> torch.Tensor:
        lam = lam.expand(x.shape[0]) if lam.dim() == 0 else lam
        if ema:
            out = torch.func.functional_call(self.net, self.ema.params(), (x, lam, y))
        else:
            out = self.net(x, lam, y)
        if self.prior is not None:
            out = out + self.prior(x, *alpha_sigma_from_log_snr(lam), self.parameterization)
        return out


@register("diffusion")
class Diffusion(IndependentBlocks, MixturePrior, TorchGenerativeModel):
    """DDPM with a cosine schedule, v-prediction, EMA; ancestral/DDIM sampling, guidance, RePaint, PF-ODE likelihood.

    Fitted with labels, ``sample(n)`` draws the class from the training frequencies and
    ``score_samples(X)`` scores that marginal, ``log sum_k prior_k p(x | k)``; ``score_samples(X, y=k)``
    the class and ``null_label=True`` the null-label density.

    Parameters
    ----------
    schedule : str, default='cosine'
        Noise schedule: 'cosine', 'logsnr', 'linear', 'ddpm_linear', 'ddpm_cosine' or a
        ``NoiseSchedule``.
    log_snr_min : float, default=-15.0
        Lower end of the log-SNR range of the 'cosine' and 'logsnr' schedules (sigma up to 1).
    log_snr_max : float, default=15.0
        Upper end of that range (sigma down to 5.5e-4 at 15).
    parameterization : str, default='v'
        Network output: 'v' (v-prediction), 'eps' (noise) or 'x0' (clean data).
    hidden : int or None, default=None
        Width of the denoiser MLP.
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=4
        Depth of the denoiser MLP.
    fourier_features : int, default=64
        Random Fourier features sin/cos(x_t B) of the noisy input; 0 = raw coordinates only.
    fourier_scale : float, default=5.0
        Standard deviation of B per unit of standardised data at D <= 2, times sqrt(2 / D) beyond
        (``genzoo.nn.mlp.fourier_std``: the projection x B keeps its spread at any width).
    time_dim : int, default=64
        Size of the sinusoidal features of the log-SNR.
    time_scale : float, default=5.0
        Frequency scale of those features.
    label_dim : int, default=16
        Size of the label embedding (used only when fitted with ``y``).
    label_dropout : float, default=0.15
        Share of training labels replaced by the null label, so one network also learns the
        unconditional model (guidance).
    ema_decay : float, default=0.999
        Decay of the weights' moving average, used for sampling and the likelihood.
    stable_target : 'auto' or bool, default=True
        Regress on the batch posterior mean of the clean row (Xu et al. 2023's stable target) instead of
        the row itself.
    sample_steps : int, default=250
        Default number of reverse steps of ``sample`` (respaced uniformly in time).
    sampler : str, default='ancestral'
        'ancestral' (DDPM), 'ddim' (deterministic, eta = 0) or 'dpm++' (DPM-Solver++ 2M, the
        few-step sampler that ``sample(n, nfe=K)`` uses).
    guidance : float, default=1.0
        Classifier-free guidance ``uncond + g (cond - uncond)`` at sampling: 1 = plain conditional, 0 =
        unconditional, > 1 sharper (``genzoo.objectives.guidance``).
    impute_steps : int, default=100
        Reverse steps of RePaint imputation.
    resample : int, default=10
        RePaint resamplings per step (each with a jump back).
    likelihood_steps : int, default=32
        Fixed steps of the probability-flow ODE likelihood.
    likelihood_method : str, default='rk4'
        ODE solver of the likelihood.
    prior : {'none', 'mixture'} or None, default=None
        'mixture': the network's output is added to the closed-form prediction for a full-covariance
        Gaussian mixture fitted to the training rows (``genzoo.families._prior``), so it learns what the
        mixture misses; 'none': the network alone; None: 'none' in 2-D, on images and without held-out
        rows, otherwise both are fitted and the better held-out PF-ODE likelihood is kept (``prior_``).
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
    >>> m = gz.make("diffusion", max_steps=200, verbose=0, random_state=0).fit(X)
    >>> m.sample(5, steps=50, random_state=0).shape, m.last_nfe_
    ((5, 2), 50)
    """

    likelihood_kind = TraceLikelihoodKind()  # "estimate" when fitted on > 10 features (seeded Hutchinson trace)
    _capabilities = frozenset({"sample", "log_prob", "impute", "conditional"})
    _has_null_label = True
    #: ``impute(method=...)`` of the approximate route the report measures beside the exact one
    approximate_impute = "repaint"
    summary = "DDPM (cosine schedule, v-prediction): ancestral/DDIM sampling, guidance, PF-ODE likelihood"
    _parameter_constraints = {
        **TRAINING, "schedule": [Options(("cosine", "logsnr", "linear", "ddpm_linear", "ddpm_cosine")),
                                 InstanceOf(NoiseSchedule)],
        "log_snr_min": ANY_REAL, "log_snr_max": ANY_REAL, "parameterization": [Options(("v", "eps", "x0"))],
        "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT, "fourier_features": NON_NEGATIVE_INT,
        "fourier_scale": POSITIVE, "time_dim": POSITIVE_INT, "time_scale": POSITIVE, "label_dim": POSITIVE_INT,
        "label_dropout": UNIT_OPEN_RIGHT, "ema_decay": UNIT_OPEN_RIGHT, "stable_target": ["boolean"],
        "sample_steps": POSITIVE_INT, "sampler": [Options(SAMPLERS)], "guidance": NON_NEGATIVE,
        "impute_steps": POSITIVE_INT, "resample": POSITIVE_INT, "likelihood_steps": POSITIVE_INT,
        "likelihood_method": ODE_METHOD, "prior": [Options(("none", "mixture")), None],
        "prior_components": [*POSITIVE_INT, None], "factorise": ["boolean", None],
    }

    def __init__(self, *, schedule: str = "cosine", log_snr_min: float = -15.0, log_snr_max: float = 15.0,
                 parameterization: str = "v", hidden: int | None = None, layers: int = 4,
                 fourier_features: int = 64, fourier_scale: float = 5.0, time_dim: int = 64,
                 time_scale: float = 5.0, label_dim: int = 16, label_dropout: float = 0.15,
                 ema_decay: float = 0.999, stable_target: bool = True, sample_steps: int = 250,
                 sampler: str = "ancestral",
                 guidance: float = 1.0, impute_steps: int = 100, resample: int = 10,
                 likelihood_steps: int = 32, likelihood_method: str = "rk4", prior: str | None = None,
                 prior_components: int | None = None, max_steps: int = 6000, batch_size: int = 512, lr: float = 2e-3,
                 factorise: bool | None = None,
                 validation_fraction: float = 0.1, early_stopping: bool = True, patience: int = 8,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.schedule = schedule
        self.log_snr_min = log_snr_min
        self.log_snr_max = log_snr_max
        self.parameterization = parameterization
        self.hidden = hidden
        self.layers = layers
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
        self.time_dim = time_dim
        self.time_scale = time_scale
        self.label_dim = label_dim
        self.label_dropout = label_dropout
        self.ema_decay = ema_decay
        self.stable_target = stable_target
        self.sample_steps = sample_steps
        self.sampler = sampler
        self.guidance = guidance
        self.impute_steps = impute_steps
        self.resample = resample
        self.likelihood_steps = likelihood_steps
        self.likelihood_method = likelihood_method
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

    # ------------------------------------------------------------------ pieces
    def _noise_schedule(self) -> NoiseSchedule:
        if self.schedule in ("cosine", "logsnr"):
            return get_schedule(self.schedule, lambda_min=float(self.log_snr_min), lambda_max=float(self.log_snr_max))
        return get_schedule(self.schedule)

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        self._noise_schedule()  # checks log_snr_min < log_snr_max
        return Denoiser(dim, n_classes, hidden=scaled_width(self.hidden, dim, 128), layers=int(self.layers),
                        time_dim=int(self.time_dim), time_scale=float(self.time_scale), label_dim=int(self.label_dim),
                        fourier_features=int(self.fourier_features), fourier_scale=float(self.fourier_scale),
                        ema_decay=float(self.ema_decay), prior_components=int(getattr(self, "prior_components_", 0)),
                        parameterization=self.parameterization)

    def _mixture_field(self):
        return self.module_.prior

    def _target(self, z: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return {"v": a * eps - s * z, "eps": eps, "x0": z}[self.parameterization]

    def _to_eps(self, out: torch.Tensor, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """Network output -> noise prediction ``eps_hat`` (the sampler's interface)."""
        a, s = alpha_sigma_from_log_snr(lam)
        if self.parameterization == "v":
            return s * x + a * out
        if self.parameterization == "x0":
            return (x - a * out) / s
        return out

    # ------------------------------------------------------------------ objective
    def _loss(self, z: torch.Tensor, y: torch.Tensor | None, ema: bool = False,
              t: torch.Tensor | None = None, stable: bool | None = None) -> torch.Tensor:
        """Noise at a random level, predict the parameterised target, squared error (EDM-weighted for 'v')."""
        t = torch.rand(len(z), device=z.device) if t is None else t  # (B,)
        lam = self._noise_schedule().log_snr(t)
        a, s = (c[:, None] for c in alpha_sigma_from_log_snr(lam))
        eps = torch.randn_like(z)
        x_t = a * z + s * eps  # (B, D)
        y_in = drop_labels(y, float(self.label_dropout), self.n_classes_)
        out = self.module_(x_t, lam, y_in, ema=ema)
        stable = bool(self.stable_target) if stable is None else stable
        if stable:  # E[x0 | x_t] over the batch, and the noise it implies
            z_hat = batch_posterior_mean(x_t, a[:, 0], s[:, 0], z, y, None if y is None else y_in == self.n_classes_)
            eps = (eps.double() + a.double() * (z.double() - z_hat) / s.double()).to(z.dtype)  # (x_t - a z_hat) / s
            z = z_hat.to(z.dtype)
        return (out - self._target(z, eps, a, s)).pow(2).mean()

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """The plain loss of the EMA network (what samples), at stratified levels and fixed noise.

        Without the stable target, as ``score`` does: an unbiased estimate of the same objective,
        and no (rows x rows) weight matrix over the whole validation set."""
        reps = 4
        zz = z.repeat(reps, 1)
        yy = None if y is None else y.repeat(reps)
        t = (torch.arange(len(zz), device=z.device) + 0.5) / len(zz)
        with torch_seed(12345, z.device):
            t = t[torch.randperm(len(zz), device=z.device)]
            return float(self._loss(zz, yy, ema=True, t=t, stable=False))

    # ------------------------------------------------------------------ noise predictor
    def _eps_fn(self, y: torch.Tensor | None, w: float):
        """``eps_fn(x, lam)`` for the samplers and its cost per call: conditional (labels ``y``),
        unconditional (``y=None``) or guided by ``w`` (``genzoo.objectives.guidance``)."""
        net = self.module_
        null = self.n_classes_ if self.n_classes_ else None
        return guided(lambda x, lam, yy: self._to_eps(net(x, lam, yy, ema=True), x, lam), y, w, null)

    # ------------------------------------------------------------------ sampling
    def _reverse(self, n: int, y: np.ndarray | None, seed: int, steps: int | None, sampler: str | None,
                 guidance: float | None, eta: float, return_path: bool = False):
        steps = int(self.sample_steps if steps is None else steps)
        sampler = self.sampler if sampler is None else sampler
        w = float(self.guidance if guidance is None else guidance)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
        dev = torch.device(self.device_)
        with torch_seed(seed, dev):
            eps_fn, per = self._eps_fn(self._labels(y), w)
            x = torch.randn(n, int(self.n_features_in_), device=dev)
            if sampler == "dpm++":
                lams = log_snr_levels(self._noise_schedule(), steps, power=FEW_STEP_POWER, device=dev)
                out = dpm_solver_pp(eps_fn, x, lams, return_path=return_path)
            else:
                lams = log_snr_grid(self._noise_schedule(), steps, dev)
                out = sample_loop(eps_fn, x, lams, sampler=sampler, eta=float(eta), return_path=return_path)
        self.last_nfe_ = steps * per
        return out

    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, steps: int | None = None,
                    sampler: str | None = None, guidance: float | None = None, eta: float = 0.0) -> torch.Tensor:
        """Reverse process from N(0, I) over ``steps`` levels; ``self.last_nfe_`` = evaluations per sample.

        ``sampler``: 'ancestral' (DDPM), 'ddim' (``eta = 0`` deterministic) or 'dpm++'
        (DPM-Solver++ 2M, one call per step; ``eta`` unused). ``guidance`` ``w``
        mixes ``eps_uncond + w (eps_cond - eps_uncond)`` for the labels ``y`` (``w = 1`` plain
        conditional, one evaluation per step; other ``w`` two); ``w = 0`` samples the
        unconditional (null-label) network.
        """
        return self._reverse(n, y, seed, steps, sampler, guidance, eta)

    def _nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """DPM-Solver++ with as many steps as ``nfe`` calls allow (a guided step costs two)."""
        opts = self._without_budget_options(opts, "steps", "sampler")
        g = float(self.guidance if opts.get("guidance") is None else opts["guidance"])
        per = 2 if labelled and g not in (0.0, 1.0) else 1
        return {**opts, "sampler": "dpm++", "steps": steps_for_budget(nfe, per)}

    def _sample_path_std(self, n: int, y, seed: int, n_frames: int, steps: int | None = None,
                         sampler: str | None = None, guidance: float | None = None, eta: float = 0.0) -> list:
        path = self._reverse(n, y, seed, steps, sampler, guidance, eta, return_path=True)
        idx = np.unique(np.linspace(0, len(path) - 1, n_frames).round().astype(int))
        return [path[i] for i in idx]

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, steps: int | None = None,
                    resample: int | None = None, method: str | None = None):
        """Draws from p(missing | observed): the exact density route, or RePaint.

        ``method``: 'grid', the base class's grid inverse-CDF on this model's own probability-flow
        ODE density (exact for the model up to the ODE solver and the adaptive grid; Gibbs sweeps
        when a row misses several coordinates; about a thousand density evaluations per distinct
        row); 'repaint', the ancestral reverse process with the observed coordinates pasted in at
        every level, ``steps`` levels each repeated ``resample`` times (``last_nfe_`` =
        (steps - 1) x resample + 1): approximate, and biased between modes (gaussians8, x at a
        mode's tip: W1 330x its floor where the grid route has 2x); 'auto' (default), the grid up
        to 3 dimensions and 16 distinct rows; 'sir' for as few rows up to 16 columns (importance resampling of
        proposals from a Gaussian mixture fitted to the model's samples, weighted by its ODE density, one
        density evaluation per proposal: exact for the model as the proposals grow); RePaint for more
        rows (``genzoo.samplers.conditional.density_route``).
        Both use the unconditional density (the class marginal of a labelled fit for 'grid', the
        null-label network for 'repaint'): ``impute`` takes no labels.
        """
        route = density_route(method, Z, miss, "repaint", wide="sir")
        if route == "sir":
            return self._sir_impute_std(Z, miss, seed)
        if route == "grid":
            if Z.shape[1] > 2:  # beyond 2-D: name the cost instead of running for hours
                check_grid_cost(Z, miss, self.family, limit=ODE_GRID_MAX_EVALUATIONS)
            return super()._impute_std(Z, miss, seed)
        steps = int(self.impute_steps if steps is None else steps)
        resample = int(self.resample if resample is None else resample)
        dev = torch.device(self.device_)
        known = self._tensor(np.where(miss, 0.0, Z))
        mask = torch.as_tensor(~miss, device=dev)
        with torch_seed(seed, dev):
            eps_fn, per = self._eps_fn(None, 0.0)
            lams = log_snr_grid(self._noise_schedule(), steps, dev)
            x = torch.randn(known.shape, device=dev)
            out = sample_loop(eps_fn, x, lams, sampler="ancestral", known=known, mask=mask, resample=resample)
        self.last_nfe_ = (steps - 1) * resample + 1
        return out

    # ------------------------------------------------------------------ likelihood
    def _log_prob_std(self, Z: np.ndarray, y: np.ndarray | None = None, steps: int | None = None,
                      method: str | None = None, batch: int = 8192, return_se: bool = False):
        """log p(z) of the probability-flow ODE, integrated in log-SNR time from data to noise.

        With ``u`` running 0 -> 1 as ``lambda`` goes from ``lambda_max`` to ``lambda_min``,
        ``dx/dlambda = sigma (sigma x - eps_hat) / 2`` (the ODE of which DDIM is the Euler
        method in ``x/alpha``); this is smooth in ``lambda`` even for thin modes, which is why
        a fixed-step solver is accurate. The base density is the VP marginal at
        ``lambda_min`` for unit-variance data, N(0, I); the data end adds ``d log alpha_max``.
        """
        steps = int(self.likelihood_steps if steps is None else steps)
        method = self.likelihood_method if method is None else method
        sched = self._noise_schedule()
        lo, hi = sched.lambda_min, sched.lambda_max
        yt = self._labels(y)

        def field(eps_fn):
            def f(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # dx/du
                lam = hi + u[0] * (lo - hi)
                s = torch.sigmoid(-lam).sqrt()
                return 0.5 * s * (s * x - eps_fn(x, lam)) * (lo - hi)
            return f

        d = Z.shape[1]
        a_max = math.sqrt(1 / (1 + math.exp(-hi)))
        out, ses = [], []
        for i in range(0, len(Z), int(batch)):
            x = self._tensor(Z[i:i + int(batch)]) * a_max
            f = field(self._eps_fn(None if yt is None else yt[i:i + int(batch)], 1.0)[0])
            lp, se, nfe = log_likelihood(f, x, 0.0, 1.0, method=method, steps=steps, return_se=True,
                                         **trace_options(self))
            out.append(lp.double() + d * math.log(a_max))
            ses.append(se.double())
        self.last_nfe_ = nfe
        lp = torch.cat(out).cpu().numpy()
        return (lp, torch.cat(ses).cpu().numpy()) if return_se else lp

    def _no_likelihood_reason(self) -> str:
        return "diffusion scores through its probability-flow ODE"


__all__ = ["Diffusion", "Denoiser"]
