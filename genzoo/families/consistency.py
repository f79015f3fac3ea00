"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023): one network step from noise to data.

One breath: every point on a trajectory of a probability-flow ODE should map to the same
end point; train ``F(x, s)`` so that two neighbouring points of one trajectory give the same
answer, ``|F(x_n, s_n) - sg F(x_{n+1}, s_{n+1})|^2``, with ``F(x, 1) = x`` pinned at the data
end; then sample in one step, ``F(noise, 0)``, or refine in a few (re-noise, map again).

Time ``s in [0, 1]`` runs from noise (0) to data (1), as in flow matching; the trajectory is
cut at ``n_levels`` points ``s_n = (1 - eps^(n/N)) / (1 - eps)`` (geometric in ``1 - s``, fine
near the data where the paths bend) and ``F(x, s) = x + (1 - s) u(x, s)`` with ``u`` a
network (an "average velocity" to the end): the boundary condition holds exactly and the
loss is measured on the velocity scale, ``|F_n - sg F_{n+1}|^2 / (1 - s_n)^2``.

Objectives:

- ``objective='cd'`` (default), consistency distillation: neighbouring points come from the
  ODE of a teacher. ``teacher=`` a fitted or unfitted diffusion, score, flow_matching or
  rectified_flow model (or any estimator with ``probability_flow()``; passed in, never
  imported; an unfitted one is fitted on the same data first). Without a teacher a flow-matching velocity field is
  trained first on the same data with the shared flow-matching objective
  (``genzoo.objectives.paths.cfm_loss``) for ``teacher_steps`` steps of 512 rows at flow_matching's
  learning rate (its trajectories end on grid25's modes 98% of the time; 3,000 steps of the
  student's 256 rows: 94%, and the student's 2-step samples cannot beat its teacher): this is the default,
  because in 2-D it reaches the thin modes of ``gaussians8`` and ``grid25`` where
  consistency training alone does not within the time budget (the measurements, with the
  commands that reproduce them, are in ``benchmarks/RESULTS.md``, section ``consistency``).
  The internal teacher uses the independent coupling, not minibatch OT: only then is its
  marginal at level ``s`` the re-noising kernel ``s x + (1 - s) eps`` the multistep
  sampler uses (with an OT teacher the re-noised points lie off the teacher's paths, and
  ``gaussians8`` got worse with more steps). Its target is the stable target field of
  ``flow_matching`` (more 4-step samples on the modes of ``grid25``). The student starts from the teacher's
  weights (Song et al. 2023 initialise CD from the teacher): ``F(x, s)`` is then already
  the teacher's one-Euler-step jump to the data. The teacher's trajectories from
  ``pool_size`` noise draws are integrated once (RK4 between consecutive levels) and the
  student trains on pairs of neighbouring points of held trajectories; the teacher's
  one-step update is exactly CD's ``x_hat_{n}`` (Song et al., Alg. 2), only computed ahead.
  ``n_levels=8`` with 6,000 student steps (now 10,000; before: 16 levels, 3,000 steps; 2-step samples on
  ``grid25`` 86 -> 92% on support, 1-step 34 -> 63%, gaussians8 2-step 94 -> 96%; see
  ``benchmarks/RESULTS.md``): fewer hops for the targets to propagate through (32 levels: worse 2-step
  samples on ``gaussians8``).
  An external teacher's ODE comes from :func:`teacher_flow` (flow matching and rectified
  flow: their ``probability_flow()``; diffusion and score: their VP / VE ODE rewritten in
  diffusion's log-SNR time). Each level ``s`` is placed at the teacher time of the same
  signal-to-noise ratio as the straight path's, ``s^2 / (1 - s)^2`` (:func:`snr_matched_times`),
  and its points are divided by the marginal's scale ``sqrt(alpha^2 + sigma^2)``: VP, VE and
  straight-path marginals then coincide, so the student learns the same map from every
  teacher, with the re-noising kernel ``alpha_ x + sigma_ eps`` (``alpha_^2 + sigma_^2 = 1``).
  With flow-matching, diffusion and score teachers more steps sample better; a rectified-flow
  teacher's student samples, but more steps can lose quality: its reflowed ODE's marginals
  are not the straight path of independent noise the re-noising uses (as with an OT teacher).
  With labels, a ``label_dropout`` share of the trajectories follows the teacher's
  unconditional field under the null label, so that the student has an unconditional map
  too (imputation, which takes no labels, uses it).
- ``objective='ct'``, consistency training without a teacher (Song et al., Alg. 3, with
  the improvements of Song & Dhariwal 2023: no EMA target, a doubling schedule for the
  number of levels): neighbouring points share one (noise, data) pair on the straight path
  ``(1 - s) x0 + s x1``, the pair coupled by minibatch OT so that conditional and marginal
  paths nearly agree.

