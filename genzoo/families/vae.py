"""Variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014), optionally conditional.

The model: a standard normal prior p(u) = N(0, I) on a ``latent_dim``-dimensional latent u,
a Gaussian decoder p(x | u) = N(mu(u), diag sigma(u)^2) whose per-dimension variance is an
output of the network (floored at ``min_std``, so the decoder is a proper density in nats and
can still be as sharp as the data), and a Gaussian encoder q(u | x) = N(m(x), diag s(x)^2).
Its "one breath" is the negative evidence lower bound (ELBO), per row, in nats::

    -ELBO(x) = -E_q[log p(x | u)] + KL(q(u | x) || p(u))   >=   -log p(x)

Training minimises it with a linear KL warm-up (Bowman et al. 2016; Sonderby et al. 2016):
the KL weight rises from 0 to 1 over the first ``kl_warmup`` share of the steps, so the
decoder learns to reconstruct before the prior pulls the posteriors together; validation and
early stopping always use the true bound (weight 1).

``score_samples(X)`` returns the ELBO (``likelihood_kind = 'bound'``); ``score_samples(X, k=K)``
(or the ``iw_samples`` hyperparameter) returns the tighter importance-weighted bound of Burda
et al. (2016), log (1/K) sum_k p(x, u_k) / q(u_k | x), which rises towards log p(x) with K.

``fit(X, y)`` trains a conditional VAE (Sohn et al. 2015): encoder and decoder both read a
label embedding. ``sample(n, y=...)`` draws from p(x | y); without ``y`` the label is drawn
from the training class frequencies, and scores without ``y`` are bounds on the mixture
log sum_y pi_y p(x | y) (each term's bound is a bound, so the mixture of them is one too).

Sampling trade-off: by default ``sample`` draws x ~ p(x | u) *including* the decoder noise,
which is the model's actual distribution (and the one its bound scores); ``sample(n,
mean=True)`` returns the decoder means mu(u), which look smoother but are not draws of the
model (the classic "blurry VAE samples" are such means with a large fixed variance).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.base import TorchGenerativeModel, row_keyed_normal, torch_seed
from genzoo.families._wide import scaled_width
from genzoo.nn import ConditionedMLP
from genzoo.params import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, TRAINING, Interval
from genzoo.registry import register

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, diag exp(log_std)^2) summed over the last axis, ``(..., D) -> (...)``."""
    return -0.5 * (((x - mu) * torch.exp(-log_std)) ** 2 + 2 * log_std + _LOG_2PI).sum(-1)


def standard_normal_log_prob(u: torch.Tensor) -> torch.Tensor:
    """log N(u; 0, I) summed over the last axis, ``(..., L) -> (...)``."""
    return -0.5 * (u**2 + _LOG_2PI).sum(-1)


