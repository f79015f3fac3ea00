"""Energy-based model: ``p(x) = exp(-E(x)) / Z`` with ``E`` a multi-layer perceptron.

One breath (contrastive divergence, Hinton 2002; persistent chains, Tieleman 2008; replay
buffer and energy regulariser, Du & Mordatch 2019):

    x+ ~ data,  x- ~ persistent Langevin chains on exp(-E)
    loss = E(x+).mean() - E(x-).mean() + alpha * (E(x+)^2 + E(x-)^2).mean()

whose gradient is the maximum-likelihood gradient ``E_data[grad E] - E_p[grad E]`` when the
chains sample the model. The chains live in a replay buffer; each training step a batch of them
takes ``chain_steps`` Metropolis-adjusted Langevin moves (MALA, with a per-chain step adapted
towards 57% acceptance, so they target exp(-E) itself rather than a step-size-biased version of
it) and ``reinit_frac`` of them restart. Where the restarts come from matters more than anything
else here: maximum likelihood only asks the energy to be high away from the data, not to slope
towards it, so a chain restarted uniformly lands on a plateau and rarely finds a mode 0.01 wide
-- the negatives then stop representing p and training drifts. In <= 2-D restarts are therefore
draws from the current model on a randomly shifted quadrature grid (160 nodes per axis, uniform
within the drawn cell, refreshed every 50 steps; MALA then corrects the within-cell error);
beyond 2-D they are uniform over the walled box (plain PCD). How many restart matters as much:
with ``reinit_frac=0.02`` the buffer was mostly old chains, stuck in their wells (MALA does not
jump between modes), so the negatives kept the mode weights of an earlier model, pushed up the
energy of wells that had already lost mass and let a few wells take it all, while the chains
still showed every mode. Hence the defaults ``reinit_frac=0.5`` (half the batch restarting from
the grid each step makes the negatives follow the current weights) and ``chain_steps=10``
(10 MALA moves, not 5, remove the restarts' within-cell error, for about 1.4x the fit time):
the grid25 gap went from 4.77 to 0.033 nats (seed 0; all measurements, with the commands that
reproduce them, in ``benchmarks/RESULTS.md``, section ``ebm``).

With ``objective="dsm"`` the energy is fitted instead by denoising score matching (Vincent
2011): ``-grad E`` regresses the score of the data blurred by N(0, dsm_sigma^2 I), so p is the
data convolved with that noise.

Network: ``E = exp(g) MLP(z, sin/cos(pi 2^k z)) + wall(z)``: Fourier features of each coordinate
(k < ``n_freq``) and a learnable output gain let the energy form wells as thin as the data's
(0.014 after standardisation on gaussians8) and hundreds of nats deep within a few thousand
Adam steps; the fixed quadratic wall outside the training range padded by 10% of its span makes
exp(-E) integrable and negligible outside the quadrature box.

Normalisation. In <= 2-D ``log Z`` is computed by the midpoint rule on a ``quad_points`` grid
per axis over the training range padded by 35% (exponentially accurate for smooth wells wider
than a cell), plus the mass beyond that box: the wall bounds exp(-E) there only if the network
stays tame, and its Fourier features can repeat wells outside the data, so shells out to 3
spans beyond the range are integrated until one is negligible (``tail_mass_`` is the fraction
found outside the box). ``score_samples`` is then a normalised log-density over the whole
plane: ``likelihood_kind='exact'``, up to that quadrature. Beyond 2-D ``log Z`` is estimated
once after fitting by annealed importance sampling (Neal 2001) from the uniform law on the
walled box (widened to where the wall costs 32 nats per coordinate) with MALA transitions,
seeded from ``random_state`` (so two ``score_samples`` calls agree), and ``likelihood_kind`` is
``'estimate'`` on that instance, with ``log_z_se_`` its standard error. That estimate of log Z
is biased low (the log of an unbiased estimate of Z; Jensen), so the log-likelihood is biased
high and the NLL optimistic.

Sampling. ``sampler='langevin'`` (default): MALA chains restarted from the persistent chains
kept at the end of training (Du & Mordatch's replay-buffer sampling), ``sample_steps`` moves
with adapted steps; ``sample_init='uniform'`` starts them instead from a uniform draw over the
walled box with tempering (T from ``init_temperature`` down to 1) -- for thin modes most such
chains stay on the plateau, for the reason above.
``sampler='grid'`` (<= 2-D): an exact draw from the quadrature-normalised density, by inverse
CDF over the grid cells plus uniform jitter within a cell; beyond 2-D it is refused (its grid
would have ``quad_points^D`` cells).

Imputation (``log Z`` cancels in a conditional): grid-Gibbs on ``-E`` in <= 2-D; beyond,
preconditioned MALA on ``-E`` (``genzoo.samplers.mcmc``, 400 energy-and-gradient evaluations per
row, exact in the limit of many steps), each refusing above its cost guard with the cost named.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genzoo.base import TorchGenerativeModel, torch_seed
from genzoo.errors import UnsupportedError
from genzoo.families._wide import scaled_width
from genzoo.nn.mlp import MLP
from genzoo.params import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, TRAINING, UNIT, Interval, Options
from genzoo.registry import register
from genzoo.samplers.langevin import geometric_schedule, mala

WALL_PAD = 0.10  # the wall starts this fraction of the training span beyond the range
WALL_WIDTH = 0.03  # its quadratic scale tau, as a fraction of the span
QUAD_PAD = 0.35  # the quadrature box: training range padded by this fraction of the span
QUAD_MAX_DIM = 2
#: log Z in <= 2-D also integrates shells beyond the quadrature box: the training range padded
#: by these fractions of its span, one shell after another until a shell's mass is negligible
TAIL_PADS = (QUAD_PAD, 0.75, 1.5, 3.0)
TAIL_NEGLIGIBLE = 30.0  # nats below log Z: a shell this light (e^-30 of the mass) ends the search
AIS_TAIL_TAUS = 8.0  # AIS starts uniform on the walled box widened by this many wall scales (32 nats)
RESTART_GRID = 160  # nodes per axis of the randomly shifted grid that draws chain restarts (<= 2-D)
REFRESH = 50  # training steps between two refreshes of the pool of restarts


class EnergyNet(nn.Module):
    """``E(z) = exp(g) * MLP(phi(z)) + wall(z)``; the wall is ``sum_j relu(|z_j - c_j| - h_j)^2 / (2 tau_j^2)``.

    ``phi`` is the identity plus, with ``n_freq > 0``, sines and cosines of each coordinate
    at frequencies ``pi 2^k`` (k < n_freq), so sharp wells need no huge first-layer weights.
    The learnable output gain ``exp(g)`` lets the energy reach the hundreds of nats that
    sharp modes need in few Adam steps. The wall's centre, half-width and scale are buffers
    set from the training range, so a loaded checkpoint carries them.
    """

    def __init__(self, dim: int, hidden: int, layers: int, n_freq: int = 0):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32),
                             persistent=False)
        self.net = MLP(dim * (1 + 2 * n_freq), 1, hidden, layers)
        self.log_gain = nn.Parameter(torch.zeros(()))
        self.register_buffer("wall_center", torch.zeros(dim))
        self.register_buffer("wall_half", torch.full((dim,), 1e3))
        self.register_buffer("wall_tau", torch.ones(dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats = [z]
        if len(self.freqs):
            a = (z[..., None] * self.freqs).flatten(1)  # (B, D * F)
            feats += [a.sin(), a.cos()]
        out = torch.relu((z - self.wall_center).abs() - self.wall_half) / self.wall_tau  # (B, D)
        return self.log_gain.exp() * self.net(torch.cat(feats, 1))[:, 0] + 0.5 * (out * out).sum(1)  # (B,)


@register("ebm")
class EBM(TorchGenerativeModel):
    """Energy-based model trained by persistent contrastive divergence (or DSM), sampled by MALA.

    Parameters
    ----------
    objective : str, default='cd'
        'cd' (persistent contrastive divergence) or 'dsm' (denoising score matching on the energy's
        gradient).
    hidden : int or None, default=None
        Width of the energy MLP.
        None = 64 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=3
        Depth of the energy MLP.
    n_freq : int, default=6
        Fourier features sin/cos(pi 2^k z) per coordinate, k < n_freq.
    alpha : float, default=0.01
        Weight of the energy regulariser ``(E(x+)^2 + E(x-)^2).mean()``.
    chain_steps : int, default=10
        MALA moves of the persistent chains per training step.
    chain_step_size : float, default=1e-3
        Initial MALA step size of a chain (then adapted towards 57% acceptance).
    buffer_size : int, default=2048
        Persistent chains in the replay buffer.
    reinit_frac : float, default=0.5
        Share of the chains restarted each step (from the model on a shifted grid in <= 2-D).
    dsm_sigma : float, default=0.02
        Noise level of ``objective='dsm'`` in standardised units (p is the data blurred by it).
    sampler : str, default='langevin'
        'langevin' (MALA chains) or 'grid' (exact inverse-CDF draw from the quadrature, <= 2-D).
    sample_init : str, default='chains'
        Start of the sampling chains: 'chains' (the persistent chains) or 'uniform' (tempered, from the
        walled box).
    init_temperature : float, default=100.0
        Starting temperature of the tempering with ``sample_init='uniform'``.
    sample_steps : int, default=200
        MALA moves of ``sample``.
    quad_points : int, default=512
        Quadrature nodes per axis for log Z in <= 2-D.
    ais_steps : int, default=400
        Annealing steps of the AIS estimate of log Z beyond 2-D.
    ais_chains : int, default=1024
        Chains of that AIS estimate.
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("ebm", max_steps=100, sample_steps=20, verbose=0, random_state=0).fit(X)
    >>> m.sample(5, random_state=0).shape, m.score_samples(X[:4]).shape
    ((5, 2), (4,))
    """

    likelihood_kind: ClassVar[str] = "exact"  # quadrature-normalised in <= 2-D; 'estimate' (AIS) beyond
    exact_sampler: ClassVar[str | None] = "grid"  # <= 2-D: inverse CDF on the quadrature grid
    _capabilities = frozenset({"sample", "log_prob", "impute"})
    summary = "energy-based model, contrastive divergence with persistent Langevin chains"
    _parameter_constraints = {
        **TRAINING, "objective": [Options(("cd", "dsm"))], "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT,
        "n_freq": NON_NEGATIVE_INT, "alpha": NON_NEGATIVE, "chain_steps": POSITIVE_INT, "chain_step_size": POSITIVE,
        "buffer_size": POSITIVE_INT, "reinit_frac": UNIT, "dsm_sigma": POSITIVE,
        "sampler": [Options(("langevin", "grid"))], "sample_init": [Options(("chains", "uniform"))],
        "init_temperature": [Interval(float, 1, None)], "sample_steps": [Interval(int, 2, None)],
        "quad_points": [Interval(int, 2, None)], "ais_steps": POSITIVE_INT, "ais_chains": POSITIVE_INT,
    }

    def __init__(self, *, objective: str = "cd", hidden: int | None = None, layers: int = 3, n_freq: int = 6,
                 alpha: float = 0.01, chain_steps: int = 10, chain_step_size: float = 1e-3,
                 buffer_size: int = 2048, reinit_frac: float = 0.5, dsm_sigma: float = 0.02,
                 sampler: str = "langevin", sample_init: str = "chains", init_temperature: float = 100.0,
                 sample_steps: int = 200, quad_points: int = 512, ais_steps: int = 400, ais_chains: int = 1024,
                 max_steps: int = 3000, batch_size: int = 256, lr: float = 2e-3,
                 validation_fraction: float = 0.1, early_stopping: bool = True, patience: int = 6,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.objective = objective
        self.hidden = hidden
        self.layers = layers
        self.n_freq = n_freq
        self.alpha = alpha
        self.chain_steps = chain_steps
        self.chain_step_size = chain_step_size
        self.buffer_size = buffer_size
        self.reinit_frac = reinit_frac
        self.dsm_sigma = dsm_sigma
        self.sampler = sampler
        self.sample_init = sample_init
        self.init_temperature = init_temperature
        self.sample_steps = sample_steps
        self.quad_points = quad_points
        self.ais_steps = ais_steps
        self.ais_chains = ais_chains
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
        return EnergyNet(dim, scaled_width(self.hidden, dim, 64), int(self.layers), int(self.n_freq))

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """Energy of standardised points, ``(B, D) -> (B,)``."""
        return self.module_(z)

    def _prepare(self, Z: np.ndarray) -> None:
        dev = torch.device(self.device_)
        lo, hi = self.z_lo_, self.z_hi_
        span = np.maximum(hi - lo, 1e-3)
        m = self.module_
        m.wall_center.copy_(torch.as_tensor((lo + hi) / 2, dtype=torch.float32))
        m.wall_half.copy_(torch.as_tensor(span / 2 + WALL_PAD * span, dtype=torch.float32))
        m.wall_tau.copy_(torch.as_tensor(WALL_WIDTH * span, dtype=torch.float32))
        if self.objective == "cd":
            n = int(self.buffer_size)
            self.buffer_ = self._uniform(n, dev)  # (N, D) persistent chains
            self.buffer_step_ = torch.full((n, 1), float(self.chain_step_size), device=dev)
            self._pool, self._since_refresh = None, 0

    def _restarts(self, b: int, dev: torch.device) -> torch.Tensor:
        """Fresh chain starts: in <= 2-D draws from the current model on a randomly shifted
        quadrature grid (refreshed every ``REFRESH`` steps), so the chains represent p, not a
        plateau they cannot leave; beyond 2-D uniform draws over the walled box."""
        if len(self.z_lo_) > QUAD_MAX_DIM:
            return self._uniform(b, dev)
        if self._pool is None or self._since_refresh >= REFRESH or len(self._pool) < b:
            with torch.no_grad():
                self._pool = self._grid_draw(4096, RESTART_GRID, shift=torch.rand(len(self.z_lo_)).numpy())
            self._since_refresh = 0
        self._since_refresh += 1
        out, self._pool = self._pool[:b], self._pool[b:]
        return out.to(dev)

    def _uniform(self, n: int, dev: torch.device) -> torch.Tensor:
        """Uniform draws over the walled box (a broad start that covers every mode)."""
        m = self.module_
        return m.wall_center + m.wall_half * (2 * torch.rand(n, len(m.wall_center), device=dev) - 1)

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.objective == "dsm":
            eps = torch.randn_like(z)
            noisy = (z + self.dsm_sigma * eps).requires_grad_(True)
            (grad_e,) = torch.autograd.grad(self.energy(noisy).sum(), noisy, create_graph=True)
            # score = -grad E should equal -(noisy - z) / sigma^2 = -eps / sigma
            return 0.5 * ((self.dsm_sigma * grad_e - eps) ** 2).sum(1).mean()
        neg = self._advance_chains(len(z))  # (B, D), no gradient
        e_pos, e_neg = self.energy(z), self.energy(neg)
        return e_pos.mean() - e_neg.mean() + self.alpha * (e_pos**2 + e_neg**2).mean()

    def _advance_chains(self, b: int) -> torch.Tensor:
        """Take ``b`` chains from the replay buffer (some reset), run MALA on them, write them back."""
        dev = self.buffer_.device
        idx = torch.randint(len(self.buffer_), (b,), device=dev)
        x, step = self.buffer_[idx], self.buffer_step_[idx]
        reset = torch.rand(b, device=dev) < self.reinit_frac
        if reset.any():
            x, step = x.clone(), step.clone()
            x[reset] = self._restarts(int(reset.sum()), dev)
            step[reset] = float(self.chain_step_size)
        res = mala(lambda v: -self.energy(v), x, step_size=step, n_steps=int(self.chain_steps), adapt=True)
        self.buffer_[idx] = res.x
        self.buffer_step_[idx] = res.step_size.clamp(1e-7, 1.0)
        return res.x

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """Held-out NLL with log Z by a coarse quadrature (<= 2-D); beyond, the training loss."""
        if z.shape[1] <= QUAD_MAX_DIM:
            log_z = self._quadrature_log_z(min(int(self.quad_points), 256))
            return float(self.energy(z).mean()) + log_z
        if self.objective == "dsm":
            with torch_seed(12345, z.device), torch.enable_grad():
                return float(self._loss(z, y))
        with torch.no_grad():
            return float(self.energy(z).mean() - self.energy(self.buffer_[: len(z)]).mean())

    # ------------------------------------------------------------------ normalisation
    def _quad_box(self) -> tuple[np.ndarray, np.ndarray]:
        span = np.maximum(self.z_hi_ - self.z_lo_, 1e-3)
        return self.z_lo_ - QUAD_PAD * span, self.z_hi_ + QUAD_PAD * span

    def _quad_grid(self, n: int, shift: np.ndarray | float = 0.5) -> tuple[list[np.ndarray], float]:
        """Per-axis nodes of an ``n^D`` grid over the quadrature box (``shift`` 0.5: cell midpoints)."""
        lo, hi = self._quad_box()
        h = (hi - lo) / n
        shift = np.broadcast_to(np.asarray(shift, dtype=float), lo.shape)
        axes = [lo[j] + h[j] * (np.arange(n) + shift[j]) for j in range(len(lo))]
        return axes, float(np.prod(h))

    def _grid_energies(self, n: int, shift: np.ndarray | float = 0.5) -> tuple[torch.Tensor, list[np.ndarray], float]:
        """Energies at the nodes of an ``n^D`` grid over the quadrature box, flattened (C order)."""
        axes, cell = self._quad_grid(n, shift)
        return self._mesh_energies(axes), axes, cell

    def _mesh_energies(self, axes: list[np.ndarray]) -> torch.Tensor:
        """Energies at the nodes of the product grid of ``axes``, flattened (C order), float64."""
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
        out = []
        with torch.no_grad():
            for a in range(0, len(mesh), 65536):
                out.append(self.energy(self._tensor(mesh[a:a + 65536])).double())
        return torch.cat(out)

    def _grid_draw(self, k: int, n: int, shift: np.ndarray | float = 0.5) -> torch.Tensor:
        """``k`` draws from the grid-normalised density: a node by inverse CDF, then uniform within its cell."""
        e, axes, _ = self._grid_energies(n, shift)
        d = len(axes)
        cell = torch.multinomial(torch.softmax(-e, 0).float(), k, replacement=True)  # (k,) flat index
        idx = np.stack(np.unravel_index(cell.cpu().numpy(), (n,) * d), 1)  # (k, D)
        nodes = np.stack([axes[j][idx[:, j]] for j in range(d)], 1)
        h = np.array([ax[1] - ax[0] for ax in axes])
        jitter = (torch.rand(k, d).numpy() - 0.5) * h
        return self._tensor(nodes + jitter)

    def _quadrature_log_z(self, n: int) -> float:
        """log of the mass inside the quadrature box (midpoint rule, ``n`` nodes per axis)."""
        e, _, cell = self._grid_energies(n)
        return float(torch.logsumexp(-e, 0)) + math.log(cell)

    def _shell_log_mass(self, inner: float, outer: float, n: int) -> float:
        """log of the mass between the boxes padded by ``inner`` and ``outer`` spans (midpoint rule).

        The shell is cut into the ``3^D - 1`` rectangles around the inner box; each has ``n // 2``
        nodes along an axis where it spans the inner box and ``n // 4`` across the padding.
        """
        lo, hi = self.z_lo_, self.z_hi_
        span = np.maximum(hi - lo, 1e-3)
        segments = [[(lo[j] - outer * span[j], lo[j] - inner * span[j], max(n // 4, 2)),
                     (lo[j] - inner * span[j], hi[j] + inner * span[j], max(n // 2, 2)),
                     (hi[j] + inner * span[j], hi[j] + outer * span[j], max(n // 4, 2))] for j in range(len(lo))]
        parts = []
        for pick in itertools.product(range(3), repeat=len(lo)):
            if all(k == 1 for k in pick):  # the inner box itself
                continue
            axes, cell = [], 1.0
            for j, k in enumerate(pick):
                a, b, m = segments[j][k]
                h = (b - a) / m
                axes.append(a + h * (np.arange(m) + 0.5))
                cell *= h
            parts.append(torch.logsumexp(-self._mesh_energies(axes), 0) + math.log(cell))
        return float(torch.logsumexp(torch.stack(parts), 0))

    def _normalising_log_z(self, n: int) -> float:
        """log Z over the whole space (<= 2-D): the quadrature box, plus the mass beyond it.

        The wall makes exp(-E) fall off outside the training range, but the network's own
        energy is not bounded there (its Fourier features repeat the wells it learned), so the
        mass beyond the box is integrated rather than assumed away: shell after shell
        (``TAIL_PADS``: out to 3 spans beyond the range, where the wall alone is 4,600 nats)
        until a shell holds less than ``exp(-TAIL_NEGLIGIBLE)`` of the total. Sets ``tail_mass_``,
        the fraction of the mass outside the quadrature box (that ``sampler='grid'`` never draws).
        """
        inside = self._quadrature_log_z(n)
        tail = -math.inf
        for inner, outer in zip(TAIL_PADS[:-1], TAIL_PADS[1:]):
            shell = self._shell_log_mass(inner, outer, n)
            tail = float(np.logaddexp(tail, shell))
            if shell < np.logaddexp(inside, tail) - TAIL_NEGLIGIBLE:
                break
        else:
            warnings.warn(f"ebm: the energy still holds mass {TAIL_PADS[-1]} spans beyond the training range; "
                          "log Z omits what lies further out", RuntimeWarning, stacklevel=3)
        log_z = float(np.logaddexp(inside, tail))
        self.tail_mass_ = math.exp(tail - log_z)
        return log_z

    def _ais_log_z(self, seed: int) -> float:
        """Annealed importance sampling (Neal 2001) of log Z, seeded by ``seed``.

        Starts from the uniform law ``q0`` on the walled box widened by ``AIS_TAIL_TAUS`` wall
        scales (where the wall alone costs 32 nats per coordinate), so the mass just past the
        wall is counted; intermediate targets ``q0(z)^(1-b) exp(-b E(z))`` on the ladder
        ``b_k = (k / K)^3``, one MALA move per rung. Returns the log of the mean importance
        weight and sets ``log_z_se_``, its standard error over the chains (delta method).

        Bias: the mean weight is an unbiased estimate of Z, so its log is biased *low*
        (Jensen: ``E[log Z_hat] <= log Z``, by about ``log_z_se_^2 / 2``), and so is the mass
        missed beyond the widened box; the log-likelihood ``-E - log Z_hat`` is therefore
        biased *high* (the NLL optimistic), most where the chains mix poorly.
        """
        dev = torch.device(self.device_)
        m = self.module_
        half = m.wall_half + AIS_TAIL_TAUS * m.wall_tau
        log_vol = float(torch.log(2 * half).sum())
        betas = torch.linspace(0, 1, int(self.ais_steps) + 1).pow(3).tolist()
        with torch_seed(seed, dev):
            x = m.wall_center + half * (2 * torch.rand(int(self.ais_chains), len(half), device=dev) - 1)
            logw = torch.zeros(len(x), dtype=torch.float64, device=dev)
            # start the MALA steps at the box's scale; they adapt as the target sharpens
            step = torch.full((len(x), 1), float((0.1 * half.mean()) ** 2), device=dev)
            for b0, b1 in zip(betas[:-1], betas[1:]):
                with torch.no_grad():
                    logw += -(b1 - b0) * self.energy(x).double()

                def lp(v: torch.Tensor, b: float = b1) -> torch.Tensor:
                    inside = ((v - m.wall_center).abs() <= half).all(1)  # q0 is uniform on the box
                    return torch.where(inside, -b * self.energy(v), torch.full_like(v[:, 0], -math.inf))

                res = mala(lp, x, step_size=step, n_steps=1, adapt=True)
                x, step = res.x, res.step_size.clamp(1e-7, 1.0)
        # Z = vol * E_uniform[exp(-E)] estimated by the mean AIS weight
        w = torch.exp(logw - logw.max())
        self.log_z_se_ = float(w.std() / w.mean()) / math.sqrt(len(w)) if len(w) > 1 else math.nan
        return float(torch.logsumexp(logw, 0) - math.log(len(logw))) + log_vol

    def _fit_std(self, Z, y, seed):
        super()._fit_std(Z, y, seed)
        d = Z.shape[1]
        if d <= QUAD_MAX_DIM:
            self.log_z_ = self._normalising_log_z(int(self.quad_points))
            self.log_z_se_ = 0.0
            self.likelihood_kind = "exact"
        else:
            self.log_z_ = self._ais_log_z(seed + 1)  # fixed at fit: scoring twice gives the same numbers
            self.tail_mass_ = None
            self.likelihood_kind = "estimate"
        if hasattr(self, "buffer_"):  # keep the final chains: samplers may restart from them
            self.chains_ = self.buffer_.cpu().numpy().astype(np.float32)
            self.chain_steps_ = self.buffer_step_.cpu().numpy().astype(np.float32)
            del self.buffer_, self.buffer_step_, self._pool
        else:
            self.chains_ = self.chain_steps_ = None

    def _log_prob_std(self, Z, return_se: bool = False):
        """-E(z) - log Z; with ``return_se`` also the standard error, that of log Z (shared by every
        row: zero for the 2-D quadrature, the AIS chains' spread beyond 2-D)."""
        out = []
        with torch.no_grad():
            for a in range(0, len(Z), 65536):
                out.append(-self.energy(self._tensor(Z[a:a + 65536])).double() - self.log_z_)
        lp = torch.cat(out)
        if not return_se:
            return lp
        se = float(getattr(self, "log_z_se_", 0.0) or 0.0)
        return lp, torch.full_like(lp, se if math.isfinite(se) else 0.0)

    # ------------------------------------------------------------------ sampling
    def _sample_std(self, n, y, seed, sampler: str | None = None, steps: int | None = None,
                    init: str | None = None):
        if y is not None:
            raise UnsupportedError("ebm is unconditional")
        sampler = sampler or self.sampler
        dev = torch.device(self.device_)
        with torch_seed(seed, dev):
            if sampler == "grid":
                return self._grid_sample(n)
            if sampler != "langevin":
                raise ValueError(f"sampler must be 'langevin' or 'grid'; got {sampler!r}")
            steps = int(self.sample_steps if steps is None else steps)
            if steps < 2:
                raise ValueError(f"steps must be >= 2; got {steps}")
            init = init or self.sample_init
            lp = lambda v: -self.energy(v)  # noqa: E731
            if init == "chains" and getattr(self, "chains_", None) is not None:
                # restart from the persistent chains kept at the end of training (Du & Mordatch 2019)
                pick = torch.randint(len(self.chains_), (n,), device=dev)
                x, step = self._tensor(self.chains_)[pick], self._tensor(self.chain_steps_)[pick]
                res = mala(lp, x, step_size=step, n_steps=steps, adapt=True)
                self.last_nfe_ = res.nfe
            elif init in ("uniform", "chains"):
                # broad start + tempering: MALA on exp(-E / T), T falling geometrically to 1
                x = self._uniform(n, dev)
                step = torch.full((n, 1), float(self.chain_step_size), device=dev)
                burn = steps // 2
                temps = geometric_schedule(float(self.init_temperature), 1.0, burn)
                for T in temps:
                    res = mala(lambda v, T=T: lp(v) / T, x, step_size=step, n_steps=1, adapt=True)
                    x, step = res.x, res.step_size.clamp(1e-7, 1.0)
                res = mala(lp, x, step_size=step, n_steps=steps - burn, adapt=True)
                self.last_nfe_ = res.nfe + 2 * burn
            else:
                raise ValueError(f"init must be 'chains' or 'uniform'; got {init!r}")
            self.last_accept_rate_ = res.accept_rate
            return res.x

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, method: str | None = None,
                    steps: int | None = None, burn: int | None = None, max_cost: int | None = None, **opts):
        """Draws from the model's ``p(z_missing | z_observed)`` (``log Z`` cancels in a conditional).

        ``method``: 'grid', the base class's grid-Gibbs on ``-E`` (about 2,000 energy evaluations per
        distinct row and missing coordinate per sweep); 'mcmc', preconditioned MALA on ``-E``
        started from the model's own nearby samples (``genzoo.samplers.mcmc``: 400 energy-and-
        gradient evaluations per row, exact in the limit of many steps); 'auto' (default), the grid
        up to 2 columns, MCMC beyond. Both refuse above their cost guard, naming the cost.
        """
        from genzoo.families._wide import check_grid_cost, impute_route
        from genzoo.samplers.mcmc import model_impute

        d = int(self.n_features_in_)
        if impute_route(method, d) == "grid":
            if d > 2:
                check_grid_cost(Z, miss, self.family, opts.get("sweeps", 30), opts.get("grid", 1024))
            return super()._impute_std(Z, miss, seed, **opts)
        if opts:
            raise ValueError(f"impute(method='mcmc'): unknown option(s) {sorted(opts)}; valid: steps, burn, max_cost")
        draw = lambda k, s: self._sample_std(k, None, s).detach().cpu().numpy()  # noqa: E731
        return model_impute(lambda z: -self.energy(z), draw, Z, miss, seed, family=self.family, steps=steps,
                            burn=burn, max_cost=max_cost, device=self.device_, per_eval="one energy evaluation")

    def _grid_sample(self, n: int) -> torch.Tensor:
        """Exact draw from the quadrature-normalised density (<= 2-D): cell by inverse CDF + jitter."""
        d = len(self.z_lo_)
        if d > QUAD_MAX_DIM:
            raise UnsupportedError(f"sampler='grid' needs <= {QUAD_MAX_DIM} dimensions (its grid has quad_points^D "
                                   f"cells); this model has {d}: use sampler='langevin'")
        q = int(self.quad_points)
        self.last_nfe_ = q**d / n  # the grid's evaluations, shared by the n draws
        return self._grid_draw(n, q)

    # ------------------------------------------------------------------ state
    def _get_arrays(self) -> dict[str, np.ndarray]:
        arrays = super()._get_arrays()
        if getattr(self, "chains_", None) is not None:
            arrays["chains"], arrays["chain_steps"] = self.chains_, self.chain_steps_
        return arrays

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_arrays(arrays)
        self.chains_ = arrays.get("chains")
        self.chain_steps_ = arrays.get("chain_steps")

    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        meta["log_z_"] = float(self.log_z_)
        for k in ("log_z_se_", "tail_mass_"):
            if getattr(self, k, None) is not None:
                meta[k] = float(getattr(self, k))
        meta["likelihood_kind"] = self.likelihood_kind
        return meta

    def _set_meta(self, meta: dict) -> None:
        meta = dict(meta)
        kind = meta.pop("likelihood_kind", None)
        super()._set_meta(meta)
        if kind is not None:
            self.likelihood_kind = kind
