"""VQ tokens + masked-token transformer with iterative parallel decoding (MaskGIT, Chang et al. 2022).

A VQ-VAE (``genzoo.nn.vq``) turns each image into a grid of code ids; a bidirectional
transformer (``genzoo.nn.transformer``, ``causal=False``) learns to predict masked ids from
the visible ones and a label token. Training masks a share ``cos(pi u / 2)`` of the tokens
(``u ~ U(0, 1)``, at least one) and scores the masked ones. Sampling starts from an all-MASK
grid and runs ``decode_steps`` rounds (default 8): each round draws every masked token, then
re-masks the least confident ones so that ``floor(m0 cos(pi s / (2 S)))`` stay masked after
round ``s`` of ``S`` (the cosine schedule; confidence = the drawn token's log-probability plus
Gumbel noise annealed by ``choice_temperature (1 - s / S)``). One network evaluation per round
(two under guidance other than 0 or 1). Class-conditional with classifier-free guidance on the
token log-probabilities (``genzoo.objectives.guidance``). Inpainting: see
``genzoo.families._tokens`` (a label from p(label | kept tokens), then decoding from the kept
tokens with the others masked).
No likelihood is reported (``likelihood_kind='none'``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from genzoo.families._tokens import TOKEN_PARAMS, TokenImageFamily, sample_logp, token_doc
from genzoo.params import NON_NEGATIVE, POSITIVE_INT
from genzoo.registry import fill_shared_parameters, register


@register("vq_masked")
class VQMasked(TokenImageFamily):
    """VQ-VAE tokenizer + MaskGIT masked-token transformer (cosine schedule, parallel decoding); guidance.

    Fitted on integer images ``(n, H, W)`` or ``(n, C, H, W)`` (e.g. the 8x8 digits, levels
    0..16) with optional labels; samples integer images of the same shape.

    Parameters
    ----------
    decode_steps : int, default=8
        Rounds of parallel decoding (network evaluations per sample without guidance mixing).
    choice_temperature : float, default=4.5
        Scale of the Gumbel noise on the confidences that choose which tokens to keep (annealed to 0).
{token_doc}

    Examples
    --------
    >>> import genzoo as gz
    >>> X, y = gz.datasets.get("digits").split("train")
    >>> m = gz.make("vq_masked", tokenizer_steps=50, max_steps=50, random_state=0).fit(X[:200], y[:200])
    >>> m.sample(4, y=3, guidance=1.0).shape
    (4, 8, 8)
    """

    summary = "VQ-VAE tokens + MaskGIT masked-token transformer (parallel decoding), class-conditional with guidance"
    _parameter_constraints = {**TOKEN_PARAMS, "decode_steps": POSITIVE_INT, "choice_temperature": NON_NEGATIVE}
    causal: ClassVar[bool] = False

    def __init__(self, *, decode_steps: int = 8, choice_temperature: float = 4.5, codebook_size: int = 256,
                 code_dim: int = 8, patch: int = 2, tokenizer_hidden: int = 32, tokenizer_steps: int = 1500,
                 tokenizer_lr: float = 2e-3, commitment: float = 0.25, d_model: int = 64, n_layers: int = 3,
                 n_heads: int = 4, dropout: float = 0.1, label_dropout: float = 0.1, guidance: float = 1.0,
                 temperature: float = 1.0, impute_candidates: int = 16, weight_decay: float = 0.01,
                 max_steps: int = 2000, batch_size: int = 64, lr: float = 2e-3, random_state=None,
                 device: str = "auto", verbose: int = 0):
        super().__init__(codebook_size=codebook_size, code_dim=code_dim, patch=patch, tokenizer_hidden=tokenizer_hidden,
                         tokenizer_steps=tokenizer_steps, tokenizer_lr=tokenizer_lr, commitment=commitment,
                         d_model=d_model, n_layers=n_layers, n_heads=n_heads, dropout=dropout,
                         label_dropout=label_dropout, guidance=guidance, temperature=temperature,
                         impute_candidates=impute_candidates, weight_decay=weight_decay, max_steps=max_steps,
                         batch_size=batch_size, lr=lr, random_state=random_state, device=device, verbose=verbose)
        self.decode_steps = decode_steps
        self.choice_temperature = choice_temperature

    @property
    def _mask_id(self) -> int:
        return int(self.codebook_size)

    def _prior_loss(self, seqs: torch.Tensor, lab_tok: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        B, T = seqs.shape
        u = torch.rand(B, generator=gen, device="cpu").to(seqs.device)
        m = torch.clamp(torch.ceil(torch.cos(math.pi / 2 * u) * T), 1, T)  # tokens masked per row
        rank = torch.argsort(torch.rand(B, T, generator=gen, device="cpu").to(seqs.device), 1).argsort(1)
        masked = rank < m[:, None]
        inp = torch.cat([lab_tok[:, None], torch.where(masked, torch.full_like(seqs, self._mask_id), seqs)], 1)
        logits = self.module_.prior(inp)[:, 1:]  # (B, T, K)
        return F.cross_entropy(logits[masked], seqs[masked])

    def _all_logp(self, seq: torch.Tensor, lab_tok: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.module_.prior(torch.cat([lab_tok[:, None], seq], 1))[:, 1:], -1)

    def _draw_tokens(self, tokens: torch.Tensor, known: torch.Tensor, labels, guidance: float,
                     temperature: float | None = None, decode_steps: int | None = None) -> torch.Tensor:
        """MaskGIT decoding of the unknown tokens (known ones stay) in ``decode_steps`` rounds."""
        temp = float(self.temperature if temperature is None else temperature)
        S = int(self.decode_steps if decode_steps is None else decode_steps)
        if S < 1:
            raise ValueError(f"decode_steps must be a positive integer; got {S}")
        f, cost = self._guided_logp(self._all_logp, labels, guidance)
        masked = ~known
        m0 = masked.sum(1)  # (n,)
        seq = torch.where(masked, torch.full_like(tokens, self._mask_id), tokens)
        for s in range(1, S + 1):
            if not masked.any():
                break
            logp = f(seq)  # (n, T, K)
            draw = sample_logp(logp, temp)
            conf = logp.gather(2, draw[:, :, None]).squeeze(2)
            g = -torch.log(-torch.log(torch.rand_like(conf).clamp(1e-20, 1 - 1e-7)))  # Gumbel noise
            conf = conf + float(self.choice_temperature) * (1 - s / S) * g
            conf = torch.where(masked, conf, torch.full_like(conf, float("inf")))
            left = torch.floor(m0.double() * math.cos(math.pi / 2 * s / S)).long()
            left = torch.minimum(left, (masked.sum(1) - 1).clamp_min(0))  # at least one token per round
            rank = torch.argsort(conf, 1).argsort(1)  # 0 = least confident
            still = masked & (rank < left[:, None])
            seq = torch.where(masked & ~still, draw, seq)
            masked = still
        self.last_nfe_ = S * cost
        return seq

    def _impute_labels(self, ids: torch.Tensor, known: torch.Tensor, M: int,
                       rng: np.random.Generator) -> np.ndarray | None:
        """Labels drawn from p(label | kept tokens): ``log p(kept | label)`` by revealing the kept tokens
        one at a time in a random order (each scored given the label and the ones revealed before)."""
        if not self.n_classes_:
            return None
        C, (k, T) = int(self.n_classes_), ids.shape
        lab = self._label_tokens(torch.arange(C, device=ids.device).repeat_interleave(k))
        tok, kn = ids.repeat(C, 1), known.repeat(C, 1)
        seq = torch.full_like(tok, self._mask_id)
        ll = torch.zeros(C * k, dtype=torch.float64, device=ids.device)
        for pos in rng.permutation(T).tolist():
            here = kn[:, pos]
            if not here.any():
                continue
            logp = self._all_logp(seq, lab)[:, pos]  # (C k, K)
            ll += torch.where(here, logp.gather(1, tok[:, pos, None]).squeeze(1), 0.0).double()
            seq[:, pos] = torch.where(here, tok[:, pos], seq[:, pos])
        post = ll.view(C, k).T.cpu().numpy() + np.log(np.maximum(self.class_prior_, 1e-300))  # (k, C)
        post = np.exp(post - post.max(1, keepdims=True))
        post /= post.sum(1, keepdims=True)
        return np.stack([rng.choice(C, size=M, p=p) for p in post], 1).reshape(-1)  # candidate-major

    def _img_nfe_options(self, nfe: int, opts: dict) -> dict:
        return {**opts, "decode_steps": opts.get("decode_steps", max(1, min(int(self.decode_steps), nfe)))}


VQMasked.__doc__ = VQMasked.__doc__.replace("{token_doc}", token_doc(d_model=64, n_layers=3, dropout=0.1))
VQMasked.__doc__ = fill_shared_parameters(VQMasked)
