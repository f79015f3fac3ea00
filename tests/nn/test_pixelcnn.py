"""The PixelCNN is causal in raster order and sees the whole past (no blind spot)."""

from __future__ import annotations

import pytest
import torch

from genzoo.nn.pixelcnn import PixelCNN


@pytest.mark.parametrize("shape", [(8, 8), (5, 7)])
def test_output_i_depends_on_exactly_the_pixels_before_i(shape):
    torch.manual_seed(0)
    H, W = shape
    net = PixelCNN(shape, 3, channels=8, blocks=4, context_dim=2)
    torch.nn.init.normal_(net.out.weight)  # the zero-initialised output would hide every dependence
    x = torch.randn(1, H * W, requires_grad=True)
    out = net(x, torch.randn(1, 2))
    assert out.shape == (1, H * W, 3)
    for i in range(H * W):
        (g,) = torch.autograd.grad(out[0, i].sum(), x, retain_graph=True)
        assert (g[0, i:] == 0).all(), f"output {i} sees pixel >= {i}"
        assert (g[0, :i] != 0).all(), f"output {i} misses a pixel before it (a blind spot)"


def test_the_context_reaches_the_first_pixel():
    torch.manual_seed(0)
    net = PixelCNN((4, 4), 2, channels=8, blocks=2, context_dim=3)
    torch.nn.init.normal_(net.out.weight)
    x = torch.zeros(2, 16)
    out = net(x, torch.randn(2, 3))
    assert not torch.allclose(out[0, 0], out[1, 0])
