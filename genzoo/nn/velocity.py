"""Velocity fields on the linear probability path: the pieces flow matching, rectified flow and
consistency models share (none of those families imports another; they all import this).

- ``linear_path``: the conditional path ``x_t = (1 - t) x0 + t x1`` and its velocity
  ``x1 - x0`` (Lipman et al. 2023 with sigma_min = 0; Liu et al. 2023; Albergo &
  Vanden-Eijnden 2023). Time runs from noise (t = 0) to data (t = 1).
- ``ot_pairing``: exact optimal transport between the noise and the data of a minibatch
  (Tong et al. 2023 "OT-CFM"; Pooladian et al. 2023): a permutation of the noise rows that
  minimises the summed squared distance, so conditional paths cross less and the learned
  field is straighter.
- ``cfm_loss``: the conditional flow-matching regression ``E |v(x_t, t, y) - (x1 - x0)|^2``,
  with label dropout for classifier-free guidance.
- ``velocity_net``: the network (guidance mixing lives in ``genzoo.objectives.guidance``).
- ``path_energy``: normalised path energy of a sampler's trajectories (Tong et al. 2023;
  Liu et al. 2023's straightness): 0 for straight, constant-speed paths.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from genzoo.nn.mlp import ConditionedMLP
from genzoo.nn.targets import batch_posterior_mean
from genzoo.samplers.ode import VelocityFn, integrate


class VelocityNet(nn.Module):
    """``v(x, t, y)``: an MLP on ``[x, features of the time, label embedding]`` -> ``(B, dim)``.

    ``time_input='logit'`` feeds the network ``log(t / (1 - t))`` (half the log signal-to-noise
    ratio of the linear path) instead of ``t``: the field changes on the scale of ``1 - t``
    near the data, so in ``t`` the last few percent of the interval hold most of the
    structure, while in logit time it is spread evenly (as diffusion models use log-SNR).
    """

    def __init__(self, dim: int, n_classes: int = 0, *, hidden: int = 256, layers: int = 3, time_dim: int = 32,
                 time_scale: float = 4.0, time_input: str = "logit", logit_max: float = 12.0,
                 fourier_features: int = 0, fourier_scale: float = 5.0):
        super().__init__()
        if time_input not in ("logit", "t"):
            raise ValueError(f"time_input must be 'logit' or 't'; got {time_input!r}")
        self.time_input = time_input
        self.logit_max = float(logit_max)
        self.mlp = ConditionedMLP(dim, dim, hidden, layers, time_dim=time_dim, n_classes=n_classes,
                                  time_scale=time_scale, fourier_features=fourier_features,
                                  fourier_scale=fourier_scale)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.dim() == 0 else t  # (B,)
        if self.time_input == "logit":  # adaptive solvers may probe stages just past t = 1: clamp first
            t = t.clamp(0.0, 1.0)
            t = (torch.log(t) - torch.log1p(-t)).clamp(-self.logit_max, self.logit_max)
        return self.mlp(x, t, y)


def velocity_net(dim: int, n_classes: int = 0, **kw) -> nn.Module:
    """The velocity network the continuous-time families share (see ``VelocityNet``)."""
    return VelocityNet(dim, n_classes, **kw)


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Point ``x_t = (1 - t) x0 + t x1`` and target velocity ``d x_t / dt = x1 - x0``; ``t``: (B,)."""
    tt = t[:, None]  # (B, 1)
    return (1 - tt) * x0 + tt * x1, x1 - x0


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor, y: torch.Tensor | None = None, *,
               chunk: int | None = None) -> torch.Tensor:
    """Reorder the rows of ``x0`` so that pairing row i with ``x1[i]`` is the exact minibatch OT plan.

    With equal batch sizes and uniform weights the optimal plan for the squared-Euclidean
    cost is a permutation (Birkhoff), found by the Hungarian algorithm. ``chunk``: solve
    within consecutive blocks of that many rows (the rows are a random minibatch, so each
    block is one too): the assignment's cost grows roughly cubically, and blocks of 64-128
    keep it far below the cost of a training step. With labels ``y`` the noise is matched
    within each class, so that given ``y`` it is still an i.i.d. Gaussian draw (otherwise
    conditional sampling from N(0, I) would start from the wrong distribution).
    """
    a1 = x1.detach().cpu().double().numpy()
    a0 = x0.detach().cpu().double().numpy()
    n = len(a1)
    perm = np.arange(n)
    step = n if not chunk else int(chunk)
    yn = None if y is None else y.cpu().numpy()
    for a in range(0, n, step):
        block = np.arange(a, min(a + step, n))
        groups = [block] if yn is None else [block[yn[block] == k] for k in np.unique(yn[block])]
        for rows in groups:  # squared distances within the block only: linear in the batch size
            cost = ((a1[rows, None, :] - a0[None, rows, :]) ** 2).sum(-1)
            _, cols = linear_sum_assignment(cost)  # data rows[i] <- noise rows[cols[i]]
            perm[rows] = rows[cols]
    return x0[torch.as_tensor(perm, device=x0.device)]


