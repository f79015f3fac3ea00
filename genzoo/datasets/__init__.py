"""Built-in distributions with exact densities (2-D, and wider: mixture10, rings6, funnel),
scikit-learn's bundled tables, and loading of user data files.

>>> from genzoo import datasets
>>> ds = datasets.get("moons")
>>> X, y = ds.sample(1000, random_state=0, return_labels=True)
>>> ds.log_prob(X).shape
(1000,)

Every built-in is a `Distribution`: `sample`, exact `log_prob` (nats), `entropy`,
`bounds`, and for labelled ones `class_log_prob` / `class_log_posterior`.
"""

from .base import Distribution
from .curves import Moons, Spirals, Swissroll
from .files import load_file
from .mixtures import GaussianMixture2D, Gaussians8, Grid25
from .radial import Circles, Ring
from .registry import get, names
from .shapes import Checkerboard, Pinwheel
from .tables import TableDataset
from .wide import Funnel, Mixture10, Rings6, WideDistribution

__all__ = [
    "Distribution",
    "names",
    "get",
    "load_file",
    "Ring",
    "Gaussians8",
    "Grid25",
    "GaussianMixture2D",
    "Moons",
    "Circles",
    "Swissroll",
    "Spirals",
    "Pinwheel",
    "Checkerboard",
    "WideDistribution",
    "Mixture10",
    "Rings6",
    "Funnel",
    "TableDataset",
]
