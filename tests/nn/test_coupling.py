"""Coupling layers and the rational-quadratic spline: invertibility, exact log-determinants, shape."""

from __future__ import annotations

import pytest
import torch

from genzoo.nn.coupling import (
    ActNorm,
    AffineCoupling,
    InvertibleSequence,
    MixtureCDFCoupling,
    ResidualNet,
    SplineCoupling,
    coupling_partitions,
    gaussianising_spline,
    mixture_cdf,
    mixture_init,
    rq_spline,
)


def _spline_params(n: int, bins: int, scale: float = 2.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, bins, generator=g, dtype=torch.float64),
            scale * torch.randn(n, bins, generator=g, dtype=torch.float64),
            scale * torch.randn(n, bins - 1, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("bins", [2, 8, 32])
def test_spline_inverse_and_derivative(bins):
    x = torch.linspace(-4.5, 4.5, 3001, dtype=torch.float64).requires_grad_(True)
    w, h, d = _spline_params(len(x), bins, seed=bins)
    y, logdet = rq_spline(x, w, h, d, bound=3.0)
    (dydx,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(dydx.log(), logdet, atol=1e-8)
    x_back, logdet_back = rq_spline(y.detach(), w, h, d, bound=3.0, inverse=True)
    assert torch.allclose(x_back, x.detach(), atol=1e-7)
    assert torch.allclose(logdet_back, logdet.detach(), atol=1e-6)


def test_spline_monotone_and_identity_outside_bound():
    x = torch.linspace(-6, 6, 5001, dtype=torch.float64)
    w, h, d = _spline_params(1, 16, scale=3.0)
    y, logdet = rq_spline(x, w.expand(len(x), -1), h.expand(len(x), -1), d.expand(len(x), -1), bound=2.0)
    assert (y[1:] > y[:-1]).all()  # strictly increasing
    out = x.abs() > 2.0
    assert torch.equal(y[out], x[out]) and torch.equal(logdet[out], torch.zeros_like(logdet[out]))
    inside = x.abs() <= 2.0
    assert y[inside].abs().max() <= 2.0 + 1e-12  # maps the interval onto itself
    assert (y[inside] - x[inside]).abs().max() > 0.1  # and is not the identity inside


def test_spline_zero_parameters_is_identity():
    x = torch.linspace(-3, 3, 101)
    zeros = torch.zeros(len(x), 8)
    y, logdet = rq_spline(x, zeros, zeros, zeros[:, :7], bound=3.0)
    assert torch.allclose(y, x, atol=1e-5) and logdet.abs().max() < 1e-2


def _random_flow(cls, dim: int, n_layers: int = 4, context_dim: int = 0) -> InvertibleSequence:
    torch.manual_seed(dim)
    layers = []
    for cond, trans in coupling_partitions(dim, n_layers):
        layers += [ActNorm(dim), cls(dim, cond, trans, hidden=16, blocks=1, context_dim=context_dim)]
    flow = InvertibleSequence(layers).double()
    with torch.no_grad():  # move away from the identity initialisation
        for p in flow.parameters():
            p.add_(0.15 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("cls", [AffineCoupling, SplineCoupling, MixtureCDFCoupling])
@pytest.mark.parametrize("dim", [2, 3, 5])
def test_coupling_inverse_and_logdet_match_autograd_jacobian(cls, dim):
    flow = _random_flow(cls, dim, context_dim=3)
    x = 1.5 * torch.randn(6, dim, dtype=torch.float64)
    ctx = torch.randn(6, 3, dtype=torch.float64)
    u, logdet = flow(x, ctx)
    assert (u - x).abs().max() > 1e-2  # not the identity
    x_back, _ = flow.inverse(u, ctx)
    assert torch.allclose(x_back, x, atol=1e-8)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v, i=i: flow(v[None], ctx[i:i + 1])[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac)[1], logdet[i], atol=1e-8)


def test_context_changes_the_map():
    flow = _random_flow(SplineCoupling, 3, context_dim=2)
    x = torch.randn(4, 3, dtype=torch.float64)
    u1, _ = flow(x, torch.zeros(4, 2, dtype=torch.float64))
    u2, _ = flow(x, torch.ones(4, 2, dtype=torch.float64))
    assert (u1 - u2).abs().max() > 1e-3


@pytest.mark.parametrize("dim", [2, 3, 4, 5, 7])
def test_partitions_cover_every_coordinate_each_pair(dim):
    parts = coupling_partitions(dim, 8)
    assert len(parts) == 8
    for i in range(0, 8, 2):
        transformed = set(parts[i][1]) | set(parts[i + 1][1])
        assert transformed == set(range(dim))
        for cond, trans in parts[i:i + 2]:
            assert cond and trans and not set(cond) & set(trans) and set(cond) | set(trans) == set(range(dim))
    if dim > 3:  # the split changes between pairs, so every coordinate eventually informs the others
        assert len({tuple(p[0]) for p in parts}) > 2
    with pytest.raises(ValueError):
        coupling_partitions(1, 2)


def test_actnorm_initialise_standardises_and_inverts():
    x = 3 + 2 * torch.randn(500, 3)
    a = ActNorm(3)
    a.initialize(x)
    u, logdet = a(x)
    assert torch.allclose(u.mean(0), torch.zeros(3), atol=1e-4) and torch.allclose(u.std(0), torch.ones(3), atol=1e-4)
    assert torch.allclose(logdet, -torch.log(x.std(0)).sum().expand(500), atol=1e-4)
    assert torch.allclose(a.inverse(u)[0], x, atol=1e-4)


def test_residual_net_starts_at_zero_and_uses_context():
    net = ResidualNet(2, 5, hidden=8, blocks=2, context_dim=3)
    x = torch.randn(4, 2)
    assert torch.equal(net(x, torch.randn(4, 3)), torch.zeros(4, 5))
    with torch.no_grad():
        net.out[1].weight.normal_()
    assert (net(x, torch.zeros(4, 3)) - net(x, torch.ones(4, 3))).abs().max() > 1e-4


def test_gaussianising_spline_maps_a_sharp_mixture_to_a_standard_normal():
    """The data-dependent start: two sharp peaks (std 0.05) come out as N(0, 1) in distribution."""
    g = torch.Generator().manual_seed(0)
    v = torch.where(torch.rand(20_000, generator=g) < 0.3, -1.0, 0.8) + 0.05 * torch.randn(20_000, generator=g)
    p = gaussianising_spline(v[:10_000], bins=32, bound=3.0)
    assert p.shape == (3 * 32 - 1,)
    u, logdet = rq_spline(v[10_000:], *(q.expand(10_000, -1) for q in (p[:32], p[32:64], p[64:])), bound=3.0)
    probs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    normal = torch.distributions.Normal(0.0, 1.0).icdf(probs)
    assert torch.allclose(torch.quantile(u, probs), normal, atol=0.1)
    # and the implied density is close to the truth: mean log-density within 0.1 nats of it
    comps = [torch.log(torch.tensor(w)) - 0.5 * ((v[10_000:] - c) / 0.05) ** 2 for w, c in ((0.3, -1.0), (0.7, 0.8))]
    true = torch.logsumexp(torch.stack(comps), 0) - torch.log(torch.tensor(0.05 * 2.5066283))
    model = -0.5 * u * u - 0.9189385 + logdet
    assert 0 < (true - model).mean() < 0.1


def test_spline_coupling_initialise_starts_from_the_marginal_gaussianisation():
    torch.manual_seed(0)
    x = torch.stack([torch.randn(4000), torch.where(torch.rand(4000) < 0.5, -1.0, 1.0) + 0.1 * torch.randn(4000)], 1)
    layer = SplineCoupling(2, [0], [1], hidden=8, blocks=1, bins=16, bound=3.0)
    layer.initialize(x)
    u, _ = layer(x)
    assert torch.equal(u[:, 0], x[:, 0])  # the conditioning coordinate passes through
    assert abs(u[:, 1].mean()) < 0.05 and abs(u[:, 1].std() - 1) < 0.05 and (u[:, 1].abs() < 0.3).float().mean() > 0.2


def test_mixture_cdf_inverts_and_its_logdet_is_the_derivative_even_far_out():
    g = torch.Generator().manual_seed(1)
    lg, mu, ls = torch.randn(3, 50, 6, generator=g, dtype=torch.float64)
    ls = ls - 2
    x = torch.cat([3 * torch.randn(47, generator=g, dtype=torch.float64),
                   torch.tensor([-60.0, 45.0, 300.0], dtype=torch.float64)]).requires_grad_()
    y, logdet = mixture_cdf(x, lg, mu, ls)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(dy.log(), logdet, atol=1e-6)
    x_back, logdet_back = mixture_cdf(y.detach(), lg, mu, ls, inverse=True)
    assert torch.allclose(x_back, x.detach(), atol=1e-8) and torch.allclose(logdet_back, logdet.detach(), atol=1e-6)


def test_mixture_init_maps_a_sharp_mixture_to_a_standard_normal():
    """The mixture-CDF layer's data start: two thin peaks come out as N(0, 1), density near the truth."""
    g = torch.Generator().manual_seed(0)
    v = torch.where(torch.rand(20_000, generator=g) < 0.3, -1.0, 0.8) + 0.05 * torch.randn(20_000, generator=g)
    p = mixture_init(v[:10_000], components=4)
    u, logdet = mixture_cdf(v[10_000:], *(q.expand(10_000, -1) for q in (p[:4], p[4:8], p[8:])))
    probs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    assert torch.allclose(torch.quantile(u, probs), torch.distributions.Normal(0.0, 1.0).icdf(probs), atol=0.08)
    comps = [torch.log(torch.tensor(w)) - 0.5 * ((v[10_000:] - c) / 0.05) ** 2 for w, c in ((0.3, -1.0), (0.7, 0.8))]
    true = torch.logsumexp(torch.stack(comps), 0) - torch.log(torch.tensor(0.05 * 2.5066283))
    model = -0.5 * u * u - 0.9189385 + logdet
    assert -0.01 < (true - model).mean() < 0.01  # a mixture describes a mixture almost exactly
