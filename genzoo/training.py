"""The one training loop (explicit phases) and the one weight average (EMA).

A *phase* is one run of minibatch gradient descent: its budget, batch size, learning rate,
optimiser factory, step and validation functions, and its early-stopping rule, all stated
in a frozen :class:`Phase`. :func:`train` runs one phase on a model's ``module_`` and returns
a :class:`PhaseRecord` (steps run, best validation loss, divergence, history). A family with
one training calls it once with its default phase (``TorchGenerativeModel._fit_std``); a
family with two (consistency: teacher then student; rectified flow: 1-RF then reflow) calls
it twice with explicit arguments, never by rewriting its own hyperparameters mid-fit.

:class:`EMA` is the exponential moving average of a module's parameters (Polyak averaging)
with the warm-up ``decay_t = min(decay, (1 + t) / (10 + t))``, so that early on the average
follows the weights closely instead of remembering the random initialisation.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["EMA", "Phase", "PhaseRecord", "Progress", "train", "descend", "warmup_cosine", "ema_buffer_name"]

logger = logging.getLogger("genzoo")


# ----------------------------------------------------------------------------- weight average
def ema_buffer_name(param_name: str, prefix: str = "ema_") -> str:
    """The buffer that holds a parameter's average: ``net.0.weight`` -> ``ema_net__0__weight``
    (the key the checkpoints of diffusion, score and the velocity families use)."""
    return prefix + param_name.replace(".", "__")


class EMA:
    """Exponential moving average of ``source``'s parameters, with a short warm-up.

    Where the average lives:

    - ``host=module``: buffers ``ema_<name>`` registered on ``host`` (saved with it, no gradient;
      created here when ``host`` lacks them);
    - ``copy=module``: the parameters of a module of the same structure (a GAN's averaged
      generator);
    - neither: tensors held here (:meth:`state_dict` / :meth:`load_state_dict` carry them).

    Shadows are looked up by name on every use, so moving the host between devices is safe.
    """

    def __init__(self, source: nn.Module, decay: float = 0.999, *, host: nn.Module | None = None,
                 copy: nn.Module | None = None, prefix: str = "ema_"):
        if host is not None and copy is not None:
            raise ValueError("give the EMA a host for its buffers or a copy module, not both")
        self.source, self.decay = source, float(decay)
        self._host, self._copy, self._prefix = host, copy, prefix
        self._names = [k for k, _ in source.named_parameters()]
        self._own: dict[str, torch.Tensor] | None = None
        if host is not None:
            for k, p in source.named_parameters():
                if not hasattr(host, ema_buffer_name(k, prefix)):
                    host.register_buffer(ema_buffer_name(k, prefix), p.detach().clone())
        elif copy is None:
            self._own = {k: p.detach().clone() for k, p in source.named_parameters()}

    def decay_at(self, step: int) -> float:
        """The decay used after optimiser step ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``."""
        return min(self.decay, (1 + step) / (10 + step))

    def params(self) -> dict[str, torch.Tensor]:
        """The averaged parameters by name (for ``torch.func.functional_call``)."""
        if self._host is not None:
            return {k: getattr(self._host, ema_buffer_name(k, self._prefix)) for k in self._names}
        if self._copy is not None:
            return dict(self._copy.named_parameters())
        return dict(self._own)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the current weights after optimiser step ``step``."""
        decay = self.decay_at(step)
        shadow = self.params()
        for k, p in self.source.named_parameters():
            shadow[k].lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def reset(self) -> None:
        """Restart the average at the current weights."""
        shadow = self.params()
        for k, p in self.source.named_parameters():
            shadow[k].copy_(p.detach())

    @torch.no_grad()
    def copy_to_source(self) -> None:
        """Load the averaged weights into ``source`` for good."""
        shadow = self.params()
        for k, p in self.source.named_parameters():
            p.copy_(shadow[k])

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Within the block ``source`` holds the averaged weights; its own come back on exit."""
        raw = {k: p.detach().clone() for k, p in self.source.named_parameters()}
        self.copy_to_source()
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in self.source.named_parameters():
                    p.copy_(raw[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights by parameter name (copies)."""
        return {k: v.detach().clone() for k, v in self.params().items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        shadow = self.params()
        missing = set(shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k, v in shadow.items():
            v.copy_(torch.as_tensor(state[k]))


# ----------------------------------------------------------------------------- the loop
def warmup_cosine(total: int, warmup_frac: float = 0.02, floor: float = 0.02) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup_frac`` of the steps, then cosine to ``floor``."""
    warm = max(1, int(warmup_frac * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params, grad_clip: float) -> float:
    """One gradient step on ``loss`` (gradient norm clipped to ``grad_clip``); returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return float(loss.detach())


@dataclass(frozen=True)
class Progress:
    """Where a training phase stands, as passed to ``fit(X, progress=...)``: ``loss`` is the smoothed
    training loss; ``done`` is True once, at the phase's end."""

    phase: str
    step: int
    max_steps: int
    loss: float
    done: bool = False


@dataclass(frozen=True)
class Phase:
    """One training run of :func:`train`, stated explicitly.

    ``setup(Z_train)``: run once under the phase's seed before the optimisers are made (builds
    ``model.module_`` and data-dependent constants; None keeps the current module, e.g. a
    warm start). ``optimizers(lr)``: the optimisers (the loop keeps them in ``model.optimizers_``
    during the phase). ``step(z, y, step) -> loss``: one update on a batch. ``val_loss(z, y)``:
    lower is better. ``ema()``: the weight average to update after every step (None: none).
    ``verbose``: a progress bar on stderr; ``progress``: a callable given a :class:`Progress` every
    50 steps and at the end.
    """

    name: str
    max_steps: int
    batch_size: int
    lr: float
    optimizers: Callable[[float], list[torch.optim.Optimizer]]
    step: Callable[[torch.Tensor, torch.Tensor | None, int], float]
    val_loss: Callable[[torch.Tensor, torch.Tensor | None], float]
    setup: Callable[[np.ndarray], None] | None = None
    ema: Callable[[], EMA | None] | None = None
    validation_fraction: float = 0.0
    eval_every: int = 250
    early_stopping: bool = False
    patience: int = 8
    lr_schedule: Callable[[int], Callable[[int], float]] = warmup_cosine
    max_val_rows: int = 4096
    verbose: bool = False
    progress: Callable[[Progress], None] | None = None


@dataclass
class PhaseRecord:
    """What one phase did: steps run, best validation loss, divergence, whether early stopping ended
    it, and its loss history."""

    name: str
    n_steps: int
    best_val_loss: float
    diverged: bool
    early_stopped: bool = False
    max_steps: int = 0
    held_out: int = 0  # rows held out for validation (0: the losses recorded are training losses)
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "train_loss": [],
                                                              "val_step": [], "val_loss": []})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_steps": self.n_steps, "best_val_loss": self.best_val_loss,
                "diverged": self.diverged, "early_stopped": self.early_stopped, "max_steps": self.max_steps,
                "held_out": self.held_out,
                "final_val_loss": self.history["val_loss"][-1] if self.history["val_loss"] else None}


