"""Masked (absorbing-state) discrete diffusion over discretised coordinates.

Each standardised coordinate is quantised into ``n_bins`` equal bins over the training range
padded by 5% of its span: a row becomes a sequence of D tokens. The forward process replaces
tokens by a MASK token, each independently with probability ``t`` (D3PM's absorbing state,
Austin et al. 2021; continuous time with the linear schedule ``alpha_t = 1 - t``, Sahoo et al.
2024 "MDLM", Shi et al. 2024 "MD4"). The network sees the partly masked sequence (bin values
plus a mask flag per coordinate; the mask ratio is read off the flags, so no time input is
needed -- the optimal absorbing-state denoiser does not depend on t) and predicts a
categorical distribution over bins for every coordinate.

One breath: the MDLM negative ELBO ``int_0^1 (1/t) E[sum_{masked i} -log p(x_i | x_t)] dt``
integrates in closed form over t into a sum over the number m of masked tokens (each m gets
weight 1/m; Hoogeboom et al. 2022, "autoregressive diffusion models"), so a training row draws
m uniformly from 1..D, masks a random m-subset and pays ``D/m * sum_{masked} CE`` -- an unbiased,
low-variance estimate of the same bound.

Sampling unmasks the D tokens over ``steps`` steps (linear schedule: after step k,
``round(D k / steps)`` tokens are revealed, in a uniformly random order); a step that reveals
nothing is skipped, so NFE = min(steps, D). With ``steps >= D`` (the default ``steps=None``
means D) one token is revealed per evaluation, an exact draw from the model's any-order
factorisation; fewer steps reveal several tokens at once, independently given the context.
Continuous output = the bin's lower edge + uniform jitter across the bin.

Likelihood (``likelihood_kind='bound'``): the ELBO on tokens, computed exactly by enumerating
every masked subset for D <= ``exact_max_dim`` (2^D - 1 network evaluations per row) and by a
fixed-seed Monte-Carlo estimate beyond; since the continuous model is uniform within a bin,
``log p(x) >= ELBO(tokens(x)) - sum_i log(bin width_i)``. Rows outside the binned box have
density zero under the model; they get the finite floor ``OUTSIDE_LOG_DENSITY`` (-1000 nats
in standardised units), so means stay finite while such rows are clearly flagged.

Conditioning: a label embedding with classifier-free guidance (``label_dropout`` during
training); ``guidance=g`` at sampling mixes log-probabilities as ``uncond + g (cond - uncond)``,
genzoo's one convention (g = 1 plain conditional, the default; g = 0 unconditional).
Imputation: observed coordinates become unmasked tokens and only the missing ones are
sampled -- the model's own conditional, to the resolution of a bin.

Strings: fitted on a list of strings, the family is a length model times an absorbing-state
diffusion of the characters with a bidirectional transformer, scored by its ELBO; see
``genzoo.families.text_masked_diffusion``. The ``text_*`` hyperparameters configure it;
``steps``, ``n_mc``, ``label_dropout`` and ``guidance`` apply to both kinds of data.
"""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.base import TorchGenerativeModel, torch_seed
from genzoo.families._wide import scaled_width
from genzoo.families.text_masked_diffusion import TextMaskedDiffusion
from genzoo.nn.mlp import ConditionedMLP
from genzoo.objectives.guidance import drop_labels, guided
from genzoo.params import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, TRAINING, UNIT_OPEN_RIGHT, Interval
from genzoo.registry import register

BIN_PAD = 0.05  # the binned range: training range padded by this fraction of the span, each side
OUTSIDE_LOG_DENSITY = -1000.0  # standardised-space log-density given to rows outside the binned box


class MaskPredictor(nn.Module):
    """``(tokens (B, D) with -1 = MASK, labels) -> logits (B, D, n_bins)``.

    Each coordinate enters as its bin centre in [-1, 1] (0 when masked), a mask flag and a few
    Fourier features of the centre, so nearby bins share statistical strength.
    """

    def __init__(self, dim: int, n_bins: int, hidden: int, layers: int, n_classes: int, n_freq: int = 4):
        super().__init__()
        self.dim, self.n_bins, self.n_freq = dim, n_bins, n_freq
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32),
                             persistent=False)
        in_dim = dim * (2 + 2 * n_freq)
        self.net = ConditionedMLP(in_dim, dim * n_bins, hidden, layers, n_classes=n_classes)

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        masked = tokens < 0  # (B, D)
        v = (tokens.clamp(min=0).float() + 0.5) / self.n_bins * 2 - 1  # (B, D) bin centre in [-1, 1]
        v = torch.where(masked, torch.zeros_like(v), v)
        a = v[..., None] * self.freqs  # (B, D, F)
        keep = (~masked).float()[..., None]
        feats = torch.cat([v[..., None], masked.float()[..., None], a.sin() * keep, a.cos() * keep], -1)
        out = self.net(feats.flatten(1), None, y)  # (B, D * n_bins)
        return out.view(-1, self.dim, self.n_bins)


