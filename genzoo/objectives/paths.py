"""The linear probability path and its flow-matching objective.

Shared by flow matching, rectified flow and consistency models (none of those families
imports another; they all import this).

- :func:`linear_path`: the conditional path ``x_t = (1 - t) x0 + t x1`` and its velocity
  ``x1 - x0`` (Lipman et al. 2023 with sigma_min = 0; Liu et al. 2023; Albergo &
  Vanden-Eijnden 2023). Time runs from noise (t = 0) to data (t = 1).
- :func:`sample_time`: the training-time distribution.
- :func:`stable_velocity_target`: the marginal velocity estimated over the batch (a
  low-variance target); :func:`use_stable_target` resolves a family's option for it.
- :func:`cfm_loss`: the conditional flow-matching regression ``E |v(x_t, t, y) - (x1 - x0)|^2``,
  with label dropout for classifier-free guidance.

The coupling of noise and data (minibatch OT) is :func:`genzoo.objectives.couplings.ot_pairing`.
"""

from __future__ import annotations

import torch
from torch import nn

from genzoo.objectives.couplings import ot_pairing
from genzoo.objectives.guidance import drop_labels
from genzoo.objectives.targets import batch_posterior_mean


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Point ``x_t = (1 - t) x0 + t x1`` and target velocity ``d x_t / dt = x1 - x0``; ``t``: (B,)."""
    tt = t[:, None]  # (B, 1)
    return (1 - tt) * x0 + tt * x1, x1 - x0


def sample_time(n: int, kind: str = "uniform", device=None) -> torch.Tensor:
    """Training times in [0, 1): ``'uniform'``, or ``'end'``: half uniform, half with ``1 - t``
    log-uniform on [1e-4, 1] (more draws where a thin mode's width is decided, near the data).

    The time distribution weights the per-time regressions; it does not change their
    minimiser (the marginal velocity), so any choice with full support is unbiased.
    """
    u = torch.rand(n, device=device)
    if kind == "uniform":
        return u
    if kind != "end":
        raise ValueError(f"time_dist must be 'uniform' or 'end'; got {kind!r}")
    end = 1 - torch.pow(torch.tensor(1e-4, device=device), torch.rand(n, device=device))
    return torch.where(torch.rand(n, device=device) < 0.5, u, end)


def stable_velocity_target(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
                           y: torch.Tensor | None = None, free: torch.Tensor | None = None) -> torch.Tensor:
    """The marginal velocity at ``x_t`` estimated over the whole batch (a stable target field).

    For independent noise the marginal field is ``(E[x1 | x_t] - x_t) / (1 - t)`` (Lipman et
    al. 2023); ``E[x1 | x_t]`` is estimated with the batch's data rows as the reference,
    weights ``N(x_t; t x1_j, (1 - t)^2 I)`` (Xu et al. 2023's stable target field, the same
    estimate the ``score`` family uses in its sigma space). It replaces the single-pair target
    ``x1 - x0``, whose variance at mid ``t`` is of the order of the data's spread, by a
    batch average with almost none; at ``t -> 1`` the weights collapse on the row's own pair
    and the two agree. With labels ``y`` the reference is the row's own class, except for the
    rows marked in ``free`` (label dropped: they learn the unconditional field). Returned as
    ``(x1 - x0) + (E[x1 | x_t] - x1) / (1 - t)``, which stays finite as ``t -> 1``.
    """
    xt = linear_path(x0, x1, t)[0]
    one_m = (1 - t.double()).clamp_min(1e-6)[:, None]
    x1_hat = batch_posterior_mean(xt, t, (1 - t).clamp_min(1e-6), x1, y, free)
    r = x1.double()
    return ((r - x0.double()) + (x1_hat - r) / one_m).to(x1.dtype)


def use_stable_target(stable_target, coupling: str) -> bool:
    """Resolve a family's ``stable_target`` option (``'auto'``, True, False) against its coupling.

    ``'auto'``: the stable target whenever the noise is independent; True with minibatch OT is
    an error, since the batch average assumes independent noise.
    """
    if stable_target not in ("auto", True, False):
        raise ValueError(f"stable_target must be 'auto', True or False; got {stable_target!r}")
    if stable_target is True and coupling != "independent":
        raise ValueError("stable_target=True needs coupling='independent' (it averages over independent noise)")
    return coupling == "independent" if stable_target == "auto" else bool(stable_target)


def cfm_loss(net: nn.Module, x1: torch.Tensor, y: torch.Tensor | None = None, *,
             x0: torch.Tensor | None = None, coupling: str = "ot", label_dropout: float = 0.0,
             n_classes: int = 0, t: torch.Tensor | None = None, ot_chunk: int | None = 64,
             time_dist: str = "uniform", stable_target: bool = False) -> torch.Tensor:
    """Conditional flow matching: ``mean |v(x_t, t, y) - u|^2`` on the linear path.

    ``x0``: the source points paired with ``x1`` (default: fresh N(0, I) noise, coupled to
    ``x1`` by ``coupling`` = 'ot' or 'independent'; a reflow passes its own fixed pairs
    with ``coupling='independent'``). ``u`` is the pair's velocity ``x1 - x0`` or, with
    ``stable_target`` (independent noise only), :func:`stable_velocity_target`.
    ``label_dropout``: share of labels replaced by the null class ``n_classes``
    (:func:`genzoo.objectives.guidance.drop_labels`) so one network also learns the
    unconditional field.
    """
    B = x1.shape[0]
    if coupling not in ("ot", "independent"):
        raise ValueError(f"coupling must be 'ot' or 'independent'; got {coupling!r}")
    if stable_target and (coupling != "independent" or x0 is not None):
        raise ValueError("stable_target needs fresh independent noise (coupling='independent')")
    if x0 is None:
        x0 = torch.randn_like(x1)
    if coupling == "ot":
        x0 = ot_pairing(x0, x1, y, chunk=ot_chunk)
    if t is None:
        t = sample_time(B, time_dist, x1.device)
    xt, ut = linear_path(x0, x1, t)  # (B, D), (B, D)
    y_in = drop_labels(y, float(label_dropout), n_classes)
    if stable_target:
        ut = stable_velocity_target(x0, x1, t, y, None if y is None else y_in == n_classes)
    return ((net(xt, t, y_in) - ut) ** 2).sum(1).mean()


__all__ = ["linear_path", "sample_time", "stable_velocity_target", "use_stable_target", "cfm_loss"]
