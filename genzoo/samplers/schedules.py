"""Noise schedules of a variance-preserving (VP) diffusion, discrete and continuous.

A VP process noises data as ``x_t = alpha_t x_0 + sigma_t eps`` with ``alpha_t^2 + sigma_t^2 = 1``
and ``eps ~ N(0, I)``, for time ``t`` in [0, 1] (0 = data, 1 = noise). Every schedule here is
described by one monotone function, the log signal-to-noise ratio

    lambda(t) = log(alpha_t^2 / sigma_t^2),   alpha_t^2 = sigmoid(lambda),  sigma_t^2 = sigmoid(-lambda),

(Kingma et al. 2021, "Variational diffusion models"), so samplers, likelihoods and SDEs need
only ``log_snr``, its derivative and its inverse. The VP SDE of Song et al. (2021),
``dx = -beta(t)/2 x dt + sqrt(beta(t)) dW``, has ``beta(t) = -sigma_t^2 lambda'(t)``.

Schedules:

- :class:`CosineSchedule` -- Nichol & Dhariwal (2021): ``alpha_t = cos(pi t / 2)``, i.e.
  ``lambda = -2 log tan(pi t / 2)``, truncated to ``[lambda_min, lambda_max]`` by an affine
  map of ``t`` (the form used by Kingma & Gao 2023), so the end points are finite.
- :class:`LinearSchedule` -- the continuous VP-SDE of Song et al. (2021), the limit of
  Ho et al.'s (2020) linear betas: ``beta(t) = beta_min + t (beta_max - beta_min)``.
- :class:`LogSNRLinearSchedule` -- ``lambda`` linear in ``t`` (uniform in log-SNR).
- :class:`DiscreteSchedule` -- a DDPM schedule given by its betas (``ddpm_linear``,
  ``ddpm_cosine``): step ``i`` of ``T`` sits at ``t = i / T``; between steps ``lambda`` is
  interpolated linearly, so any sampler can respace it.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _as_tensor(t, like: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    device = like.device if like is not None else None
    return torch.as_tensor(t, dtype=dtype, device=device)


class NoiseSchedule:
    """A VP schedule on ``t`` in [0, 1], given by its log-SNR ``lambda(t)`` (decreasing).

    Subclasses implement ``log_snr`` and ``t_of_log_snr``; ``dlog_snr_dt`` defaults to a
    central difference.
    """

    name: str = "schedule"

    def log_snr(self, t) -> Tensor:
        raise NotImplementedError

    def t_of_log_snr(self, lam) -> Tensor:
        raise NotImplementedError

    def dlog_snr_dt(self, t) -> Tensor:
        t = _as_tensor(t).double()
        h = 1e-5
        lo, hi = (t - h).clamp(0, 1), (t + h).clamp(0, 1)
        return (self.log_snr(hi).double() - self.log_snr(lo).double()) / (hi - lo)

    @property
    def lambda_max(self) -> float:
        return float(self.log_snr(torch.tensor(0.0, dtype=torch.float64)))

    @property
    def lambda_min(self) -> float:
        return float(self.log_snr(torch.tensor(1.0, dtype=torch.float64)))

    def alpha_sigma(self, t) -> tuple[Tensor, Tensor]:
        """``(alpha_t, sigma_t)``, computed stably from the log-SNR."""
        return alpha_sigma_from_log_snr(self.log_snr(t))

    def beta(self, t) -> Tensor:
        """Diffusion rate of the equivalent VP SDE: ``beta(t) = -sigma_t^2 dlambda/dt`` (>= 0)."""
        t = _as_tensor(t)
        lam = self.log_snr(t)
        return -torch.sigmoid(-lam) * self.dlog_snr_dt(t).to(lam.dtype)

    def marginal(self, x0: Tensor, t, eps: Tensor) -> Tensor:
        """Forward noising ``x_t = alpha_t x_0 + sigma_t eps`` (``t`` scalar or one per row)."""
        a, s = self.alpha_sigma(_as_tensor(t, x0))
        if a.dim() == 1 and x0.dim() > 1:
            a, s = a[:, None], s[:, None]
        return a * x0 + s * eps

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lambda in [{self.lambda_min:.2f}, {self.lambda_max:.2f}])"


def alpha_sigma_from_log_snr(lam: Tensor) -> tuple[Tensor, Tensor]:
    """``alpha = sqrt(sigmoid(lambda))``, ``sigma = sqrt(sigmoid(-lambda))`` without cancellation."""
    return torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()


class CosineSchedule(NoiseSchedule):
    """Cosine schedule (Nichol & Dhariwal 2021) truncated to ``lambda in [lambda_min, lambda_max]``.

    ``lambda(t) = -2 log tan(pi u / 2)`` with ``u = u_0 + t (u_1 - u_0)``, ``u_0, u_1`` chosen so
    that ``lambda(0) = lambda_max`` and ``lambda(1) = lambda_min``. The defaults reach
    ``sigma = e^{-7.5} ~ 5.5e-4`` at ``t = 0``, small enough for modes of width 0.01.
    """

    name = "cosine"

    def __init__(self, lambda_min: float = -15.0, lambda_max: float = 15.0):
        if not lambda_min < lambda_max:
            raise ValueError(f"need lambda_min < lambda_max; got {lambda_min}, {lambda_max}")
        self._lo, self._hi = float(lambda_min), float(lambda_max)
        self.u0 = 2 / math.pi * math.atan(math.exp(-0.5 * self._hi))
        self.u1 = 2 / math.pi * math.atan(math.exp(-0.5 * self._lo))

    def _u(self, t):
        return self.u0 + _as_tensor(t) * (self.u1 - self.u0)

    def log_snr(self, t) -> Tensor:
        return -2 * torch.log(torch.tan(math.pi / 2 * self._u(t)))

    def dlog_snr_dt(self, t) -> Tensor:
        u = self._u(t)
        return -2 * math.pi * (self.u1 - self.u0) / torch.sin(math.pi * u)

    def t_of_log_snr(self, lam) -> Tensor:
        u = 2 / math.pi * torch.atan(torch.exp(-0.5 * _as_tensor(lam)))
        return (u - self.u0) / (self.u1 - self.u0)

    @property
    def lambda_max(self) -> float:
        return self._hi

    @property
    def lambda_min(self) -> float:
        return self._lo


class LogSNRLinearSchedule(NoiseSchedule):
    """``lambda(t) = lambda_max + t (lambda_min - lambda_max)``: every log-SNR equally often."""

    name = "logsnr"

    def __init__(self, lambda_min: float = -15.0, lambda_max: float = 15.0):
        if not lambda_min < lambda_max:
            raise ValueError(f"need lambda_min < lambda_max; got {lambda_min}, {lambda_max}")
        self._lo, self._hi = float(lambda_min), float(lambda_max)

    def log_snr(self, t) -> Tensor:
        return self._hi + _as_tensor(t) * (self._lo - self._hi)

    def dlog_snr_dt(self, t) -> Tensor:
        return torch.full_like(_as_tensor(t), self._lo - self._hi)

    def t_of_log_snr(self, lam) -> Tensor:
        return (_as_tensor(lam) - self._hi) / (self._lo - self._hi)

    @property
    def lambda_max(self) -> float:
        return self._hi

    @property
    def lambda_min(self) -> float:
        return self._lo


class LinearSchedule(NoiseSchedule):
    """Continuous VP-SDE with linear ``beta(t) = beta_min + t (beta_max - beta_min)`` (Song et al. 2021).

    ``log alpha_t^2 = -(beta_min t + (beta_max - beta_min) t^2 / 2)``; the defaults are the
    limit of Ho et al.'s betas 1e-4 .. 0.02 over T = 1000. ``t_min`` keeps ``t = 0``
    slightly noisy (``t_min = 1e-3`` is the usual choice), since ``lambda(0)`` is infinite.
    """

    name = "linear"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"need 0 <= beta_min < beta_max; got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max, self.t_min = float(beta_min), float(beta_max), float(t_min)

    def _s(self, t) -> Tensor:
        return self.t_min + _as_tensor(t) * (1 - self.t_min)

    def _log_alpha2(self, s: Tensor) -> Tensor:
        return -(self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s)

    def log_snr(self, t) -> Tensor:
        la2 = self._log_alpha2(self._s(t))
        return la2 - torch.log(-torch.expm1(la2))  # log(a^2 / (1 - a^2))

    def dlog_snr_dt(self, t) -> Tensor:
        s = self._s(t)
        la2 = self._log_alpha2(s)
        dla2 = -(self.beta_min + (self.beta_max - self.beta_min) * s) * (1 - self.t_min)
        return dla2 / -torch.expm1(la2)  # d/dt [la2 - log(1 - e^la2)] = dla2 (1 + e^la2/(1-e^la2))

    def t_of_log_snr(self, lam) -> Tensor:
        lam = _as_tensor(lam)
        la2 = -torch.nn.functional.softplus(-lam)  # log sigmoid(lam) = log alpha^2
        a, b = 0.5 * (self.beta_max - self.beta_min), self.beta_min
        s = (-b + torch.sqrt(b * b - 4 * a * la2)) / (2 * a)
        return (s - self.t_min) / (1 - self.t_min)


class DiscreteSchedule(NoiseSchedule):
    """A DDPM schedule of ``T`` steps given by its betas: ``alpha_bar_i = prod_{j<=i} (1 - beta_j)``.

    Step ``i`` (1..T) sits at ``t = i / T``, with ``t = 0`` the clean data (``lambda`` there
    is extrapolated one step past step 1); ``lambda`` is linear between steps.
    """

    name = "discrete"

    def __init__(self, betas):
        b = torch.as_tensor(betas, dtype=torch.float64)
        if b.dim() != 1 or len(b) < 2 or not ((b > 0) & (b < 1)).all():
            raise ValueError("betas must be a 1-D sequence of at least 2 values in (0, 1)")
        abar = torch.cumprod(1 - b, 0)
        lam = torch.log(abar) - torch.log1p(-abar)  # (T,)
        lam0 = lam[0] + (lam[0] - lam[1])
        self.T = len(b)
        self.lams = torch.cat([lam0[None], lam])  # (T + 1,) decreasing
        if not (self.lams[1:] < self.lams[:-1]).all():
            raise ValueError("the betas give a log-SNR that does not decrease")

    def log_snr(self, t) -> Tensor:
        t = _as_tensor(t)
        pos = (t.double().clamp(0, 1) * self.T)
        i = pos.floor().clamp(max=self.T - 1).long()
        w = pos - i
        lams = self.lams.to(t.device)
        return (lams[i] * (1 - w) + lams[i + 1] * w).to(t.dtype)

    def dlog_snr_dt(self, t) -> Tensor:
        t = _as_tensor(t)
        i = (t.double().clamp(0, 1) * self.T).floor().clamp(max=self.T - 1).long()
        lams = self.lams.to(t.device)
        return ((lams[i + 1] - lams[i]) * self.T).to(t.dtype)

    def t_of_log_snr(self, lam) -> Tensor:
        lam = _as_tensor(lam)
        neg = -self.lams.to(lam.device)  # increasing
        x = (-lam.double()).clamp(float(neg[0]), float(neg[-1]))
        i = (torch.searchsorted(neg, x.contiguous(), right=True) - 1).clamp(0, self.T - 1)
        w = (x - neg[i]) / (neg[i + 1] - neg[i])
        return ((i + w) / self.T).to(lam.dtype)


def ddpm_linear(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> DiscreteSchedule:
    """Ho et al. (2020): betas linear from 1e-4 to 0.02 over T = 1000 steps."""
    return DiscreteSchedule(torch.linspace(beta_1, beta_T, T, dtype=torch.float64))


def ddpm_cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
    """Nichol & Dhariwal (2021): ``alpha_bar(t) = cos^2(pi/2 (t/T + s)/(1 + s))``, betas clipped."""
    i = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(math.pi / 2 * (i / T + s) / (1 + s)) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)
    return DiscreteSchedule(betas)


SCHEDULES = {"cosine": CosineSchedule, "logsnr": LogSNRLinearSchedule, "linear": LinearSchedule}


def get_schedule(name: str | NoiseSchedule, **kwargs) -> NoiseSchedule:
    """A schedule by name ('cosine', 'logsnr', 'linear', 'ddpm_linear', 'ddpm_cosine') or as given."""
    if isinstance(name, NoiseSchedule):
        return name
    if name == "ddpm_linear":
        return ddpm_linear(**kwargs)
    if name == "ddpm_cosine":
        return ddpm_cosine(**kwargs)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from: cosine, logsnr, linear, ddpm_linear, ddpm_cosine")
    return SCHEDULES[name](**kwargs)


__all__ = ["NoiseSchedule", "CosineSchedule", "LogSNRLinearSchedule", "LinearSchedule", "DiscreteSchedule",
           "ddpm_linear", "ddpm_cosine", "get_schedule", "alpha_sigma_from_log_snr"]
