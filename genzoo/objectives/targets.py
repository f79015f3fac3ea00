"""Stable regression targets: the posterior mean of the clean point over the whole batch.

Denoising objectives regress on one clean row per noisy point, a target whose variance at
middle noise levels is of the order of the data's spread. Averaging over the batch instead
(Xu et al. 2023, "Stable Target Field") keeps the minimiser, E[x | x_noisy], and removes most
of that variance. ``score``, ``diffusion`` and ``flow_matching`` share the estimate; each
writes its own target from it (``genzoo.objectives.paths.stable_velocity_target`` for the linear path).
"""

from __future__ import annotations

import math

import torch


def batch_posterior_mean(x_noisy: torch.Tensor, scale: torch.Tensor, sigma: torch.Tensor, ref: torch.Tensor,
                         y: torch.Tensor | None = None, free: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_j w_ij ref_j`` with ``w_ij`` proportional to ``N(x_noisy_i; scale_i ref_j, sigma_i^2 I)``.

    ``x_noisy = scale * x + sigma * eps`` row by row (``scale``, ``sigma``: (B,)). With labels
    ``y`` a row's reference is its own class, except rows marked in ``free`` (label dropped:
    they learn the unconditional model). Computed in float64 by one matmul: at small ``sigma``
    the logits reach ~1e6 and the weights collapse on the row's own clean point.
    """
    r = ref.double()
    a, s2 = scale.double()[:, None], sigma.double()[:, None] ** 2
    # -|x_i - a_i r_j|^2 / (2 s_i^2) up to a per-row constant, as one matmul of augmented rows
    rows = torch.cat([x_noisy.double() * (a / s2), -(a * a) / s2], 1)  # (B, D + 1)
    cols = torch.cat([r, 0.5 * (r * r).sum(1, keepdim=True)], 1)  # (B_ref, D + 1)
    logw = rows @ cols.T  # (B, B_ref)
    if y is not None:
        other = y[:, None] != y[None]
        if free is not None:
            other = other & ~free[:, None]
        logw = logw.masked_fill(other, -math.inf)
    return torch.softmax(logw, 1) @ r  # (B, D), float64


__all__ = ["batch_posterior_mean"]
