"""What ``vq_autoregressive`` and ``vq_masked`` share (not a family): a VQ-VAE tokenizer
(``genzoo.nn.vq``) and a transformer prior over its token grid (``genzoo.nn.transformer``).

Fitting runs two trainings: the tokenizer on the images, then the prior on the token grids of
the training images (raster order, ``T = (H / p) (W / p)`` tokens; 16 for 8x8 digits with 2x2
patches). The prior's input is ``[label token, t_1 .. t_T]``; token ids: ``0..K-1`` the codes,
``K`` = MASK, ``K + 1`` = the null label (classifier-free guidance: label dropout replaces the
label token by it), ``K + 2 + k`` = label ``k``. A sample is decoded by the tokenizer's decoder
(each pixel the median of its level distribution).

Inpainting: the tokens whose patch holds no missing pixel are the encoder's tokens of the
observed image (the encoder sees exactly its patch, so they are exact); the tokens whose patch
holds a missing pixel are drawn from the prior given the kept ones (each family's own way),
``impute_candidates`` completions per image, of which one is kept with probability proportional
to the decoder's likelihood of the observed pixels (times, for the autoregressive prior, the
likelihood of the kept tokens that follow a drawn one): sampling-importance-resampling towards
p(tokens | observed pixels). The decoded image then takes the observed pixels back unchanged.
No label is needed; the kept tokens choose the class. ``vq_autoregressive`` draws each
candidate's label from the class frequencies and weights it by the exact probability of all
kept tokens under that label; ``vq_masked`` draws it from an estimate of p(label | kept tokens)
(the kept tokens revealed one at a time in a random order, each scored by the masked model given
the label and the ones before: an order-agnostic chain rule), then decodes under it (guidance 1).

The fitted model reports ``codebook_usage_`` (share of the codes the training images use),
``codebook_perplexity_`` and ``reconstruction_accuracy_`` (share of training pixels the
tokenizer reconstructs exactly).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.families._image import ImageFamily, cosine_lr
from genzoo.nn.transformer import Transformer
from genzoo.nn.vq import VQTokenizer, codebook_usage, patch_missing, train_tokenizer
from genzoo.objectives.guidance import guided
from genzoo.params import NON_NEGATIVE, POSITIVE, POSITIVE_INT, TRAINING, UNIT_OPEN_RIGHT


class TokenModel(nn.Module):
    """The tokenizer and the prior of one fitted model (one state dict)."""

    def __init__(self, tokenizer: VQTokenizer, prior: Transformer, grid: tuple[int, int]):
        super().__init__()
        self.tokenizer, self.prior, self.grid = tokenizer, prior, grid


TOKEN_PARAMS = {
    "codebook_size": POSITIVE_INT, "code_dim": POSITIVE_INT, "patch": POSITIVE_INT, "tokenizer_hidden": POSITIVE_INT,
    "tokenizer_steps": POSITIVE_INT, "tokenizer_lr": POSITIVE, "commitment": NON_NEGATIVE,
    "d_model": POSITIVE_INT, "n_layers": POSITIVE_INT, "n_heads": POSITIVE_INT, "dropout": UNIT_OPEN_RIGHT,
    "label_dropout": UNIT_OPEN_RIGHT, "guidance": NON_NEGATIVE, "temperature": POSITIVE,
    "impute_candidates": POSITIVE_INT, "weight_decay": NON_NEGATIVE,
    **{k: TRAINING[k] for k in ("max_steps", "batch_size", "lr", "random_state", "device", "verbose") if k in TRAINING},
}

TOKEN_DOC = """    codebook_size : int, default=256
        Codes K of the VQ-VAE codebook.
    code_dim : int, default=8
        Dimension of a code vector.
    patch : int, default=2
        Each token encodes a ``patch x patch`` block of pixels (H and W must be multiples).
    tokenizer_hidden : int, default=32
        Channels of the tokenizer's convolutions.
    tokenizer_steps : int, default=1500
        Adam steps of the tokenizer (a budget).
    tokenizer_lr : float, default=2e-3
        Learning rate of the tokenizer.
    commitment : float, default=0.25
        Weight beta of the commitment loss ``||z_e - sg(z_q)||^2``.
    d_model : int, default={d_model}
        Channels of the prior transformer.
    n_layers : int, default={n_layers}
        Blocks of the prior transformer.
    n_heads : int, default=4
        Attention heads.
    dropout : float, default={dropout}
        Residual dropout of the prior.{prior_note}
    label_dropout : float, default=0.1
        Share of training labels replaced by the null label (classifier-free guidance).
    guidance : float, default=1.0
        Classifier-free guidance ``uncond + g (cond - uncond)`` on the token log-probabilities:
        0 = unconditional, 1 = plain conditional, > 1 sharper (``genzoo.objectives.guidance``).
    temperature : float, default=1.0
        Softmax temperature of token draws.
    impute_candidates : int, default=16
        Completions drawn per image in ``impute``, one kept by the observed pixels' likelihood.
    weight_decay : float, default=0.01
        AdamW weight decay of the prior's matrices.
    {shared_parameters}"""


def token_doc(d_model: int, n_layers: int, dropout: float, prior_note: str = "") -> str:
    """``TOKEN_DOC`` with one family's prior defaults (and an optional note under ``dropout``)."""
    return (TOKEN_DOC.replace("{d_model}", str(d_model)).replace("{n_layers}", str(n_layers))
            .replace("{dropout}", str(dropout)).replace("{prior_note}", prior_note))


