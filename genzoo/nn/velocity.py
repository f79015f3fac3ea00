"""The velocity network of the continuous-time families (flow matching, rectified flow,
consistency models): ``v(x, t, y)``, and the same network with an average of its weights.

Networks only. The probability path and its objective are in :mod:`genzoo.objectives.paths`
(``linear_path``, ``cfm_loss``, ``stable_velocity_target``) and
:mod:`genzoo.objectives.couplings` (``ot_pairing``); guidance mixing in
:mod:`genzoo.objectives.guidance`; the ODE time change ``log_time`` and ``path_energy`` in
:mod:`genzoo.samplers.ode`; RePaint on the path in :mod:`genzoo.samplers.inpainting`.
"""

from __future__ import annotations

import torch
from torch import nn

from genzoo.nn.gaussian_mixture import GaussianMixtureField
from genzoo.nn.mlp import ConditionedMLP
from genzoo.training import EMA


class VelocityNet(nn.Module):
    """``v(x, t, y)``: an MLP on ``[x, features of the time, label embedding]`` -> ``(B, dim)``.

    ``time_input='logit'`` feeds the network ``log(t / (1 - t))`` (half the log signal-to-noise
    ratio of the linear path) instead of ``t``: the field changes on the scale of ``1 - t``
    near the data, so in ``t`` the last few percent of the interval hold most of the
    structure, while in logit time it is spread evenly (as diffusion models use log-SNR).

    ``prior_components > 0``: the network's output is added to the closed-form velocity of the path to
    a Gaussian mixture (:class:`genzoo.nn.gaussian_mixture.GaussianMixtureField`, filled by
    ``prior.set_mixture``), so it learns only what that mixture gets wrong; its last layer then starts at
    zero, so the model starts as the mixture.
    """

    def __init__(self, dim: int, n_classes: int = 0, *, hidden: int = 256, layers: int = 3, time_dim: int = 32,
                 time_scale: float = 4.0, time_input: str = "logit", logit_max: float = 12.0,
                 fourier_features: int = 0, fourier_scale: float = 5.0, prior_components: int = 0):
        super().__init__()
        self.prior = GaussianMixtureField(dim, prior_components) if prior_components else None
        if time_input not in ("logit", "t"):
            raise ValueError(f"time_input must be 'logit' or 't'; got {time_input!r}")
        self.time_input = time_input
        self.logit_max = float(logit_max)
        self.mlp = ConditionedMLP(dim, dim, hidden, layers, time_dim=time_dim, n_classes=n_classes,
                                  time_scale=time_scale, fourier_features=fourier_features,
                                  fourier_scale=fourier_scale, zero_last=bool(prior_components))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.dim() == 0 else t  # (B,)
        prior = None if self.prior is None else self.prior(x, t, 1 - t, "velocity")
        if self.time_input == "logit":  # adaptive solvers may probe stages just past t = 1: clamp first
            t = t.clamp(0.0, 1.0)
            t = (torch.log(t) - torch.log1p(-t)).clamp(-self.logit_max, self.logit_max)
        out = self.mlp(x, t, y)
        return out if prior is None else out + prior


def velocity_net(dim: int, n_classes: int = 0, **kw) -> nn.Module:
    """The velocity network the continuous-time families share (see ``VelocityNet``)."""
    return VelocityNet(dim, n_classes, **kw)


class VelocityModel(nn.Module):
    """A velocity network plus an exponential moving average of its weights (Polyak averaging).

    The averaged weights are buffers (``ema_<name>``, kept by ``self.ema``, a
    ``genzoo.training.EMA``): saved with the module, never given a gradient;
    ``forward(x, t, y, ema=True)`` evaluates the network with them. Samplers use the average,
    which removes most of the step-to-step noise of the last SGD iterates.
    """

    def __init__(self, net: nn.Module, ema_decay: float = 0.999):
        super().__init__()
        self.net = net
        self.ema = EMA(net, ema_decay, host=self)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                ema: bool = False) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        if ema:
            return torch.func.functional_call(self.net, self.ema.params(), (x, t, y))
        return self.net(x, t, y)


__all__ = ["velocity_net", "VelocityModel", "VelocityNet"]
