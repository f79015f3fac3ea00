"""Registry of the built-in data sets by name: 2-D distributions, wider distributions with exact
densities (``mixture10``, ``rings6``, ``funnel``), scikit-learn's bundled tables, text word lists and
images (``digits``)."""

from __future__ import annotations

from .base import Distribution
from .curves import Moons, Spirals, Swissroll
from .digits import IMAGES, ImageDataset
from .mixtures import Gaussians8, Grid25
from .radial import Circles, Ring
from .shapes import Checkerboard, Pinwheel
from .tables import TABLES, TableDataset
from .text import NAMES, TextDataset
from .wide import Funnel, Mixture10, Rings6

_BUILTINS: dict[str, type[Distribution]] = {
    cls.name: cls for cls in (Ring, Gaussians8, Grid25, Moons, Circles, Swissroll, Spirals, Pinwheel, Checkerboard)
}
#: known densities in more than 2 dimensions
_WIDE: dict[str, type[Distribution]] = {cls.name: cls for cls in (Mixture10, Rings6, Funnel)}
_INSTANCES: dict[str, Distribution] = {}
#: built-in text data (lists of strings): not 2-D distributions, so kept out of ``names()``
_TEXT: dict[str, TextDataset] = {NAMES.name: NAMES}


_KINDS = ("2d", "wide", "table", "text", "image", "all")


def names(kind: str = "2d") -> list[str]:
    """Names of the built-in data sets for `get`: the 2-D distributions (``kind='2d'``, what
    ``genzoo compare`` runs on by default), the wider exact densities (``'wide'``), scikit-learn's
    tables (``'table'``), the text word lists (``'text'``), the images (``'image'``) or all of them
    (``'all'``)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose from {', '.join(map(repr, _KINDS))}")
    groups = {"2d": _BUILTINS, "wide": _WIDE, "table": TABLES, "text": _TEXT, "image": IMAGES}
    return [n for k, g in groups.items() if kind in (k, "all") for n in g]


def get(name: str) -> Distribution | TableDataset | TextDataset | ImageDataset:
    """The built-in data set called `name`: a `Distribution` (one shared instance, so its entropy
    is computed once), a `TableDataset` for scikit-learn's tables, or a `TextDataset` for the text
    word lists (``kind == 'text'``), or an `ImageDataset` for the images (``kind == 'image'``)."""
    if isinstance(name, str) and name in IMAGES:
        return IMAGES[name]
    if isinstance(name, str) and name in _TEXT:
        return _TEXT[name]
    if isinstance(name, str) and name in TABLES:
        return TABLES[name]
    classes = {**_BUILTINS, **_WIDE}
    if not isinstance(name, str) or name not in classes:
        raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(names('all'))}")
    if name not in _INSTANCES:
        _INSTANCES[name] = classes[name]()
    return _INSTANCES[name]