def sample_time(n: int, kind: str = "uniform", device=None) -> torch.Tensor:
    """Training times in [0, 1): ``'uniform'``, or ``'end'``: half uniform, half with ``1 - t``
    log-uniform on [1e-4, 1] (more draws where a thin mode's width is decided, near the data).

    The time distribution weights the per-time regressions; it does not change their
    minimiser (the marginal velocity), so any choice with full support is unbiased.
    """
    u = torch.rand(n, device=device)
    if kind == "uniform":
        return u
    if kind != "end":
        raise ValueError(f"time_dist must be 'uniform' or 'end'; got {kind!r}")
    end = 1 - torch.pow(torch.tensor(1e-4, device=device), torch.rand(n, device=device))
    return torch.where(torch.rand(n, device=device) < 0.5, u, end)


def stable_velocity_target(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
                           y: torch.Tensor | None = None, free: torch.Tensor | None = None) -> torch.Tensor:
    """The marginal velocity at ``x_t`` estimated over the whole batch (a stable target field).

    For independent noise the marginal field is ``(E[x1 | x_t] - x_t) / (1 - t)`` (Lipman et
    al. 2023); ``E[x1 | x_t]`` is estimated with the batch's data rows as the reference,
    weights ``N(x_t; t x1_j, (1 - t)^2 I)`` (Xu et al. 2023's stable target field, the same
    estimate the ``score`` family uses in its sigma space). It replaces the single-pair target
    ``x1 - x0``, whose variance at mid ``t`` is of the order of the data's spread, by a
    batch average with almost none; at ``t -> 1`` the weights collapse on the row's own pair
    and the two agree. With labels ``y`` the reference is the row's own class, except for the
    rows marked in ``free`` (label dropped: they learn the unconditional field). Returned as
    ``(x1 - x0) + (E[x1 | x_t] - x1) / (1 - t)``, which stays finite as ``t -> 1``.
    """
    xt = linear_path(x0, x1, t)[0]
    one_m = (1 - t.double()).clamp_min(1e-6)[:, None]
    x1_hat = batch_posterior_mean(xt, t, (1 - t).clamp_min(1e-6), x1, y, free)
    r = x1.double()
    return ((r - x0.double()) + (x1_hat - r) / one_m).to(x1.dtype)


def use_stable_target(stable_target, coupling: str) -> bool:
    """Resolve a family's ``stable_target`` option (``'auto'``, True, False) against its coupling.

    ``'auto'``: the stable target whenever the noise is independent; True with minibatch OT is
    an error, since the batch average assumes independent noise.
    """
    if stable_target not in ("auto", True, False):
        raise ValueError(f"stable_target must be 'auto', True or False; got {stable_target!r}")
    if stable_target is True and coupling != "independent":
        raise ValueError("stable_target=True needs coupling='independent' (it averages over independent noise)")
    return coupling == "independent" if stable_target == "auto" else bool(stable_target)


