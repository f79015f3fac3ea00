"""Registry of the built-in data sets by name: 2-D distributions, and text word lists."""

from __future__ import annotations

from .base import Distribution
from .curves import Moons, Spirals, Swissroll
from .mixtures import Gaussians8, Grid25
from .radial import Circles, Ring
from .shapes import Checkerboard, Pinwheel
from .text import NAMES, TextDataset

_BUILTINS: dict[str, type[Distribution]] = {
    cls.name: cls for cls in (Ring, Gaussians8, Grid25, Moons, Circles, Swissroll, Spirals, Pinwheel, Checkerboard)
}
_INSTANCES: dict[str, Distribution] = {}
#: built-in text data (lists of strings): not 2-D distributions, so kept out of ``names()``
_TEXT: dict[str, TextDataset] = {NAMES.name: NAMES}


def names(kind: str = "2d") -> list[str]:
    """Names of the built-in data sets for `get`: the 2-D distributions (``kind='2d'``, what
    ``genzoo compare`` runs on), the text word lists (``'text'``) or both (``'all'``)."""
    if kind not in ("2d", "text", "all"):
        raise ValueError(f"unknown dataset kind {kind!r}; choose from '2d', 'text', 'all'")
    return [*(_BUILTINS if kind != "text" else []), *(_TEXT if kind != "2d" else [])]


def get(name: str) -> Distribution | TextDataset:
    """The built-in data set called `name`: a `Distribution` (one shared instance, so its entropy
    is computed once), or a `TextDataset` for the text word lists (``kind == 'text'``)."""
    if isinstance(name, str) and name in _TEXT:
        return _TEXT[name]
    if not isinstance(name, str) or name not in _BUILTINS:
        raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(names('all'))}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BUILTINS[name]()
    return _INSTANCES[name]
