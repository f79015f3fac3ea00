"""The image tokenizer the token families share (``vq_autoregressive``, ``vq_masked``): a VQ-VAE.

Shape of the computation (``C`` channels of ``L`` integer levels, ``H x W`` pixels, patches of
``p x p``)::

    x (B, C, H, W) ints -> one-hot-free scaling to [-1, 1]
      encoder: a p x p stride-p convolution + 1x1 convolutions -> z_e (B, D, H/p, W/p)
      quantise: nearest of K codebook vectors -> token ids (B, H/p, W/p), z_q
      decoder: 3x3 convolutions, a transposed p x p upsampling -> logits (B, C, L, H, W)

The encoder is patch-local on purpose: a token's encoding depends on its own ``p x p`` patch
only (its receptive field is exactly that patch), so inpainting can keep the tokens of fully
observed patches and resample only the tokens whose patch holds a missing pixel. The decoder
sees neighbouring tokens (3x3 convolutions), so it can draw strokes across patch edges.
The decoder's output is a categorical over the ``L`` levels of each pixel (cross-entropy, not
squared error): reconstructions are integer images (the per-pixel median).

The codebook (van den Oord et al. 2017) is learnt by exponential moving averages of the
assigned encodings (decay 0.99, Laplace-smoothed counts), the encoder by the straight-through
gradient plus the commitment loss ``beta ||z_e - sg(z_q)||^2``; a code unused for a while is
restarted at a random encoding of the current batch, so few codes die.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class VQTokenizer(nn.Module):
    """A VQ-VAE over integer images: ``encode`` -> token grid, ``decode_logits`` -> per-pixel level logits."""

    def __init__(self, channels: int, levels: int, *, patch: int = 2, codebook_size: int = 128, code_dim: int = 16,
                 hidden: int = 64, decay: float = 0.99, beta: float = 0.25):
        super().__init__()
        self.channels, self.levels, self.patch = channels, levels, patch
        self.K, self.D, self.decay, self.beta = codebook_size, code_dim, decay, beta
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, hidden, patch, stride=patch), nn.GELU(),
            nn.Conv2d(hidden, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, code_dim, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU(),
            nn.ConvTranspose2d(hidden, hidden, patch, stride=patch), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden, channels * levels, 1))
        self.register_buffer("codebook", torch.randn(codebook_size, code_dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("idle", torch.zeros(codebook_size))

    # ------------------------------------------------------------------ pieces
    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integer levels (B, C, H, W) -> floats in [-1, 1] (missing pixels, NaN, at 0 = the middle)."""
        z = 2.0 * x.float() / max(self.levels - 1, 1) - 1.0
        return torch.nan_to_num(z, nan=0.0)

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.scale(x))  # (B, D, h, w)

    def quantise(self, ze: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes: ids (B, h, w) and their vectors (B, D, h, w)."""
        B, D, h, w = ze.shape
        flat = ze.permute(0, 2, 3, 1).reshape(-1, D)
        d2 = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)[None])
        ids = d2.argmin(1)
        zq = self.codebook[ids].view(B, h, w, D).permute(0, 3, 1, 2)
        return ids.view(B, h, w), zq

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (B, h, w) of integer images (B, C, H, W)."""
        return self.quantise(self.encode_continuous(x))[0]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.codebook[ids].permute(0, 3, 1, 2)  # (B, D, h, w)

    def decode_logits(self, zq: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) code vectors -> level logits (B, C, L, H, W)."""
        out = self.decoder(zq)
        B, _, H, W = out.shape
        return out.view(B, self.channels, self.levels, H, W)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, h, w) -> integer images (B, C, H, W), each pixel the median of its level
        distribution (closer to the truth in mean absolute error than the mode)."""
        return categorical_median(self.decode_logits(self.embed(ids)), dim=2)

    @torch.no_grad()
    def pixel_log_lik(self, ids: torch.Tensor, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """log p(x_observed | tokens) under the decoder's categoricals (B,), summed over observed pixels."""
        logp = F.log_softmax(self.decode_logits(self.embed(ids)), dim=2)  # (B, C, L, H, W)
        xi = torch.nan_to_num(x.float(), nan=0.0).long().clamp(0, self.levels - 1)
        ll = logp.gather(2, xi[:, :, None]).squeeze(2)  # (B, C, H, W)
        return (ll * observed).flatten(1).sum(1)

    # ------------------------------------------------------------------ training
    def loss(self, x: torch.Tensor, update_codebook: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction cross-entropy (nats per image) + commitment; the codebook moves by EMA.
        Returns (loss, reconstruction nats per image)."""
        ze = self.encode_continuous(x)
        ids, zq = self.quantise(ze.detach())
        if update_codebook and self.training:
            self._ema_update(ze.detach(), ids)
            zq = self.embed(ids)
        commit = (ze - zq.detach()).pow(2).sum(1).mean()  # per token, summed over the code's dims
        zst = ze + (zq - ze).detach()  # straight-through
        logits = self.decode_logits(zst)  # (B, C, L, H, W)
        rec = F.cross_entropy(logits.transpose(1, 2), x.long(), reduction="sum") / len(x)
        n_tok = ids[0].numel()
        return rec + self.beta * commit * n_tok, rec.detach()

    @torch.no_grad()
    def _ema_update(self, ze: torch.Tensor, ids: torch.Tensor) -> None:
        flat = ze.permute(0, 2, 3, 1).reshape(-1, self.D)
        onehot = F.one_hot(ids.reshape(-1), self.K).type_as(flat)  # (N, K)
        count = onehot.sum(0)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.T @ flat, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + self.K * 1e-5) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        # restart codes unused for 50 steps at random encodings of this batch
        self.idle.add_(1).masked_fill_(count > 0, 0)
        dead = torch.nonzero(self.idle > 50).flatten()
        if len(dead):
            pick = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]
            self.codebook[dead] = pick
            self.ema_sum[dead] = pick
            self.ema_count[dead] = 1.0
            self.idle[dead] = 0

    @torch.no_grad()
    def init_codebook(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Codes at random encodings of ``x`` (better than random vectors: none starts dead)."""
        flat = self.encode_continuous(x).permute(0, 2, 3, 1).reshape(-1, self.D)
        idx = torch.randperm(len(flat), generator=generator)[: self.K] % len(flat)
        self.codebook.copy_(flat[idx.to(flat.device)])
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)


def categorical_median(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """The median level of categoricals given by ``logits`` along ``dim`` (the first level whose
    cumulative probability reaches one half)."""
    cdf = torch.softmax(logits, dim).cumsum(dim)
    return (cdf < 0.5).sum(dim).clamp_max(logits.shape[dim] - 1)


def train_tokenizer(tok: VQTokenizer, X: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                    generator: torch.Generator, progress=None) -> list[float]:
    """Fit ``tok`` on integer images ``X`` (N, C, H, W) by Adam with a cosine learning rate; returns
    the reconstruction loss (nats per image) of each step."""
    tok.train()
    tok.init_codebook(X[torch.randperm(len(X), generator=generator)[:512].to(X.device)], generator)
    params = list(tok.encoder.parameters()) + list(tok.decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * i / steps)))
    hist = []
    for i in range(steps):
        b = X[torch.randint(len(X), (batch_size,), generator=generator).to(X.device)]
        loss, rec = tok.loss(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        hist.append(float(rec))
        if progress is not None and (i + 1) % 50 == 0:
            progress(i + 1, float(rec))
    tok.eval()
    return hist


@torch.no_grad()
def codebook_usage(tok: VQTokenizer, ids: torch.Tensor) -> tuple[float, float]:
    """(share of the K codes used by ``ids``, perplexity of the code distribution)."""
    counts = torch.bincount(ids.reshape(-1), minlength=tok.K).double()
    p = counts / counts.sum()
    nz = p[p > 0]
    return float((counts > 0).double().mean()), float(torch.exp(-(nz * nz.log()).sum()))


def patch_missing(miss: np.ndarray, patch: int) -> np.ndarray:
    """(B, C, H, W) missing-pixel mask -> (B, H/p, W/p): tokens whose patch holds a missing pixel."""
    B, C, H, W = miss.shape
    m = miss.any(1).reshape(B, H // patch, patch, W // patch, patch)
    return m.any(axis=(2, 4))


__all__ = ["VQTokenizer", "categorical_median", "train_tokenizer", "codebook_usage", "patch_missing"]