def split_rows(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) row indices of :func:`train` for ``n`` rows under ``seed``."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(validation_fraction * n)) if validation_fraction else 0
    return perm[n_val:], perm[:n_val]


def train(model, Z: np.ndarray, y: np.ndarray | None, phase: Phase, seed: int) -> PhaseRecord:
    """Run ``phase`` on ``model.module_`` with rows ``Z`` (labels ``y``) and ``seed``; returns its record.

    A ``validation_fraction`` of the rows (at most ``max_val_rows``) is held out and scored every
    ``eval_every`` steps and at the end; the best weights so scored are restored when the phase
    early-stops (``early_stopping``) or the loss becomes NaN/inf (then training stops). The
    training loss in the history is a moving average, logged every 50 steps.
    """
    from tqdm.auto import tqdm

    from genzoo import base
    from genzoo.base import torch_seed

    dev = torch.device(model.device_)
    n = len(Z)
    tr, va = split_rows(n, float(phase.validation_fraction or 0.0), seed)
    n_val = len(va)
    if n - n_val < 2:
        raise ValueError(f"too few rows to train on ({n - n_val} after holding out validation)")
    cap = int(phase.max_val_rows)
    zt = torch.as_tensor(Z[tr], dtype=torch.float32, device=dev)
    yt = None if y is None else torch.as_tensor(y[tr], device=dev)
    zv = torch.as_tensor(Z[va][:cap], dtype=torch.float32, device=dev) if n_val else None
    yv = None if (y is None or not n_val) else torch.as_tensor(y[va][:cap], device=dev)
    max_steps = int(phase.max_steps)
    bs = min(int(phase.batch_size), len(zt))
    rec = PhaseRecord(phase.name, 0, math.inf, False, max_steps=max_steps, held_out=n_val)
    hist = rec.history
    with torch_seed(seed, dev):
        if phase.setup is not None:
            phase.setup(Z[tr])
        model.optimizers_ = phase.optimizers(phase.lr)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, phase.lr_schedule(max_steps)) for o in model.optimizers_]
        ema = phase.ema() if phase.ema is not None else None
        best, best_state, bad_evals = math.inf, None, 0
        smooth, diverged, stopped, step = None, False, False, -1
        desc = f"fit {model.family}" + ("" if phase.name == "fit" else f" ({phase.name})")
        bar = tqdm(range(max_steps), desc=desc, disable=not phase.verbose, leave=False,
                   mininterval=0.5, dynamic_ncols=True, position=base.PROGRESS_POSITION)
        module = model.module_
        module.train()
        try:
            for step in bar:
                idx = torch.randint(len(zt), (bs,), device=dev)
                loss = phase.step(zt[idx], None if yt is None else yt[idx], step)
                if ema is not None:
                    ema.update(step)
                for s in schedulers:
                    s.step()
                if not math.isfinite(loss):
                    diverged = True
                    hist["step"].append(step)
                    hist["train_loss"].append(float("nan"))
                    break
                smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                last = step == max_steps - 1
                if step % 50 == 0 or last:
                    hist["step"].append(step)
                    hist["train_loss"].append(smooth)
                    bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)
                    if phase.progress is not None:
                        phase.progress(Progress(phase.name, step + 1, max_steps, float(smooth)))
                if (step + 1) % int(phase.eval_every) == 0 or last:
                    vl = _evaluate(module, phase.val_loss, zv, yv, smooth)
                    hist["val_step"].append(step)
                    hist["val_loss"].append(vl)
                    if vl < best - 1e-4 * (1 + abs(best)) or not math.isfinite(best):
                        best, bad_evals = vl, 0
                        best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    else:
                        bad_evals += 1
                        if phase.early_stopping and zv is not None and bad_evals >= int(phase.patience):
                            stopped = True
                            break
        finally:
            bar.close()
            del model.optimizers_
        if best_state is not None and (phase.early_stopping or diverged):
            module.load_state_dict(best_state)
        module.eval()
    rec.n_steps, rec.best_val_loss, rec.early_stopped = step + 1, best, stopped
    rec.diverged = diverged and best_state is None
    if phase.progress is not None:
        phase.progress(Progress(phase.name, rec.n_steps, max_steps, float("nan") if smooth is None else smooth, True))
    logger.info("%s: %d of %d steps%s, best validation loss %.4g%s", desc, rec.n_steps, max_steps,
                " (early stopping)" if stopped else "", best, " (diverged)" if diverged else "")
    return rec


def _evaluate(module: nn.Module, val_loss, zv, yv, smooth) -> float:
    if zv is None:  # nothing held out: the smoothed training loss stands in
        return float(smooth)
    module.eval()
    with torch.no_grad():
        vl = val_loss(zv, yv)
    module.train()
    return vl if math.isfinite(vl) else math.inf
