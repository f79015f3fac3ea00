"""The batch posterior mean behind the stable targets of score, diffusion and flow matching."""

from __future__ import annotations

import math

import torch

from genzoo.objectives.targets import batch_posterior_mean


def _by_hand(x, a, s, ref, keep):
    out = []
    for i in range(len(x)):
        logw = torch.tensor([-float(((x[i] - a[i] * ref[j]) ** 2).sum()) / (2 * float(s[i]) ** 2) if keep[i, j]
                             else -math.inf for j in range(len(ref))], dtype=torch.float64)
        out.append(torch.softmax(logw, 0) @ ref.double())
    return torch.stack(out)


def test_weights_are_the_gaussian_likelihood_of_each_reference_row():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(12, 3, generator=g)
    a, s = torch.rand(12, generator=g) + 0.2, torch.rand(12, generator=g) + 0.1
    x = a[:, None] * ref + s[:, None] * torch.randn(12, 3, generator=g)
    got = batch_posterior_mean(x, a, s, ref)
    torch.testing.assert_close(got, _by_hand(x, a, s, ref, torch.ones(12, 12, dtype=torch.bool)))


def test_labels_restrict_the_reference_unless_the_row_is_free():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(8, 2, generator=g)
    y = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    free = torch.tensor([False, True, False, False, False, False, True, False])
    a, s = torch.full((8,), 0.8), torch.full((8,), 0.6)
    x = 0.8 * ref + 0.6 * torch.randn(8, 2, generator=g)
    keep = (y[:, None] == y[None]) | free[:, None]
    torch.testing.assert_close(batch_posterior_mean(x, a, s, ref, y, free), _by_hand(x, a, s, ref, keep))


def test_limits_own_row_at_low_noise_and_batch_mean_at_high_noise():
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(64, 2, generator=g)
    eps = torch.randn(64, 2, generator=g)
    low = torch.full((64,), 1e-4)
    torch.testing.assert_close(batch_posterior_mean(ref + 1e-4 * eps, torch.ones(64), low, ref), ref.double())
    high = torch.full((64,), 1e4)
    got = batch_posterior_mean(ref + 1e4 * eps, torch.ones(64), high, ref)
    torch.testing.assert_close(got, ref.double().mean(0).expand(64, 2), atol=1e-3, rtol=0)
