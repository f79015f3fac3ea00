"""The transformer's byte-drawn dropout keeps the expectation and drops the stated share; packed
rows compute what each sequence computes alone."""

from __future__ import annotations

import pytest
import torch

from genzoo.nn.transformer import ByteDropout, Transformer


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_byte_dropout_drops_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    d = ByteDropout(p).train()
    x = torch.ones(400_000)
    y = d(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - round(p * 256) / 256) < 0.004
    assert abs(float(y.mean()) - 1.0) < 0.01
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 256 / (256 - round(p * 256))))


def test_byte_dropout_draws_are_uniform_over_positions():
    # the 64-bit draws' top byte has only 7 random bits: a position fed by it would drop too rarely
    torch.manual_seed(1)
    d = ByteDropout(0.5).train()
    y = torch.stack([d(torch.ones(7 * 8)) for _ in range(4000)])
    share = (y == 0).float().mean(0)  # per position
    assert float((share - 0.5).abs().max()) < 0.04


def test_byte_dropout_is_the_identity_in_eval_and_rejects_bad_p():
    d = ByteDropout(0.3).eval()
    x = torch.randn(10, 5)
    assert torch.equal(d(x), x)
    with pytest.raises(ValueError, match="dropout"):
        ByteDropout(1.0)


def test_gradient_flows_only_through_kept_entries():
    torch.manual_seed(2)
    x = torch.randn(1000, requires_grad=True)
    y = ByteDropout(0.25).train()(x)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y.detach() == 0)


@pytest.mark.parametrize("causal", [True, False])
def test_a_packed_row_computes_each_sequence_alone(causal):
    torch.manual_seed(3)
    net = Transformer(10, 4, 8, d_model=16, n_layers=2, n_heads=2, causal=causal, end_positions=not causal).eval()
    a, b = torch.randint(0, 10, (1, 5)), torch.randint(0, 10, (1, 3))
    packed = net(torch.cat([a, b], 1), torch.tensor([[0] * 5 + [1] * 3]))
    assert torch.allclose(packed[:, :5], net(a), atol=1e-5)
    assert torch.allclose(packed[:, 5:], net(b), atol=1e-5)
