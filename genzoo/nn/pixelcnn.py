"""A small PixelCNN (van den Oord et al. 2016): masked convolutions, causal in raster order.

Drop-in for MADE on one-channel images: ``x (B, H*W) [, context (B, C)] -> (B, H*W, P)``, the
outputs of pixel ``i`` (raster order, the natural order of the flattened row) a function of
pixels ``< i`` only. The first layer is a ``k x k`` convolution whose mask keeps the rows above
and the pixels to the left in the centre row ("type A": not the centre); the rest are residual
3x3 "type B" blocks (the centre kept, so a pixel's own features pass on) and 1x1 output layers.
Convolutions share weights across positions, the inductive bias that lets an image model learn
from a thousand images where a fully connected MADE overfits. Like every plain masked-conv
stack it has a blind spot (a few pixels up and to the right that no output sees, beyond the
first layer's reach); with a 7x7 first layer on 8x8 images that is a small corner of the past.
A context (a label embedding) is added to every hidden unit, as in MADE.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (odd square kernel, same padding) masked to the past in raster order;
    ``centre``: whether the centre tap is kept (type B) or not (type A)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, centre: bool):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        mask = torch.zeros(kernel, kernel)
        mask[:kernel // 2] = 1.0  # every row above
        mask[kernel // 2, :kernel // 2 + (1 if centre else 0)] = 1.0  # the centre row, left of (or at) the centre
        self.register_buffer("mask", mask[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """``x (B, H*W) [, context] -> (B, H*W, out_per_pixel)``, output ``i`` a function of ``x[:, :i]``.

    ``channels`` feature maps, ``blocks`` residual type-B blocks after the type-A input layer,
    ``dropout`` on the hidden units while training. The output layer is zero-initialised (the
    network starts from the same constant output everywhere, as MADE does).
    """

    def __init__(self, shape: tuple[int, int], out_per_pixel: int, channels: int = 64, blocks: int = 4,
                 kernel: int = 7, context_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        self.shape, self.out_per_pixel = tuple(shape), int(out_per_pixel)
        self.inp = MaskedConv2d(1, channels, kernel, centre=False)
        self.blocks = nn.ModuleList(MaskedConv2d(channels, channels, 3, centre=True) for _ in range(blocks))
        self.mid = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, out_per_pixel, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.ctx_in = nn.Linear(context_dim, channels) if context_dim else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        H, W = self.shape
        h = self.inp(x.view(-1, 1, H, W))
        if self.ctx_in is not None:
            if context is None:
                raise ValueError("this PixelCNN was built with a context; pass one")
            h = h + self.ctx_in(context)[:, :, None, None]
        for blk in self.blocks:
            h = h + blk(self.drop(self.act(h)))
        out = self.out(self.drop(self.act(self.mid(self.act(h)))))  # (B, P, H, W)
        return out.flatten(2).transpose(1, 2)  # (B, H*W, P), raster order


__all__ = ["MaskedConv2d", "PixelCNN"]