class TokenImageFamily(ImageFamily):
    """Base of the two token families (see the module docstring)."""

    likelihood_kind: ClassVar[str] = "none"
    budget_params: ClassVar[dict[str, int]] = {"max_steps": 50, "tokenizer_steps": 50}
    _extra_meta: ClassVar[tuple[str, ...]] = ("codebook_usage_", "codebook_perplexity_", "reconstruction_accuracy_")
    causal: ClassVar[bool] = True

    def __init__(self, *, codebook_size: int = 256, code_dim: int = 8, patch: int = 2, tokenizer_hidden: int = 32,
                 tokenizer_steps: int = 1500, tokenizer_lr: float = 2e-3, commitment: float = 0.25,
                 d_model: int = 64, n_layers: int = 3, n_heads: int = 4, dropout: float = 0.1,
                 label_dropout: float = 0.1, guidance: float = 1.0, temperature: float = 1.0,
                 impute_candidates: int = 16, weight_decay: float = 0.01, max_steps: int = 2000,
                 batch_size: int = 64, lr: float = 2e-3, random_state=None, device: str = "auto", verbose: int = 0):
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.patch = patch
        self.tokenizer_hidden = tokenizer_hidden
        self.tokenizer_steps = tokenizer_steps
        self.tokenizer_lr = tokenizer_lr
        self.commitment = commitment
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.label_dropout = label_dropout
        self.guidance = guidance
        self.temperature = temperature
        self.impute_candidates = impute_candidates
        self.weight_decay = weight_decay
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ building
    @property
    def _grid(self) -> tuple[int, int]:
        C, H, W = self._shape4
        p = int(self.patch)
        if H % p or W % p:
            raise ValueError(f"images of {H}x{W} pixels do not split into {p}x{p} patches; choose patch dividing both")
        return H // p, W // p

    def _img_build(self) -> TokenModel:
        C = self._shape4[0]
        K = int(self.codebook_size)
        tok = VQTokenizer(C, int(self.n_levels_), patch=int(self.patch), codebook_size=K, code_dim=int(self.code_dim),
                          hidden=int(self.tokenizer_hidden), beta=float(self.commitment))
        h, w = self._grid
        prior = Transformer(K + 2 + int(self.n_classes_), K, h * w + 1, d_model=int(self.d_model),
                            n_layers=int(self.n_layers), n_heads=int(self.n_heads), dropout=float(self.dropout),
                            causal=self.causal)
        return TokenModel(tok, prior, (h, w))

    def _label_tokens(self, labels: torch.Tensor) -> torch.Tensor:
        """Class indices (``n_classes_`` = the null label) -> label token ids."""
        K, C = int(self.codebook_size), int(self.n_classes_)
        return torch.where(labels >= C, torch.full_like(labels, K + 1), labels + K + 2)

    # ------------------------------------------------------------------ fitting
    def _img_fit(self, X: torch.Tensor, labels, seed: int) -> None:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.module_ = self._img_build().to(self._device())
        tok = self.module_.tokenizer
        hist = train_tokenizer(tok, X, steps=int(self.tokenizer_steps), batch_size=int(self.batch_size),
                               lr=float(self.tokenizer_lr), generator=gen,
                               progress=lambda i, v: self._log(i, v, "tokenizer"))
        with torch.no_grad():
            ids = torch.cat([tok.encode(X[a:a + 512]) for a in range(0, len(X), 512)])  # (N, h, w)
            rec = torch.cat([tok.decode(ids[a:a + 512]) for a in range(0, len(X), 512)])
        self.reconstruction_accuracy_ = float((rec == X).double().mean())
        self.codebook_usage_, self.codebook_perplexity_ = codebook_usage(tok, ids)
        seqs = ids.flatten(1)  # (N, T)
        lab = self._label_tensor(labels, len(X))
        prior = self.module_.prior
        prior.train()
        decay, rest = [], []
        for name, p in prior.named_parameters():
            (decay if p.dim() >= 2 and "tok" not in name and "pos" not in name else rest).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": float(self.weight_decay)},
                                 {"params": rest, "weight_decay": 0.0}], lr=float(self.lr), betas=(0.9, 0.99))
        steps = int(self.max_steps)
        sched = cosine_lr(opt, steps)
        null = int(self.n_classes_)
        pd = float(self.label_dropout) if self.n_classes_ else 0.0
        for i in range(steps):
            b = torch.randint(len(seqs), (int(self.batch_size),), generator=gen, device="cpu").to(seqs.device)
            yb = lab[b]
            if pd > 0:
                drop = torch.rand(len(b), generator=gen, device="cpu").to(yb.device) < pd
                yb = torch.where(drop, torch.full_like(yb, null), yb)
            loss = self._prior_loss(seqs[b], self._label_tokens(yb), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
            opt.step()
            sched.step()
            self._log(i + 1, float(loss.detach()), "prior")
        prior.eval()
        self.tokenizer_history_ = hist[-1:]
        self.phases_ = [{"name": "tokenizer", "n_steps": len(hist)}, {"name": "prior", "n_steps": steps}]
        self.n_steps_ = len(hist) + steps

    def _prior_loss(self, seqs: torch.Tensor, lab_tok: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ guided log-probabilities
    def _guided_logp(self, fn, labels, g: float):
        """``fn(seq, label_tokens) -> log-probs``, mixed by guidance ``g`` for class indices ``labels``
        (None: the null label); returns ``(f(seq), evaluations per call)``."""
        null = int(self.n_classes_) if self.n_classes_ else None
        y = None if labels is None or null is None else self._label_tensor(labels, 0)

        def net(seq, lab):
            lab = torch.full((len(seq),), null or 0, dtype=torch.long, device=seq.device) if lab is None else lab
            return fn(seq, self._label_tokens(lab))

        return guided(net, y, g, null)

    # ------------------------------------------------------------------ sampling / imputation
    def _img_sample(self, n: int, labels, seed: int, guidance: float, **opts) -> torch.Tensor:
        torch.manual_seed(seed)
        T = self.module_.grid[0] * self.module_.grid[1]
        known = torch.zeros(n, T, dtype=torch.bool, device=self._device())
        tokens = torch.zeros(n, T, dtype=torch.long, device=self._device())
        ids = self._draw_tokens(tokens, known, labels, guidance, **opts)
        return self.module_.tokenizer.decode(ids.view(n, *self.module_.grid))

    def _draw_tokens(self, tokens: torch.Tensor, known: torch.Tensor, labels, guidance: float, **opts) -> torch.Tensor:
        raise NotImplementedError

    def _impute_labels(self, ids: torch.Tensor, known: torch.Tensor, M: int,
                       rng: np.random.Generator) -> np.ndarray | None:
        """Labels of the ``M`` inpainting candidates of each of the ``k`` rows of ``ids`` (k, T),
        candidate-major (M k,) as the candidates are laid out; None: the null label."""
        return None

    def _impute_extra_log_weight(self, ids: torch.Tensor, known: torch.Tensor, labels) -> torch.Tensor:
        """log of the candidates' importance weights beyond the observed pixels' likelihood."""
        return torch.zeros(len(ids), device=ids.device)

    def _img_impute(self, X: torch.Tensor, miss: torch.Tensor, seed: int, candidates: int | None = None,
                    **opts) -> torch.Tensor:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        tok = self.module_.tokenizer
        n, M = len(X), int(candidates or self.impute_candidates)
        grid = self.module_.grid
        known = ~torch.as_tensor(patch_missing(miss.cpu().numpy(), int(self.patch)), device=X.device).flatten(1)
        ids0 = tok.encode(X).flatten(1)
        out = torch.empty_like(X)
        observed = (~miss).float()
        for a in range(0, n, max(1, 2048 // M)):
            b = min(n, a + max(1, 2048 // M))
            k = b - a
            kn = known[a:b].repeat(M, 1)
            labels = self._impute_labels(ids0[a:b], known[a:b], M, rng)  # (M k,) or None
            drawn = self._draw_tokens(ids0[a:b].repeat(M, 1), kn, labels, 0.0 if labels is None else 1.0,
                                      **opts)  # (M k, T)
            xb = X[a:b].repeat(M, 1, 1, 1)
            lw = tok.pixel_log_lik(drawn.view(-1, *grid), xb, observed[a:b].repeat(M, 1, 1, 1))
            lw = (lw + self._impute_extra_log_weight(drawn, kn, labels)).view(M, k).cpu().numpy()
            w = np.exp(lw - lw.max(0, keepdims=True))
            w /= w.sum(0, keepdims=True)
            pick = np.array([rng.choice(M, p=w[:, j]) for j in range(k)])
            dev = drawn.device
            chosen = drawn.view(M, k, -1)[torch.as_tensor(pick, device=dev), torch.arange(k, device=dev)]
            out[a:b] = tok.decode(chosen.view(k, *grid))
        return out


def sample_logp(logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """One draw per row from log-probabilities (..., K) at ``temperature``."""
    return torch.distributions.Categorical(logits=logp / temperature).sample()


__all__ = ["TokenImageFamily", "TokenModel", "TOKEN_PARAMS", "TOKEN_DOC", "token_doc", "sample_logp", "F"]