def kl_to_standard_normal(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(mu, diag s^2) || N(0, I)) = 1/2 sum(mu^2 + s^2 - 1 - 2 log s), ``(B, L) -> (B,)``."""
    return 0.5 * (mu**2 + torch.exp(2 * log_std) - 1 - 2 * log_std).sum(-1)


def _floored(raw: torch.Tensor, log_min: float) -> torch.Tensor:
    """A smooth lower bound on a log-std: ``log_min + softplus(raw - log_min)`` (~ raw above the floor)."""
    return log_min + F.softplus(raw - log_min)


class VAENet(nn.Module):
    """Encoder ``(x, y) -> (m, log s)`` of q(u | x) and decoder ``(u, y) -> (mu, log sigma)`` of p(x | u)."""

    def __init__(self, dim: int, latent_dim: int, hidden: int, layers: int, n_classes: int,
                 min_std: float):
        super().__init__()
        self.dim, self.latent_dim = dim, latent_dim
        self.log_min_dec = math.log(min_std)
        self.log_min_enc = math.log(1e-4)
        self.encoder = ConditionedMLP(dim, 2 * latent_dim, hidden, layers, n_classes=n_classes)
        self.decoder = ConditionedMLP(latent_dim, 2 * dim, hidden, layers, n_classes=n_classes)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        m, raw = self.encoder(x, y=y).chunk(2, dim=-1)  # (B, L) each
        return m, _floored(raw, self.log_min_enc)

    def decode(self, u: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.decoder(u, y=y).chunk(2, dim=-1)  # (B, D) each
        return mu, _floored(raw, self.log_min_dec)


@register("vae")
class VAE(TorchGenerativeModel):
    """Gaussian VAE with a learned decoder variance; ELBO / IWAE bounds; conditional when fitted with labels.

    Parameters
    ----------
    latent_dim : int or None, default=None
        Size of the latent u (prior N(0, I)); None = the data's dimension (at least 2).
    hidden : int or None, default=None
        Width of the encoder and decoder MLPs.
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=3
        Depth of the encoder and decoder MLPs.
    min_std : float, default=1e-3
        Floor of the decoder's standard deviation in standardised units (sharp enough for the std-0.01
        mixtures).
    kl_warmup : float, default=0.2
        Share of ``max_steps`` over which the KL weight rises linearly from 0 to 1.
    iw_samples : int, default=1
        Default K of ``score_samples``: 1 = the ELBO, K > 1 = the importance-weighted bound.
    impute_proposals : int, default=1000
        Smallest pool of latent proposals per distinct observed row in ``impute``'s importance
        resampling (rows sharing observed values share a pool of at least 20 per row).
    impute_steps : int, default=10
        Metropolis-within-Gibbs steps of ``impute`` after the initial draw (the importance
        resampling is already near-exact for the model; the steps refresh repeated particles).
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("vae", max_steps=300, random_state=0, verbose=0).fit(X)
    >>> m.sample(3, random_state=0).shape
    (3, 2)
    """

    likelihood_kind: ClassVar[str] = "bound"
    _capabilities: ClassVar[frozenset[str]] = frozenset({"sample", "log_prob", "impute", "conditional"})
    summary: ClassVar[str] = "Gaussian VAE with learned decoder variance; ELBO / importance-weighted bound"
    _parameter_constraints: ClassVar[dict] = {
        **TRAINING, "latent_dim": [*POSITIVE_INT, None], "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT,
        "min_std": POSITIVE, "kl_warmup": [Interval(float, 0, 1, closed="left")], "iw_samples": POSITIVE_INT,
        "impute_proposals": POSITIVE_INT, "impute_steps": NON_NEGATIVE_INT,
    }

    def __init__(self, *, latent_dim: int | None = None, hidden: int | None = None, layers: int = 3,
                 min_std: float = 1e-3,
                 kl_warmup: float = 0.2, iw_samples: int = 1, impute_proposals: int = 1000,
                 impute_steps: int = 10, max_steps: int = 10_000, batch_size: int = 256,
                 lr: float = 2e-3, validation_fraction: float = 0.1, early_stopping: bool = True,
                 patience: int = 10, random_state=None, device: str = "auto", verbose: int = 0):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.layers = layers
        self.min_std = min_std
        self.kl_warmup = kl_warmup
        self.iw_samples = iw_samples
        self.impute_proposals = impute_proposals
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

    # ------------------------------------------------------------------ network and objective
    def _build(self, dim: int, n_classes: int) -> nn.Module:
        self._beta = 1.0
        latent = max(2, dim) if self.latent_dim is None else int(self.latent_dim)
        return VAENet(dim, latent, scaled_width(self.hidden, dim, 128), int(self.layers), n_classes,
                      float(self.min_std))

    def _neg_elbo(self, z: torch.Tensor, y: torch.Tensor | None, beta: float = 1.0) -> torch.Tensor:
        """Per-row -E_q[log p(x|u)] + beta * KL(q(u|x) || p(u)), one reparameterised draw, ``(B,)``."""
        m, log_s = self.module_.encode(z, y)                      # (B, L)
        u = m + torch.exp(log_s) * torch.randn_like(m)            # reparameterisation trick
        mu, log_sigma = self.module_.decode(u, y)                 # (B, D)
        return -gaussian_log_prob(z, mu, log_sigma) + beta * kl_to_standard_normal(m, log_s)

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self._neg_elbo(z, y, getattr(self, "_beta", 1.0)).mean()

    def _train_step(self, z: torch.Tensor, y: torch.Tensor | None, step: int) -> float:
        warm = float(self.kl_warmup) * int(self.max_steps)
        self._beta = min(1.0, (step + 1) / warm) if warm >= 1 else 1.0
        return super()._train_step(z, y, step)

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        with torch_seed(12345, z.device):
            return float(self._neg_elbo(z, y, 1.0).mean())

    # ------------------------------------------------------------------ bounds
    def _log_joint(self, x: torch.Tensor, u: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """log p(x | u, y) + log p(u), ``(..., D), (..., L) -> (...)``."""
        mu, log_sigma = self.module_.decode(u.reshape(-1, u.shape[-1]), y)
        log_px = gaussian_log_prob(x.reshape(-1, x.shape[-1]), mu, log_sigma).reshape(u.shape[:-1])
        return log_px + standard_normal_log_prob(u)

    def _iwae(self, z: torch.Tensor, y: torch.Tensor | None, k: int, chunk: int = 2 ** 18,
              noise: torch.Tensor | None = None) -> torch.Tensor:
        """log (1/k) sum_j p(x, u_j) / q(u_j | x), u_j ~ q(u | x): the IWAE bound per row, ``(B,)``.

        k = 1 is the ELBO estimated with one draw (unbiased for the ELBO). ``noise``: the
        standard normal draws ``(k, B, L)`` to use (default: fresh from torch's RNG).
        """
        out = []
        rows = max(1, chunk // k)
        for a in range(0, len(z), rows):
            x = z[a:a + rows]
            yy = None if y is None else y[a:a + rows]
            m, log_s = self.module_.encode(x, yy)                              # (b, L)
            eps = torch.randn((k, *m.shape), device=z.device) if noise is None else noise[:, a:a + rows]  # (k, b, L)
            u = m + torch.exp(log_s) * eps
            yk = None if yy is None else yy.repeat(k)                         # (k*b,)
            log_pxu = self._log_joint(x.expand(k, *x.shape), u, yk)             # (k, b)
            log_qu = gaussian_log_prob(u, m, log_s)                            # (k, b)
            out.append(torch.logsumexp(log_pxu - log_qu, 0) - math.log(k))
        return torch.cat(out)

    def _log_prob_std(self, Z: np.ndarray, y: np.ndarray | None = None, k: int | None = None,
                      random_state: int = 0) -> torch.Tensor:
        """The ELBO (k = 1) or IWAE bound (k > 1) on log p(z | y) in standardised space; noise fixed by
        ``random_state``. The base class forms the marginal over classes from each class's bound."""
        k = int(self.iw_samples if k is None else k)
        if k < 1:
            raise ValueError(f"k (importance samples) must be >= 1; got {k}")
        z = self._tensor(Z)
        L = self.module_.latent_dim
        # each row's draws depend on the row and random_state only: the same number in any batch
        noise = torch.as_tensor(row_keyed_normal(Z, k * L, int(random_state)), dtype=z.dtype, device=z.device)
        noise = noise.reshape(len(Z), k, L).transpose(0, 1)                   # (k, B, L)
        with torch.no_grad():
            return self._iwae(z, self._labels(y), k, noise=noise)

    # ------------------------------------------------------------------ sampling
    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, mean: bool = False) -> torch.Tensor:
        """u ~ N(0, I), then x ~ p(x | u) (``mean=False``, the model's distribution) or x = mu(u)."""
        dev = torch.device(self.device_)
        yy = self._labels(y)  # the base draws labels for a conditional model asked for none
        with torch_seed(seed, dev):
            u = torch.randn(n, self.module_.latent_dim, device=dev)       # (n, L)
            mu, log_sigma = self.module_.decode(u, yy)                    # (n, D)
            x = mu if mean else mu + torch.exp(log_sigma) * torch.randn_like(mu)
        self.last_nfe_ = 1
        return x

    # ------------------------------------------------------------------ imputation
    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, proposals: int | None = None,
                    steps: int | None = None) -> torch.Tensor:
        """Draw missing coordinates from the model's p(x_miss | x_obs), approximately.

        1. Sampling-importance-resampling in latent space (as in Mattei & Frellsen 2019, MIWAE):
           for each distinct observed row, latents u_j ~ p(u) (labels stratified over classes for
           a conditional model), weighted by the decoder's likelihood of the observed part
           p(x_obs | u_j, y_j) pi_y; the rows sharing that observed part are resampled from one
           pool (systematic resampling), of ``max(proposals, 20 x rows)`` proposals; then
           x_miss ~ p(x_miss | u, y).
        2. ``steps`` sweeps of Metropolis-within-Gibbs (Mattei & Frellsen 2018): propose
           u' ~ q(u | x_obs, x_miss, y) from the encoder, accept with the Metropolis-Hastings
           ratio p(x | u') p(u') q(u | x) / (p(x | u) p(u) q(u' | x)), then redraw
           x_miss ~ p(x_miss | u) (exact, as the decoder is diagonal).

        Step 1 is exact for the model as the pool grows (its effective size is in
        ``last_impute_ess_``, the smallest over distinct rows); step 2 leaves the model's
        conditional invariant but keeps the label drawn in step 1. The remaining error on thin
        modes is the model's own (gaussians8: decoder noise 0.016 against the data's 0.01).
        """
        from genzoo.samplers.conditional import effective_sample_size, importance_resample

        K = int(self.impute_proposals if proposals is None else proposals)
        T = int(self.impute_steps if steps is None else steps)
        if K < 1 or T < 0:
            raise ValueError(f"proposals must be >= 1 and steps >= 0; got {K}, {T}")
        dev = torch.device(self.device_)
        net = self.module_
        n, d = Z.shape
        L = self.module_.latent_dim
        obs = torch.as_tensor(~miss, device=dev)                                # (n, D) bool
        x = self._tensor(np.where(miss, 0.0, Z))                                 # (n, D), missing = 0
        C = int(self.n_classes_)
        key = np.nan_to_num(np.where(miss, np.nan, Z), nan=np.inf)
        _, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
        group = group.ravel()
        rng = np.random.default_rng(seed)
        ess = []
        with torch_seed(seed, dev):
            # 1. SIR: one pool of prior proposals per distinct observed row
            u_pick = torch.empty(n, L, device=dev)
            y_pick = torch.zeros(n, dtype=torch.long, device=dev) if C else None
            log_w_class = (torch.as_tensor(np.log(self.class_prior_) + math.log(C), dtype=torch.float32,
                                           device=dev) if C else None)
            for g, i in enumerate(first):
                rows = np.flatnonzero(group == g)
                k = max(K, 20 * len(rows))
                lw, us, ys = [], [], []
                for a in range(0, k, 2 ** 17):
                    b = min(2 ** 17, k - a)
                    u = torch.randn(b, L, device=dev)                            # (b, L)
                    yk = (torch.arange(a, a + b, device=dev) % C) if C else None
                    mu, log_sigma = net.decode(u, yk)                            # (b, D)
                    ob = obs[i].expand(b, d)
                    w = gaussian_log_prob(x[i].expand(b, d) * ob, mu * ob, log_sigma * ob)  # observed dims only
                    if C:
                        w = w + log_w_class[yk]
                    lw.append(w)
                    us.append(u)
                    ys.append(yk)
                lw_np = torch.cat(lw).double().cpu().numpy()
                ess.append(effective_sample_size(lw_np))
                idx = torch.as_tensor(importance_resample(lw_np, len(rows), rng), device=dev)
                rows_t = torch.as_tensor(rows, device=dev)
                u_pick[rows_t] = torch.cat(us)[idx]
                if C:
                    y_pick[rows_t] = torch.cat(ys)[idx]
            mu, log_sigma = net.decode(u_pick, y_pick)
            x = torch.where(obs, x, mu + torch.exp(log_sigma) * torch.randn_like(mu))
            # 2. Metropolis-within-Gibbs on (u, x_miss)
            u = u_pick
            for _ in range(T):
                m, log_s = net.encode(x, y_pick)                                 # proposal q(u' | x)
                u_new = m + torch.exp(log_s) * torch.randn_like(m)
                log_ratio = (self._log_joint(x, u_new, y_pick) - self._log_joint(x, u, y_pick)
                             + gaussian_log_prob(u, m, log_s) - gaussian_log_prob(u_new, m, log_s))
                accept = torch.log(torch.rand(n, device=dev)) < log_ratio
                u = torch.where(accept[:, None], u_new, u)
                mu, log_sigma = net.decode(u, y_pick)
                x = torch.where(obs, x, mu + torch.exp(log_sigma) * torch.randn_like(mu))
        self.last_impute_ess_ = float(min(ess)) if ess else None
        self.last_nfe_ = max(K, 20) * len(first) / max(n, 1) + 4 * T
        return x

    def _no_likelihood_reason(self) -> str:  # pragma: no cover - vae always has a bound
        return "vae scores through its ELBO / IWAE bound"


__all__ = ["VAE", "VAENet", "gaussian_log_prob", "kl_to_standard_normal", "standard_normal_log_prob"]