def cfm_loss(net: nn.Module, x1: torch.Tensor, y: torch.Tensor | None = None, *,
             x0: torch.Tensor | None = None, coupling: str = "ot", label_dropout: float = 0.0,
             n_classes: int = 0, t: torch.Tensor | None = None, ot_chunk: int | None = 64,
             time_dist: str = "uniform", stable_target: bool = False) -> torch.Tensor:
    """Conditional flow matching: ``mean |v(x_t, t, y) - u|^2`` on the linear path.

    ``x0``: the source points paired with ``x1`` (default: fresh N(0, I) noise, coupled to
    ``x1`` by ``coupling`` = 'ot' or 'independent'; a reflow passes its own fixed pairs
    with ``coupling='independent'``). ``u`` is the pair's velocity ``x1 - x0`` or, with
    ``stable_target`` (independent noise only), :func:`stable_velocity_target`.
    ``label_dropout``: share of labels replaced by the null class ``n_classes`` so one
    network also learns the unconditional field.
    """
    B = x1.shape[0]
    if coupling not in ("ot", "independent"):
        raise ValueError(f"coupling must be 'ot' or 'independent'; got {coupling!r}")
    if stable_target and (coupling != "independent" or x0 is not None):
        raise ValueError("stable_target needs fresh independent noise (coupling='independent')")
    if x0 is None:
        x0 = torch.randn_like(x1)
    if coupling == "ot":
        x0 = ot_pairing(x0, x1, y, chunk=ot_chunk)
    if t is None:
        t = sample_time(B, time_dist, x1.device)
    xt, ut = linear_path(x0, x1, t)  # (B, D), (B, D)
    y_in = y
    if y is not None and label_dropout > 0:
        y_in = torch.where(torch.rand(B, device=y.device) < label_dropout, torch.full_like(y, n_classes), y)
    if stable_target:
        ut = stable_velocity_target(x0, x1, t, y, None if y is None else y_in == n_classes)
    return ((net(xt, t, y_in) - ut) ** 2).sum(1).mean()


def log_time(f: VelocityFn, eps: float = 1e-3) -> VelocityFn:
    """The same ODE in a time ``u in [0, 1]`` with ``t(u) = (1 - eps^u) / (1 - eps)``.

    Near the data end the linear-path field contracts at rate ~``1 / (1 - t)`` onto modes
    as thin as the data's (std ~0.015 after standardisation for ``gaussians8``): stiff in
    ``t``, smooth in ``log(1 - t)``. Equal steps in ``u`` are geometric in ``1 - t`` (fine
    near the data, coarse near the noise where the field is nearly constant), so fixed-step
    solvers reach the same accuracy with far fewer steps. ``x(u = 1) = x(t = 1)`` exactly:
    only the discretisation changes. ``dx/du = f(x, t(u)) dt/du``.
    """
    c = -math.log(eps) / (1 - eps)

    def g(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        e = torch.pow(torch.as_tensor(eps, dtype=u.dtype, device=u.device), u)  # (B,)
        return f(x, (1 - e) / (1 - eps)) * (c * e)[:, None]

    return g


def ancestral_step(f: VelocityFn, x: torch.Tensor, t: float, s: float) -> torch.Tensor:
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


@torch.no_grad()
def inpaint(f: VelocityFn, known: torch.Tensor, mask: torch.Tensor, *, steps: int = 50,
            resample: int = 10) -> tuple[torch.Tensor, int]:
    """Fill the entries of ``known`` where ``mask`` is False by RePaint on the linear path.

    RePaint (Lugmayr et al. 2022) adapted to ``x_t = (1 - t) x0 + t x1``: before each step
    ``t -> s`` the observed coordinates are replaced by a fresh draw of their path marginal
    ``t x_obs + (1 - t) eps``; the step is the stochastic :func:`ancestral_step` (a
    deterministic ODE step would not do: replacing the observed coordinates with fresh noise
    breaks the ODE's coupling, and on a ring the draws came out biased inwards, |y| 0.74 for
    0.99); it is repeated ``resample`` times, going back from ``s`` to ``t`` in between by
    the exact marginal-preserving jump
    ``x_t = (t / s) x_s + sqrt((1 - t)^2 - (t / s)^2 (1 - s)^2) eps``, which lets the
    missing coordinates settle into agreement with the observed ones. Returns the filled
    array (observed entries exactly as given) and the NFE per row.
    """
    x = torch.randn_like(known)
    ts = torch.linspace(0.0, 1.0, int(steps) + 1).tolist()
    nfe = 0
    for k in range(int(steps)):
        t, s = ts[k], ts[k + 1]
        for u in range(int(resample)):
            x = torch.where(mask, t * known + (1 - t) * torch.randn_like(known), x)
            x = ancestral_step(f, x, t, s)
            nfe += 1
            if u < int(resample) - 1:
                sd = max((1 - t) ** 2 - (t / s) ** 2 * (1 - s) ** 2, 0.0) ** 0.5
                x = (t / s) * x + sd * torch.randn_like(x)
    return torch.where(mask, known, x), nfe


class LinearPathImputation:
    """``_impute_std`` shared by the families whose sampler is a velocity field on the linear path.

    Put before ``TorchGenerativeModel`` in the bases (so ``super()._impute_std`` is the base
    class's grid Gibbs); the family provides ``_unconditional_field()`` and the hyperparameters
    ``impute_method``, ``impute_steps`` and ``resample``.
    """

    def _unconditional_field(self) -> VelocityFn:
        raise NotImplementedError

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, steps: int | None = None,
                    resample: int | None = None, method: str | None = None):
        """Draws from p(missing | observed): grid Gibbs on the exact ODE density, or RePaint.

        ``method`` (default ``impute_method``): ``'grid'``: the base class's grid inverse-CDF
        on this model's own ODE density, exact for the model up to the grid (one 1-D grid per
        distinct observed part; affordable in a few dimensions); ``'repaint'``: :func:`inpaint`,
        which assumes the path marginal ``t x + (1 - t) eps`` of independent noise -- exact in
        the limit for ``coupling='independent'``, but biased after minibatch-OT pairing or a
        reflow, whose noise is correlated with the data (ring, x = 0 observed: |y| 0.74
        instead of 0.99); ``'auto'``: grid up to 3 dimensions, RePaint beyond.
        """
        from genzoo.base import torch_seed

        method = method or self.impute_method
        if method not in ("auto", "grid", "repaint"):
            raise ValueError(f"impute_method must be 'auto', 'grid' or 'repaint'; got {method!r}")
        if method == "grid" or (method == "auto" and int(self.n_features_in_) <= 3):
            return super()._impute_std(Z, miss, seed)
        steps = int(self.impute_steps if steps is None else steps)
        resample = int(self.resample if resample is None else resample)
        dev = torch.device(self.device_)
        with torch_seed(seed, dev):
            out, nfe = inpaint(self._unconditional_field(), self._tensor(np.where(miss, 0.0, Z)),
                               torch.as_tensor(~miss, device=dev), steps=steps, resample=resample)
        self.last_nfe_ = nfe
        return out


