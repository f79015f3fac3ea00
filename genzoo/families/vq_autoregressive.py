"""VQ tokens + autoregressive transformer (ImageGPT / Parti style, on a VQ-VAE's token grid).

A VQ-VAE (``genzoo.nn.vq``) turns each image into a grid of code ids (4 x 4 for 8x8 digits);
a causal transformer (``genzoo.nn.transformer``) models the ids in raster order after a label
token, ``p(t_1..t_T | y) = prod_i p(t_i | t_<i, y)``; the decoder turns a drawn grid into an
integer image. Class-conditional with classifier-free guidance on the next-token
log-probabilities (``genzoo.objectives.guidance``: 0 unconditional, 1 conditional). Sampling
costs ``T`` network evaluations (``2 T`` when guidance is neither 0 nor 1). Inpainting: see
``genzoo.families._tokens`` (the kept tokens are fed in at their positions, the others drawn in
raster order under a label drawn from the class frequencies; completions are weighted by the
observed pixels and the exact probability of the kept tokens under their label). No likelihood
is reported (``likelihood_kind='none'``): p(image) sums over every token grid that decodes to it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from genzoo.families._tokens import TOKEN_PARAMS, TokenImageFamily, sample_logp, token_doc
from genzoo.registry import register


@register("vq_autoregressive")
class VQAutoregressive(TokenImageFamily):
    """VQ-VAE tokenizer + causal transformer over the token grid; class-conditional with guidance.

    Fitted on integer images ``(n, H, W)`` or ``(n, C, H, W)`` (e.g. the 8x8 digits, levels
    0..16) with optional labels; samples integer images of the same shape.

    Parameters
    ----------
{token_doc}

    Examples
    --------
    >>> import genzoo as gz
    >>> X, y = gz.datasets.get("digits").split("train")
    >>> m = gz.make("vq_autoregressive", tokenizer_steps=50, max_steps=50, random_state=0).fit(X[:200], y[:200])
    >>> m.sample(4, y=3, guidance=1.0).shape
    (4, 8, 8)
    """

    summary = "VQ-VAE tokens + causal transformer (ImageGPT-style), class-conditional with guidance"
    _parameter_constraints = TOKEN_PARAMS
    causal: ClassVar[bool] = True

    def __init__(self, *, codebook_size: int = 256, code_dim: int = 8, patch: int = 2, tokenizer_hidden: int = 32,
                 tokenizer_steps: int = 1500, tokenizer_lr: float = 2e-3, commitment: float = 0.25,
                 d_model: int = 128, n_layers: int = 4, n_heads: int = 4, dropout: float = 0.0,
                 label_dropout: float = 0.1, guidance: float = 1.0, temperature: float = 1.0,
                 impute_candidates: int = 16, weight_decay: float = 0.01, max_steps: int = 2000,
                 batch_size: int = 64, lr: float = 2e-3, random_state=None, device: str = "auto", verbose: int = 0):
        super().__init__(codebook_size=codebook_size, code_dim=code_dim, patch=patch, tokenizer_hidden=tokenizer_hidden,
                         tokenizer_steps=tokenizer_steps, tokenizer_lr=tokenizer_lr, commitment=commitment,
                         d_model=d_model, n_layers=n_layers, n_heads=n_heads, dropout=dropout,
                         label_dropout=label_dropout, guidance=guidance, temperature=temperature,
                         impute_candidates=impute_candidates, weight_decay=weight_decay, max_steps=max_steps,
                         batch_size=batch_size, lr=lr, random_state=random_state, device=device, verbose=verbose)

    def _prior_loss(self, seqs: torch.Tensor, lab_tok: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        inp = torch.cat([lab_tok[:, None], seqs[:, :-1]], 1)
        logits = self.module_.prior(inp)  # (B, T, K): position i predicts t_i
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), seqs.reshape(-1))

    def _next_logp(self, seq: torch.Tensor, lab_tok: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([lab_tok[:, None], seq], 1)
        return F.log_softmax(self.module_.prior(inp)[:, -1], -1)

    def _draw_tokens(self, tokens: torch.Tensor, known: torch.Tensor, labels, guidance: float,
                     temperature: float | None = None) -> torch.Tensor:
        """Raster-order draws of the unknown tokens (known ones are fed in as they are)."""
        temp = float(self.temperature if temperature is None else temperature)
        f, cost = self._guided_logp(self._next_logp, labels, guidance)
        n, T = tokens.shape
        out = tokens.clone()
        for i in range(T):
            need = ~known[:, i]
            if need.any():
                out[:, i] = torch.where(need, sample_logp(f(out[:, :i]), temp), out[:, i])
        self.last_nfe_ = T * cost
        return out

    def _img_nfe_options(self, nfe: int, opts: dict) -> dict:
        return opts  # T evaluations, fixed; checked after sampling

    def _impute_labels(self, ids: torch.Tensor, known: torch.Tensor, M: int,
                       rng: np.random.Generator) -> np.ndarray | None:
        """Candidates' labels from the training class frequencies (None for a model fitted without labels)."""
        return rng.choice(self.n_classes_, size=M * len(ids), p=self.class_prior_) if self.n_classes_ else None

    def _impute_extra_log_weight(self, ids: torch.Tensor, known: torch.Tensor, labels) -> torch.Tensor:
        """log p(kept tokens | drawn ones before them, label): the proposal drew only the missing tokens."""
        lab = self._label_tokens(self._label_tensor(labels, len(ids)))
        logits = self.module_.prior(torch.cat([lab[:, None], ids[:, :-1]], 1))
        lp = F.log_softmax(logits, -1).gather(2, ids[:, :, None]).squeeze(2)  # (B, T)
        return (lp * known).sum(1)

VQAutoregressive.__doc__ = VQAutoregressive.__doc__.replace("{token_doc}", token_doc(
    d_model=128, n_layers=4, dropout=0.0, prior_note="""
        (The causal prior is larger than vq_masked's and has no dropout: on digits, class accuracy
        of conditional samples at guidance 1 was 0.87 with 64 channels x 3 blocks and dropout 0.1,
        0.95 / 0.94 (seeds 0 / 1) with 128 x 4, 0.89 with 128 x 4 and dropout 0.2, and
        0.97 / 0.96 with 128 x 4 and no dropout; benchmarks/RESULTS.md.)"""))
from genzoo.registry import fill_shared_parameters  # noqa: E402

VQAutoregressive.__doc__ = fill_shared_parameters(VQAutoregressive)
