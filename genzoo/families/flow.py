"""Normalising flow: an invertible map ``f`` from data to a standard normal, trained by exact likelihood.

One breath: ``log p(x) = log N(f(x); 0, I) + log|det df/dx|``; minimise its negative mean.
Sampling inverts the map: ``x = f^{-1}(u)``, ``u ~ N(0, I)``; both directions are exact.

``f`` is a chain of coupling layers (see :mod:`genzoo.nn.coupling`): each keeps one part of the
coordinates and transforms the other part elementwise, with parameters computed from the kept
part (and from a label embedding when fitted with labels), so the Jacobian is triangular.

- ``coupling="mixture"`` (default): each transformed coordinate goes through the CDF of a
  1-D Gaussian mixture and then ``Phi^-1`` (``components`` Gaussians whose weights, means and
  scales come from the conditioner): the Gaussianisation layer of Meng et al., "Gaussianization
  Flows" (AISTATS 2020), in the coupling form of Flow++'s logistic-mixture CDF coupling (Ho et
  al., ICML 2019). A coordinate with several thin modes takes three numbers per mode; the
  inverse (sampling) is solved by safeguarded Newton steps, in float32 and then one float64
  step: each layer returns its float64 root rounded to float32 (within 2 ulps).
- ``coupling="spline"``: monotonic rational-quadratic splines, Durkan, Bekasov, Murray
  & Papamakarios, "Neural Spline Flows" (NeurIPS 2019); identity outside ``[-tail_bound,
  tail_bound]`` of the standardised space, so tails stay Gaussian and the density integrates to 1.
- ``coupling="affine"``: RealNVP, Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real
  NVP" (ICLR 2017), with a learnable per-coordinate scale (ActNorm) before each coupling.

Conditioning: fitted with labels ``y``, the model learns ``p(x | y)`` (every coupling network sees
a learned embedding of ``y``); ``sample(n, y=k)`` draws from it. ``score_samples(X)`` then returns
the *marginal* ``log p(x) = logsumexp_k [log p(x | k) + log prior_k]`` with the training class
frequencies as prior (exact, one pass per class), and ``sample(n)`` without labels first draws
the class from that prior, so sampling and scoring describe the same distribution.
Imputation uses the base class's grid-Gibbs sampler on this exact (marginal) density in <= 2-D, and
preconditioned MALA on it beyond (``genzoo.samplers.mcmc``; see ``_impute_std``), each with a cost guard.

Defaults, and why (the measurements, with the commands that reproduce them, are in
``benchmarks/RESULTS.md``, section ``flow``):

- ``coupling="mixture", n_layers=6, blocks=1, batch_size=1024, max_steps=1000`` (about 30 s on
  one thread): every layer starts as the marginal Gaussianisation of what reaches it (a 1-D
  mixture fitted by EM, ``data_init``), and a coordinate with several thin modes takes three
  numbers per mode; grid25 gap 0.014 (seed 0, NLL minus the true entropy). The spline flow it
  replaced generalised worse: it spends several bins per thin mode, each fitted to a few
  hundred points, and fitted the training rows far better than held-out ones.
- ``components=None``: 16 Gaussians per coordinate in 2-D, 4 from 3 columns (fewer parameters per
  coupling; sixteen fitted the training rows of a 10-D mixture below its true entropy).
- ``base=None``: N(0, I) in 2-D; beyond, the flow is fitted twice, with a learned full-covariance
  Gaussian-mixture base (its size by BIC, EM-initialised, couplings starting near the identity) and
  with N(0, I), and the better held-out NLL is kept (``base_``, ``base_losses_``; about twice the fit
  time). A flow from one Gaussian has to stretch it over separated modes and leaves mass between them
  (10-D tilted mixture: held-out gap 0.41 nats, 91% of samples on the support; mixture base: 0.055,
  99%); on curved data (three rings in 6-D) the mixture base does worse (0.44 against 0.10) and the
  normal base is kept.
- ``ema_decay=0.995``: the fit also keeps an exponential moving average of the weights; at
  each check the raw and the averaged weights are scored and the better competes for "best
  so far" (a smoother held-out curve).
- On images the held-out split is checked every 25 steps (``IMAGE_EVAL_EVERY``), not 250: on the
  1,000 training digits the held-out loss bottoms out near step 75 and early stopping keeps that
  state (test bound 94.8 nats / image against 119.1 when the first check came at step 250; FD 1.39
  against 1.09 x its floor in the digits classifier's features: the samples are less sharp).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genzoo.base import TorchGenerativeModel, _to_numpy, torch_seed
from genzoo.families._blocks import IndependentBlocks
from genzoo.families._prior import mixture_size, mixture_start_choices
from genzoo.families._wide import scaled_width
from genzoo.nn.coupling import (
    ActNorm,
    AffineCoupling,
    GaussianMixtureBase,
    InvertibleLinear,
    InvertibleSequence,
    MixtureCDFCoupling,
    SplineCoupling,
    coupling_partitions,
)
from genzoo.nn.mlp import LabelEmbedding
from genzoo.params import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, TRAINING, UNIT_OPEN_RIGHT, Options
from genzoo.registry import register
from genzoo.training import EMA, train

#: with a mixture base the couplings start this close to the identity (their 1-D components at 0.3 x the
#: normal quantiles): the model then starts as the base's EM fit (10-D mixture: held-out gap 0.055 after
#: training; at the usual spread 1.0 the start is 1.2 nats worse and 1,000 steps end at 0.098)
IDENTITY_SPREAD = 0.3
_CHUNK = 32_768  # rows per forward pass when scoring large arrays
#: on images the validation split is scored every this many steps (not every 250): on the 1,000 digits the
#: held-out loss is lowest near step 75 and has doubled by step 250, the first check at the usual interval
#: (test bound 119.05 -> 94.78 nats / image, fit 148 -> 35 s; benchmarks/RESULTS.md, flow)
IMAGE_EVAL_EVERY = 25
# rows per pass when sampling: the inverse's (rows, components) work arrays then stay in cache
# (4096-8192 sample ~1.3x faster than 32768 on one thread; benchmarks/bench_sampling.py --chunks)
_SAMPLE_CHUNK = 8192
#: what each base choice is called in phase names and ``fit_choices``
BASE_PHRASES = {"mixture": "mixture base", "normal": "normal base"}


class FlowNet(nn.Module):
    """Coupling flow with a standard-normal base, or a learned Gaussian-mixture base when
    ``base_components > 0``; optional label embedding as context."""

    def __init__(self, dim: int, n_classes: int, *, coupling: str, n_layers: int, hidden: int, blocks: int,
                 bins: int, tail_bound: float, label_dim: int, fourier: int = 0, components: int = 16,
                 linear: bool = False, base_components: int = 0):
        super().__init__()
        self.dim = dim
        self.base = GaussianMixtureBase(dim, base_components, n_classes) if base_components else None
        self.label = LabelEmbedding(n_classes, label_dim) if n_classes else None
        ctx = label_dim if n_classes else 0
        layers: list[nn.Module] = []
        for i, (cond, trans) in enumerate(coupling_partitions(dim, n_layers)):
            if linear and i > 0:  # a learned rotation between couplings: every coordinate mixes with every other
                layers.append(InvertibleLinear(dim, seed=i))
            if coupling == "affine":
                layers += [ActNorm(dim), AffineCoupling(dim, cond, trans, hidden, blocks, ctx, fourier=fourier)]
            elif coupling == "mixture":
                layers.append(MixtureCDFCoupling(dim, cond, trans, hidden, blocks, ctx, components, fourier,
                                                 spread=IDENTITY_SPREAD if base_components else 1.0))
            else:
                layers.append(SplineCoupling(dim, cond, trans, hidden, blocks, ctx, bins, tail_bound, fourier))
        self.transform = InvertibleSequence(layers)

    def context(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        return None if self.label is None else self.label(y, batch)  # (B, label_dim)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        u, logdet = self.transform(x, self.context(y, len(x)))  # (B, D), (B,)
        if self.base is not None:
            return self.base.log_prob(u, y) + logdet
        base = -0.5 * (u * u).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return base + logdet

    def draw_base(self, n: int, y: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """``n`` draws of the base distribution (of class ``y`` when given), from torch's global generator."""
        return torch.randn(n, self.dim, device=device) if self.base is None else self.base.sample(n, y)

    def invert(self, u: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x, _ = self.transform.inverse(u, self.context(y, len(u)), logdet=False)  # only x is needed
        return x


@register("flow")
class Flow(IndependentBlocks, TorchGenerativeModel):
    """Coupling normalising flow (Gaussian-mixture CDF, neural spline or RealNVP affine); exact likelihood and sampling.

    Parameters
    ----------
    coupling : str, default='mixture'
        Coupling transform: 'mixture' (Gaussian-mixture CDF then Phi^-1), 'spline' (rational-quadratic)
        or 'affine' (RealNVP).
    n_layers : int, default=6
        Number of coupling layers.
    hidden : int or None, default=None
        Width of each conditioner network.
        None = 64 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    blocks : int, default=1
        Residual blocks per conditioner.
    bins : int, default=16
        Spline bins per coordinate (``coupling='spline'``).
    components : int or None, default=None
        Gaussians per coordinate (``coupling='mixture'``). None = 16 in 2-D, 4 from 3 columns: beyond
        2-D sixteen overfit the training rows (10-D mixture of the acceptance check, measured with
        ``linear=True``: train NLL 0.05 below the true entropy, held-out 0.80 above; without:
        held-out 0.80; 4 components: held-out gap 0.41, 6-D rings 0.24 -> 0.10).
    base : {'normal', 'mixture'} or None, default=None
        Base distribution: 'normal' (N(0, I)), 'mixture' (learned full-covariance Gaussian mixture,
        :class:`genzoo.nn.coupling.GaussianMixtureBase`; the couplings then start near the identity and
        the base is the EM fit of the training rows) or None: 'normal' in 2-D, on images and without
        held-out rows, otherwise both are fitted and the better held-out NLL is kept.
    base_components : int or None, default=None
        Gaussians in a mixture base; None = the BIC choice among 1, 2, 4, 8, 16 on the training rows.
    factorise : bool or None, default=None
        Beyond 2-D, on continuous columns without labels: look for blocks of columns independent of each
        other and fit one model per block (``genzoo.families._blocks``). None: keep the product only when
        its held-out likelihood beats the joint fit's; True: keep it whenever blocks are found; False:
        the joint model only. Fitted: ``blocks_``, ``block_models_``, ``factorise_losses_``.
    tail_bound : float, default=3.0
        The spline acts on [-tail_bound, tail_bound] of the standardised space, identity outside.
    data_init : bool, default=True
        Start each mixture / spline layer as the marginal Gaussianisation (1-D EM fit) of what reaches
        it.
    fourier : int, default=0
        Conditioner inputs also as sin/cos(2^k x), k < fourier (0 = off).
    linear : bool, default=False
        A learned invertible linear map (LU form, starting as a random rotation) before every
        coupling but the first, so that each coupling mixes all coordinates. Off by default: on
        the 10-D tilted mixture it helped (held-out gap 0.41 -> 0.36), on three 2-D rings in 6-D
        it hurt (0.10 -> 0.19), whose pairs of coordinates the couplings use as they are.
    label_dim : int, default=16
        Size of the label embedding (used only when fitted with ``y``).
    {shared_parameters}
    weight_decay : float, default=0.0
        AdamW weight decay.
    ema_decay : float, default=0.995
        Decay of the weights' moving average; at each check the better of raw and averaged weights is
        kept.

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("flow", max_steps=200, verbose=0, random_state=0).fit(X)
    >>> m.sample(3, random_state=0).shape
    (3, 2)
    """

    likelihood_kind = "exact"
    _capabilities = frozenset({"sample", "log_prob", "impute", "conditional"})
    _min_block_width = 2  # a coupling needs two columns
    summary = "Coupling normalising flow (mixture-CDF, spline or affine couplings); exact likelihood and sampling"
    _parameter_constraints = {
        **TRAINING, "coupling": [Options(("mixture", "spline", "affine"))], "n_layers": POSITIVE_INT,
        "hidden": [*POSITIVE_INT, None], "blocks": NON_NEGATIVE_INT, "bins": POSITIVE_INT,
        "components": [*POSITIVE_INT, None],
        "tail_bound": POSITIVE, "data_init": ["boolean"], "fourier": NON_NEGATIVE_INT, "linear": ["boolean"],
        "base": [Options(("normal", "mixture")), None], "base_components": [*POSITIVE_INT, None],
        "factorise": ["boolean", None],
        "label_dim": POSITIVE_INT,
        "weight_decay": NON_NEGATIVE, "ema_decay": UNIT_OPEN_RIGHT,
    }
    _fit_choice_phrases: ClassVar[dict] = {"base_losses_": ("base_", BASE_PHRASES)}

    def __init__(self, *, coupling: str = "mixture", n_layers: int = 6, hidden: int | None = None, blocks: int = 1,
                 bins: int = 16, components: int | None = None, tail_bound: float = 3.0, data_init: bool = True,
                 fourier: int = 0, linear: bool = False, base: str | None = None,
                 base_components: int | None = None, factorise: bool | None = None, label_dim: int = 16,
                 max_steps: int = 1000,
                 batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.0, ema_decay: float = 0.995,
                 validation_fraction: float = 0.1,
                 early_stopping: bool = True, patience: int = 6, random_state=None, device: str = "auto",
                 verbose: int = 0):
        self.coupling = coupling
        self.n_layers = n_layers
        self.linear = linear
        self.base = base
        self.base_components = base_components
        self.factorise = factorise
        self.hidden = hidden
        self.blocks = blocks
        self.bins = bins
        self.components = components
        self.tail_bound = tail_bound
        self.data_init = data_init
        self.fourier = fourier
        self.label_dim = label_dim
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ network and objective
    def _build(self, dim: int, n_classes: int) -> nn.Module:
        return FlowNet(dim, n_classes, coupling=self.coupling, n_layers=int(self.n_layers),
                       hidden=scaled_width(self.hidden, dim, 64), blocks=int(self.blocks), bins=int(self.bins),
                       tail_bound=float(self.tail_bound), label_dim=int(self.label_dim),
                       fourier=int(self.fourier),
                       components=(16 if dim <= 2 else 4) if self.components is None else int(self.components),
                       linear=bool(self.linear), base_components=int(getattr(self, "base_components_", 0)))

    def _setup(self, Z_train: np.ndarray) -> None:
        """With a mixture base, its number of Gaussians (``base_components`` or, when None, the BIC
        choice on the training rows) is fixed before the network is built."""
        mixture = getattr(self, "base_", "normal") == "mixture"
        self.base_components_ = mixture_size(self.base_components, Z_train) if mixture else 0
        super()._setup(Z_train)

    def _prepare(self, Z: np.ndarray) -> None:
        """With a normal base, start from the data's marginal Gaussianisation: spline flows in their
        first pair of couplings, mixture flows in every coupling (each on what the layers before it
        output). With a mixture base, the couplings start near the identity and the base is the
        EM fit of the training rows."""
        z = self._tensor(Z)
        if self.module_.base is not None:
            u, _ = self.module_.transform(z, self.module_.context(None, len(z)))
            self.module_.base.initialize(u.detach())
        elif self.coupling in ("spline", "mixture") and self.data_init:
            n_blocks = 2 if self.coupling == "spline" else None  # mixture: every layer, on what reaches it
            self.module_.transform.initialize(z, self.module_.context(None, len(z)), n_blocks=n_blocks)

    def _get_meta(self) -> dict:
        losses = getattr(self, "base_losses_", None)
        return {**super()._get_meta(), "base_components_": int(getattr(self, "base_components_", 0)),
                "base_": getattr(self, "base_", "normal"),
                "base_losses_": None if losses is None else {k: float(v) for k, v in losses.items()}}

    def _configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.AdamW(self.module_.parameters(), lr=lr, weight_decay=float(self.weight_decay))]

    def _training_ema(self) -> EMA | None:
        """A Polyak-style average of all the weights, held for the fit only (see ``_fit_std``)."""
        self._ema = EMA(self.module_, float(self.ema_decay)) if self.ema_decay else None
        self._ema_best, self._ema_best_state = math.inf, None
        return self._ema

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return -self.module_.log_prob(z, y).mean()  # maximum likelihood, exactly

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """Held-out mean NLL (of p(x | y) when fitted with labels), in standardised units.

        With ``ema_decay`` it is the better of the raw and the averaged weights' NLL, and the
        best weights so scored (raw or averaged) are what the fit keeps.
        """
        raw_vl = float(-self.module_.log_prob(z, y).mean())
        if self._ema is None:
            return raw_vl
        best, improved = self._ema_best, None
        with self._ema.swapped():
            ema_vl = float(-self.module_.log_prob(z, y).mean())
            vl = min(raw_vl, ema_vl)
            improved = vl < best - 1e-4 * (1 + abs(best)) or not math.isfinite(best)
            if improved and ema_vl <= raw_vl:  # keep the weights that validate better: here the average
                self._ema_best_state = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
        if improved and ema_vl > raw_vl:  # ... or the raw weights
            self._ema_best_state = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
        if improved:
            self._ema_best = vl
        return vl

    def _default_phase(self, name: str = "fit", **changes):
        """The shared phase; on images its held-out checks come every ``IMAGE_EVAL_EVERY`` steps, so that
        early stopping can find the best held-out density before the flow overfits the training images."""
        if getattr(self, "image_shape_", None) is not None:
            changes.setdefault("eval_every", IMAGE_EVAL_EVERY)
        return super()._default_phase(name, **changes)

    def _fit_std(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        def fit_once(name: str):
            try:
                rec = self._record_phase(train(self, Z, y, self._default_phase(name), seed))
                if self._ema is not None and self._ema_best_state is not None and self.early_stopping:
                    self.module_.load_state_dict(self._ema_best_state)
                elif self._ema is not None:  # no early stopping: the final averaged weights
                    self._ema.copy_to_source()
            finally:
                self._ema = self._ema_best_state = None
            return rec

        # the held-out NLL (standardised units) of each base; the better fit is kept
        choices = mixture_start_choices(self, self.base, Z.shape[1], ("mixture", "normal"))
        self.base_losses_ = self._fit_keeping_best(choices, "base_", fit_once, lambda rec: rec.best_val_loss,
                                                   keep=("base_components_",),
                                                   labels=BASE_PHRASES)

    # ------------------------------------------------------------------ density and sampling
    def _log_prob_std(self, Z, y: np.ndarray | None = None) -> np.ndarray:
        """Exact log p(z | y) in standardised space (the base class forms the marginal over classes)."""
        net = self.module_
        yt = self._labels(y)
        out = []
        with torch.no_grad():
            for a in range(0, len(Z), _CHUNK):
                out.append(net.log_prob(self._tensor(Z[a:a + _CHUNK]), None if yt is None else yt[a:a + _CHUNK])
                           .double().cpu())
        return torch.cat(out).numpy()

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, method: str | None = None,
                    steps: int | None = None, burn: int | None = None, max_cost: int | None = None, **opts):
        """Draws from the model's ``p(z_missing | z_observed)``.

        ``method``: 'grid', the base class's grid-Gibbs on the exact density (exact up to the grid
        with one missing coordinate; about 2,000 density evaluations per distinct row and missing
        coordinate per sweep); 'mcmc', preconditioned MALA on the exact density started from the
        model's own nearby samples (``genzoo.samplers.mcmc``: ``burn`` + ``steps`` = 250 + 150
        evaluations with gradient per row, exact in the limit of many steps); 'sir', importance
        resampling of proposals from a Gaussian mixture fitted to the model's samples, weighted by
        the exact density (``_sir_impute_std``: 4,096 density evaluations per distinct row, exact
        as the proposals grow; it moves between separated modes, which MALA's local steps do not);
        'auto' (default), the grid up to 2 columns, beyond it 'sir' for up to 16 distinct rows and
        16 columns, MCMC otherwise. The grid and MCMC refuse, naming the cost, above their guard (``max_cost``
        row-evaluations for MCMC). ``opts`` go to the grid route.
        """
        from genzoo.families._wide import check_grid_cost, impute_route, marginal_log_prob
        from genzoo.samplers.conditional import DENSITY_ROUTE_MAX_ROWS, SIR_MAX_DIM, distinct_rows
        from genzoo.samplers.mcmc import model_impute

        d = int(self.n_features_in_)
        route = impute_route(method, d, ("grid", "mcmc", "sir"))
        few = distinct_rows(Z, miss) <= DENSITY_ROUTE_MAX_ROWS
        if method in (None, "auto") and route == "mcmc" and few and d <= SIR_MAX_DIM:
            route = "sir"
        if route == "sir":
            if opts or steps is not None or burn is not None or max_cost is not None:
                raise ValueError("impute(method='sir') takes no options (steps, burn and max_cost are MCMC's)")
            return self._sir_impute_std(Z, miss, seed)
        if route == "grid":
            if d > 2:
                check_grid_cost(Z, miss, self.family, opts.get("sweeps", 30), opts.get("grid", 1024))
            return super()._impute_std(Z, miss, seed, **opts)
        if opts:
            raise ValueError(f"impute(method='mcmc'): unknown option(s) {sorted(opts)}; valid: steps, burn, max_cost")
        net = self.module_
        lp = marginal_log_prob(self, lambda z, y: net.log_prob(z, y))
        draw = lambda k, s: _to_numpy(self._sample_std(k, None, s))  # noqa: E731
        return model_impute(lp, draw, Z, miss, seed, family=self.family, steps=steps, burn=burn, max_cost=max_cost,
                            device=self.device_)

    def _sample_std(self, n: int, y: np.ndarray | None, seed: int) -> torch.Tensor:
        dev = torch.device(self.device_)
        if y is None and self.n_classes_:  # marginal: the class from its training frequency first
            y = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_)
        yt = self._labels(y)
        with torch_seed(seed, dev), torch.no_grad():
            u = self.module_.draw_base(n, yt, dev)  # (n, D)
        with torch.inference_mode():  # no autograd bookkeeping at all (~10% faster than no_grad here)
            xs = [self.module_.invert(u[a:a + _SAMPLE_CHUNK], None if yt is None else yt[a:a + _SAMPLE_CHUNK])
                  for a in range(0, n, _SAMPLE_CHUNK)]
            x = torch.cat(xs)
        self.last_nfe_ = int(self.n_layers)  # one conditioner evaluation per coupling layer
        return x
