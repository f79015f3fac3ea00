"""Rectified flow: flow matching plus reflow (Liu, Gong & Liu 2023, "Flow Straight and Fast").

One breath: learn a velocity field on straight lines between noise and data (1-rectified
flow), then draw noise, push it through the learned ODE, and learn again on those
(noise, own-sample) pairs: the new coupling is deterministic, the new field's paths cannot
cross, and after a reflow or two one Euler step nearly reaches the data.

Defaults, and why (the measurements, with the commands that reproduce them, are in
``benchmarks/RESULTS.md``, section ``rectified_flow``):

- 1-RF: conditional flow matching on the linear path ``x_t = (1 - t) x0 + t x1`` (the
  ``flow_matching`` family), with independent noise and the stable target field
  (``coupling='independent'``, ``stable_target='auto'``: Liu et al.'s coupling with a
  lower-variance regression target); 512 rows x 9,000 steps. Minibatch OT
  (``coupling='ot'``, Tong et al. 2023) starts the reflow from straighter paths but its 1-RF
  memorises the training rows, and the reflow inherits that; a long enough reflow
  straightens the independent 1-RF's curved paths just as far.
- Reflow (``n_reflow`` times, default 1): ``reflow_pairs`` (80,000) noise draws are integrated
  to samples by the current field (``pair_sampler`` / ``pair_steps``: RK4 in log-time,
  32 steps, accurate to well below a ``grid25`` mode's width; 16 were not); the same
  training loop then runs on those fixed pairs, warm-started from the current weights (as
  Liu et al. do), for ``reflow_steps=8000`` steps at ``reflow_lr=8e-3``: straightening a
  curved 1-RF is a harder regression than the 1-RF's own and needs the longer, faster
  reflow. The weight average restarts with the reflow. The reflow loss
  ``|v(x_t, t) - (x1 - x0)|^2`` on fixed pairs is Liu et al.'s eq. (1).
- What the reflow costs: the reflowed field's density is the 1-RF's (its samples are the
  reflow's data) plus the reflow's regression error; at the defaults ``grid25`` is 0.018
  nats above the entropy (seed 0), and the fit takes about 2 minutes on 2 cores (two
  trainings of a flow-matching network plus the pairs). ``max_steps=5000,
  reflow_steps=4000, reflow_pairs=20000`` is the quick setting (about half the time).
- Straightness after 1-RF and after each reflow is kept in ``reflow_history_``: the
  normalised path energy ``E int |v|^2 dt / E |x1 - x0|^2 - 1`` (Tong et al. 2023; 0 for
  straight constant-speed paths, equal to Liu et al.'s straightness over the transport
  cost), and the one-step sample quality: exact W2 between one-Euler-step samples and
  held-out training rows, beside the W2 of accurate-ODE samples and its sampling floor
  (all in standardised units).
- Network: as flow matching's (4 x 128 MLP with 64 random Fourier features of ``x``,
  ``lr=4e-3``, no early stopping).
- Sampling: Euler, ``sample_steps=8`` by default (on ``grid25`` 8 steps put 97% of samples
  within 3 std of a mode, 16 steps 98%, one step three quarters); any solver and step count is available
  (``sample(n, steps=1, sampler='euler')`` is the one-step generator); ``sample(n, nfe=K)`` takes K
  Euler steps on times crowded towards the noise (``few_step_power``). Classifier-free
  guidance as in ``flow_matching``: ``v_uncond + g (v_cond - v_uncond)``, ``g = 1`` plain
  conditional, ``g = 0`` unconditional (``genzoo.objectives.guidance``).
- Likelihood (``'exact'``; ``'estimate'`` beyond 10 dimensions, a seeded Hutchinson trace):
  the instantaneous change of variables through the final (reflowed) field, as in flow
  matching, RK4 on 64 steps in log-time: the density of the continuous flow the many-step
  sampler integrates (few-step samples approximate it). On a model fitted with labels,
  ``score_samples(X)`` is the marginal ``log sum_k prior_k p(x | k)`` that ``sample(n)``
  draws (``null_label=True``: the null-label density).
- Imputation: as in ``flow_matching`` (grid Gibbs on the exact ODE density up to 3
  dimensions, importance resampling by it beyond for few distinct rows; RePaint for many, biased
  here since reflow pairs are not independent noise).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genzoo.base import torch_seed
from genzoo.families.flow_matching import FlowMatching
from genzoo.objectives.paths import cfm_loss
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
from genzoo.samplers.ode import integrate, log_time, path_energy
from genzoo.training import Phase, descend, train


@register("rectified_flow")
class RectifiedFlow(FlowMatching):
    """Rectified flow with reflow; few-step Euler sampling, straightness history, exact ODE likelihood.

    Flow matching (the 1-RF: its network, loss, likelihood and imputation, inherited) followed by
    ``n_reflow`` reflows on the model's own (noise, sample) pairs; it differs on purpose in its
    defaults (Euler with 8 uniform steps, longer training) and samples in uniform time.

    Fitted with labels, ``sample(n)`` draws the class from the training frequencies and
    ``score_samples(X)`` scores that marginal, ``log sum_k prior_k p(x | k)``; ``score_samples(X, y=k)``
    the class and ``null_label=True`` the null-label density.

    Parameters
    ----------
    n_reflow : int, default=1
        Number of reflows after the 1-RF (0 = plain flow matching).
    coupling : str, default='independent'
        Noise-data pairing of the 1-RF: 'independent' or 'ot' (exact minibatch optimal transport in
        64-row blocks).
    stable_target : 'auto' or bool, default='auto'
        Regress on the batch's stable target field (Xu et al. 2023) instead of the pair's ``x1 - x0``;
        'auto' = with independent noise only.
    reflow_steps : int, default=8000
        Training steps of each reflow (a step budget).
    reflow_batch_size : int, default=512
        Rows per reflow step.
    reflow_lr : float, default=8e-3
        Learning rate of the reflow.
    reflow_pairs : int, default=80000
        (noise, sample) pairs generated for each reflow (a budget).
    pair_sampler : str, default='rk4'
        ODE solver that integrates the reflow pairs.
    pair_steps : int, default=32
        Its steps (in log-time).
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
    label_dropout : float, default=0.1
        Share of training labels replaced by the null label, so one network also learns the
        unconditional model (guidance).
    guidance : float, default=1.0
        Classifier-free guidance ``uncond + g (cond - uncond)`` at sampling: 1 = plain conditional, 0 =
        unconditional, > 1 sharper (``genzoo.objectives.guidance``).
    ema_decay : float, default=0.999
        Decay of the weights' moving average, used for sampling and the likelihood.
    sampler : str, default='euler'
        ODE solver of ``sample``: 'euler' (the few-step generator), 'heun', 'rk4' or 'dopri5'.
    sample_steps : int, default=8
        Fixed steps of ``sample``; ``steps=1`` is the one-step generator.
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
    max_steps : int, default=9000
        Training steps of the 1-RF (a step budget: the ``genzoo compare`` presets scale it).
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("rectified_flow", max_steps=200, reflow_steps=100, reflow_pairs=1000, verbose=0,
    ...             random_state=0).fit(X)
    >>> m.sample(5, random_state=0).shape, m.last_nfe_, len(m.reflow_history_)
    ((5, 2), 8, 2)
    """

    summary = "rectified flow (flow matching + reflow): straight paths, one-to-few-step Euler sampling"
    budget_params = {"max_steps": 50, "reflow_steps": 50, "reflow_pairs": 1000}  # both trainings and the pairs
    _parameter_constraints = {
        **TRAINING, "n_reflow": NON_NEGATIVE_INT, "coupling": [Options(("independent", "ot"))],
        "stable_target": [Options(("auto",)), "boolean"], "reflow_steps": POSITIVE_INT,
        "reflow_batch_size": POSITIVE_INT, "reflow_lr": POSITIVE, "reflow_pairs": POSITIVE_INT,
        "pair_sampler": ODE_METHOD, "pair_steps": POSITIVE_INT, "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT,
        "time_dim": POSITIVE_INT, "time_scale": POSITIVE, "fourier_features": NON_NEGATIVE_INT,
        "fourier_scale": POSITIVE, "label_dropout": UNIT_OPEN_RIGHT, "guidance": NON_NEGATIVE,
        "ema_decay": UNIT_OPEN_RIGHT, "sampler": ODE_METHOD, "sample_steps": POSITIVE_INT,
        "likelihood_method": ODE_METHOD, "likelihood_steps": POSITIVE_INT, "rtol": POSITIVE, "atol": POSITIVE,
        "impute_method": [Options(("auto", "grid", "sir", "repaint"))], "impute_steps": POSITIVE_INT,
        "resample": POSITIVE_INT,
    }

    def __init__(self, *, n_reflow: int = 1, coupling: str = "independent", stable_target="auto",
                 reflow_steps: int = 8000, reflow_batch_size: int = 512, reflow_lr: float = 8e-3,
                 reflow_pairs: int = 80000, pair_sampler: str = "rk4",
                 pair_steps: int = 32,
                 hidden: int | None = None, layers: int = 4, time_dim: int = 32, time_scale: float = 4.0,
                 fourier_features: int = 64, fourier_scale: float = 5.0, label_dropout: float = 0.1,
                 guidance: float = 1.0, ema_decay: float = 0.999,
                 sampler: str = "euler", sample_steps: int = 8, likelihood_method: str = "rk4",
                 likelihood_steps: int = 64, rtol: float = 1e-5, atol: float = 1e-5,
                 impute_method: str = "auto", impute_steps: int = 50, resample: int = 10,
                 max_steps: int = 9000, batch_size: int = 512, lr: float = 4e-3,
                 validation_fraction: float = 0.1, early_stopping: bool = False, patience: int = 8,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.n_reflow = n_reflow
        self.coupling = coupling
        self.stable_target = stable_target
        self.reflow_steps = reflow_steps
        self.reflow_batch_size = reflow_batch_size
        self.reflow_lr = reflow_lr
        self.reflow_pairs = reflow_pairs
        self.pair_sampler = pair_sampler
        self.pair_steps = pair_steps
        self.hidden = hidden
        self.layers = layers
        self.time_dim = time_dim
        self.time_scale = time_scale
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
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
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # deliberate differences from flow matching (network, loss, likelihood, imputation: inherited)
    #: the 1-RF trains on uniform times (``time_dist`` is not a hyperparameter here)
    time_dist = "uniform"
    #: straightened paths: uniform time steps (one Euler step is the one-step generator), not log-time
    sample_log_time = False
    #: few-step sampling (``nfe=``): Euler (order 1) on times ``t = 1 - (1 - u) ** 0.25``, crowded
    #: towards the noise, where the reflowed paths still bend; on ``grid25`` (seed 0) 2 / 4 / 8 calls put
    #: 95.6 / 97.3 / 98.2% of samples on a mode, against 93.9 / 95.7 / 97.0% with uniform steps
    few_step_power = 0.25
    few_step_order = 1

    # ------------------------------------------------------------------ the reflow phase
    def _reflow_loss(self, net, z: torch.Tensor, y: torch.Tensor | None,
                     t: torch.Tensor | None = None) -> torch.Tensor:
        """The pair target on fixed pairs: rows are ``[x0, x1]``, the model's own (noise, sample)."""
        x0, x1 = z.chunk(2, dim=1)
        return cfm_loss(net, x1, y, x0=x0, coupling="independent", t=t,
                        label_dropout=float(self.label_dropout), n_classes=self.n_classes_)

    def _reflow_step(self, z: torch.Tensor, y: torch.Tensor | None, step: int) -> float:
        (opt,) = self.optimizers_
        return descend(self._reflow_loss(self.module_.net, z, y), opt, self.module_.parameters(), self.grad_clip)

    def _reflow_phase(self, r: int) -> Phase:
        """Reflow ``r``: warm-started from the current weights (no setup), its own budget, batch and
        lr. The weight average warms up again (the step count restarts at 0): an average carried
        over from the 1-RF would keep 5% of its weights after 3,000 reflow steps at decay 0.999."""
        bs = int(self.reflow_batch_size)
        return self._default_phase(f"reflow {r + 1}", max_steps=int(self.reflow_steps), batch_size=bs,
                                   lr=float(self.reflow_lr), setup=None, step=self._reflow_step,
                                   val_loss=lambda z, y: self._val_loss(z, y, self._reflow_loss, bs))

    # ------------------------------------------------------------------ 1-RF, then reflow
    def _fit_std(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        self.phases_ = []
        self._record_phase(train(self, Z, y, self._default_phase("1-RF"), seed))
        rng = np.random.default_rng(seed)
        held = Z[rng.permutation(len(Z))[:1000]]
        self.reflow_history_ = [self._straightness(held, seed)]
        for r in range(int(self.n_reflow)):
            X0, X1, yp = self._pairs(int(self.reflow_pairs), y is not None, seed + 1 + r)
            rec = train(self, np.concatenate([X0, X1], 1), yp, self._reflow_phase(r), seed + 1 + r)
            self._record_phase(rec, accumulate_steps=True)
            self.reflow_history_.append(self._straightness(held, seed))

    @torch.no_grad()
    def _pairs(self, n: int, labelled: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``n`` (noise, sample) pairs from the current field, by an accurate solver in log-time."""
        dev = torch.device(self.device_)
        self.module_.eval()
        yp = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_) if labelled else None
        X0, X1 = [], []
        with torch_seed(seed, dev):
            for a in range(0, n, 8192):
                x0 = torch.randn(min(8192, n - a), int(self.n_features_in_), device=dev)
                yt = None if yp is None else self._labels(yp[a:a + len(x0)])
                f = log_time(self._field(yt, 1.0))
                x1, _ = integrate(f, x0, 0.0, 1.0, method=self.pair_sampler, steps=int(self.pair_steps),
                                  rtol=float(self.rtol), atol=float(self.atol))
                X0.append(x0.cpu().numpy())
                X1.append(x1.cpu().numpy())
        self.module_.train()
        return np.concatenate(X0), np.concatenate(X1), yp

    @torch.no_grad()
    def _straightness(self, held: np.ndarray, seed: int) -> dict[str, float]:
        """Path energy, and W2 to held-out rows of one-step vs accurate-ODE samples (standardised units)."""
        import ot

        dev = torch.device(self.device_)
        self.module_.eval()
        n, d = held.shape
        with torch_seed(seed + 7, dev):
            x0 = torch.randn(n, d, device=dev)
        f = self._field(None, 1.0)
        pe = path_energy(f, x0, steps=100)
        one, _ = integrate(f, x0, 0.0, 1.0, method="euler", steps=1)
        acc, _ = integrate(log_time(f), x0, 0.0, 1.0, method=self.pair_sampler, steps=int(self.pair_steps))
        h = held.astype(np.float64)

        def w2(a: torch.Tensor | np.ndarray, b: np.ndarray) -> float:
            a = np.asarray(a, dtype=np.float64)
            return float(math.sqrt(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), ot.dist(a, b), numItermax=10**6)))

        rng = np.random.default_rng(seed + 8)
        half = rng.permutation(n)
        floor = w2(h[half[: n // 2]], h[half[n // 2:]])  # two halves of real rows: the noise floor at n/2
        self.module_.train()
        return {"npe": pe["npe"], "transport_cost": pe["cost"], "w2_one_step": w2(one.cpu(), h),
                "w2_ode": w2(acc.cpu(), h), "w2_floor_half": floor}

    # ------------------------------------------------------------------ state
    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        meta["reflow_history_"] = getattr(self, "reflow_history_", [])
        return meta


__all__ = ["RectifiedFlow"]
