"""Family registry: name -> estimator class, so compare/CLI know families only by name."""

from __future__ import annotations

from typing import Any

from genzoo.errors import did_you_mean

_FAMILIES: dict[str, type] = {}


def register(name: str):
    """Class decorator: make an estimator class available as ``gz.make(name)``."""

    def deco(cls: type) -> type:
        cls.family = name
        cls.__doc__ = fill_shared_parameters(cls)
        _FAMILIES[name] = cls
        return cls

    return deco


#: hyperparameters most families share, documented once: (type, meaning); the default is read
#: from each family's own ``__init__``
SHARED_PARAMETERS: dict[str, tuple[str, str]] = {
    "max_steps": ("int", "Optimiser steps (a step budget: the ``genzoo compare`` presets scale it)."),
    "batch_size": ("int", "Rows per optimiser step."),
    "lr": ("float", "Adam learning rate."),
    "validation_fraction": ("float", "Share of the rows held out to keep the best checkpoint and to stop early."),
    "early_stopping": ("bool", "Stop once the validation loss has not improved for ``patience`` checks "
                               "(one per 250 steps)."),
    "patience": ("int", "Validation checks without improvement before early stopping."),
    "random_state": ("int or None", "Seed of the weights, batches and noise (same seed, same machine: same samples)."),
    "device": ("str", "Torch device; ``'auto'`` = CUDA when available, else CPU."),
    "verbose": ("int", "0 = silent, 1 = a progress bar while fitting."),
}


def fill_shared_parameters(cls: type) -> str | None:
    """The class docstring with its ``{shared_parameters}`` line replaced by the shared entries
    the class does not document itself, each with the class's own default."""
    import inspect

    doc = cls.__doc__
    marker = "    {shared_parameters}"
    if not doc or marker not in doc:
        return doc
    params = inspect.signature(cls.__init__).parameters
    entries = [f"    {k} : {typ}, default={params[k].default!r}\n        {text}"
               for k, (typ, text) in SHARED_PARAMETERS.items()
               if k in params and f"    {k} : " not in doc]
    return doc.replace(marker, "\n".join(entries))


def _ensure_loaded() -> None:
    import importlib

    importlib.import_module("genzoo.families")  # importing registers every family


def families() -> list[str]:
    """Names of every registered family (core families first, then baselines, then the rest)."""
    _ensure_loaded()
    return list(_FAMILIES)


def family_class(name: str) -> type:
    _ensure_loaded()
    if not isinstance(name, str) or name not in _FAMILIES:
        raise ValueError(f"unknown family {name!r}{did_you_mean(name, _FAMILIES) or ';'} "
                         f"choose from: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def make(name: str, **hyperparameters: Any):
    """Build an unfitted estimator of family ``name``; unknown hyperparameters raise ValueError."""
    cls = family_class(name)
    valid = cls._get_param_names()
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown hyperparameter(s) {unknown}{did_you_mean(unknown[0], valid) or ';'} "
                         f"valid: {', '.join(valid)}")
    return cls(**hyperparameters)