@register("masked_diffusion")
class MaskedDiffusion(TextMaskedDiffusion, TorchGenerativeModel):
    """Absorbing-state discrete diffusion over binned coordinates or characters (mask-and-predict).

    Fitted with labels, ``sample(n)`` draws the class from the training frequencies and
    ``score_samples(X)`` scores that marginal, ``log sum_k prior_k p(x | k)``; ``score_samples(X, y=k)``
    the class and ``null_label=True`` the null-label density.

    Parameters
    ----------
    n_bins : int, default=256
        Bins per coordinate (tokens), over the training range padded by 5%.
    hidden : int or None, default=None
        Width of the mask predictor MLP.
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int, default=3
        Depth of the mask predictor MLP.
    steps : int or None, default=None
        Unmasking steps of ``sample``; None = D, or for strings the longest training string (one
        token per step, an exact draw).
    label_dropout : float, default=0.1
        Share of training labels replaced by the null label, so one network also learns the
        unconditional model (guidance).
    guidance : float, default=1.0
        Classifier-free guidance of the log-probabilities, ``uncond + g (cond - uncond)``: 1 = plain
        conditional, 0 = unconditional.
    exact_max_dim : int, default=8
        Enumerate every masked subset for the ELBO up to this many dimensions.
    n_mc : int, default=64
        Monte-Carlo mask draws per row of the ELBO beyond ``exact_max_dim``; for strings, network
        passes per string (``ceil(n_mc / n)`` random orders of its n characters).
    text_width, text_layers, text_heads : int, default=128, 4, 4
        Strings only: channels, blocks and attention heads of the bidirectional transformer.
    text_dropout : float, default=0.0
        Strings only: dropout in the transformer while training.
    text_steps : int, default=4000
        Strings only: optimiser steps (a budget, scaled by presets like ``max_steps``).
    text_batch : int, default=2048
        Strings only: tokens per step, as rows of whole strings (no padding).
    text_lr : float, default=2e-3
        Strings only: AdamW peak learning rate (warm-up, then cosine decay).
    text_weight_decay : float, default=0.1
        Strings only: AdamW weight decay of the linear layers' matrices.
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("masked_diffusion", max_steps=200, verbose=0, random_state=0).fit(X)
    >>> m.sample(5, random_state=0).shape, m.likelihood_kind
    ((5, 2), 'bound')
    >>> words = gz.datasets.get("names").split("train")[:2000]
    >>> t = gz.make("masked_diffusion", text_steps=100, random_state=0).fit(words)
    >>> len(t.sample(3, steps=8, random_state=0)), t.score_samples(["emma"]).shape
    (3, (1,))
    """

    likelihood_kind: ClassVar[str] = "bound"
    _capabilities = frozenset({"sample", "log_prob", "impute", "conditional"})
    _has_null_label = True
    summary = "masked (absorbing-state) discrete diffusion over binned coordinates, ELBO density bound"
    _parameter_constraints = {
        **TRAINING, "n_bins": [Interval(int, 2, None)], "hidden": [*POSITIVE_INT, None], "layers": POSITIVE_INT,
        "steps": [*POSITIVE_INT, None], "label_dropout": UNIT_OPEN_RIGHT, "guidance": NON_NEGATIVE,
        "exact_max_dim": NON_NEGATIVE_INT, "n_mc": POSITIVE_INT,
        "text_width": POSITIVE_INT, "text_layers": POSITIVE_INT, "text_heads": POSITIVE_INT,
        "text_dropout": UNIT_OPEN_RIGHT, "text_steps": POSITIVE_INT, "text_batch": POSITIVE_INT, "text_lr": POSITIVE,
        "text_weight_decay": NON_NEGATIVE,
    }
    budget_params = {"max_steps": 50, "text_steps": 50}

    def __init__(self, *, n_bins: int = 256, hidden: int | None = None, layers: int = 3, steps: int | None = None,
                 label_dropout: float = 0.1, guidance: float = 1.0, exact_max_dim: int = 8,
                 n_mc: int = 64, text_width: int = 128, text_layers: int = 4, text_heads: int = 4,
                 text_dropout: float = 0.0, text_steps: int = 4000, text_batch: int = 2048, text_lr: float = 2e-3,
                 text_weight_decay: float = 0.1, max_steps: int = 4000, batch_size: int = 256, lr: float = 2e-3,
                 validation_fraction: float = 0.1, early_stopping: bool = True, patience: int = 6,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.n_bins = n_bins
        self.hidden = hidden
        self.layers = layers
        self.steps = steps
        self.label_dropout = label_dropout
        self.guidance = guidance
        self.exact_max_dim = exact_max_dim
        self.n_mc = n_mc
        self.text_width = text_width
        self.text_layers = text_layers
        self.text_heads = text_heads
        self.text_dropout = text_dropout
        self.text_steps = text_steps
        self.text_batch = text_batch
        self.text_lr = text_lr
        self.text_weight_decay = text_weight_decay
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ tokens
    def _build(self, dim: int, n_classes: int) -> nn.Module:
        return MaskPredictor(dim, int(self.n_bins), scaled_width(self.hidden, dim, 128), int(self.layers), n_classes)

    def _bin_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower end and width of the bins per coordinate, each (D,)."""
        span = np.maximum(self.z_hi_ - self.z_lo_, 1e-6)
        lo = self.z_lo_ - BIN_PAD * span
        return lo, (1 + 2 * BIN_PAD) * span / int(self.n_bins)

    def tokenize(self, Z: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised rows -> (tokens (B, D) long, inside (B,) bool: every coordinate in range)."""
        lo, w = self._bin_edges()
        z = self._tensor(Z) if not isinstance(Z, torch.Tensor) else Z.float()
        k = torch.floor((z - self._tensor(lo)) / self._tensor(w))  # (B, D)
        inside = ((k >= 0) & (k < int(self.n_bins))).all(1)
        return k.clamp(0, int(self.n_bins) - 1).long(), inside

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens -> standardised values, uniform within each bin (uses torch's RNG)."""
        lo, w = self._bin_edges()
        u = torch.rand(tokens.shape, device=tokens.device)
        return self._tensor(lo) + (tokens.float() + u) * self._tensor(w)

    # ------------------------------------------------------------------ objective
    def _logits(self, tokens: torch.Tensor, y: torch.Tensor | None, guidance: float = 1.0) -> torch.Tensor:
        """Log-probabilities (B, D, n_bins) given labels ``y`` (None: the null label), with guidance
        ``g`` mixing the log-probabilities as ``uncond + g (cond - uncond)`` and renormalising."""
        null = getattr(self, "n_classes_", 0) or None
        fn, _ = guided(lambda t, yy: F.log_softmax(self.module_(t, yy), -1), y, guidance, null)
        lp = fn(tokens)
        return lp if (y is None or guidance in (0, 1)) else F.log_softmax(lp, -1)

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        x, _ = self.tokenize(z)  # (B, D)
        b, d = x.shape
        m = torch.randint(1, d + 1, (b, 1), device=x.device)  # number of masked tokens, uniform 1..D
        rank = torch.rand(b, d, device=x.device).argsort(1).argsort(1)  # a random permutation per row
        mask = rank < m  # (B, D): a uniformly random m-subset
        y = drop_labels(y, float(self.label_dropout), self.n_classes_)
        lp = F.log_softmax(self.module_(torch.where(mask, -1, x), y), -1)  # (B, D, K)
        ce = -lp.gather(2, x[..., None])[..., 0] * mask  # (B, D)
        return (d / m[:, 0] * ce.sum(1)).mean()

    # ------------------------------------------------------------------ likelihood bound
    def token_elbo(self, tokens: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """ELBO on log P(tokens) per row (B,): sum over m of (1/m) E_{|M|=m}[sum_{i in M} log p(x_i | x_-M)].

        Exact (every subset) for D <= ``exact_max_dim``, else ``n_mc`` random (m, M) draws.
        """
        b, d = tokens.shape
        out = torch.zeros(b, dtype=torch.float64, device=tokens.device)
        if d <= int(self.exact_max_dim):
            for m in range(1, d + 1):
                subsets = list(itertools.combinations(range(d), m))
                for sub in subsets:
                    mask = torch.zeros(d, dtype=torch.bool, device=tokens.device)
                    mask[list(sub)] = True
                    lp = self._logits(torch.where(mask, -1, tokens), y)
                    ll = (lp.gather(2, tokens[..., None])[..., 0] * mask).sum(1)
                    out += ll.double() / (m * len(subsets))
            return out
        with torch_seed(seed, tokens.device):
            for _ in range(int(self.n_mc)):
                m = torch.randint(1, d + 1, (b, 1), device=tokens.device)
                mask = torch.rand(b, d, device=tokens.device).argsort(1).argsort(1) < m
                lp = self._logits(torch.where(mask, -1, tokens), y)
                ll = (lp.gather(2, tokens[..., None])[..., 0] * mask).sum(1)
                out += (d / m[:, 0] * ll).double() / int(self.n_mc)
        return out

    def _bound(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        tokens, inside = self.tokenize(z)
        _, w = self._bin_edges()
        lp = self.token_elbo(tokens, y) - float(np.log(w).sum())
        return torch.where(inside, lp, torch.full_like(lp, OUTSIDE_LOG_DENSITY))

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        return float(-self._bound(z, y).mean())

    def _log_prob_std(self, Z, y: np.ndarray | None = None):
        """The ELBO on log p(z | y) (``y``: class indices, None for the null label)."""
        yt = self._labels(y)
        out = []
        with torch.no_grad():
            for a in range(0, len(Z), 8192):
                out.append(self._bound(self._tensor(Z[a:a + 8192]), None if yt is None else yt[a:a + 8192]))
        return torch.cat(out)

    # ------------------------------------------------------------------ sampling
    def _unmask(self, tokens: torch.Tensor, y: torch.Tensor | None, steps: int | None,
                guidance: float) -> torch.Tensor:
        """Reveal the masked entries (-1) of ``tokens`` over ``steps`` steps; sets ``last_nfe_``."""
        b, d = tokens.shape
        masked = tokens < 0
        n_mask = masked.sum(1)  # (B,)
        big = int(n_mask.max()) if b else 0
        steps = big if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps}")
        # reveal order: masked positions in a random order (ranks 0..n_mask-1), observed ones last
        key = torch.where(masked, torch.rand(b, d, device=tokens.device), torch.full((b, d), 2.0, device=tokens.device))
        rank = key.argsort(1).argsort(1)  # (B, D)
        nfe = 0
        revealed_before = torch.zeros(b, dtype=torch.long, device=tokens.device)
        for k in range(1, steps + 1):
            revealed = torch.round(n_mask.double() * k / steps).long()  # (B,) linear schedule
            new = (rank >= revealed_before[:, None]) & (rank < revealed[:, None]) & masked
            revealed_before = revealed
            if not new.any():
                continue
            lp = self._logits(tokens, y, guidance)  # (B, D, K)
            draw = torch.distributions.Categorical(logits=lp).sample()  # (B, D)
            tokens = torch.where(new, draw, tokens)
            nfe += 1 + (1 if (y is not None and guidance not in (0, 1)) else 0)
        self.last_nfe_ = nfe
        return tokens

    def _sample_std(self, n, y, seed, steps: int | None = None, guidance: float | None = None):
        dev = torch.device(self.device_)
        steps = self.steps if steps is None else steps
        guidance = float(self.guidance if guidance is None else guidance)
        with torch_seed(seed, dev):
            tokens = torch.full((n, int(self.n_features_in_)), -1, dtype=torch.long, device=dev)
            tokens = self._unmask(tokens, self._labels(y), steps, guidance)
            return self.detokenize(tokens)

    def _impute_std(self, Z, miss, seed, steps: int | None = None):
        """Observed coordinates become unmasked tokens; only the missing ones are unmasked by the model."""
        dev = torch.device(self.device_)
        with torch.no_grad(), torch_seed(seed, dev):
            z = self._tensor(np.where(miss, 0.0, Z))
            tokens, _ = self.tokenize(z)
            m = torch.as_tensor(miss, device=dev)
            tokens = self._unmask(torch.where(m, -1, tokens), None, steps, 1.0)
            out = torch.where(m, self.detokenize(tokens), z)
        return out
