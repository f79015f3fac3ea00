"""Registry of the built-in distributions by name."""

from __future__ import annotations

from .base import Distribution
from .curves import Moons, Spirals, Swissroll
from .mixtures import Gaussians8, Grid25
from .radial import Circles, Ring
from .shapes import Checkerboard, Pinwheel

_BUILTINS: dict[str, type[Distribution]] = {
    cls.name: cls for cls in (Ring, Gaussians8, Grid25, Moons, Circles, Swissroll, Spirals, Pinwheel, Checkerboard)
}
_INSTANCES: dict[str, Distribution] = {}


def names() -> list[str]:
    """Names of the built-in distributions, for `get`."""
    return list(_BUILTINS)


def get(name: str) -> Distribution:
    """The built-in distribution called `name` (one shared instance, so its entropy is computed once)."""
    if not isinstance(name, str) or name not in _BUILTINS:
        raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(_BUILTINS)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BUILTINS[name]()
    return _INSTANCES[name]
