"""A small pre-norm transformer over token sequences (causal or bidirectional), no loss inside.

Shape of the computation (``B`` sequences of ``T`` tokens, ``C`` channels)::

    idx (B, T) -> token + position (+ label) embeddings (B, T, C)
               -> n_layers x [x + Attn(LN(x)); x + MLP(LN(x))]
               -> LN -> linear head (B, T, n_out)

``causal=True`` lets position t attend to positions <= t (an autoregressive model);
``causal=False`` lets every position see every other one (a masked / denoising model).

Several short sequences can share one row ("packing"): ``segments`` (B, T) numbers them and
attention never crosses from one to another, ``positions`` restarts at 0 in each, so a packed
row computes exactly what each sequence would compute alone, without padding. Conditioning
(labels, a prompt) enters as tokens, e.g. a label token in front of each sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ByteDropout(nn.Module):
    """Dropout whose keep/drop draws are random bytes: ``p`` is rounded to a multiple of 1/256 and
    the kept entries are scaled by 1 / (1 - p_rounded), so the expectation is unchanged.

    Why: on a CPU, PyTorch's Bernoulli sampler drew one random number per entry and cost 17% of a
    text training step; seven random bytes per 64-bit draw cost a few percent."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {p}")
        self.p = p
        self.threshold = round(p * 256)  # a byte below it drops its entry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        m = -(-n // 7)  # 64-bit draws; their top byte has only 7 random bits and is not used
        b = torch.empty(m, dtype=torch.int64, device=x.device).random_()
        b = b.view(torch.uint8).view(m, 8)[:, :7].reshape(-1)[:n].view(x.shape)
        keep = (b >= self.threshold).to(x.dtype) * (256.0 / (256 - self.threshold))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (no dropout on the attention
    weights: on a CPU it costs a tenth of a step and the residual dropout regularises enough)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, causal: bool, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (a.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for a in (q, k, v))  # (B, H, T, c)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           is_causal=causal and attn_mask is None)  # (B, H, T, c)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm transformer block: attention then a GELU MLP, each on a residual branch."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model))
        self.drop = ByteDropout(dropout)

    def forward(self, x: torch.Tensor, causal: bool, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), causal, attn_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class Transformer(nn.Module):
    """Token sequences ``(B, T)`` of ids in ``[0, vocab_size)`` -> per-position outputs ``(B, T, n_out)``.

    Parameters: ``max_len`` positions at most (per sequence); ``d_model`` channels, ``n_layers``
    blocks of ``n_heads`` heads; ``causal`` chooses the attention pattern; ``end_positions`` adds a
    second position embedding counted from each sequence's end (a bidirectional model then
    knows every sequence's length).
    """

    def __init__(self, vocab_size: int, n_out: int, max_len: int, *, d_model: int = 128, n_layers: int = 4,
                 n_heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.0, causal: bool = True,
                 end_positions: bool = False):
        super().__init__()
        self.causal, self.max_len = causal, max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.end_pos = nn.Embedding(max_len, d_model) if end_positions else None
        self.drop = ByteDropout(dropout)
        self.blocks = nn.ModuleList([Block(d_model, n_heads, mlp_ratio, dropout) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_out)
        self.apply(self._init)
        for name, p in self.named_parameters():  # residual projections scaled down with depth (GPT-2)
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, 0.0, 0.02 / (2 * n_layers) ** 0.5)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """``idx`` (B, T) token ids; ``segments`` (B, T) sequence numbers of a packed row, or None
        for one sequence per row. Positions with a negative segment are padding: nothing else
        attends to them."""
        B, T = idx.shape
        if segments is None:
            if T > self.max_len:
                raise ValueError(f"sequence of {T} tokens is longer than the network's {self.max_len} positions")
            pos = torch.arange(T, device=idx.device).expand(B, T)  # (B, T)
            end = pos.flip(1)
            mask = None
        else:
            pos, end = _offsets(segments)  # (B, T) each: distance to the segment's start / end
            if int(pos.max()) >= self.max_len:
                raise ValueError(f"a packed sequence is longer than the network's {self.max_len} positions")
            same = segments[:, :, None] == segments[:, None, :]  # (B, T, T) query i may see key j
            if self.causal:
                same = same & torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
            # additive mask (B, 1, T, T), made once for every block and broadcast over heads
            mask = torch.zeros(same.shape, device=idx.device).masked_fill_(~same, -float("inf"))[:, None]
        x = self.tok(idx) + self.pos(pos)  # (B, T, C)
        if self.end_pos is not None:
            x = x + self.end_pos(end)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, self.causal, mask)
        return self.head(self.ln_f(x))  # (B, T, n_out)


def _offsets(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a packed row of contiguous segments (B, T): each position's offset from its segment's
    first and last position (0 for padding)."""
    B, T = segments.shape
    ar = torch.arange(T, device=segments.device).expand(B, T)
    new = torch.ones_like(segments, dtype=torch.bool)
    new[:, 1:] = segments[:, 1:] != segments[:, :-1]  # a segment starts here
    start = torch.cummax(torch.where(new, ar, torch.zeros_like(ar)), 1).values
    last = torch.ones_like(new)
    last[:, :-1] = new[:, 1:]  # a segment ends here
    end = torch.where(last, ar, torch.full_like(ar, T)).flip(1).cummin(1).values.flip(1)
    pad = segments < 0
    return torch.where(pad, 0, ar - start), torch.where(pad, 0, end - ar)


__all__ = ["Transformer", "Block", "SelfAttention", "ByteDropout"]
