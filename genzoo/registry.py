"""Family registry: name -> estimator class, so compare/CLI know families only by name."""

from __future__ import annotations

from typing import Any

_FAMILIES: dict[str, type] = {}


def register(name: str):
    """Class decorator: make an estimator class available as ``gz.make(name)``."""

    def deco(cls: type) -> type:
        cls.family = name
        _FAMILIES[name] = cls
        return cls

    return deco


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
        raise ValueError(f"unknown family {name!r}; choose from: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def make(name: str, **hyperparameters: Any):
    """Build an unfitted estimator of family ``name``; unknown hyperparameters raise ValueError."""
    cls = family_class(name)
    valid = cls._get_param_names()
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown hyperparameter(s) {unknown}; valid: {', '.join(valid)}")
    return cls(**hyperparameters)
