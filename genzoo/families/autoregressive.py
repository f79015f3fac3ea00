"""Autoregressive density: p(x) = prod_i p(x_i | x_<i), each conditional a 1-D mixture.

The chain rule makes any joint density a product of 1-D conditionals; modelling each as a
normalised 1-D density gives an exact, normalised log-likelihood and exact ancestral
sampling (one network pass per coordinate). The conditionals' parameters come from one
masked network (MADE, Germain et al. 2015), so all D of them are computed in one pass
during training and scoring. Each conditional is a mixture density (Bishop 1994) of K
components:

* ``'smoothed_uniform'`` (default): a uniform on [mu - w/2, mu + w/2] convolved with a
  logistic of scale s, density (sigmoid((x-a)/s) - sigmoid((x-b)/s)) / (b - a). With
  w -> 0 it is a logistic; with s -> 0 a box. One family of components thus fits the
  sharp Gaussian modes of ``gaussians8`` and the hard-edged squares of ``checkerboard``.
  A draw is mu + w (U - 1/2) + s Logistic, exactly.
* ``'box_gaussian'``: the same box convolved with a Gaussian of scale s instead, density
  (Phi((x-a)/s) - Phi((x-b)/s)) / (b - a): the same box and sharp-mode shapes with Gaussian
  tails, so a conditional far from its data (a slice through a thin arm's tip) keeps less
  stray mass than the logistic's exponential tails give it. A draw is mu + w (U - 1/2) + s N.
  An option, not the default: it helps some data sets' tail slices and hurts others'.
* ``'logistic'``: a mixture of logistics (as in PixelCNN++, Salimans et al. 2017).
* ``'gaussian'``: a mixture of Gaussians (the classical mixture density network).

Every component has its scale bounded below by ``min_scale`` (in standardised units), so
the density is finite everywhere; tails are logistic or Gaussian, so it is positive
everywhere too.

Discrete columns (integer or categorical, at most ``MAX_EXACT_LEVELS`` = 256 values: counts,
categories, the 17 grey levels of an 8x8 digit) get a probability over their values instead,
no dequantisation: a mixture of logistics discretised to the values for an integer column, a
softmax for a categorical one. ``score_samples`` is then the exact ``log P(X = x)``
(``likelihood_kind='exact'``, probabilities over all values summing to one) and draws are valid
values. Wider integer ranges keep the dequantised mixture (then the score is a bound). On
one-channel images the masked network is a PixelCNN (``genzoo.nn.pixelcnn``), same order, and by
default two of them form a uniform mixture (``members``): a mixture of chain-rule models is one too.

With labels, a label embedding is a context that feeds every conditional (it enters the
masked network unmasked). ``score_samples(X)`` then returns the *marginal*
log p(x) = logsumexp_k [log p(x | k) + log prior_k] with the class frequencies of the
training labels as prior (``class_prior_``); ``score_samples(X, y=labels)`` returns
log p(x | y). ``sample(n)`` without ``y`` draws the class from the prior first.

Imputation is exact where the model factorises that way: when every missing coordinate
comes after every observed one (a missing suffix in the order 0..D-1), the missing ones
are drawn one after another from the model's own conditionals (for a labelled model the
class is first drawn from its posterior given the observed prefix). Any other pattern
falls back, in <= 2-D, to the base class's grid-Gibbs sampler on the exact density (exact up
to a 1024-cell grid with one missing coordinate, a Gibbs chain with more) and beyond 2-D to
preconditioned MALA on it (``genzoo.samplers.mcmc``: 400 density-and-gradient evaluations per
row, exact in the limit of many steps, with a cost guard): documented approximations. The
natural order 0..D-1 is kept at every width, so that a missing suffix stays exact. With
categorical coordinates the other patterns are Gibbs-sampled on the exact joint instead
(``_gibbs_impute``: enumeration over a coordinate's values, 20 sweeps; exact in the limit).

Strings: fitted on a list of strings, the family is a character-level model -- a causal
transformer with exact P(string), or the bigram baseline (``text_model='bigram'``); see
``genzoo.families.text_autoregressive``. The ``text_*`` hyperparameters configure it.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.base import TorchGenerativeModel, _to_numpy, torch_seed
from genzoo.families._blocks import IndependentBlocks
from genzoo.families._prior import MixturePrior
from genzoo.families._wide import scaled_width
from genzoo.families.text_autoregressive import TEXT_MODELS, TextAutoregressive
from genzoo.nn.gaussian_mixture import GaussianMixtureChain
from genzoo.nn.made import MADE
from genzoo.nn.mlp import LabelEmbedding, in_chunks
from genzoo.nn.pixelcnn import PixelCNN
from genzoo.params import NON_NEGATIVE, POSITIVE, POSITIVE_INT, TRAINING, UNIT_OPEN_RIGHT, Options
from genzoo.registry import register

COMPONENTS = ("smoothed_uniform", "box_gaussian", "logistic", "gaussian")
#: components with a box width parameter
_BOXES = ("smoothed_uniform", "box_gaussian")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
#: rows per network pass when scoring (the per-coordinate mixtures make a pass light per row)
AR_CHUNK_ROWS = 65536


# ----------------------------------------------------------------------------- 1-D mixtures
def _log_normal_box(z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """log of (Phi(z + r/2) - Phi(z - r/2)) / r: the density at ``z`` of a uniform of width ``r`` centred
    at 0 plus an independent N(0, 1) (the component in units of its scale).

    Computed in the lower tail (reflected when the box's centre is past 0) as
    log Phi(p) + log(1 - Phi(q) / Phi(p)), exact in float32 far into both tails; for a box narrower
    than 1e-2 the midpoint rule log phi(z) (relative error r^2 / 24) replaces the difference.
    """
    u, v = z + 0.5 * r, z - 0.5 * r
    flip = z > 0
    p, q = torch.where(flip, -v, u), torch.where(flip, -u, v)  # p > q, Phi(p) - Phi(q) = the box's mass
    lp, lq = torch.special.log_ndtr(p), torch.special.log_ndtr(q)
    d = (lq - lp).clamp(max=-1e-12)  # < 0
    log1m = torch.where(d > -0.6931, torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))
    wide = lp + log1m - torch.log(r)
    narrow = -0.5 * z ** 2 - _LOG_SQRT_2PI
    return torch.where(r < 1e-2, narrow, wide)


class MixtureHead:
    """Turns raw network outputs (..., P) into a K-component 1-D mixture: log-density and draws.

    ``P = 4K`` for the boxes (logit, location, log-scale, log-width) and ``3K``
    otherwise. Locations are offset by a fixed spread over [-2, 2] so that components start
    apart (a zero-initialised network would otherwise give K identical components that
    receive identical gradients forever).
    """

    def __init__(self, n_components: int, component: str, min_scale: float):
        self.K, self.kind, self.min_scale = int(n_components), component, float(min_scale)
        self.n_params = (4 if component in _BOXES else 3) * self.K

    def split(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(..., P) -> log-weights, locations, scales, widths; each (..., K)."""
        K = self.K
        logits, mu, s_raw = raw[..., :K], raw[..., K:2 * K], raw[..., 2 * K:3 * K]
        logw = torch.log_softmax(logits, -1)
        spread = torch.linspace(-2.0, 2.0, K, device=raw.device, dtype=raw.dtype) if K > 1 else 0.0
        mu = mu + spread
        # scale >= min_scale, smooth; about 0.2 for a zero raw output
        scale = self.min_scale + F.softplus(s_raw - 1.5)
        if self.kind in _BOXES:
            # box width, (..., K); at least 1e-4 * scale so that log(width / scale) stays finite
            width = torch.maximum(torch.exp((raw[..., 3 * K:] - 1.5).clamp(max=3.0)), 1e-4 * scale)
        else:
            width = torch.zeros_like(scale)
        return logw, mu, scale, width

    def log_prob(self, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (...) under the mixture with parameters ``raw`` (..., P)."""
        logw, mu, s, w = self.split(raw)
        t = x.unsqueeze(-1) - mu  # (..., K)
        if self.kind == "gaussian":
            lc = -0.5 * (t / s) ** 2 - torch.log(s) - _LOG_SQRT_2PI
        elif self.kind == "logistic":
            u = t / s
            lc = -F.softplus(u) - F.softplus(-u) - torch.log(s)
        elif self.kind == "box_gaussian":
            r = w / s
            lc = _log_normal_box(t / s, r) - torch.log(s)
        else:
            # sigmoid(u) - sigmoid(v) = sigmoid(u) sigmoid(-v) (1 - e^-(u-v)), u - v = w / s = r
            r = w / s  # >= 1e-4 by construction
            u, v = (t + 0.5 * w) / s, (t - 0.5 * w) / s
            lc = (F.logsigmoid(u) + F.logsigmoid(-v) + torch.log(-torch.expm1(-r))
                  - torch.log(r) - torch.log(s))
        return torch.logsumexp(logw + lc, -1)

    def sample(self, raw: torch.Tensor) -> torch.Tensor:
        """One draw per row from the mixture with parameters ``raw`` (B, P) -> (B,)."""
        logw, mu, s, w = self.split(raw)
        k = torch.multinomial(logw.exp(), 1)  # (B, 1)
        mu, s, w = mu.gather(-1, k)[:, 0], s.gather(-1, k)[:, 0], w.gather(-1, k)[:, 0]
        if self.kind in ("gaussian", "box_gaussian"):
            x = mu + s * torch.randn_like(mu)
        else:
            u = torch.rand_like(mu).clamp(1e-6, 1 - 1e-6)
            x = mu + s * (torch.log(u) - torch.log1p(-u))  # logistic
        if self.kind in _BOXES:
            x = x + w * (torch.rand_like(mu) - 0.5)  # + uniform on the box
        return x


class _ARNet(nn.Module):
    """MADE (rows) or PixelCNN (one-channel images) producing every coordinate's conditional
    parameters in one pass, optionally label-conditioned. (The attribute keeps the name ``made``
    for either, so checkpoints keep their keys.) With ``members`` > 1, that many independently
    initialised networks (each with its own label embedding) in ``members``: the outputs gain a
    leading member axis, (M, B, D, P)."""

    def __init__(self, dim: int, n_params: int, hidden: int, layers: int, n_classes: int, label_dim: int,
                 dropout: float = 0.0, image: tuple[int, int] | None = None, members: int = 1,
                 prior_components: int = 0):
        super().__init__()
        # a Gaussian-mixture chain beside the network, mixed per coordinate by a gate the network outputs
        # (its last parameter per coordinate; see Autoregressive._member_log_probs)
        self.prior = GaussianMixtureChain(dim, prior_components) if prior_components else None
        if members > 1:
            self.members = nn.ModuleList(_ARNet(dim, n_params, hidden, layers, n_classes, label_dim, dropout, image)
                                         for _ in range(members))
            return
        self.members = None
        self.label = LabelEmbedding(n_classes, label_dim) if n_classes else None
        ctx = label_dim if n_classes else 0
        if image is not None:  # one-channel images: causal convolutions (genzoo.nn.pixelcnn)
            self.made = PixelCNN(image, n_params, channels=hidden, blocks=layers, context_dim=ctx, dropout=dropout)
        else:
            self.made = MADE(dim, n_params, hidden, layers, context_dim=ctx, dropout=dropout)

    @property
    def nets(self) -> list[nn.Module]:
        """The masked networks (one per member)."""
        return [m.made for m in self.members] if self.members is not None else [self.made]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.members is not None:
            return torch.stack([m(z, y) for m in self.members])  # (M, B, D, P)
        ctx = self.label(y, z.shape[0]) if self.label is not None else None
        return self.made(z, ctx)  # (B, D, P)


def mixture_conditionals(lp: torch.Tensor) -> torch.Tensor:
    """Per-coordinate log-probabilities of a uniform mixture of M autoregressive models, (M, B, D) -> (B, D).

    A mixture of chain-rule models is one itself: p(x_i | x_<i) = sum_m w_m(x_<i) p_m(x_i | x_<i),
    with each member weighted by its posterior given the prefix, w_m proportional to p_m(x_<i). The
    conditionals sum, telescoping, to log mean_m p_m(x), and every use of per-coordinate conditionals
    (prefix likelihoods for imputation, Gibbs sweeps) stays exact.
    """
    prefix = torch.cumsum(lp, -1) - lp  # log p_m(x_<i), (M, B, D)
    return torch.logsumexp(prefix + lp, 0) - torch.logsumexp(prefix, 0)


#: the prior gate's starting logit: sigmoid(3) = 0.95 of each conditional's mass on the mixture
PRIOR_GATE_START = 3.0

#: members of the default mixture on images (``members=None``)
IMAGE_MEMBERS = 2

#: discrete columns with at most this many values get exact conditionals
MAX_EXACT_LEVELS = 256
#: logistics in a discretised conditional (at most; ``n_components`` if smaller): a distribution over
#: a few hundred ordered values needs few (PixelCNN++ uses 5-10 for 256 levels)
ORDINAL_COMPONENTS = 4


class _Discrete:
    """Exact conditionals for the discrete coordinates of a row (integer / categorical columns of at
    most ``MAX_EXACT_LEVELS`` values), no dequantisation.

    An integer column is ordinal: its conditional is a mixture of ``K`` logistics discretised to
    the column's values (PixelCNN++, Salimans et al. 2017): ``P(k) = sum_m w_m [F_m(k + 1/2) -
    F_m(k - 1/2)]``, the end values taking the tails -- neighbouring values share mass, which is
    what lets 17 grey levels generalise from a thousand images. A categorical column is nominal:
    a softmax over its levels. ``coords``: the discrete coordinates of the family's standardised
    row; ``low``, ``n``: each one's smallest code and number of codes; ``loc``, ``scale``: its
    standardisation (code = low + index, z = (code - loc) / scale); ``ordinal``: integer or not.
    """

    BIG = 1e6  # stands in for +-inf at the end values' outer edges (finite: no NaN gradients)

    def __init__(self, coords, low, n, loc, scale, ordinal, head: MixtureHead, device):
        f = lambda a, dt=torch.float64: torch.as_tensor(np.asarray(a), dtype=dt, device=device)  # noqa: E731
        self.coords = f(coords, torch.long)
        self.low, self.n, self.loc, self.scale = f(low), f(n, torch.long), f(loc), f(scale)
        self.ordinal = f(ordinal, torch.bool)
        self.head = MixtureHead(min(head.K, ORDINAL_COMPONENTS), "logistic", head.min_scale)
        self.L = int(max(n)) if len(n) else 0
        levels = torch.arange(self.L, device=device)
        valid = levels[None, :] < self.n[:, None]  # (Dc, L)
        self.mask = torch.where(valid, 0.0, -torch.inf).float()
        # each value's cell in standardised units, (Dc, L): [k - 1/2, k + 1/2], the ends open
        code = levels[None, :].double() + self.low[:, None]
        lower = (code - 0.5 - self.loc[:, None]) / self.scale[:, None]
        upper = (code + 0.5 - self.loc[:, None]) / self.scale[:, None]
        lower[:, 0] = -self.BIG
        upper = torch.where(levels[None, :] == self.n[:, None] - 1, self.BIG, upper)
        self.lower = torch.where(valid, lower, self.BIG).float()
        self.upper = torch.where(valid, upper, 2 * self.BIG).float()

    @property
    def n_params(self) -> int:
        return max(self.L, self.head.n_params)

    def index(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised values (B, Dc) -> level indices (B, Dc) in 0 .. n - 1."""
        code = torch.round(z.double() * self.scale + self.loc) - self.low
        return torch.minimum(code.clamp_min(0), (self.n - 1).double()).long()

    def value(self, k: int, idx: torch.Tensor, dtype) -> torch.Tensor:
        """Level indices of the k-th discrete coordinate -> its standardised values."""
        return ((idx.double() + self.low[k] - self.loc[k]) / self.scale[k]).to(dtype)

    def level_log_probs(self, raw: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Raw outputs (B, Dc, P) -> log P of every level (B, Dc, L), -inf past a column's levels;
        with ``k``: raw (B, P) of the k-th discrete coordinate alone -> (B, L)."""
        if k is not None:
            return self._level_log_probs(raw[:, None], slice(k, k + 1))[:, 0]
        return self._level_log_probs(raw, slice(None))

    def _level_log_probs(self, raw: torch.Tensor, sel: slice) -> torch.Tensor:
        mask, ordinal = self.mask[sel], self.ordinal[sel]
        if bool(ordinal.all()):  # every cell of every value, the mixture broadcast over the values
            return self._cell_log_prob(raw[:, :, None, :], self.lower[sel], self.upper[sel]) + mask
        nominal = torch.log_softmax(raw[..., :self.L] + mask, -1)
        if not bool(ordinal.any()):
            return nominal
        cells = self._cell_log_prob(raw[:, :, None, :], self.lower[sel], self.upper[sel]) + mask
        return torch.where(ordinal[None, :, None], cells, nominal)

    def log_prob(self, raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log P of the observed values: raw (B, Dc, P), standardised values z (B, Dc) -> (B, Dc).
        Only the observed cell is evaluated (a 17-level image costs one cell, not 17), and each
        kind only where it is present (images: no softmax)."""
        idx = self.index(z)[..., None]
        ordinal = None
        if bool(self.ordinal.any()):
            B = raw.shape[0]
            lower = self.lower.expand(B, -1, -1).gather(-1, idx)[..., 0]
            upper = self.upper.expand(B, -1, -1).gather(-1, idx)[..., 0]
            ordinal = self._cell_log_prob(raw, lower, upper)
            if bool(self.ordinal.all()):
                return ordinal
        nominal = torch.log_softmax(raw[..., :self.L] + self.mask, -1).gather(-1, idx)[..., 0]
        return nominal if ordinal is None else torch.where(self.ordinal[None, :], ordinal, nominal)

    def _cell_log_prob(self, raw: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        """log sum_m w_m [F_m(upper) - F_m(lower)] for the logistic mixture in ``raw`` (..., P); the
        edges broadcast against ``raw``'s leading dimensions."""
        logw, mu, s, _ = self.head.split(raw[..., :self.head.n_params])  # (..., K) each
        u, v = (upper[..., None] - mu) / s, (lower[..., None] - mu) / s
        # log(sigmoid(u) - sigmoid(v)) = log sigmoid(u) + log sigmoid(-v) + log(1 - e^-(u - v)), u > v
        cell = F.logsigmoid(u) + F.logsigmoid(-v) + torch.log(-torch.expm1(-(u - v).clamp_min(1e-12)))
        return torch.logsumexp(logw + cell, -1)


# ----------------------------------------------------------------------------- the family
@register("autoregressive")
class Autoregressive(IndependentBlocks, MixturePrior, TextAutoregressive, TorchGenerativeModel):
    """MADE + per-coordinate mixture densities (arrays), a causal transformer (strings): exact likelihood.

    Parameters
    ----------
    n_components : int, default=16
        Mixture components K per 1-D conditional.
    component : str, default='smoothed_uniform'
        Component kind: 'smoothed_uniform' (box convolved with a logistic), 'box_gaussian' (box
        convolved with a Gaussian: lighter tails; on the slices of issue 14 better on pinwheel, worse
        on moons and gaussians8, benchmarks/RESULTS.md), 'logistic' or 'gaussian'.
    min_scale : float, default=1e-3
        Lower bound on every component's scale, in standardised units.
    hidden : int or None, default=None
        Width of the masked network (MADE).
        None = 128 up to 32 columns, then 4 D rounded up to a multiple of 32
        (``genzoo.families._wide.scaled_width``).
    layers : int or None, default=None
        Depth of the masked network: None = 3 for MADE, 6 residual blocks for the PixelCNN (on
        digits 3 / 6 / 10 blocks gave 83.7 / 82.4 / 83.4 test nats per image at 1,000 steps, before
        the positional bias: depth reaches the whole past, more overfits).
    label_dim : int, default=16
        Size of the label embedding (used only when fitted with ``y``).
    dropout : float or None, default=None
        Dropout on the network's hidden units while training (for small data sets).
        None = 0 for MADE, 0.4 for the PixelCNN (images: a thousand digits overfit without it; one
        6-block PixelCNN on digits, test nats per image at dropout 0.3 / 0.4 / 0.5: 80.4 / 80.0 / 80.2).
    network : str, default='auto'
        'made' (a masked fully connected network), 'pixelcnn' (causal convolutions,
        ``genzoo.nn.pixelcnn``; one-channel images only; ``hidden`` = its channels, default 32,
        ``layers`` = its residual blocks) or 'auto' (PixelCNN on one-channel images, MADE otherwise).
    batch_size : int or None, default=None
        Rows per optimiser step (shared out among a mixture's ``members``). None = 512, or 128 per
        member with the PixelCNN (a conv step costs more per row; early stopping counts passes
        over the data, not steps).
    image_steps : int, default=1000
        With the PixelCNN (one-channel images) this budget replaces ``max_steps``: on a thousand
        digits the test likelihood is best when the cosine schedule ends early (6 blocks: 1,000 steps
        82.4 nats per image, 2,000 steps without the validation split 82.9; 3 blocks: 1,000 / 2,000
        steps 83.7 / 83.4, 6,000 steps with early stopping 84.7; with the positional bias and
        dropout 0.4, 1,000 / 1,500 steps 80.0 / 80.2).
    members : int or None, default=None
        A uniform mixture of this many independently initialised networks, each trained on its own
        likelihood (an ensemble), scored as the mixture: log mean_m p_m(x), still exact. It is
        itself a chain-rule model whose conditionals weight each member by its posterior given the
        prefix (``mixture_conditionals``), so sampling, a missing suffix's imputation and the class
        posterior stay exact. Costs ``members`` times the fit and sampling.
        None = 2 for the PixelCNN (digits, seeds 0 / 1: one model 80.0 / 79.9 test nats per
        image, two 79.6 / 79.3; each member trains on its own share of the batch), 1 for MADE.
    prior : {'none', 'mixture'} or None, default=None
        'mixture': each conditional is ``g p_mix(x_i | x_<i) + (1 - g) p_net(x_i | x_<i)``, ``p_mix`` the
        exact conditional of a full-covariance Gaussian mixture fitted to the rows
        (``genzoo.nn.gaussian_mixture.GaussianMixtureChain``) and the gate ``g`` one more output of the
        network (starting at 0.95): still a normalised chain-rule model, exact likelihood, sampling and
        suffix imputation. Continuous rows and one network only. 'none': the network alone. None: 'none'
        in 2-D, on images, with discrete columns or members; otherwise both are fitted and the better
        held-out likelihood is kept (``prior_``; ``genzoo.families._prior``).
    prior_components : int or None, default=None
        Gaussians of the prior; None = the BIC choice among 1, 2, 4, 8, 16 on the training rows.
    factorise : bool or None, default=None
        Beyond 2-D, on continuous columns without labels: look for blocks of columns independent of each
        other and fit one model per block (``genzoo.families._blocks``). None: keep the product only when
        its held-out likelihood beats the joint fit's; True: keep it whenever blocks are found; False:
        the joint model only. Fitted: ``blocks_``, ``block_models_``, ``factorise_losses_``.
    validation_fraction : float or None, default=None
        Share of the training rows held out to keep the best checkpoint and to stop early.
        None = 0.1, but 0 for the PixelCNN, whose fixed ``image_steps`` budget on a cosine
        schedule needs no stopping point (digits: the held-out tenth is worth more as training
        data, 80.8 -> 80.4 test nats per image).
    text_model : str, default='transformer'
        Strings only: 'transformer' (causal, character level) or 'bigram' (counts, the baseline).
    text_width, text_layers, text_heads : int, default=128, 4, 4
        Strings only: channels, blocks and attention heads of the transformer.
    text_dropout : float, default=0.1
        Strings only: dropout in the transformer while training.
    text_steps : int, default=4000
        Strings only: optimiser steps (a budget, scaled by presets like ``max_steps``).
    text_batch : int, default=2048
        Strings only: tokens per step, as rows of whole strings (no padding).
    text_lr : float, default=2e-3
        Strings only: AdamW peak learning rate (warm-up, then cosine decay).
    text_weight_decay : float, default=0.1
        Strings only: AdamW weight decay of the linear layers' matrices.
    text_alpha : float, default=1.0
        Strings only: add-alpha smoothing of the bigram counts.
    label_dropout : float, default=0.1
        Strings only: share of training labels replaced by the null label (for guidance).
    guidance : float, default=1.0
        Strings only: classifier-free guidance ``uncond + g (cond - uncond)`` of the next-token
        log-probabilities when sampling with labels (1 = plain conditional).
    {shared_parameters}

    Examples
    --------
    >>> import genzoo as gz
    >>> X = gz.datasets.get("ring").sample(2000, random_state=0)
    >>> m = gz.make("autoregressive", max_steps=300, verbose=0, random_state=0).fit(X)
    >>> m.sample(5, random_state=1).shape
    (5, 2)
    >>> words = gz.datasets.get("names").split("train")[:2000]
    >>> t = gz.make("autoregressive", text_steps=100, random_state=0).fit(words)
    >>> len(t.sample(3, random_state=0)), t.score_samples(["emma"]).shape
    (3, (1,))
    """

    likelihood_kind: ClassVar[str] = "exact"
    _capabilities: ClassVar[frozenset[str]] = frozenset({"sample", "log_prob", "impute", "conditional"})
    summary: ClassVar[str] = "chain rule p(x_i | x_<i), MADE + mixture per coordinate (exact likelihood)"
    _parameter_constraints: ClassVar[dict] = {
        **TRAINING, "n_components": POSITIVE_INT, "component": [Options(COMPONENTS)], "min_scale": POSITIVE,
        "hidden": [*POSITIVE_INT, None], "layers": [*POSITIVE_INT, None], "label_dim": POSITIVE_INT,
        "dropout": [*UNIT_OPEN_RIGHT, None], "network": [Options(("auto", "made", "pixelcnn"))],
        "batch_size": [*POSITIVE_INT, None], "image_steps": POSITIVE_INT, "members": [*POSITIVE_INT, None],
        "validation_fraction": [*TRAINING["validation_fraction"], None],
        "prior": [Options(("none", "mixture")), None], "prior_components": [*POSITIVE_INT, None],
        "factorise": ["boolean", None],
        "text_model": [Options(TEXT_MODELS)], "text_width": POSITIVE_INT, "text_layers": POSITIVE_INT,
        "text_heads": POSITIVE_INT, "text_dropout": UNIT_OPEN_RIGHT, "text_steps": POSITIVE_INT,
        "text_batch": POSITIVE_INT, "text_lr": POSITIVE, "text_weight_decay": NON_NEGATIVE, "text_alpha": POSITIVE,
        "label_dropout": UNIT_OPEN_RIGHT, "guidance": NON_NEGATIVE,
    }
    budget_params: ClassVar[dict[str, int]] = {"max_steps": 50, "image_steps": 50, "text_steps": 50}

    def __init__(self, *, n_components: int = 16, component: str = "smoothed_uniform",
                 min_scale: float = 1e-3, hidden: int | None = None, layers: int | None = None, label_dim: int = 16,
                 dropout: float | None = None, network: str = "auto",
                 text_model: str = "transformer", text_width: int = 128, text_layers: int = 4, text_heads: int = 4,
                 text_dropout: float = 0.1, text_steps: int = 4000, text_batch: int = 2048, text_lr: float = 2e-3,
                 text_weight_decay: float = 0.1, text_alpha: float = 1.0, label_dropout: float = 0.1,
                 guidance: float = 1.0, max_steps: int = 6000, batch_size: int | None = None,
                 image_steps: int = 1000, members: int | None = None, prior: str | None = None,
                 prior_components: int | None = None, factorise: bool | None = None, lr: float = 2e-3,
                 validation_fraction: float | None = None, early_stopping: bool = True, patience: int = 8,
                 random_state=None, device: str = "auto", verbose: int = 0):
        self.n_components = n_components
        self.component = component
        self.min_scale = min_scale
        self.hidden = hidden
        self.layers = layers
        self.label_dim = label_dim
        self.dropout = dropout
        self.network = network
        self.text_model = text_model
        self.text_width = text_width
        self.text_layers = text_layers
        self.text_heads = text_heads
        self.text_dropout = text_dropout
        self.text_steps = text_steps
        self.text_batch = text_batch
        self.text_lr = text_lr
        self.text_weight_decay = text_weight_decay
        self.text_alpha = text_alpha
        self.label_dropout = label_dropout
        self.guidance = guidance
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.image_steps = image_steps
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.members = members
        self.prior = prior
        self.prior_components = prior_components
        self.factorise = factorise
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ network and objective
    @property
    def _head(self) -> MixtureHead:
        return MixtureHead(self.n_components, self.component, self.min_scale)

    def _exact_discrete(self, spec) -> np.ndarray:
        """Integer / categorical columns of at most ``MAX_EXACT_LEVELS`` values get an exact categorical
        conditional (so the likelihood of such data is exact, not a dequantisation bound)."""
        return np.array([j for j in spec.discrete if spec.columns[j].n_codes <= MAX_EXACT_LEVELS], dtype=np.int64)

    @property
    def _cat(self) -> _Discrete | None:
        """The categorical coordinates of the modelled row (None when every coordinate is continuous)."""
        spec = getattr(self, "spec_", None)
        exact = self._exact_discrete(spec) if spec is not None else np.zeros(0, np.int64)
        if not len(exact):
            return None
        key = (id(spec), str(self.device_))
        if getattr(self, "_cat_cache", (None,))[0] != key:
            cols = [spec.columns[j] for j in exact]
            low = [c.low if c.kind == "integer" else 0 for c in cols]
            cat = _Discrete(np.searchsorted(spec.modelled, exact), low, [c.n_codes for c in cols],
                            self.loc_[exact], self.scale_[exact], [c.kind == "integer" for c in cols], self._head,
                            torch.device(self.device_))
            self._cat_cache = (key, cat)
        return self._cat_cache[1]

    @property
    def _pixel_grid(self) -> tuple[int, int] | None:
        """(H, W) when the network is a PixelCNN (one-channel images, ``network`` 'auto' or 'pixelcnn')."""
        shape = getattr(self, "image_shape_", None)
        one_channel = shape is not None and (len(shape) == 2 or shape[0] == 1)
        if self.network == "made" or not one_channel or int(self.dim_) != int(np.prod(shape)):
            if self.network == "pixelcnn":
                raise ValueError("network='pixelcnn' needs one-channel images (n, H, W) or (n, 1, H, W)")
            return None
        return int(shape[-2]), int(shape[-1])

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        cat = self._cat
        n_params = max(self._head.n_params, cat.n_params if cat is not None else 0)
        grid = self._pixel_grid
        if grid is not None:
            drop = 0.4 if self.dropout is None else float(self.dropout)
            return _ARNet(dim, n_params, int(self.hidden or 32), int(self.layers or 6), n_classes, int(self.label_dim),
                          drop, image=grid, members=int(self.members or IMAGE_MEMBERS))
        k = int(getattr(self, "prior_components_", 0))
        return _ARNet(dim, n_params + (1 if k else 0), scaled_width(self.hidden, dim, 128), int(self.layers or 3),
                      n_classes, int(self.label_dim), float(self.dropout or 0.0), members=int(self.members or 1),
                      prior_components=k)

    def _mixture_field(self):
        return self.module_.prior

    def _prior_candidates(self, dim: int) -> tuple[str, ...]:
        """As ``MixturePrior``'s, and only for a single network on continuous rows: the gate mixes two
        densities per coordinate, which discrete conditionals and member mixtures do not take."""
        if self._cat is not None or self._pixel_grid is not None or int(self.members or 1) > 1:
            if self.prior == "mixture":
                raise ValueError("prior='mixture' needs continuous columns, no image and members=1")
            return ("none",)
        return super()._prior_candidates(dim)

    def _prepare(self, Z_train: np.ndarray) -> None:
        """Start every nominal (categorical) conditional at the training frequencies of its levels
        (the output bias of a MADE; a context-free first coordinate would otherwise crawl there)."""
        super()._prepare(Z_train)
        if self.module_.prior is not None:  # the gate starts at sigmoid(3) = 0.95 on the mixture
            with torch.no_grad():
                made = self.module_.made
                made.out.bias.view(made.dim, made.out_per_dim)[:, self._head.n_params] = PRIOR_GATE_START
        cat, nets = self._cat, [n for n in self.module_.nets if isinstance(n, MADE)]
        if cat is None or not nets:
            return
        idx = cat.index(torch.as_tensor(Z_train[:, cat.coords.cpu().numpy()], device=cat.low.device))
        with torch.no_grad():
            for made in nets:
                bias = made.out.bias.view(made.dim, made.out_per_dim)
                for k, i in enumerate(cat.coords.tolist()):
                    if not bool(cat.ordinal[k]):
                        n = int(cat.n[k])
                        freq = torch.bincount(idx[:, k], minlength=n).double() + 0.5
                        bias[i, :n] = torch.log(freq / freq.sum()).to(bias.dtype)

    def _default_phase(self, name: str = "fit", **changes):
        image = self._pixel_grid is not None
        if self.batch_size is None and "batch_size" not in changes:  # a mixture: 128 per member
            changes["batch_size"] = 128 * int(self.members or IMAGE_MEMBERS) if image else 512
        if image and "max_steps" not in changes:
            changes["max_steps"] = int(self.image_steps)
        if self.validation_fraction is None and "validation_fraction" not in changes:
            changes["validation_fraction"] = 0.0 if image else 0.1
        return super()._default_phase(name, **changes)

    def _coord_log_prob(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """log p(z_i | z_<i [, y]) for every coordinate: (B, D) (a mass for categorical coordinates)."""
        lp = self._member_log_probs(z, y)
        return lp if lp.dim() == 2 else mixture_conditionals(lp)

    def _member_log_probs(self, z: torch.Tensor, y: torch.Tensor | None,
                          raw: torch.Tensor | None = None) -> torch.Tensor:
        """log p_m(z_i | z_<i [, y]): (B, D), or (M, B, D) for a mixture of M members."""
        raw = self.module_(z, y) if raw is None else raw
        if raw.dim() == 4:
            return torch.stack([self._member_log_probs(z, y, r) for r in raw])
        cat = self._cat
        hn = self._head.n_params
        if self.module_.prior is not None:  # gate g: g p_mixture(z_i | z_<i) + (1 - g) p_network(z_i | z_<i)
            gate = raw[..., hn]
            return torch.logaddexp(F.logsigmoid(gate) + self.module_.prior.log_prob_coords(z),
                                   F.logsigmoid(-gate) + self._head.log_prob(raw[..., :hn], z))
        if cat is None:
            return self._head.log_prob(raw[..., :hn], z)
        lp = self._head.log_prob(raw[..., :hn], z)
        c = cat.coords
        lpc = cat.log_prob(raw[:, c], z[:, c])
        return lp.index_copy(1, c, lpc.to(lp.dtype))

    def _draw_coord(self, raw: torch.Tensor, i: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """One draw of coordinate ``i`` per row from its conditional with parameters ``raw`` (B, P) (and,
        with a mixture prior, the rows ``z`` whose coordinates before ``i`` are set)."""
        prior = self.module_.prior
        if prior is not None:
            hn = self._head.n_params
            net_draw = self._head.sample(raw[..., :hn])
            use_prior = torch.rand_like(net_draw) < torch.sigmoid(raw[..., hn])
            return torch.where(use_prior, prior.sample_coord(z, i).to(net_draw.dtype), net_draw)
        cat = self._cat
        if cat is not None:
            hit = torch.nonzero(cat.coords == i)
            if len(hit):
                k = int(hit[0, 0])
                lp = cat.level_log_probs(raw, k)  # (B, L)
                return cat.value(k, torch.multinomial(lp.exp(), 1)[:, 0], raw.dtype)
        return self._head.sample(raw[..., :self._head.n_params])

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # maximum likelihood: minus the mean of sum_i log p(z_i | z_<i, y). A mixture's members each fit
        # the data on their own (an ensemble; trained on the mixture's likelihood they would split the
        # data between them), each on its own share of the batch, so that they see the data in
        # different orders; the loss reported is the members' sum
        nets = self.module_.members or [self.module_]
        loss = 0.0
        ys = [None] * len(nets) if y is None else y.chunk(len(nets))
        for net, zm, ym in zip(nets, z.chunk(len(nets)), ys):  # views: one net gets the batch itself
            loss = loss - self._member_log_probs(zm, ym, net(zm, ym)).sum(-1).mean()
        return loss

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """Held-out NLL (nats per row, standardised space): exact, so early stopping is on likelihood."""
        return float(-self._coord_log_prob(z, y).sum(1).mean())

    # ------------------------------------------------------------------ density
    def _log_prob_std(self, Z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """log p(z | y) per row (class indices ``y``; the base class forms the marginal over classes)."""
        with torch.no_grad():
            return _to_numpy(in_chunks(lambda b, yb: self._coord_log_prob(b, yb).sum(1), self._tensor(Z),
                                       self._labels(y), size=AR_CHUNK_ROWS))

    def _class_log_joint(self, z: torch.Tensor, upto: torch.Tensor | int) -> torch.Tensor:
        """log prior_k + sum_{i < upto} log p(z_i | z_<i, k) for every class k: (B, C).

        ``upto`` is an int or a per-row (B,) tensor (the length of each row's observed prefix).
        """
        B, D = z.shape
        C = int(self.n_classes_)
        keep = torch.arange(D, device=z.device)[None, :] < torch.as_tensor(upto, device=z.device).reshape(-1, 1)
        log_prior = torch.as_tensor(np.log(self.class_prior_), dtype=z.dtype, device=z.device)
        out = torch.empty(B, C, dtype=z.dtype, device=z.device)
        for k in range(C):
            yk = torch.full((B,), k, dtype=torch.long, device=z.device)
            with torch.no_grad():
                lp = in_chunks(lambda b, yb: self._coord_log_prob(b, yb), z, yk, size=AR_CHUNK_ROWS)  # (B, D)
            out[:, k] = (lp * keep).sum(1) + log_prior[k]
        return out

    # ------------------------------------------------------------------ sampling
    def _ancestral(self, z: torch.Tensor, fill: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Draw the ``fill`` entries of ``z`` (B, D) coordinate by coordinate, in order.

        Exact draws from p(z_fill | z_rest, y) when every filled coordinate of a row comes after
        every kept one; one network pass per coordinate that has something to fill.
        """
        z = z.clone()
        z[fill] = 0.0
        nfe = 0
        for i in range(z.shape[1]):
            rows = fill[:, i]
            if not bool(rows.any()):
                continue
            yr = None if y is None else y[rows]
            raw = self.module_(z[rows], yr)
            if raw.dim() == 4:  # a mixture: the member from its posterior given the prefix z_<i
                prefix = self._member_log_probs(z[rows], yr, raw)[..., :i].sum(-1)  # (M, b)
                pick = torch.multinomial(torch.softmax(prefix.T.double(), 1), 1)[:, 0]
                raw = raw[pick, torch.arange(len(pick), device=raw.device)]  # (b, D, P)
            z[rows, i] = self._draw_coord(raw[:, i], i, z[rows])
            nfe += 1
        self.last_nfe_ = nfe
        return z

    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, **opts) -> torch.Tensor:
        dev = torch.device(self.device_)
        D = int(self.n_features_in_)
        with torch_seed(seed, dev), torch.no_grad():
            yt = self._labels(y)
            if yt is None and self.n_classes_:  # unconditional draw from a labelled model: class ~ prior
                prior = torch.as_tensor(self.class_prior_, dtype=torch.float32, device=dev)
                yt = torch.multinomial(prior, n, replacement=True)
            z = torch.zeros(n, D, device=dev)
            return self._ancestral(z, torch.ones(n, D, dtype=torch.bool, device=dev), yt)

    # ------------------------------------------------------------------ imputation
    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, **opts) -> np.ndarray:
        """Exact ancestral draws for rows missing a suffix of the coordinates; grid-Gibbs otherwise.

        A row whose missing coordinates all come after its observed ones is drawn exactly from
        p(z_missing | z_observed): for a labelled model the class is drawn first from its
        posterior p(k | z_observed) (the observed prefix's likelihood under each class times the
        prior), then the missing coordinates in order given that class. Other rows go to the
        base class's density-based grid-Gibbs sampler (an approximation; see its docstring).
        """
        Z = np.array(Z, dtype=np.float64)
        # suffix pattern: once a coordinate is missing, all later ones are missing too
        suffix = (np.diff(miss.astype(np.int8), axis=1) >= 0).all(1)
        rng = np.random.default_rng(seed)
        s_exact, s_grid = (int(v) for v in rng.integers(0, 2**62, size=2))
        rows = np.flatnonzero(suffix)
        if len(rows):
            dev = torch.device(self.device_)
            with torch_seed(s_exact, dev), torch.no_grad():
                z = self._tensor(np.where(miss[rows], 0.0, Z[rows]))
                fill = torch.as_tensor(miss[rows], device=dev)
                y = None
                if self.n_classes_:
                    n_obs = (~fill).sum(1)  # (b,) observed prefix lengths
                    post = self._class_log_joint(z, upto=n_obs)  # (b, C), unnormalised log posterior
                    y = torch.multinomial(torch.softmax(post, 1), 1)[:, 0]
                Z[rows] = _to_numpy(self._ancestral(z, fill, y))
        other = np.flatnonzero(~suffix)
        if len(other):
            Z[other] = self._impute_other(Z[other], miss[other], s_grid, **opts)
        return Z

    def _impute_other(self, Z: np.ndarray, miss: np.ndarray, seed: int, method: str | None = None,
                      steps: int | None = None, burn: int | None = None, max_cost: int | None = None, **opts):
        """Rows whose missing coordinates are not a suffix: grid-Gibbs on the exact density in <= 2-D,
        preconditioned MALA on it beyond (``genzoo.samplers.mcmc``); ``method`` 'grid' / 'mcmc' forces one."""
        from genzoo.families._wide import check_grid_cost, impute_route, marginal_log_prob
        from genzoo.samplers.mcmc import model_impute

        d = int(self.n_features_in_)
        if self._cat is not None:  # categorical coordinates: MALA and the 1-D grids do not apply
            if method not in (None, "gibbs") or set(opts) - {"sweeps", "grid"}:
                raise ValueError("impute: a model with categorical coordinates imputes by Gibbs sampling "
                                 "(method='gibbs'; options: sweeps, grid)")
            return self._gibbs_impute(Z, miss, seed, **opts)
        if impute_route(method, d) == "grid":
            if d > 2:
                check_grid_cost(Z, miss, self.family, opts.get("sweeps", 30), opts.get("grid", 1024))
            return TorchGenerativeModel._impute_std(self, Z, miss, seed, **opts)
        if opts:
            raise ValueError(f"impute(method='mcmc'): unknown option(s) {sorted(opts)}; valid: steps, burn, max_cost")
        lp = marginal_log_prob(self, lambda z, y: self._coord_log_prob(z, y).sum(1))
        draw = lambda k, s: _to_numpy(self._sample_std(k, None, s))  # noqa: E731
        return model_impute(lp, draw, Z, miss, seed, family=self.family, steps=steps, burn=burn, max_cost=max_cost,
                            device=self.device_)


    def _gibbs_impute(self, Z: np.ndarray, miss: np.ndarray, seed: int, sweeps: int = 20, grid: int = 256):
        """Gibbs sampling on the model's exact joint, for models with categorical coordinates.

        Starts from ancestral draws (each missing coordinate given those before it), then
        ``sweeps`` sweeps: a labelled model's class from its posterior given the whole row, then
        each missing coordinate in order from its full conditional -- enumerated over a categorical
        coordinate's levels (exact), on ``grid`` nodes over the training range plus a uniform
        jitter within the node's cell for a continuous one. One network pass per candidate value;
        exact for the model in the limit of many sweeps (an approximation at any finite number).
        """
        dev = torch.device(self.device_)
        cat, C = self._cat, int(self.n_classes_)
        B, D = Z.shape
        with torch_seed(seed, dev), torch.no_grad():
            z = self._tensor(np.where(miss, 0.0, Z))
            fill = torch.as_tensor(miss, device=dev)
            y = None
            if C:
                prior = torch.as_tensor(self.class_prior_, dtype=torch.float32, device=dev)
                y = torch.multinomial(prior.expand(B, C), 1)[:, 0]
            z = self._ancestral(z, fill, y)
            lo = torch.as_tensor(self.z_lo_, dtype=z.dtype, device=dev)
            hi = torch.as_tensor(self.z_hi_, dtype=z.dtype, device=dev)
            coords = cat.coords.tolist()
            for _ in range(int(sweeps)):
                if C:
                    y = torch.multinomial(torch.softmax(self._class_log_joint(z, upto=D), 1), 1)[:, 0]
                for i in range(D):
                    rows = torch.nonzero(fill[:, i])[:, 0]
                    if not len(rows):
                        continue
                    if i in coords:
                        k = coords.index(i)
                        cand, width = cat.value(k, torch.arange(int(cat.n[k]), device=dev), z.dtype), None
                    else:
                        pad = 0.25 * (hi[i] - lo[i])
                        edges = torch.linspace(float(lo[i] - pad), float(hi[i] + pad), int(grid) + 1, device=dev,
                                               dtype=z.dtype)
                        cand, width = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
                    V = len(cand)
                    zz = z[rows].repeat_interleave(V, 0)
                    zz[:, i] = cand.repeat(len(rows))
                    yy = None if y is None else y[rows].repeat_interleave(V)
                    with torch.no_grad():
                        lp = in_chunks(lambda b, yb, i=i: self._coord_log_prob(b, yb)[:, i:].sum(1), zz, yy,
                                       size=AR_CHUNK_ROWS)
                    pick = torch.multinomial(torch.softmax(lp.view(len(rows), V).double(), 1), 1)[:, 0]
                    new = cand[pick]
                    if width is not None:
                        new = new + width * (torch.rand_like(new) - 0.5)
                    z[rows, i] = new
        return _to_numpy(z)


__all__ = ["Autoregressive", "MixtureHead"]