@torch.no_grad()
def path_energy(f: VelocityFn, x0: torch.Tensor, t0: float = 0.0, t1: float = 1.0,
                steps: int = 100) -> dict[str, float]:
    """Straightness of the ODE paths of ``f`` started at ``x0`` (fine Euler steps).

    ``npe = E int_0^1 |v|^2 dt / E |x1 - x0|^2 - 1``: the normalised path energy (Tong et
    al. 2023), equal to Liu et al.'s straightness ``E int |(x1 - x0) - v|^2 dt`` divided by
    ``E |x1 - x0|^2``; 0 exactly when every path is a straight line run at constant speed
    (then one Euler step is exact). Also returns the transport cost ``E |x1 - x0|^2``.
    """
    path, _ = integrate(f, x0, t0, t1, method="euler", steps=steps, return_path=True)  # (S+1, B, D)
    h = abs(t1 - t0) / steps
    v = (path[1:] - path[:-1]) / h  # (S, B, D): the velocity used on each step
    energy = float((v ** 2).sum(-1).mean(1).sum() * h)
    cost = float(((path[-1] - path[0]) ** 2).sum(-1).mean())
    return {"npe": energy / max(cost, 1e-12) - 1.0, "cost": cost, "energy": energy}


class VelocityModel(nn.Module):
    """A velocity network plus an exponential moving average of its weights (Polyak averaging).

    The averaged weights are buffers (``ema_<name>``): saved with the module, never given a
    gradient; ``forward(x, t, y, ema=True)`` evaluates the network with them. Samplers use
    the average, which removes most of the step-to-step noise of the last SGD iterates.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self._names = [k for k, _ in net.named_parameters()]
        for k, p in net.named_parameters():
            self.register_buffer("ema_" + k.replace(".", "__"), p.detach().clone())

    def ema_params(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, "ema_" + k.replace(".", "__")) for k in self._names}

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for k, p in self.net.named_parameters():
            getattr(self, "ema_" + k.replace(".", "__")).lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def copy_to_ema(self) -> None:
        for k, p in self.net.named_parameters():
            getattr(self, "ema_" + k.replace(".", "__")).copy_(p.detach())

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                ema: bool = False) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        if ema:
            return torch.func.functional_call(self.net, self.ema_params(), (x, t, y))
        return self.net(x, t, y)


__all__ = ["LinearPathImputation", "velocity_net", "linear_path", "ot_pairing", "cfm_loss", "stable_velocity_target",
           "use_stable_target",
           "ancestral_step", "inpaint", "path_energy", "log_time", "VelocityModel", "VelocityNet"]
