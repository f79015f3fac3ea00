"""Masked autoencoder for distribution estimation (MADE; Germain et al. 2015).

One feed-forward pass maps ``x`` (B, D) to per-coordinate outputs (B, D, P) such that the
outputs for coordinate ``i`` depend only on ``x[:, :i]`` (the autoregressive property, in
the natural order 0, 1, ..., D-1). This is done by masking the weights: every hidden unit
gets a degree ``m`` and sees only inputs ``j < m`` (0-based), and the outputs of
coordinate ``i`` see only hidden units of degree ``<= i``.

An optional context vector (e.g. a label embedding) enters every hidden unit unmasked, so
it may inform every conditional without breaking the property. With a context, hidden
degrees run over ``0..D-1``: degree-0 units see the context alone, so even the first
coordinate's outputs are a nonlinear function of it. Without one, degrees run over
``1..D-1`` and the first coordinate's outputs are learned constants.
Hidden layers after the first are residual masked blocks (``h + W act(h)``); the masks keep
the degrees, and residual blocks train faster than a plain stack.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask ``(out, in)``."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """``x (B, D) [, context (B, C)] -> (B, D, out_per_dim)``, output ``i`` a function of ``x[:, :i]``.

    ``hidden`` units per layer (degrees assigned cyclically, so every degree is represented
    equally), ``layers`` hidden layers: the first a masked input projection,
    the rest residual masked blocks. The last layer is zero-initialised, so the network
    starts from the same constant output for every input (a stable start for a density).
    ``dropout``: on the hidden units while training (a regulariser for small data sets).
    """

    def __init__(self, dim: int, out_per_dim: int, hidden: int = 256, layers: int = 3,
                 context_dim: int = 0, activation: type[nn.Module] = nn.SiLU, dropout: float = 0.0):
        super().__init__()
        if dim < 1:
            raise ValueError(f"MADE needs dim >= 1; got {dim}")
        self.dim, self.out_per_dim = dim, out_per_dim
        d_in = torch.arange(dim)  # input j has degree j (0-based): it may inform outputs i > j
        # hidden degrees, spread evenly: 0..D-1 with a context (degree 0 = context only), else 1..D-1
        low = 0 if (context_dim or dim == 1) else 1
        d_h = low + torch.arange(hidden) % max(1, dim - low)  # (H,); a unit of degree m sees inputs j < m
        d_out = torch.arange(dim).repeat_interleave(out_per_dim)  # (D*P,) output block of coordinate i
        m_in = (d_h[:, None] > d_in[None, :])  # (H, D): unit of degree m sees inputs j < m
        m_hh = (d_h[:, None] >= d_h[None, :])  # (H, H): degrees never decrease
        m_out = (d_out[:, None] >= d_h[None, :])  # (D*P, H): output i sees degrees m <= i
        self.inp = MaskedLinear(dim, hidden, m_in)
        self.blocks = nn.ModuleList(MaskedLinear(hidden, hidden, m_hh) for _ in range(max(0, layers - 1)))
        self.out = MaskedLinear(hidden, dim * out_per_dim, m_out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = activation()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # on hidden units, training only
        self.ctx_in = nn.Linear(context_dim, hidden) if context_dim else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(x)  # (B, H)
        if self.ctx_in is not None:
            if context is None:
                raise ValueError("this MADE was built with a context; pass one")
            h = h + self.ctx_in(context)
        for blk in self.blocks:
            h = h + blk(self.drop(self.act(h)))  # residual masked block, (B, H)
        out = self.out(self.drop(self.act(h)))  # (B, D*P)
        return out.view(x.shape[0], self.dim, self.out_per_dim)


__all__ = ["MADE", "MaskedLinear"]
