"""genzoo: every family of deep generative model behind one interface, measured side by side.

>>> import genzoo as gz
>>> X = gz.datasets.get("ring").sample(2000, random_state=0)
>>> m = gz.make("gmm", random_state=0).fit(X)
>>> m.sample(5, random_state=0).shape
(5, 2)

The library prints nothing unless asked (``verbose=1`` on a family, or a ``progress`` callback to
``fit``); informational messages go to the ``logging`` logger ``"genzoo"``.
"""

import logging

import genzoo.families  # noqa: F401  (registers every family; the name is rebound below)
from genzoo import datasets
from genzoo.base import load
from genzoo.errors import UnsupportedError
from genzoo.registry import families, make  # gz.families() is the list of names, per the contract

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it from here)

logging.getLogger("genzoo").addHandler(logging.NullHandler())


def __getattr__(name):
    # metrics/evaluate import lazily so that `import genzoo` stays light
    if name == "metrics":
        import importlib

        return importlib.import_module("genzoo.metrics")
    if name == "evaluate":
        from genzoo.metrics import evaluate

        return evaluate
    raise AttributeError(f"module 'genzoo' has no attribute {name!r}")


__all__ = ["datasets", "families", "make", "load", "UnsupportedError", "metrics", "evaluate", "__version__"]