Sampling: ``steps`` = 1, 2 or 4 (or any): map noise to data, then re-noise the estimate to
a later level with the teacher's forward marginal (``alpha_s x + sigma_s eps``, tabulated
at fit time) and map again (Song et al., Alg. 1). ``last_nfe_`` = steps. Default 4. The levels
are chosen once at fit, on the teacher's own trajectory ends (highest precision of the j-step
samples, greedily; ``sample_levels_``): the best 2-step level is s = 0.93 on grid25 and 0.82 on
gaussians8, and neither fixed choice suits both. ``grid25``, seeds 0 / 1: 1/2/3/4 steps put
86/96/98/98% of samples on the modes' support (fit 76 s on 2 cores; before the wider student,
the longer-trained teacher and the chosen levels: 63/92/-/98% in 24 s); gaussians8 75/95/98/99%
(before: 96% at 2 steps).
Network: as flow matching's (4 layers, 64 random Fourier features of ``x``) at width 256: the
student's 1-step map needs it (grid25 1 step 69 -> 82% on support, 2 steps 93 -> 95%).
Imputation: by default a k-nearest-neighbour estimate of the model's own conditional from a
pool of its samples (exact for the model as the pool grows); ``impute(X, method='paste')``: the
multistep loop with the observed coordinates pasted in before each re-noising (Song et al.,
Alg. 4, zero-shot inpainting), biased on thin modes.
No likelihood (``likelihood_kind='none'``): a consistency model is a sampler, not a density.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from genzoo.base import TorchGenerativeModel, _to_numpy, torch_seed
from genzoo.errors import UnsupportedError
from genzoo.families._wide import scaled_width
from genzoo.nn.mlp import in_chunks
from genzoo.nn.velocity import VelocityModel, velocity_net
from genzoo.objectives.couplings import ot_pairing
from genzoo.objectives.guidance import guided_velocity
from genzoo.objectives.paths import cfm_loss
from genzoo.params import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    TRAINING,
    UNIT,
    UNIT_OPEN_RIGHT,
    Constraint,
    Interval,
    Options,
    Sequence,
)
from genzoo.registry import register
from genzoo.samplers.ode import ProbabilityFlow, integrate
from genzoo.training import Phase, descend, train


def level_grid(n_levels: int, eps: float = 1e-3) -> torch.Tensor:
    """``n_levels + 1`` times ``s_0 = 0 < ... < s_N = 1``, geometric in ``1 - s`` towards the data."""
    u = torch.linspace(0.0, 1.0, int(n_levels) + 1, dtype=torch.float64, device="cpu")  # a host-side table
    return ((1 - eps ** u) / (1 - eps)).float()


#: the internal teacher's rows per step and peak learning rate: flow_matching's defaults (the student's
#: own 256 / 2e-3 train a teacher on a quarter of the rows, whose trajectories end on grid25's modes
#: 94% of the time instead of 98%)
TEACHER_BATCH, TEACHER_LR = 512, 4e-3

#: the sampler's levels when they are not chosen at fit (sample_times=None without a re-noising kernel
#: never gets past the first; older checkpoints)
DEFAULT_TIMES = (0.0, 0.8, 0.9, 0.95)

#: the teacher families: those with ``probability_flow()``, and those whose ODE is built here
TEACHER_FAMILIES = ("diffusion", "score", "flow_matching", "rectified_flow")


class _TeacherSpec(Constraint):
    """A ``teacher=`` value: a diffusion, score, flow_matching or rectified_flow model (or any
    estimator with ``probability_flow()``), fitted or not."""

    def accepts(self, value) -> bool:
        return callable(getattr(value, "probability_flow", None)) or getattr(value, "family", None) in TEACHER_FAMILIES

    def describe(self) -> str:
        return "a diffusion, score, flow_matching or rectified_flow model (fitted or not)"


