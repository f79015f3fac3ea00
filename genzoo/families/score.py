"""Score-based generative model in the SDE framework (Song et al. 2021).

One breath (denoising score matching at many noise levels, Vincent 2011; Song & Ermon 2019):

    sigma ~ log-uniform[sigma_min, sigma_max] (mixed with a log-normal, ``focus``),  x_sigma = x + sigma * eps
    loss  = lambda(sigma) |D(x_sigma; sigma) - x|^2,   score s(x, sigma) = (D(x; sigma) - x) / sigma^2

i.e. the network's score regresses the closed-form score of the Gaussian perturbation kernel,
``-(x_sigma - x) / sigma^2``, whose minimiser is the score of the data convolved with
N(0, sigma^2 I). The denoiser ``D`` uses the preconditioning of Karras et al. (2022, "EDM")
with unit data variance (the data are standardised): ``D = c_skip x + c_out F(c_in x, log sigma)``
with the weighting that gives ``F`` a unit-variance target at every level -- the low-noise
levels, where thin modes are resolved, train as well as the rest.

Defaults, and why (the measurements, with the commands that reproduce them, are in
``benchmarks/RESULTS.md``, section ``score``). The ODE likelihood penalises wiggles of the
learned score (its Jacobian) much more than the DSM loss does, and the plain model's miss
came mostly from noise levels 0.1-2 (standardised units), where the score is smooth but
fixed Fourier features still wiggle it. Hence:

- ``fourier_damping=True``: each Fourier feature is multiplied by ``exp(-|b|^2 (c_in sigma)^2 / 2)``,
  its own average under the noise at that level, so high frequencies fade as sigma grows;
- ``focus=0.8``: that share of each batch draws sigma from EDM's log-normal (ln sigma ~
  N(-1.2, 1.2^2)), the rest log-uniform on the whole range (0.5 and 1.0 were worse);
- ``max_steps=4000`` and ``lr=3e-3``, affordable since the stable target is one matmul;
- ``rtol = atol = 1e-5`` for adaptive likelihood solves (1e-4 missed the exact Gaussian answer
  by up to 4e-3 nats per point).

Together they took the ``grid25`` gap (PF-ODE NLL minus the true entropy, seed 0) from 0.158
to 0.016; 98-99% of samples land on the support.

One network in this "sigma space" (the variance-exploding parameterisation) serves both SDEs:
the VE SDE perturbs ``x_t = x + sigma(t) eps`` directly, and the VP SDE's ``x_t = alpha_t x +
sigma_t eps`` is ``alpha_t`` times the VE state at ``sigma = sigma_t / alpha_t``, so its score is
``s_VP(x, t) = s(x / alpha_t, sigma_t / alpha_t) / alpha_t``.

Samplers (``sample(n, sampler=..., steps=...)``, NFE per sample in ``last_nfe_``):

- ``'sde'``: the reverse-time SDE by Euler-Maruyama (``samplers.sde``), ``sde='vp'`` (linear
  beta 0.1..20, Song et al.'s VP SDE) or ``'ve'`` (geometric sigma, NCSN++'s VE SDE); the time
  grid is uniform in log-SNR (log sigma), which puts steps where thin modes are resolved;
  the last step adds no noise (Song et al.'s denoised output).
- ``'ode'``: the probability-flow ODE ``dx/dlog(sigma) = x - D(x; sigma)`` (the same flow for VP
  and VE up to the scaling above), fixed-step Heun/RK4 or adaptive dopri5 (``samplers.ode``).
- ``'dpm++'``: DPM-Solver++ 2M on the same ODE (``samplers.fewstep``), one call per step on
  Karras et al.'s sigma ladder; what ``sample(n, nfe=K)`` uses.
- ``'langevin'``: annealed Langevin dynamics (Song & Ermon 2019, NCSN) on a geometric ladder of
  noise levels with ``steps`` levels and ``langevin_steps`` moves per level, step
  ``eps_i = langevin_snr * sigma_i^2``, and a final Tweedie denoising step (``samplers.langevin``).

Likelihood (``likelihood_kind='exact'``): the instantaneous change of variables along the
probability-flow ODE (Chen et al. 2018; Song et al. 2021, Sec. 4.3), integrated in log-sigma
time from ``sigma_min`` to ``sigma_max`` by RK4 on 48 fixed steps (``samplers.ode``). A fixed
grid gives each row the same number whatever batch it is scored in, which an adaptive solver's
shared step size does not (and 128 steps or dopri5 change the gap by under 0.001 nats). The
divergence is exact up to 10 dimensions; beyond, a seeded Hutchinson estimate
(``likelihood_kind='estimate'``). The prior at ``sigma_max`` is N(0, (1 + sigma_max^2) I), the
exact covariance of that marginal. The density is the model's p at ``sigma_min`` (the data
convolved with N(0, sigma_min^2)), exact up to solver error.

Conditioning: classifier-free guidance (Ho & Salimans 2021) with one network trained with
``label_dropout``: ``s = s_uncond + g (s_cond - s_uncond)``, ``guidance=g``, genzoo's one
convention (g = 1 plain conditional, g = 0 unconditional; ``genzoo.objectives.guidance``). On a
model fitted with labels ``score_samples(X)`` is the marginal ``log sum_k prior_k p(x | k)`` that
``sample(n)`` draws (``null_label=True``: the null-label density).

Imputation (``impute(X, method=...)``): 'grid', the base class's grid inverse-CDF on the
model's own PF-ODE density (exact for the model up to solver and grid error; about a thousand
density evaluations per distinct row); 'repaint', the reverse SDE with the observed coordinates
replaced at every step by their own forward-perturbed values (Song et al. 2021, App. I.2), with
RePaint's resampling (Lugmayr et al. 2022): each of ``impute_steps`` steps is repeated
``resample`` times, jumping back to the step's noise level in between, so that the missing
coordinates can settle into agreement with the observed ones (replacement alone lets them commit
to a mode before the observed coordinates have told them which); still approximate, NFE =
``impute_steps * resample``. 'auto' (default), for up to 16 distinct rows: the grid up to 3
dimensions, 'sir' up to 16, proposals from a Gaussian mixture fitted to the model's samples,
weighted by its ODE density (exact for the model as the proposals grow); more rows: RePaint
(``genzoo.samplers.conditional.density_route``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genzoo.base import TorchGenerativeModel, torch_seed
from genzoo.families._wide import ODE_GRID_MAX_EVALUATIONS, check_grid_cost, scaled_width
from genzoo.nn.mlp import ConditionedMLP, fourier_std
from genzoo.objectives.guidance import drop_labels, guided
from genzoo.objectives.targets import batch_posterior_mean
from genzoo.params import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    ODE_METHOD,
    POSITIVE,
    POSITIVE_INT,
    TRAINING,
    UNIT,
    UNIT_OPEN_RIGHT,
    Options,
)
from genzoo.registry import register
from genzoo.samplers.conditional import density_route
from genzoo.samplers.fewstep import karras_sigmas, multistep_data_solver, steps_for_budget
from genzoo.samplers.inpainting import repaint
from genzoo.samplers.langevin import annealed_langevin, geometric_schedule
from genzoo.samplers.ode import TraceLikelihoodKind, integrate, log_likelihood, trace_options
from genzoo.samplers.schedules import LinearSchedule
from genzoo.samplers.sde import VESDE, VPSDE, reverse_euler_maruyama
from genzoo.training import EMA


class ScoreNet(nn.Module):
    """EDM-preconditioned denoiser ``D(x; sigma, y)`` with an exponential moving average of its weights.

    ``F`` is an MLP on ``[c_in x, sin/cos(c_in x B)]`` (random Fourier features with a fixed
    Gaussian ``B``, Tancik et al. 2020: thin many-moded densities need high frequencies;
    with ``fourier_damping`` each is scaled by its mean under the level's noise),
    the log noise level (sinusoidal features) and an optional label (index ``n_classes`` =
    the null label for guidance). The EMA weights are buffers, saved with the module.
    """

    def __init__(self, dim: int, n_classes: int, *, hidden: int, layers: int, fourier_features: int,
                 fourier_scale: float, time_dim: int, fourier_damping: bool = True, ema_decay: float = 0.999):
        super().__init__()
        self.n_classes = n_classes
        self.fourier_damping = fourier_damping
        self.register_buffer("B", torch.randn(dim, fourier_features) * fourier_std(dim, fourier_scale))  # (D, F)
        self.net = ConditionedMLP(dim + 2 * fourier_features, dim, hidden, layers, time_dim=time_dim,
                                  n_classes=n_classes, time_scale=4.0)
        self.ema = EMA(self.net, ema_decay, host=self)  # buffers ema_<name>

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None = None,
                ema: bool = False) -> torch.Tensor:
        sigma = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma  # (B,)
        s = sigma[:, None]
        c_in, c_skip, c_out = (s * s + 1).rsqrt(), 1 / (s * s + 1), s * (s * s + 1).rsqrt()
        h = c_in * x  # (B, D)
        p = h @ self.B  # (B, F)
        feats = torch.cat([p.sin(), p.cos()], 1)
        if self.fourier_damping:  # E[sin(b.(h + c_in sigma eps))] = sin(b.h) exp(-|b|^2 (c_in sigma)^2 / 2)
            feats = feats * torch.exp(-0.5 * (c_in * s) ** 2 * (self.B * self.B).sum(0)).repeat(1, 2)
        inp = (torch.cat([h, feats], 1), sigma.log(), y)
        if ema:
            out = torch.func.functional_call(self.net, self.ema.params(), inp)
        else:
            out = self.net(*inp)
        return c_skip * x + c_out * out


@register("score")
class ScoreModel(TorchGenerativeModel):
    """Score-based model (DSM at many noise levels); reverse SDE (VP/VE), PF-ODE and annealed Langevin.

    Fitted with labels, ``sample(n)`` draws the class from the training frequencies and
    ``score_samples(X)`` scores that marginal, ``log sum_k prior_k p(x | k)``; ``score_samples(X, y=k)``
    the class and ``null_label=True`` the null-label density.

    Parameters
    ----------
    sde : str, default='vp'
        Reverse SDE of the 'sde' sampler: 'vp' (linear beta 0.1..20) or 've' (geometric sigma).
    sigma_min : float, default=1e-3
        Smallest noise level (the model's density is the data blurred by it).
    sigma_max : float, default=20.0
        Largest noise level (the prior N(0, (1 + sigma_max^2) I)).
    hidden : int or None, default=None
        Width of the denoiser MLP.
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=3
        Depth of the denoiser MLP.
    fourier_features : int, default=64
        Random Fourier features of the scaled input; 0 = raw coordinates only.
    fourier_scale : float, default=4.0
        Standard deviation of their frequencies per unit of standardised data at D <= 2, times
        sqrt(2 / D) beyond (``genzoo.nn.mlp.fourier_std``).
    time_dim : int, default=32
        Size of the sinusoidal features of log sigma.
    fourier_damping : bool, default=True
        Scale each Fourier feature by its mean under the level's noise, so high frequencies fade as
        sigma grows.
    focus : float, default=0.8
        Share of each batch with sigma from EDM's log-normal (ln sigma ~ N(-1.2, 1.2^2)); the rest
        log-uniform.
    stable_target : 'auto' or bool, default=True
        Regress on the batch posterior mean of the clean row (Xu et al. 2023) instead of the row itself.
    label_dropout : float, default=0.15
        Share of training labels replaced by the null label, so one network also learns the
        unconditional model (guidance).
    guidance : float, default=1.0
        Classifier-free guidance ``uncond + g (cond - uncond)`` at sampling: 1 = plain conditional, 0 =
        unconditional, > 1 sharper (``genzoo.objectives.guidance``).
    ema_decay : float, default=0.999
        Decay of the weights' moving average, used for sampling and the likelihood.
    sampler : str, default='sde'
        'sde' (reverse SDE, Euler-Maruyama), 'ode' (probability-flow ODE), 'dpm++' (DPM-Solver++ 2M
        on that ODE, one call per step) or 'langevin' (annealed Langevin).
    sample_steps : int, default=200
        Steps of ``sample`` (noise levels for 'langevin').
    ode_method : str, default='heun'
        ODE solver of ``sampler='ode'`` ('heun', 'rk4', 'euler' or adaptive 'dopri5').
    langevin_steps : int, default=5
        Langevin moves per noise level.
    langevin_snr : float, default=1.0
        Langevin step ``langevin_snr * sigma_i^2``.
    likelihood_method : str, default='rk4'
        ODE solver of the likelihood (fixed 48 RK4 steps by default).
    rtol : float, default=1e-5
        Relative tolerance of the adaptive ('dopri5') solves.
    atol : float, default=1e-5
        Absolute tolerance of the adaptive ('dopri5') solves.
    impute_steps : int, default=100
        Reverse SDE steps of imputation.
    resample : int, default=10
        RePaint resamplings per imputation step.
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("score", max_steps=200, verbose=0, random_state=0).fit(X)
    >>> m.sample(5, steps=20, random_state=0).shape, m.last_nfe_
    ((5, 2), 20)
    """

    # "estimate" when fitted on > 10 features (seeded Hutchinson trace), else "exact"
    likelihood_kind: ClassVar[TraceLikelihoodKind] = TraceLikelihoodKind()
    _capabilities = frozenset({"sample", "log_prob", "impute", "conditional"})
    _has_null_label = True
    approximate_impute = "repaint"  # the impute method the report measures beside the exact route
    summary = "score-based SDE model: DSM, reverse SDE (VP/VE), PF-ODE and annealed Langevin; PF-ODE likelihood"
    _parameter_constraints = {
        **TRAINING, "sde": [Options(("vp", "ve"))], "sigma_min": POSITIVE, "sigma_max": POSITIVE,
        "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT, "fourier_features": NON_NEGATIVE_INT,
        "fourier_scale": POSITIVE, "time_dim": POSITIVE_INT, "fourier_damping": ["boolean"], "focus": UNIT,
        "stable_target": ["boolean"], "label_dropout": UNIT_OPEN_RIGHT, "guidance": NON_NEGATIVE,
        "ema_decay": UNIT_OPEN_RIGHT, "sampler": [Options(("sde", "ode", "dpm++", "langevin"))],
        "sample_steps": POSITIVE_INT, "ode_method": ODE_METHOD, "langevin_steps": POSITIVE_INT,
        "langevin_snr": POSITIVE, "likelihood_method": ODE_METHOD, "rtol": POSITIVE, "atol": POSITIVE,
        "impute_steps": POSITIVE_INT, "resample": POSITIVE_INT,
    }

    def __init__(self, *, sde: str = "vp", sigma_min: float = 1e-3, sigma_max: float = 20.0,
                 hidden: int | None = None, layers: int = 3, fourier_features: int = 64, fourier_scale: float = 4.0,
                 time_dim: int = 32, fourier_damping: bool = True, focus: float = 0.8, stable_target: bool = True,
                 label_dropout: float = 0.15, guidance: float = 1.0,
                 ema_decay: float = 0.999, sampler: str = "sde", sample_steps: int = 200,
                 ode_method: str = "heun", langevin_steps: int = 5, langevin_snr: float = 1.0,
                 likelihood_method: str = "rk4", rtol: float = 1e-5, atol: float = 1e-5,
                 impute_steps: int = 100, resample: int = 10, max_steps: int = 4000, batch_size: int = 512,
                 lr: float = 3e-3,
                 validation_fraction: float = 0.1, early_stopping: bool = True, patience: int = 8,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.sde = sde
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.hidden = hidden
        self.layers = layers
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
        self.time_dim = time_dim
        self.fourier_damping = fourier_damping
        self.focus = focus
        self.stable_target = stable_target
        self.label_dropout = label_dropout
        self.guidance = guidance
        self.ema_decay = ema_decay
        self.sampler = sampler
        self.sample_steps = sample_steps
        self.ode_method = ode_method
        self.langevin_steps = langevin_steps
        self.langevin_snr = langevin_snr
        self.likelihood_method = likelihood_method
        self.rtol = rtol
        self.atol = atol
        self.impute_steps = impute_steps
        self.resample = resample
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
        if not float(self.sigma_min) < float(self.sigma_max):
            raise ValueError(f"sigma_min must be below sigma_max; got {self.sigma_min}, {self.sigma_max}")
        return ScoreNet(dim, n_classes, hidden=scaled_width(self.hidden, dim, 128), layers=int(self.layers),
                        fourier_features=int(self.fourier_features), fourier_scale=float(self.fourier_scale),
                        time_dim=int(self.time_dim), fourier_damping=bool(self.fourier_damping),
                        ema_decay=float(self.ema_decay))

    def _sigmas(self, u: torch.Tensor) -> torch.Tensor:
        """Noise levels log-uniform on [sigma_min, sigma_max] for ``u`` uniform on [0, 1]."""
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        return torch.exp(lo + u * (hi - lo))

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None, ema: bool = False,
              u: torch.Tensor | None = None, stable: bool | None = None) -> torch.Tensor:
        """Denoising score matching, EDM-weighted: ``|D(x + sigma eps; sigma) - target|^2 (sigma^2 + 1) / sigma^2``.

        ``target`` is the clean row ``x`` (plain DSM) or, with ``stable_target``, its stable
        target field: the posterior mean of the clean point given the noisy one over the whole
        batch as reference (Xu et al. 2023), which removes most of the target's variance at
        the low noise levels that shape the modes (measured on grid25: PF-ODE likelihood gap
        0.15 -> 0.07 nats at equal steps).
        """
        if u is None:  # stratified noise levels: one per 1/B of the range, shuffled (lower variance)
            u = (torch.randperm(len(z), device=z.device) + torch.rand(len(z), device=z.device)) / len(z)
            sigma = self._sigmas(u)  # (B,)
            if self.focus:  # a share of the rows from EDM's log-normal, where the modes form
                n = int(round(float(self.focus) * len(z)))
                v = (torch.arange(n, device=z.device) + torch.rand(n, device=z.device)) / n
                ln = -1.2 + 1.2 * math.sqrt(2) * torch.erfinv(2 * v - 1)
                sigma[:n] = ln.exp().clamp(float(self.sigma_min), float(self.sigma_max))
        else:
            sigma = self._sigmas(u)  # (B,)
        s = sigma[:, None]
        x_noisy = z + s * torch.randn_like(z)
        stable = bool(self.stable_target) if stable is None else stable
        y_in = drop_labels(y, float(self.label_dropout), self.n_classes_)
        target = self._stable_target(x_noisy, sigma, z, y, y_in) if stable else z
        d = self.module_(x_noisy, sigma, y_in, ema=ema)
        return ((d - target) ** 2 * (s * s + 1) / (s * s)).sum(1).mean()

    def _stable_target(self, x_noisy: torch.Tensor, sigma: torch.Tensor, ref: torch.Tensor,
                       y: torch.Tensor | None, y_in: torch.Tensor | None) -> torch.Tensor:
        """``sum_j w_ij ref_j`` with ``w_ij`` proportional to N(x_noisy_i; ref_j, sigma_i^2 I), same class only
        (a label-dropped row: all rows); ``genzoo.objectives.targets``."""
        free = None if y is None else y_in == self.n_classes_
        return batch_posterior_mean(x_noisy, torch.ones_like(sigma), sigma, ref, y, free).to(ref.dtype)

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """Plain DSM loss (an unbiased estimate of the objective) of the EMA network: stratified levels, fixed noise."""
        reps = 4
        zz = z.repeat(reps, 1)
        yy = None if y is None else y.repeat(reps)
        with torch_seed(12345, z.device):
            u = ((torch.arange(len(zz), device=z.device) + 0.5) / len(zz))[torch.randperm(len(zz), device=z.device)]
            return float(self._loss(zz, yy, ema=True, u=u, stable=False))

    # ------------------------------------------------------------------ the score
    def score_fn(self, y: torch.Tensor | None = None, guidance: float = 1.0):
        """``s(x, sigma)`` in standardised space (EMA weights) and its evaluations per call:
        conditional on labels ``y``, unconditional (``y=None``) or guided (``genzoo.objectives.guidance``)."""
        net = self.module_

        def denoise(x: torch.Tensor, sig: torch.Tensor, yy: torch.Tensor | None) -> torch.Tensor:
            return net(x, sig, yy, ema=True)

        d_fn, per = guided(denoise, y, guidance, self.n_classes_ if self.n_classes_ else None)

        def s(x: torch.Tensor, sigma) -> torch.Tensor:
            sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
            sig = sig.expand(x.shape[0]) if sig.dim() == 0 else sig
            return (d_fn(x, sig) - x) / (sig[:, None] ** 2)

        return s, per

    def _process(self, kind: str | None = None):
        """The forward SDE: VE with this model's sigma range, or Song et al.'s VP (linear beta 0.1..20)."""
        kind = self.sde if kind is None else kind
        if kind not in ("vp", "ve"):
            raise ValueError(f"sde must be 'vp' or 've'; got {kind!r}")
        if kind == "ve":
            return VESDE(float(self.sigma_min), float(self.sigma_max))
        return VPSDE(LinearSchedule(0.1, 20.0, t_min=0.0))

    def _time_grid(self, sde, steps: int, dev) -> torch.Tensor:
        """``steps + 1`` times from sigma_max down to sigma_min, uniform in log sigma (log-SNR)."""
        log_sig = torch.linspace(math.log(self.sigma_max), math.log(self.sigma_min), steps + 1, dtype=torch.float64,
                                 device=dev)
        if isinstance(sde, VESDE):
            t = (log_sig - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)
        else:  # VP: lambda = log(alpha^2 / sigma^2) = -2 log sigma_VE
            t = sde.schedule.t_of_log_snr(-2 * log_sig)
        return t.float().to(dev)

    def _sde_score(self, sde, s):
        """Score of the SDE's own state ``x_t`` from the sigma-space score ``s``."""
        if isinstance(sde, VESDE):
            return lambda x, t: s(x, sde.sigma(t))
        def vp(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            a, sg = sde.marginal(t)
            a, sg = a.to(x.dtype), sg.to(x.dtype)
            return s(x / a, sg / a) / a
        return vp

    # ------------------------------------------------------------------ sampling
    def _sample_std(self, n, y, seed, sampler: str | None = None, steps: int | None = None,
                    guidance: float | None = None, method: str | None = None, sde: str | None = None):
        sampler = self.sampler if sampler is None else sampler
        steps = int(self.sample_steps if steps is None else steps)
        if steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps}")
        g = float(self.guidance if guidance is None else guidance)
        dev = torch.device(self.device_)
        d = int(self.n_features_in_)
        with torch_seed(seed, dev):
            if y is None and self.n_classes_ and g != 0:
                y = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_)
            s, per = self.score_fn(self._labels(y) if g != 0 else None, g)
            if sampler == "sde":
                proc = self._process(sde)
                ts = self._time_grid(proc, steps, dev)
                a0 = 1.0 if isinstance(proc, VESDE) else float(proc.marginal(ts[0])[0])
                x = a0 * math.sqrt(1 + self.sigma_max**2) * torch.randn(n, d, device=dev)
                x = reverse_euler_maruyama(proc, self._sde_score(proc, s), x, ts)
                x = x / (1.0 if isinstance(proc, VESDE) else float(proc.marginal(ts[-1])[0]))
                nfe = steps
            elif sampler == "ode":
                f = self._ode_field(s)
                x = math.sqrt(1 + self.sigma_max**2) * torch.randn(n, d, device=dev)
                x, nfe = integrate(f, x, math.log(self.sigma_max), math.log(self.sigma_min),
                                   method=method or self.ode_method, steps=steps, rtol=self.rtol, atol=self.atol)
            elif sampler == "dpm++":
                x = math.sqrt(1 + self.sigma_max**2) * torch.randn(n, d, device=dev)
                x, nfe = self._few_step(s, x, steps), steps
            elif sampler == "langevin":
                sig = geometric_schedule(float(self.sigma_max), float(self.sigma_min), steps)
                x = math.sqrt(1 + self.sigma_max**2) * torch.randn(n, d, device=dev)
                res = annealed_langevin(s, x, sigmas=sig, steps_per_level=int(self.langevin_steps),
                                        eps=float(self.langevin_snr) * sig[-1] ** 2)
                x, nfe = res.x, res.nfe
            else:
                raise ValueError(f"sampler must be 'sde', 'ode', 'dpm++' or 'langevin'; got {sampler!r}")
        self.last_nfe_ = nfe * per
        return x

    def _few_step(self, s, x: torch.Tensor, steps: int) -> torch.Tensor:
        """DPM-Solver++ (2M) on the VE path ``x = x0 + sigma eps``: data prediction ``D = x + sigma^2 s``,
        one call per step, ``sigma`` on Karras et al.'s (2022) rho = 7 ladder from ``sigma_max`` to
        ``sigma_min`` (steps crowded towards the data)."""
        sigmas = karras_sigmas(steps, float(self.sigma_min), float(self.sigma_max))

        def data_fn(xx: torch.Tensor, i: int) -> torch.Tensor:
            sig = float(sigmas[i])
            return xx + sig**2 * s(xx, sig)

        return multistep_data_solver(data_fn, x, torch.ones_like(sigmas), sigmas)

    def _nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """DPM-Solver++ with as many steps as ``nfe`` calls allow (a guided step costs two)."""
        opts = self._without_budget_options(opts, "steps", "sampler", "method", "sde")
        g = float(self.guidance if opts.get("guidance") is None else opts["guidance"])
        per = 2 if labelled and g not in (0.0, 1.0) else 1
        return {**opts, "sampler": "dpm++", "steps": steps_for_budget(nfe, per)}

    def _ode_field(self, s):
        """Probability-flow ODE in log-sigma time: ``dx/du = -sigma^2 s(x, sigma) = x - D(x; sigma)``, u = log sigma."""
        def f(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
            sig = u.exp()
            return -(sig[:, None] ** 2) * s(x, sig)
        return f

    # ------------------------------------------------------------------ likelihood
    def _log_prob_std(self, Z, y: np.ndarray | None = None, method: str | None = None, steps: int = 48,
                      batch: int = 10000, return_se: bool = False):
        """log p(z | y) by the instantaneous change of variables along the PF-ODE (``y``: class
        indices, None for the unconditional field)."""
        yt = self._labels(y)
        var = 1 + float(self.sigma_max) ** 2
        d = Z.shape[1]

        def prior(x: torch.Tensor) -> torch.Tensor:
            return -0.5 * (x * x).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)

        out, ses, nfe = [], [], 0
        for a in range(0, len(Z), int(batch)):
            f = self._ode_field(self.score_fn(None if yt is None else yt[a:a + int(batch)], 1.0)[0])
            lp, se, nfe = log_likelihood(f, self._tensor(Z[a:a + int(batch)]), math.log(self.sigma_min),
                                     math.log(self.sigma_max), prior, method=method or self.likelihood_method,
                                     steps=int(steps), rtol=float(self.rtol), atol=float(self.atol),
                                     return_se=True, **trace_options(self))
            out.append(lp.double())
            ses.append(se.double())
        self.last_likelihood_nfe_ = nfe
        return (torch.cat(out), torch.cat(ses)) if return_se else torch.cat(out)

    # ------------------------------------------------------------------ imputation
    def _impute_std(self, Z, miss, seed, steps: int | None = None, resample: int | None = None,
                    method: str | None = None):
        """``method='grid'``: the exact route on the PF-ODE density (base class); 'repaint': RePaint
        (``genzoo.samplers.inpainting.repaint``) on the VE reverse SDE, observed coordinates
        re-perturbed to the current level, each step repeated ``resample`` times with the exact VE
        forward jump back in between (approximate); 'auto': the module docstring's rule."""
        route = density_route(method, Z, miss, "repaint", wide="sir")
        if route == "sir":
            return self._sir_impute_std(Z, miss, seed)
        if route == "grid":
            if Z.shape[1] > 2:  # beyond 2-D: name the cost instead of running for hours
                check_grid_cost(Z, miss, self.family, limit=ODE_GRID_MAX_EVALUATIONS)
            return super()._impute_std(Z, miss, seed)
        steps = int(self.impute_steps if steps is None else steps)
        resample = int(self.resample if resample is None else resample)
        if steps < 1 or resample < 1:
            raise ValueError(f"steps and resample must be >= 1; got {steps}, {resample}")
        dev = torch.device(self.device_)
        known = self._tensor(np.where(miss, 0.0, Z))
        s, _ = self.score_fn(None, 0.0)
        sig = torch.exp(torch.linspace(math.log(self.sigma_max), math.log(self.sigma_min), steps + 1)).tolist()

        def step(x: torch.Tensor, si: float, sj: float, last: bool) -> torch.Tensor:
            var_step = si**2 - sj**2  # VE reverse step: g^2 dt = sigma_i^2 - sigma_{i+1}^2
            x = x + var_step * s(x, si)
            return x if last else x + math.sqrt(var_step) * torch.randn_like(x)

        def jump(x: torch.Tensor, sj: float, si: float) -> torch.Tensor:  # the VE forward kernel adds the variance
            return x + math.sqrt(si**2 - sj**2) * torch.randn_like(x)

        with torch_seed(seed, dev):
            x = math.sqrt(1 + self.sigma_max**2) * torch.randn(known.shape, device=dev)
            x, nfe = repaint(step, lambda k, si: k + si * torch.randn_like(k), jump, x, sig, known,
                             torch.as_tensor(~miss, device=dev), resample=resample)
        self.last_nfe_ = nfe
        return x
