"""Classifier-free guidance (Ho & Salimans 2021), written once for every family.

One convention for the whole package, the same as diffusers':

    out = uncond + g * (cond - uncond)

``g = 1`` is the plain conditional model, ``g = 0`` the unconditional (null-label) one and
``g > 1`` sharpens the class. Ho & Salimans write ``(1 + w) cond - w uncond``: their ``w`` is
``g - 1``. A family trains one network for both predictions by replacing a share of the
labels with a null class (:func:`drop_labels`) and samples through :func:`guided`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor


def mix_guidance(cond: Tensor, uncond: Tensor, g: float) -> Tensor:
    """``uncond + g (cond - uncond)``: g = 0 unconditional, g = 1 conditional, g > 1 guided."""
    return uncond + g * (cond - uncond)


def drop_labels(y: Tensor | None, p: float, null: int) -> Tensor | None:
    """Replace each label by the null class ``null`` with probability ``p`` (uses torch's RNG)."""
    if y is None or p <= 0:
        return y
    return torch.where(torch.rand(y.shape, device=y.device) < p, torch.full_like(y, null), y)


def guided(fn: Callable[..., Tensor], y: Tensor | None, g: float,
           null: int | None) -> tuple[Callable[..., Tensor], int]:
    """Wrap ``fn(x, *args, labels)`` into ``f(x, *args)`` that applies guidance ``g`` for labels ``y``.

    ``null`` is the null-label index (None for a model fitted without labels). Returns the
    wrapped function and the network evaluations it costs per call (1, or 2 when both the
    conditional and the unconditional prediction are needed; they go through ``fn`` as one
    batch). Positional tensors with a leading batch dimension are batched with ``x``.
    """
    g = float(g)
    if null is None or y is None:
        return (lambda x, *args: fn(x, *args, None)), 1
    if g == 1:
        return (lambda x, *args: fn(x, *args, y)), 1
    if g == 0:
        return (lambda x, *args: fn(x, *args, torch.full((len(x),), null, dtype=torch.long, device=x.device))), 1

    def f(x: Tensor, *args):
        n = len(x)
        twice = [torch.cat([a, a]) if isinstance(a, Tensor) and a.dim() > 0 and len(a) == n else a for a in args]
        labels = torch.cat([y, torch.full_like(y, null)])
        out = fn(torch.cat([x, x]), *twice, labels)
        return mix_guidance(out[:n], out[n:], g)

    return f, 2


def guided_velocity(net: Callable[..., Tensor], y: Tensor | None = None, guidance: float = 1.0,
                    n_classes: int = 0) -> Callable[[Tensor, Tensor], Tensor]:
    """The ODE right-hand side ``f(x, t)`` of a velocity net ``net(x, t, labels)``: unconditional
    (``y=None``), conditional (``guidance=1``) or guided; ``n_classes`` is the null label (0: none)."""
    return guided(net, y, guidance, n_classes if n_classes else None)[0]