def teacher_flow(teacher, y: torch.Tensor | None = None, guidance: float = 1.0) -> ProbabilityFlow:
    """A fitted teacher's probability-flow ODE in its standardised space, with its forward marginal.

    ``perturb(x, t, eps) = alpha_t x + sigma_t eps`` is what lets the student re-noise for
    multistep sampling and imputation. Flow matching and rectified flow: the straight path of
    independent noise, ``(1 - t) eps + t x`` (exact for flow matching's default independent
    coupling; for an OT coupling or a reflowed field the teacher's own marginals are only
    close to it). Diffusion: its VP ODE in log-SNR time (as its likelihood integrates it,
    ``u = 0`` data, ``1`` noise), ``x_u = alpha x + sigma eps``. Score: its VE ODE written as
    that same VP ODE (state ``x_ve / sqrt(1 + sigma_ve^2)``, ``eps_hat = -sigma_ve s(x_ve, sigma_ve)``),
    on its range ``sigma_min .. sigma_max``. (Diffusion and score have no ``probability_flow()``
    of their own yet; one, when they gain it, takes precedence.)
    """
    g = float(guidance)
    own = getattr(teacher, "probability_flow", None)
    if callable(own):
        flow = own(y, g)
        if flow.perturb is None and (flow.t_noise, flow.t_data, flow.noise_std) == (0.0, 1.0, 1.0):
            flow = dataclasses.replace(flow, perturb=lambda x, t, e: (1 - t) * e + t * x)
        return flow
    if teacher.family == "diffusion":
        sched = teacher._noise_schedule()
        return _vp_flow(teacher._eps_fn(y, g)[0], float(sched.lambda_min), float(sched.lambda_max))
    if teacher.family == "score":  # its VE ODE rewritten as the VP one: x_vp = alpha x_ve, sigma_ve = sigma / alpha
        score = teacher.score_fn(y, g)[0]

        def eps_fn(x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
            sig_ve, alpha = torch.exp(-lam / 2), torch.sigmoid(lam).sqrt()
            return -sig_ve * score(x / alpha, sig_ve)

        return _vp_flow(eps_fn, -2 * math.log(float(teacher.sigma_max)), -2 * math.log(float(teacher.sigma_min)))
    raise ValueError(f"teacher {type(teacher).__name__} exposes no probability_flow(); use a "
                     + ", ".join(TEACHER_FAMILIES) + " model")


def _vp_flow(eps_fn, lo: float, hi: float) -> ProbabilityFlow:
    """The VP probability-flow ODE of a noise predictor ``eps_fn(x, lambda)`` in log-SNR time, as
    diffusion's likelihood integrates it: ``lambda = hi + u (lo - hi)``, ``u = 0`` data, ``1``
    noise, ``dx/dlambda = sigma (sigma x - eps_hat) / 2``; smooth in ``u`` even for thin modes (the
    VE ODE in ``log sigma`` is not: one RK4 hop from ``sigma = 20`` to ``2`` lost the ring)."""
    def f(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        lam = hi + u[0] * (lo - hi)
        s = torch.sigmoid(-lam).sqrt()
        return 0.5 * s * (s * x - eps_fn(x, lam)) * (lo - hi)

    def perturb(x, u, e):
        lam = hi + float(u) * (lo - hi)
        return math.sqrt(1 / (1 + math.exp(-lam))) * x + math.sqrt(1 / (1 + math.exp(lam))) * e

    return ProbabilityFlow(f, t_noise=1.0, t_data=0.0, noise_std=1.0, perturb=perturb)


def snr_matched_times(flow: ProbabilityFlow, levels: list[float]) -> list[float]:
    """The teacher time at which its log-SNR ``2 log(alpha_t / sigma_t)`` equals the straight
    path's at each level ``s``, ``2 log(s / (1 - s))`` (clipped to the teacher's range).

    Level ``s`` then means the same noise level whatever the teacher: scaled to unit variance
    (``x / sqrt(alpha^2 + sigma^2)``) the VP, VE and straight-path marginals at matched SNR
    are one and the same, and so are their probability-flow ODEs up to that scaling, so the
    student learns one map. For flow matching the times are the levels themselves.
    """
    one, zero = torch.ones(1, 1, device="cpu"), torch.zeros(1, 1, device="cpu")  # a CPU table of floats

    def log_snr(r: float) -> float:
        t = flow.t_noise + (flow.t_data - flow.t_noise) * r
        a, s = abs(float(flow.perturb(one, t, zero))), abs(float(flow.perturb(zero, t, one)))
        with np.errstate(divide="ignore"):
            return float(2 * (np.log(a) - np.log(s)))

    out = []
    for s in levels:
        with np.errstate(divide="ignore"):
            want = float(2 * (np.log(s) - np.log1p(-s))) if 0 < s < 1 else (-math.inf if s <= 0 else math.inf)
        lo, hi = 0.0, 1.0
        if want <= log_snr(0.0):
            r = 0.0
        elif want >= log_snr(1.0):
            r = 1.0
        else:
            for _ in range(60):  # log-SNR rises from the noise end (r = 0) to the data end (r = 1)
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if log_snr(mid) < want else (lo, mid)
            r = 0.5 * (lo + hi)
        out.append(flow.t_noise + (flow.t_data - flow.t_noise) * r)
    return out


@register("consistency")
class Consistency(TorchGenerativeModel):
    """Consistency model: distilled from a teacher's ODE (default: an internal flow-matching one) or trained alone.

    No likelihood. Fitted with labels, ``sample(n, y=k)`` draws class k (the class from the training
    frequencies without ``y``).

    Parameters
    ----------
    teacher : estimator or None, default=None
        For ``objective='cd'``: a diffusion, score, flow_matching or rectified_flow estimator (fitted
        here if unfitted); None = an internal flow-matching teacher.
    objective : str, default='cd'
        'cd' (consistency distillation from a teacher's ODE) or 'ct' (consistency training, no teacher).
    n_levels : int, default=8
        Levels the trajectory is cut at, geometric in 1 - s towards the data.
    teacher_steps : int, default=6000
        Training steps of the internal teacher (a step budget), 512 rows each at learning rate
        4e-3 (flow_matching's defaults; ``batch_size`` and ``lr`` are the student's).
    teacher_guidance : float, default=1.0
        Guidance g of the teacher's ODE on labelled trajectories.
    pool_size : int, default=20000
        Teacher trajectories integrated once for distillation (a budget).
    pool_substeps : int, default=1
        RK4 steps between two consecutive levels of a trajectory.
    ct_levels : tuple[int, int], default=(8, 128)
        (start, end) number of levels of the doubling schedule of ``objective='ct'``.
    hidden : int or None, default=None
        Width of the consistency MLP.
        None = 256, or 4 D rounded up to a multiple of 32 beyond 64 columns
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=4
        Depth of the consistency MLP.
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
    label_dropout : float, default=0.1
        Share of training labels replaced by the null label, so one network also learns the
        unconditional model (guidance).
    ema_decay : float, default=0.999
        Decay of the weights' moving average, used for sampling and the likelihood.
    sample_steps : int, default=4
        Network evaluations of ``sample`` (map, re-noise, map again).
    sample_times : tuple[float, ...] or None, default=None
        Levels s (0 = noise) the multistep sampler maps from, in order. None = chosen at fit on
        the teacher's trajectory ends (``sample_levels_``, up to 4 steps; more steps, or a teacher
        without a forward marginal: (0, 0.8, 0.9, 0.95) then evenly spaced levels).
    impute_steps : int, default=20
        Steps of ``impute(method='paste')``'s multistep inpainting loop (the default method resamples the
        model's own draws; see ``_impute_std``).
    max_steps : int, default=10000
        Training steps of the student (a step budget: the ``genzoo compare`` presets scale it).
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("consistency", teacher_steps=200, max_steps=200, pool_size=1000, verbose=0,
    ...             random_state=0).fit(X)
    >>> m.sample(5, steps=1, random_state=0).shape, m.last_nfe_
    ((5, 2), 1)
    """

    likelihood_kind = "none"
    _capabilities = frozenset({"sample", "impute", "conditional"})
    approximate_impute = "paste"  # the other impute method, which the report measures too
    summary = "consistency model: 1-4 step sampler distilled from a flow/diffusion ODE (or trained alone)"
    budget_params = {"max_steps": 50, "teacher_steps": 50, "pool_size": 1000}  # student, teacher, trajectories
    _parameter_constraints = {
        **TRAINING,
        "teacher": [None, _TeacherSpec()],
        "objective": [Options(("cd", "ct"))], "n_levels": [Interval(int, 2, None)], "teacher_steps": POSITIVE_INT,
        "teacher_guidance": NON_NEGATIVE, "pool_size": POSITIVE_INT, "pool_substeps": POSITIVE_INT,
        "ct_levels": [Sequence(POSITIVE_INT, length=2, increasing=True)], "hidden": [*POSITIVE_INT, None],
        "layers": POSITIVE_INT, "time_dim": POSITIVE_INT, "time_scale": POSITIVE,
        "fourier_features": NON_NEGATIVE_INT, "fourier_scale": POSITIVE, "label_dropout": UNIT_OPEN_RIGHT,
        "ema_decay": UNIT_OPEN_RIGHT, "sample_steps": POSITIVE_INT, "sample_times": [Sequence(UNIT), None],
        "impute_steps": POSITIVE_INT,
    }

    def __init__(self, *, teacher=None, objective: str = "cd", n_levels: int = 8, teacher_steps: int = 6000,
                 teacher_guidance: float = 1.0, pool_size: int = 20000, pool_substeps: int = 1,
                 ct_levels: tuple[int, int] = (8, 128), hidden: int | None = None, layers: int = 4, time_dim: int = 32,
                 time_scale: float = 4.0, fourier_features: int = 64, fourier_scale: float = 5.0,
                 label_dropout: float = 0.1, ema_decay: float = 0.999,
                 sample_steps: int = 4, sample_times: tuple[float, ...] | None = None,
                 impute_steps: int = 20, max_steps: int = 10000, batch_size: int = 256, lr: float = 2e-3,
                 validation_fraction: float = 0.1, early_stopping: bool = True, patience: int = 8,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.teacher = teacher
        self.objective = objective
        self.n_levels = n_levels
        self.teacher_steps = teacher_steps
        self.teacher_guidance = teacher_guidance
        self.pool_size = pool_size
        self.pool_substeps = pool_substeps
        self.ct_levels = ct_levels
        self.hidden = hidden
        self.layers = layers
        self.time_dim = time_dim
        self.time_scale = time_scale
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
        self.label_dropout = label_dropout
        self.ema_decay = ema_decay
        self.sample_steps = sample_steps
        self.sample_times = sample_times
        self.impute_steps = impute_steps
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ networks
    def _build(self, dim: int, n_classes: int) -> nn.Module:
        # the loop hands over its rows' width; trajectories are rows of (levels + 1) * d
        d = int(self.n_features_in_)
        return VelocityModel(velocity_net(d, n_classes, hidden=scaled_width(self.hidden, d, 256),
                                          layers=int(self.layers),
                                          time_dim=int(self.time_dim), time_scale=float(self.time_scale),
                                          fourier_features=int(self.fourier_features),
                                          fourier_scale=float(self.fourier_scale)),
                             ema_decay=float(self.ema_decay))

    def _student_setup(self, init: nn.Module | None):
        """The student phase's setup: a fresh network, or a copy of the internal teacher with its
        averaged weights loaded (the student starts as the teacher, as Song et al. do)."""
        if init is None:
            return self._setup

        def setup(Z_train: np.ndarray) -> None:
            student = copy.deepcopy(init)
            student.ema.copy_to_source()
            self.module_ = student.to(torch.device(self.device_))
        return setup

    def _consistency_fn(self, net, x: torch.Tensor, s: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """``F(x, s) = x + (1 - s) u(x, s)``: exactly the identity at the data end ``s = 1``."""
        return x + (1 - s)[:, None] * net(x, s, y)

    # ------------------------------------------------------------------ objectives
    def _loss(self, z: torch.Tensor, y: torch.Tensor | None, net=None, gen: torch.Generator | None = None,
              kind: str = "cd") -> torch.Tensor:
        """Phase ``kind``: 'teacher', flow matching; 'cd' / 'ct', consistency of neighbouring trajectory points."""
        net = self.module_.net if net is None else net
        if kind == "teacher":
            return cfm_loss(net, z, y, coupling="independent", stable_target=True,
                            label_dropout=float(self.label_dropout), n_classes=self.n_classes_)
        B, d = z.shape[0], int(self.n_features_in_)
        if kind == "cd":  # a row is one teacher trajectory at every level
            s = self.levels_.to(z.device)
            traj = z.view(B, len(s), d)  # (B, N + 1, D)
            n = torch.randint(0, len(s) - 1, (B,), device=z.device, generator=gen)
            rows = torch.arange(B, device=z.device)
            x_n, x_next = traj[rows, n], traj[rows, n + 1]  # (B, D) each
        else:  # 'ct': both points on the straight line of one OT-coupled (noise, data) pair
            s = level_grid(self._ct_n, float(self._eps)).to(z.device)
            x0 = ot_pairing(torch.randn(z.shape, device=z.device, generator=gen), z, y, chunk=64)
            n = torch.randint(0, len(s) - 1, (B,), device=z.device, generator=gen)
            a, b = s[n][:, None], s[n + 1][:, None]
            x_n, x_next = (1 - a) * x0 + a * z, (1 - b) * x0 + b * z
        s_n, s_next = s[n], s[n + 1]
        with torch.no_grad():  # the target: the same network one level closer to the data, no gradient
            target = self._consistency_fn(net, x_next, s_next, y)
        pred = self._consistency_fn(net, x_n, s_n, y)
        return (((pred - target) / (1 - s_n)[:, None]) ** 2).sum(1).mean()

    def _phase_of(self, kind: str, **changes) -> Phase:
        """The training phase ``kind`` ('teacher', 'cd' or 'ct'): its loss, step and validation."""
        budget = int(changes.get("max_steps", self.max_steps))

        def step(z: torch.Tensor, y: torch.Tensor | None, step: int) -> float:
            if kind == "ct":  # doubling schedule for the number of levels (Song & Dhariwal 2023)
                lo, hi = (int(v) for v in self.ct_levels)
                k = int(math.log2(max(hi // lo, 1)) + 1)
                self._ct_n = min(hi, lo * 2 ** int(step * k / max(budget, 1)))
            (opt,) = self.optimizers_
            return descend(self._loss(z, y, kind=kind), opt, self.module_.parameters(), self.grad_clip)

        return self._default_phase(kind, step=step, val_loss=lambda z, y: self._val_loss(z, y, kind), **changes)

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None, kind: str = "cd") -> float:
        """Phase ``kind``'s objective for the EMA weights on held-out rows, with fixed randomness."""
        net = lambda x, t, yy: self.module_(x, t, yy, ema=True)  # noqa: E731
        if kind == "ct":
            self._ct_n = int(self.ct_levels[1])
        gen = torch.Generator(device=z.device).manual_seed(12345)
        if kind == "teacher":
            with torch_seed(12345, z.device):
                return float(np.mean([float(self._loss(z, y, net, kind=kind)) for _ in range(4)]))
        return float(np.mean([float(self._loss(z, y, net, gen, kind=kind)) for _ in range(4)]))

    # ------------------------------------------------------------------ fit: teacher, pool, student
    def _fit_std(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        if self.teacher is not None and self.objective != "cd":
            raise ValueError("a teacher is only used by objective='cd'")
        self.phases_ = []  # 'ct'; or 'teacher' (internal teacher only), then 'cd'
        self.sample_levels_ = None
        self._eps = 1e-3
        self.levels_ = level_grid(int(self.n_levels), self._eps)
        self.teacher_family_ = None
        if self.objective == "ct":
            self.alpha_, self.sigma_ = self.levels_.clone(), 1 - self.levels_  # the straight path
            self.to_student_ = (np.zeros(Z.shape[1]), np.ones(Z.shape[1]))
            self.noise_std_ = 1.0
            self._ct_n = int(self.ct_levels[0])
            self._record_phase(train(self, Z, y, self._phase_of("ct"), seed))
            return
        flow, to_student = self._teacher_flow(Z, y, seed)
        pool, yp = self._pool(flow, y is not None, seed + 1)
        init = getattr(self, "_teacher_module", None) if self.teacher is None else None
        try:
            self._record_phase(train(self, pool, yp, self._phase_of("cd", setup=self._student_setup(init)), seed + 2))
        finally:
            self._teacher_module = self._teacher_model = None
        self.to_student_ = to_student
        d = int(self.n_features_in_)
        self.sample_levels_ = self._choose_levels(pool[:, -d:], yp, seed + 3)

    def _teacher_flow(self, Z: np.ndarray, y: np.ndarray | None, seed: int):
        """The teacher's ODE (unconditional field) and the affine map from the teacher's standardised
        coordinates to the student's; sets the levels' teacher times and re-noising kernel."""
        d = Z.shape[1]
        ident = (np.zeros(d), np.ones(d))
        s = self.levels_.tolist()
        if self.teacher is None:  # internal flow-matching teacher on the same data
            self._teacher_model = None
            self._record_phase(train(self, Z, y, self._phase_of("teacher", max_steps=int(self.teacher_steps),
                                                                 batch_size=TEACHER_BATCH, lr=TEACHER_LR), seed))
            vel = self._teacher_module = self.module_
            self.teacher_family_ = "flow_matching (internal)"
            net = lambda x, t, yy: vel(x, t, yy, ema=True)  # noqa: E731
            self._teacher_net = net
            flow = ProbabilityFlow(lambda x, t: net(x, t, None), 0.0, 1.0, 1.0,
                                   perturb=lambda x, t, e: (1 - t) * e + t * x)
            # unscaled levels: the student starts from the teacher's weights, so it sees what the teacher saw
            self._teacher_times, self._level_scale = s, np.ones(len(s))
            self.alpha_, self.sigma_ = self.levels_.clone(), 1 - self.levels_
            self.noise_std_ = 1.0
            return flow, ident
        teacher = self.teacher
        if not getattr(teacher, "__sklearn_is_fitted__", lambda: False)():
            X = Z * self.scale_ + self.loc_
            teacher = clone(teacher).fit(X, None if y is None else self.classes_[y])
        if teacher.n_features_in_ != d:
            raise ValueError(f"teacher was fitted on {teacher.n_features_in_} features, the data have {d}")
        if y is not None and (getattr(teacher, "classes_", None) is None
                              or not np.array_equal(np.asarray(teacher.classes_), self.classes_)):
            raise ValueError("a conditional student needs a teacher fitted with the same labels")
        self.teacher_family_ = teacher.family
        self._teacher_model = teacher
        flow = teacher_flow(teacher)
        # student standardised z -> data x -> teacher standardised z_t: z_t = z * a + b
        a = self.scale_ / teacher.scale_
        b = (self.loc_ - teacher.loc_) / teacher.scale_
        to_student = (-b / a, 1 / a)
        if flow.perturb is None:  # no forward marginal: levels evenly in the teacher's time, one step only
            self._teacher_times = [flow.t_noise + (flow.t_data - flow.t_noise) * v for v in s]
            self._level_scale = np.ones(len(s))
            self.alpha_ = self.sigma_ = None
            self.noise_std_ = float(flow.noise_std)
            return flow, to_student
        # each level at the teacher time of its noise level; its points scaled to unit variance, so
        # that the student's inputs and re-noising kernel, alpha_ x + sigma_ eps, are the same for
        # every teacher (alpha_^2 + sigma_^2 = 1)
        ts = self._teacher_times = snr_matched_times(flow, s)
        one = torch.ones(1, 1, device="cpu")
        al = np.array([abs(float(flow.perturb(one, t, 0 * one))) for t in ts])
        si = np.array([abs(float(flow.perturb(0 * one, t, one))) for t in ts])
        c = self._level_scale = np.sqrt(al**2 + si**2)
        self.alpha_ = torch.tensor(al / c, dtype=torch.float32, device="cpu")  # tables: read as floats
        self.sigma_ = torch.tensor(si / c, dtype=torch.float32, device="cpu")
        self.noise_std_ = float(flow.noise_std) / float(c[0])
        return flow, to_student

    @torch.no_grad()
    def _pool(self, flow: ProbabilityFlow, labelled: bool, seed: int):
        """``pool_size`` teacher trajectories through every level: rows of ``(N + 1) * D`` in the
        teacher's coordinates, each level's point divided by its marginal scale (1 for the internal
        teacher). With labels, a ``label_dropout`` share follows the teacher's unconditional field
        under the null label, so that the student has an unconditional map too (imputation uses it)."""
        dev = torch.device(self.device_)
        n, d = int(self.pool_size), int(self.n_features_in_)
        yp = None
        if labelled:
            rng = np.random.default_rng(seed)
            yp = rng.choice(self.n_classes_, size=n, p=self.class_prior_)
            yp[rng.random(n) < float(self.label_dropout)] = self.n_classes_  # the null label
        ts = self._teacher_times
        scale = torch.as_tensor(self._level_scale, dtype=torch.float32, device=dev)[None, :, None]
        out = []
        with torch_seed(seed, dev):
            for a in range(0, n, 8192):
                m = min(8192, n - a)
                x = float(flow.noise_std) * torch.randn(m, d, device=dev)
                groups = [(torch.arange(m, device=dev), flow.f)]
                if labelled:
                    yc = self._labels(yp[a:a + m])
                    null = yc == self.n_classes_
                    groups = [(torch.nonzero(~null)[:, 0], self._teacher_field(yc[~null])),
                              (torch.nonzero(null)[:, 0], self._teacher_field(None))]
                traj = torch.empty(m, len(ts), d, device=dev)
                for rows, f in groups:
                    if len(rows) == 0:
                        continue
                    xr = traj[rows, 0] = x[rows]
                    for k in range(len(ts) - 1):
                        xr, _ = integrate(f, xr, ts[k], ts[k + 1], method="rk4", steps=int(self.pool_substeps))
                        traj[rows, k + 1] = xr
                out.append((traj / scale).reshape(m, -1).cpu().numpy())  # (m, (N + 1) * D)
        return np.concatenate(out), yp

    def _teacher_field(self, yt: torch.Tensor | None):
        """The teacher's ODE field for labels ``yt``, guided by ``teacher_guidance``; unconditional for None."""
        g = float(self.teacher_guidance) if yt is not None else 1.0
        if self._teacher_model is not None:
            return teacher_flow(self._teacher_model, yt, g).f
        return guided_velocity(self._teacher_net, yt, g, self.n_classes_)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def _choose_levels(self, ends: np.ndarray, yp: np.ndarray | None, seed: int, n: int = 5000,
                       max_steps: int = 4) -> list[int] | None:
        """The multistep sampler's levels, chosen once on the teacher's own samples: greedily, step
        ``j`` re-noises to the later level whose ``j``-step samples have the highest precision
        (``genzoo.metrics.precision_recall``, k = 3) against the trajectory ends. The best level is
        not the same everywhere (2 steps, grid25: s = 0.93, 95.7% of samples on the modes' support
        against 94.5% at 0.82; gaussians8: 0.82, 94.8% against 92.3% at 0.93) and the precision
        ranks them as the support does. None when ``sample_times`` is given or there is no
        re-noising kernel."""
        if self.sample_times is not None or self.alpha_ is None:
            return None
        from genzoo.metrics.manifold import precision_recall

        dev = torch.device(self.device_)
        rng = np.random.default_rng(seed)
        T = ends[rng.choice(len(ends), size=min(len(ends), 10000), replace=False)]
        y = None if yp is None else self._labels(rng.choice(yp, size=n))
        with torch_seed(seed, dev):
            noise = self.noise_std_ * torch.randn(n, int(self.n_features_in_), device=dev)
            eps = torch.randn(max_steps, n, int(self.n_features_in_), device=dev)
        xh, chosen = self._map(noise, 0, y), [0]
        last = len(self.levels_) - 2  # the last level before the data
        max_steps = min(int(max_steps), last + 1)
        for j in range(1, max_steps):
            best = None
            for k in range(chosen[-1] + 1, last - (max_steps - 1 - j) + 1):  # leave a level for each later step
                out = self._map(float(self.alpha_[k]) * xh + float(self.sigma_[k]) * eps[j], k, y)
                p = precision_recall(T, out.cpu().numpy(), 3)[0]
                if best is None or p > best[0]:
                    best = (p, k, out)
            if best is None:
                break
            chosen.append(best[1])
            xh = best[2]
        return chosen

    def _times(self, steps: int) -> list[int]:
        """Level indices the multistep sampler maps from: level 0 (pure noise), then later levels."""
        chosen = getattr(self, "sample_levels_", None)
        if self.sample_times is None and chosen and len(chosen) >= steps:
            return list(chosen[:steps])
        times = self.sample_times if self.sample_times is not None else DEFAULT_TIMES
        want = [float(v) for v in times][:steps]
        if len(want) < steps:  # more steps than listed times: fill evenly in level index
            extra = np.linspace(0, len(self.levels_) - 2, steps + 1)[len(want):steps]
            return [int(np.argmin(np.abs(self.levels_.numpy() - w))) for w in want] + [int(e) for e in extra]
        return [int(np.argmin(np.abs(self.levels_.numpy() - w))) for w in want]

    def _map(self, x: torch.Tensor, k: int, y: torch.Tensor | None) -> torch.Tensor:
        level = self.levels_[k].to(x.device)
        net = lambda xx, t, yy: self.module_(xx, t, yy, ema=True)  # noqa: E731
        # in pieces of rows: 100,000 samples at once keep their activations in cache
        return in_chunks(lambda xx, yy: self._consistency_fn(net, xx, level.expand(xx.shape[0]), yy), x, y)

    def _nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """``nfe`` steps of the multistep sampler: one network call each."""
        return {**self._without_budget_options(opts, "steps"), "steps": int(nfe)}

    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, steps: int | None = None) -> torch.Tensor:
        """Noise -> data in ``steps`` network evaluations (re-noising in between); ``last_nfe_`` = steps."""
        steps = int(self.sample_steps if steps is None else steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        if steps > 1 and self.alpha_ is None:
            raise UnsupportedError("multistep sampling needs the teacher's forward marginal (perturb); use steps=1")
        dev = torch.device(self.device_)
        ks = self._times(steps)
        with torch_seed(seed, dev):
            if y is None and self.n_classes_:
                y = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_)
            yt = self._labels(y)
            x = self.noise_std_ * torch.randn(n, int(self.n_features_in_), device=dev)
            xh = self._map(x, 0, yt)
            for k in ks[1:]:
                x = float(self.alpha_[k]) * xh + float(self.sigma_[k]) * torch.randn_like(xh)
                xh = self._map(x, k, yt)
        self.last_nfe_ = steps
        return self._to_student(xh)

    def _to_student(self, x: torch.Tensor) -> torch.Tensor:
        b, a = self.to_student_
        return x * torch.as_tensor(a, dtype=x.dtype, device=x.device) + torch.as_tensor(b, dtype=x.dtype,
                                                                                        device=x.device)

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, method: str | None = None,
                    steps: int | None = None, pool: int | None = None):
        """Draws of the missing coordinates given the observed ones.

        ``method='nearest'`` (default): ``max(pool, 64 n)`` draws of the model's own multistep
        sampler (``sample_steps`` steps, the class marginal for a labelled fit) form a pool; a
        row takes the missing coordinates of one of its ``max(256, r)`` pool draws nearest in
        the observed coordinates (r: rows sharing its observed values; systematic resampling),
        a k-nearest-neighbour estimate of the model's conditional, exact for the model as the
        pool grows (:func:`genzoo.samplers.conditional.nearest_conditional`); ``pool`` defaults
        to 65,536. ``method='paste'``: the multistep loop with the observed coordinates pasted in
        before each re-noising, ``steps`` steps (Song et al. 2023, Alg. 4, zero-shot
        inpainting): biased where the observed value sits on a thin mode (gaussians8, x at a
        tip: W1 700x its floor), kept for comparison.
        """
        method = "nearest" if method is None else method
        if method not in ("nearest", "paste"):
            raise ValueError(f"impute method must be 'nearest' or 'paste'; got {method!r}")
        if method == "paste":
            return self._paste_impute(Z, miss, seed, steps)
        from genzoo.samplers.conditional import nearest_conditional

        n = len(Z)
        M = max(int(65536 if pool is None else pool), 64 * n)
        rng = np.random.default_rng(seed)
        y = rng.choice(self.n_classes_, size=M, p=self.class_prior_) if self.n_classes_ else None
        draws = _to_numpy(self._sample_std(M, y, int(rng.integers(2**62))))  # (M, D), the model's samples
        out = nearest_conditional(draws, Z, miss, rng, k=256, per_row=1)
        self.last_nfe_ = M * int(self.sample_steps) / max(n, 1)
        return out

    def _paste_impute(self, Z: np.ndarray, miss: np.ndarray, seed: int, steps: int | None = None) -> torch.Tensor:
        """Multistep consistency sampling with the observed coordinates pasted in (Song et al. 2023, Alg. 4)."""
        if self.alpha_ is None:
            raise UnsupportedError("imputation needs the teacher's forward marginal (perturb)")
        steps = int(self.impute_steps if steps is None else steps)
        dev = torch.device(self.device_)
        b, a = self.to_student_
        known = self._tensor((np.where(miss, 0.0, Z) - b) / a)  # into the teacher's coordinates
        mask = torch.as_tensor(~miss, device=dev)
        ks = np.unique(np.linspace(0, len(self.levels_) - 2, steps).round().astype(int)).tolist()
        with torch_seed(seed, dev):
            x = self.noise_std_ * torch.randn(known.shape, device=dev)
            xh = self._map(x, 0, None)
            for k in ks[1:]:
                xh = torch.where(mask, known, xh)
                x = float(self.alpha_[k]) * xh + float(self.sigma_[k]) * torch.randn_like(xh)
                xh = self._map(x, k, None)
        self.last_nfe_ = len(ks)
        return self._to_student(torch.where(mask, known, xh))

    # ------------------------------------------------------------------ state
    def save(self, path) -> None:
        """As the base, but the teacher (an estimator, not a hyperparameter value JSON can hold) is not stored."""
        teacher = self.teacher
        try:
            self.teacher = None
            super().save(path)
        finally:
            self.teacher = teacher

    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        meta.update({"levels_": self.levels_.tolist(), "noise_std_": self.noise_std_,
                     "alpha_": None if self.alpha_ is None else self.alpha_.tolist(),
                     "sigma_": None if self.sigma_ is None else self.sigma_.tolist(),
                     "to_student_": [np.asarray(v).tolist() for v in self.to_student_],
                     "teacher_family_": self.teacher_family_,
                     "sample_levels_": getattr(self, "sample_levels_", None)})
        return meta

    def _set_meta(self, meta: dict) -> None:
        meta = dict(meta)
        self.levels_ = torch.tensor(meta.pop("levels_"), dtype=torch.float32, device="cpu")  # host-side tables
        al, si = meta.pop("alpha_"), meta.pop("sigma_")
        self.alpha_ = None if al is None else torch.tensor(al, dtype=torch.float32, device="cpu")
        self.sigma_ = None if si is None else torch.tensor(si, dtype=torch.float32, device="cpu")
        self.to_student_ = tuple(np.asarray(v, dtype=np.float64) for v in meta.pop("to_student_"))
        self.sample_levels_ = meta.pop("sample_levels_", None)
        super()._set_meta(meta)


__all__ = ["Consistency", "level_grid", "teacher_flow", "snr_matched_times"]
