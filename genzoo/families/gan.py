"""Generative adversarial network (Goodfellow et al. 2014), non-saturating loss, optionally conditional.

A generator G maps noise u ~ N(0, I) to data; a discriminator D outputs the logit of "real".
The "one breath" is the pair of logistic losses, the generator's in the non-saturating form
(it maximises log D(G(u)) rather than minimising log(1 - D(G(u)))):

    L_D = softplus(-D(x)) + softplus(D(G(u)))        L_G = softplus(-D(G(u)))

Stabilisation (``stabilize=True``, the default) -- the recipe of a careful practitioner:

- R1 gradient penalty on real data (Mescheder et al. 2018), gamma/2 E||grad_x D(x)||^2, which
  makes the non-saturating game converge locally; applied lazily every ``r1_every`` steps
  with weight ``r1_every * gamma`` (Karras et al. 2020);
- Adam with betas (0.5, 0.9), and the base loop's warm-up + cosine learning-rate decay;
- an exponential moving average of the generator's weights (Yazici et al. 2019), used for
  validation, sampling and imputation;
- discriminator rejection sampling (DRS, Azadi et al. 2019): after the game, a critic C is
  trained for ``rejection_steps`` steps to tell data from the frozen generator's samples, so
  that its logit estimates log p_data(x) / p_G(x); sampling then keeps a draw x = G(u) with
  probability min(1, exp(C(x) - M)) (M = the ``rejection_quantile`` of C over generated
  points). This removes most of the "bridges" a continuous generator must draw between
  separated modes. The critic reads ``fourier_features`` random Fourier features
  sin/cos(W x), W ~ N(0, s^2) (Tancik et al. 2020), besides x itself: an MLP on raw
  coordinates learns fine-scale structure slowly (spectral bias), and a critic that cannot see
  the gaps between sharp modes cannot reject the bridges. (Fourier features in the *training*
  discriminator sped up grid25 too, but made the generator collapse onto one mode of
  gaussians8; a critic trained against a frozen generator has no such game to lose.)
- optionally PacGAN packing (Lin et al. 2018): ``pack = m`` > 1 lets D judge m samples at
  once, penalising mode dropping (no DRS then, as D no longer scores single points). Off by
  default: on the 2-D benchmarks, within this training budget, concatenation packing slowed
  the discriminator down more than it helped coverage (R1 + DRS reached the modes without it).

``stabilize=False`` gives the plain non-saturating GAN with the same networks: no penalty,
Adam (0.9, 0.999), the raw generator, no rejection, no packing. It shows the family's
known failure modes (mode dropping, oscillation) honestly.

A GAN is an implicit model: it can sample but has no density, so ``score_samples`` raises
``gz.UnsupportedError``. Early stopping uses a sample-quality proxy instead of a likelihood:
the symmetric mean nearest-neighbour distance between generated points and the held-out
validation points (precision and recall in one number; lower is better).

``fit(X, y)`` trains a conditional GAN (Mirza & Osindero 2014): both players read a label
embedding; ``sample(n, y=...)`` draws from p(x | y), and without ``y`` the label is drawn from
the training class frequencies.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.base import TorchGenerativeModel, torch_seed
from genzoo.families._wide import scaled_width
from genzoo.nn import MLP, ConditionedMLP, LabelEmbedding
from genzoo.nn.mlp import fourier_std, in_chunks
from genzoo.params import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, TRAINING, UNIT_OPEN_RIGHT, Interval
from genzoo.registry import register
from genzoo.training import EMA


class _LeakyReLU(nn.LeakyReLU):
    def __init__(self) -> None:
        super().__init__(0.2)


class Discriminator(nn.Module):
    """D on ``pack`` samples at once: ``(B, D) [+ labels] -> (B // pack,)`` logits of "real".

    Each sample becomes [x, sin(W x), cos(W x), label embedding] (Fourier features with a
    fixed random W, shape (D, fourier)); ``pack`` consecutive samples are concatenated
    (PacGAN) before the MLP.
    """

    def __init__(self, dim: int, hidden: int, layers: int, pack: int, n_classes: int, fourier: int,
                 fourier_scale: float, label_dim: int = 16):
        super().__init__()
        self.pack = pack
        self.label = LabelEmbedding(n_classes, label_dim) if n_classes else None
        self.register_buffer("freqs", torch.randn(dim, fourier) * fourier_std(dim, fourier_scale))
        per = dim + 2 * fourier + (label_dim if n_classes else 0)
        self.net = MLP(pack * per, 1, hidden, layers, activation=_LeakyReLU)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x]
        if self.freqs.shape[1]:
            a = x @ self.freqs                                               # (B, fourier)
            parts += [a.sin(), a.cos()]
        if self.label is not None:
            parts.append(self.label(y, x.shape[0]))
        h = torch.cat(parts, dim=1)                                          # (B, per)
        b = (h.shape[0] // self.pack) * self.pack
        return self.net(h[:b].reshape(b // self.pack, -1)).squeeze(-1)      # (B // pack,)


class GANNet(nn.Module):
    """Generator ``(u, y) -> x``, its moving-average copy (not trained by gradients) and the discriminator."""

    def __init__(self, dim: int, latent_dim: int, hidden: int, layers: int, d_hidden: int, d_layers: int,
                 pack: int, n_classes: int, critic_fourier: int | None = None, critic_scale: float = 1.0,
                 ema_decay: float = 0.999):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = ConditionedMLP(latent_dim, dim, hidden, layers, n_classes=n_classes,
                                        activation=nn.ReLU)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.ema = EMA(self.generator, ema_decay, copy=self.generator_ema)  # averages into generator_ema
        self.discriminator = Discriminator(dim, d_hidden, d_layers, pack, n_classes, 0, 1.0)
        # the rejection critic: a discriminator with Fourier features, trained after the game
        self.critic = (Discriminator(dim, d_hidden, d_layers, 1, n_classes, critic_fourier, critic_scale)
                       if critic_fourier is not None else None)


@register("gan")
class GAN(TorchGenerativeModel):
    """Non-saturating GAN with R1 penalty, generator EMA and discriminator rejection sampling.

    ``stabilize=False`` turns all of those off (the plain non-saturating GAN).

    Parameters
    ----------
    latent_dim : int or None, default=None
        Size of the generator's noise u ~ N(0, I); None = max(8, D): 8 on the 2-D data it was tuned on,
        and never fewer latent dimensions than data dimensions (a generator cannot fill a D-dimensional
        density from fewer).
    hidden : int or None, default=None
        Generator MLP width (ReLU, so it can fold space sharply).
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=3
        Generator MLP depth.
    d_hidden : int or None, default=None
        Discriminator MLP width (LeakyReLU 0.2).
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    d_layers : int, default=3
        Discriminator MLP depth.
    stabilize : bool, default=True
        The stabilisation recipe (R1, Adam betas (0.5, 0.9), EMA, rejection, packing); False = the plain
        non-saturating GAN.
    pack : int, default=1
        Samples per discriminator input when stabilised (PacGAN m; 1 = no packing, and no rejection when
        > 1).
    r1_gamma : float, default=0.1
        R1 penalty weight on real data (standardised units).
    r1_every : int, default=4
        Apply the R1 penalty every this many steps, with its weight scaled up to match.
    ema_decay : float, default=0.999
        Decay of the generator's moving average when stabilised.
    d_lr_ratio : float, default=1.0
        Discriminator learning rate / generator learning rate.
    rejection : bool, default=True
        Discriminator rejection sampling (a critic trained after the game) when stabilised.
    rejection_steps : int, default=1000
        Training steps of the rejection critic against the frozen generator (at most ``max_steps``).
    rejection_quantile : float, default=0.95
        Quantile of the critic's logit over generated points used as the acceptance ceiling M.
    fourier_features : int, default=32
        Random Fourier features of the rejection critic's input (0 = raw coordinates only).
    fourier_scale : float, default=5.0
        Scale of those features per unit of standardised data at D <= 2, times sqrt(2 / D) beyond
        (``genzoo.nn.mlp.fourier_std``).
    impute_pool : int, default=262144
        Smallest number of latent proposals of ``impute``'s importance resampling (``method='nearest'``,
        the default; at least 128 per row).
    impute_starts : int, default=16
        Random latent starts per row of ``impute(method='search')``'s latent search.
    impute_steps : int, default=200
        Adam steps of each latent search.
    impute_tol : float, default=0.02
        Observation noise (standardised units) of the latent search's fit to the observed coordinates.
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("gan", max_steps=300, random_state=0, verbose=0).fit(X)
    >>> m.sample(3, random_state=0).shape
    (3, 2)
    """

    likelihood_kind: ClassVar[str] = "none"
    _capabilities: ClassVar[frozenset[str]] = frozenset({"sample", "impute", "conditional"})
    approximate_impute: ClassVar[str] = "search"  # the other impute method, which the report measures too
    summary: ClassVar[str] = "non-saturating GAN, R1 penalty, weight EMA, discriminator rejection (no density)"
    _parameter_constraints: ClassVar[dict] = {
        **TRAINING, "latent_dim": [*POSITIVE_INT, None], "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT,
        "d_hidden": [*POSITIVE_INT, None], "d_layers": POSITIVE_INT, "stabilize": ["boolean"], "pack": POSITIVE_INT,
        "r1_gamma": NON_NEGATIVE, "r1_every": POSITIVE_INT, "ema_decay": UNIT_OPEN_RIGHT, "d_lr_ratio": POSITIVE,
        "rejection": ["boolean"], "rejection_steps": NON_NEGATIVE_INT,
        "rejection_quantile": [Interval(float, 0, 1, closed="right")], "fourier_features": NON_NEGATIVE_INT,
        "fourier_scale": POSITIVE, "impute_starts": POSITIVE_INT, "impute_steps": NON_NEGATIVE_INT,
        "impute_tol": POSITIVE, "impute_pool": POSITIVE_INT,
    }

    def __init__(self, *, latent_dim: int | None = None, hidden: int | None = None, layers: int = 3,
                 d_hidden: int | None = None, d_layers: int = 3, stabilize: bool = True, pack: int = 1,
                 r1_gamma: float = 0.1,
                 r1_every: int = 4, ema_decay: float = 0.999, d_lr_ratio: float = 1.0,
                 rejection: bool = True, rejection_steps: int = 1000, rejection_quantile: float = 0.95,
                 fourier_features: int = 32, fourier_scale: float = 5.0, impute_starts: int = 16,
                 impute_steps: int = 200, impute_tol: float = 0.02, max_steps: int = 4000,
                 batch_size: int = 256, lr: float = 5e-3, validation_fraction: float = 0.1,
                 early_stopping: bool = True, patience: int = 10, random_state=None, device: str = "auto",
                 verbose: int = 0, impute_pool: int = 262144):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.layers = layers
        self.d_hidden = d_hidden
        self.d_layers = d_layers
        self.stabilize = stabilize
        self.pack = pack
        self.r1_gamma = r1_gamma
        self.r1_every = r1_every
        self.ema_decay = ema_decay
        self.d_lr_ratio = d_lr_ratio
        self.rejection = rejection
        self.rejection_steps = rejection_steps
        self.rejection_quantile = rejection_quantile
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
        self.impute_starts = impute_starts
        self.impute_steps = impute_steps
        self.impute_tol = impute_tol
        self.impute_pool = impute_pool
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ networks and optimisers
    def _pack(self) -> int:
        return int(self.pack) if self.stabilize else 1

    def _uses_rejection(self) -> bool:
        return bool(self.stabilize and self.rejection)

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        if self._pack() > int(self.batch_size):
            raise ValueError(f"pack ({self.pack}) must not exceed batch_size ({self.batch_size})")
        latent = max(8, dim) if self.latent_dim is None else int(self.latent_dim)
        return GANNet(dim, latent, scaled_width(self.hidden, dim, 128), int(self.layers),
                      scaled_width(self.d_hidden, dim, 128), int(self.d_layers), self._pack(), n_classes,
                      int(self.fourier_features) if self._uses_rejection() else None, float(self.fourier_scale),
                      # warm-started average: early on the copy follows the generator closely; plain GAN: a copy
                      ema_decay=float(self.ema_decay) if self.stabilize else 0.0)

    def _configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        betas = (0.5, 0.9) if self.stabilize else (0.9, 0.999)
        net = self.module_
        return [torch.optim.Adam(net.generator.parameters(), lr=lr, betas=betas),
                torch.optim.Adam(net.discriminator.parameters(), lr=lr * float(self.d_lr_ratio),
                                 betas=betas)]

    # ------------------------------------------------------------------ the game
    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                r1_weight: float = 0.0) -> torch.Tensor:
        """L_D = E softplus(-D(x)) + E softplus(D(G(u))) + r1_weight / 2 E||grad_x D(x)||^2."""
        D = self.module_.discriminator
        real = real.detach().requires_grad_(r1_weight > 0)
        d_real, d_fake = D(real, y), D(fake, y)                               # (B / pack,)
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        if r1_weight > 0:
            (g,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)  # (B, D)
            loss = loss + 0.5 * r1_weight * g.pow(2).sum() / len(d_real)
        return loss

    def _g_loss(self, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Non-saturating generator loss: E softplus(-D(G(u))) = -E log sigmoid(D(G(u)))."""
        return F.softplus(-self.module_.discriminator(fake, y)).mean()

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Both players' losses on one batch (``_train_step`` descends each on its own weights)."""
        fake = self.module_.generator(torch.randn(len(z), self.module_.latent_dim, device=z.device), y=y)
        r1 = float(self.r1_gamma) if self.stabilize else 0.0
        return self._d_loss(z, fake.detach(), y, r1) + self._g_loss(fake, y)

    def _train_step(self, z: torch.Tensor, y: torch.Tensor | None, step: int) -> float:
        """One discriminator step, then one generator step on the same fake batch (the loop then
        updates the generator's moving average).

        Returns the discriminator's loss (2 log 2 = 1.386 when D cannot tell real from fake).
        """
        opt_g, opt_d = self.optimizers_
        net = self.module_
        fake = net.generator(torch.randn(len(z), net.latent_dim, device=z.device), y=y)  # (B, D)
        every = int(self.r1_every)
        r1 = float(self.r1_gamma) * every if self.stabilize and step % every == 0 else 0.0
        loss_d = self._d_loss(z, fake.detach(), y, r1)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        net.discriminator.requires_grad_(False)
        loss_g = self._g_loss(fake, y)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        net.discriminator.requires_grad_(True)
        return float(loss_d.detach())

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """Symmetric mean nearest-neighbour distance between generated and held-out points."""
        with torch_seed(12345, z.device):
            u = torch.randn(len(z), self.module_.latent_dim, device=z.device)
            g = self.module_.generator_ema(u, y=y)                               # (V, D)
        dist = torch.cdist(g, z)                                                  # (V, V)
        return float(dist.min(1).values.mean() + dist.min(0).values.mean())

    # ------------------------------------------------------------------ rejection sampling
    def _fit_std(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        super()._fit_std(Z, y, seed)
        self.rejection_ceiling_ = None
        self.rejection_accept_ = None
        if self._uses_rejection() and not self.diverged_:
            self._calibrate_rejection(Z, y, seed + 1)

    def _calibrate_rejection(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        """Train the critic C to tell data from the frozen (EMA) generator, then set the DRS ceiling M.

        C minimises the plain logistic loss (no penalty), so its logit approaches
        log p_data(x) / p_G(x), the ratio that rejection sampling needs (Azadi et al. 2019).
        """
        net, dev = self.module_, torch.device(self.device_)
        C, G = net.critic, net.generator_ema
        zt = self._tensor(Z)
        yt = self._labels(y)
        bs = min(int(self.batch_size), len(zt))
        with torch_seed(seed, dev):
            opt = torch.optim.Adam(C.parameters(), lr=1e-3, betas=(0.5, 0.9))
            for _ in range(min(int(self.rejection_steps), int(self.max_steps))):  # never longer than the game
                idx = torch.randint(len(zt), (bs,), device=dev)
                yb = None if yt is None else yt[idx]
                with torch.no_grad():
                    fake = G(torch.randn(bs, net.latent_dim, device=dev), y=yb)    # (B, D)
                loss = F.softplus(-C(zt[idx], yb)).mean() + F.softplus(C(fake, yb)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                n = 20_000
                yb = None if yt is None else yt[torch.randint(len(yt), (n,), device=dev)]
                logit = C(G(torch.randn(n, net.latent_dim, device=dev), y=yb), yb)    # (n,)
                ceiling = float(torch.quantile(logit, float(self.rejection_quantile)))
                accept = float(torch.exp(torch.clamp(logit - ceiling, max=0.0)).mean())
        self.rejection_ceiling_, self.rejection_accept_ = ceiling, accept

    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        meta["rejection_ceiling_"] = getattr(self, "rejection_ceiling_", None)
        meta["rejection_accept_"] = getattr(self, "rejection_accept_", None)
        return meta

    # ------------------------------------------------------------------ sampling
    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, ema: bool = True,
                    rejection: bool | None = None) -> torch.Tensor:
        """x = G(u), u ~ N(0, I) (moving-average generator unless ``ema=False``).

        With rejection (the default when the model was calibrated for it), proposals x = G(u) pass
        the DRS test u < exp(C(x) - M) independently, so every accepted proposal is a draw from
        the filtered law: they are pooled and handed to the rows still empty in order (within a
        label, for a conditional model), ``rows * min(1.5, 1 + (3 sqrt(rows) + 4) / rows) / accept``
        proposals a round (at most 64 a row), so one round almost always fills every row. After 40
        rounds (never seen in practice) a row still empty keeps an unfiltered proposal.
        """
        net, dev = self.module_, torch.device(self.device_)
        yy = self._labels(y)  # the base draws labels for a conditional model asked for none
        G = net.generator_ema if ema else net.generator
        ceiling = getattr(self, "rejection_ceiling_", None)
        use = (ceiling is not None) if rejection is None else bool(rejection)
        if use and ceiling is None:
            raise ValueError("rejection sampling needs a model fitted with stabilize=True and rejection=True")
        with torch_seed(seed, dev):
            if not use:
                self.last_nfe_ = 1
                return in_chunks(lambda u, c: G(u, y=c), torch.randn(n, net.latent_dim, device=dev), yy)
            out = torch.empty(n, int(self.n_features_in_), device=dev)
            todo = torch.arange(n, device=dev)
            accept = max(float(self.rejection_accept_), 1e-3)
            proposals = 0
            for round_ in range(40):
                r = len(todo)
                m = min(64 * r, math.ceil(r * min(1.5, 1 + (3 * math.sqrt(r) + 4) / r) / accept))
                rows = todo[torch.arange(m, device=dev) % r]                     # (m,) whose label each carries
                yr = None if yy is None else yy[rows]
                x = in_chunks(lambda u, c: G(u, y=c), torch.randn(m, net.latent_dim, device=dev), yr)  # (m, D)
                keep = torch.rand(m, device=dev) < torch.exp(in_chunks(net.critic, x, yr) - ceiling)
                proposals += m
                if round_ == 39:  # the last round: rows still empty keep their unfiltered proposal
                    keep[:r] = True
                filled = []
                for c in ([None] if yy is None else torch.unique(yy[todo]).tolist()):
                    want = todo if c is None else todo[yy[todo] == c]            # empty rows (of label c)
                    got = x[keep if c is None else keep & (yr == c)]             # accepted proposals (of c)
                    k = min(len(want), len(got))
                    out[want[:k]] = got[:k]
                    filled.append(want[:k])
                done = torch.zeros(n, dtype=torch.bool, device=dev)
                done[torch.cat(filled)] = True
                todo = todo[~done[todo]]
                if not len(todo):
                    break
        self.last_nfe_ = 2 * proposals / n  # generator + discriminator evaluations per sample
        return out

    def _nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """Rejection sampling only where ``nfe`` covers its first round (generator + critic on each of
        at most ``k = 1.5 / accept`` proposals per row), twice over for the rounds that follow; else
        one generator call."""
        opts = dict(opts)
        accept = getattr(self, "rejection_accept_", None)
        if opts.get("rejection") is None and accept is not None:
            k = int(min(64, max(1, math.ceil(1.5 / max(float(accept), 1e-3)))))
            opts["rejection"] = nfe >= 4 * k
        return opts

    def _no_likelihood_reason(self) -> str:
        return ("gan is an implicit model: it defines samples x = G(u) but no density p(x), so it "
                "cannot score data (use a family with likelihood_kind != 'none', or sample metrics)")

    # ------------------------------------------------------------------ imputation
    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, method: str | None = None,
                    pool: int | None = None, starts: int | None = None, steps: int | None = None,
                    tol: float | None = None):
        """Draws of the missing coordinates given the observed ones.

        ``method='nearest'`` (default): importance resampling in latent space. Proposals
        u ~ N(0, I) (labels from the class frequencies for a labelled fit), ``max(pool, 128 n)`` of
        them, are pushed through the averaged generator; a row takes the missing coordinates of
        one of its ``max(256, 2 r)`` proposals nearest in the observed coordinates (r: rows sharing
        its observed values), resampled with weight = the rejection sampler's acceptance
        ``min(1, exp(C(G(u)) - M))`` (evaluated on those neighbours only). The target is the
        model's own distribution (what ``sample`` draws) conditioned on a window around the
        observed values whose width shrinks as the pool grows: exact for the model in the limit
        (:func:`genzoo.samplers.conditional.nearest_conditional`). ``method='search'``: the
        latent search below (an approximation kept for comparison).
        """
        method = "nearest" if method is None else method
        if method not in ("nearest", "search"):
            raise ValueError(f"impute method must be 'nearest' or 'search'; got {method!r}")
        if method == "search":
            return self._latent_search(Z, miss, seed, starts, steps, tol)
        from genzoo.samplers.conditional import nearest_conditional

        net, dev = self.module_, torch.device(self.device_)
        n, C = len(Z), int(self.n_classes_)
        M = max(int(self.impute_pool if pool is None else pool), 128 * n)
        rng = np.random.default_rng(seed)
        y = rng.choice(C, size=M, p=self.class_prior_) if C else None
        yt = self._labels(y)
        with torch_seed(seed, dev):
            X = torch.cat([net.generator_ema(torch.randn(min(65536, M - a), net.latent_dim, device=dev),
                                             y=None if yt is None else yt[a:a + 65536])
                           for a in range(0, M, 65536)])                          # (M, D)
        ceiling = getattr(self, "rejection_ceiling_", None)

        def log_accept(idx: np.ndarray) -> np.ndarray:
            if ceiling is None:
                return np.zeros(len(idx))
            i = torch.as_tensor(idx, device=dev)
            return torch.clamp(net.critic(X[i], None if yt is None else yt[i]) - ceiling, max=0.0).cpu().numpy()

        out = nearest_conditional(X.cpu().numpy().astype(np.float64), Z, miss, rng, k=256, per_row=2,
                                  log_weight=log_accept)
        self.last_nfe_ = M / max(n, 1)
        return out

    def _latent_search(self, Z: np.ndarray, miss: np.ndarray, seed: int, starts: int | None = None,
                       steps: int | None = None, tol: float | None = None) -> torch.Tensor:
        """Fill missing coordinates by latent search: find u with G(u) matching the observed ones.

        For each row, ``starts`` random latents u ~ N(0, I) (labels stratified over the classes
        for a conditional model) are optimised by Adam to minimise
        ||(G(u) - x)_obs||^2 / (2 tol^2) + ||u||^2 / 2 (a MAP fit under an observation noise
        ``tol`` in standardised units). Among the starts whose RMS error on the observed
        coordinates is within 3 tol (or the best one, if none is) and, when the model has a
        rejection critic, whose DRS acceptance exp(C(G(u)) - M) is at least 0.1 (if any start
        passes both), one is drawn at random, weighted by the class frequencies; G(u) fills the
        missing coordinates. The critic acts as a yes/no filter against bridge points rather
        than as a weight, because its logit is too noisy between two good modes to weight them.

        Approximation: this is not a posterior draw. The randomness comes from the random
        starts, so the share of draws per mode follows the size of each mode's basin of
        attraction in latent space, which only roughly tracks p(mode | observed).
        """
        R = int(self.impute_starts if starts is None else starts)
        T = int(self.impute_steps if steps is None else steps)
        tol = float(self.impute_tol if tol is None else tol)
        if R < 1 or T < 0 or not tol > 0:
            raise ValueError(f"starts must be >= 1, steps >= 0 and tol > 0; got {R}, {T}, {tol}")
        net, dev = self.module_, torch.device(self.device_)
        G = net.generator_ema
        n, d = Z.shape
        C = int(self.n_classes_)
        if C:
            R = C * math.ceil(R / C)
        obs = torch.as_tensor(~miss, device=dev).float()                         # (n, D)
        x = self._tensor(np.where(miss, 0.0, Z))                                 # (n, D)
        xr, obr = x.repeat(R, 1), obs.repeat(R, 1)                                # (R*n, D)
        yr = (torch.arange(R, device=dev) % C).repeat_interleave(n) if C else None  # (R*n,)
        with torch_seed(seed, dev), torch.enable_grad():
            u = torch.randn(R * n, net.latent_dim, device=dev).requires_grad_(True)
            opt = torch.optim.Adam([u], lr=0.05)
            for _ in range(T):
                err = ((G(u, y=yr) - xr) * obr).pow(2).sum(1)                     # (R*n,)
                loss = (err / (2 * tol**2) + 0.5 * u.pow(2).sum(1)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                out = G(u, y=yr)                                                  # (R*n, D)
                rms = (((out - xr) * obr).pow(2).sum(1) / obr.sum(1).clamp(min=1)).sqrt().reshape(R, n)
                ok = rms <= 3 * tol                                               # (R, n)
                ceiling = getattr(self, "rejection_ceiling_", None)
                if ceiling is not None:  # drop fits the critic finds implausible (bridges), if any is left
                    plausible = (net.critic(out, yr) - ceiling).reshape(R, n) > math.log(0.1)
                    both = ok & plausible
                    ok = torch.where(both.any(0, keepdim=True), both, ok)
                ok = ok | (~ok.any(0, keepdim=True) & (rms == rms.min(0, keepdim=True).values))
                logw = torch.zeros(R, n, device=dev)
                if C:
                    log_prior = torch.as_tensor(np.log(self.class_prior_), dtype=torch.float32, device=dev)
                    logw = logw + log_prior[yr.reshape(R, n)]
                logw = torch.where(ok, logw, torch.full_like(logw, -math.inf))
                gumbel = -torch.log(-torch.log(torch.rand(R, n, device=dev)))
                pick = torch.argmax(logw + gumbel, 0)                             # (n,)
                filled = out.reshape(R, n, d)[pick, torch.arange(n, device=dev)]
        self.last_nfe_ = 2 * T + 2
        return torch.where(obs.bool(), x, filled)


__all__ = ["GAN", "GANNet", "Discriminator"]
