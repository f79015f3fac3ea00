"""The experiment grid behind ``genzoo compare``: same data, every family, measured side by side.

Each (family, seed) run is keyed by a hash of the data, the family, its hyperparameters,
the seed and the genzoo version; a finished run leaves ``runs/<key>/record.json`` (plus
the model and the arrays its figures need) and is reused by the next call with the same
``out``. Results files are written whole or not at all, so an interrupted or failed run
never loses earlier results.
"""

from genzoo.compare.runner import PRESETS, resolve_families, run_compare

__all__ = ["run_compare", "resolve_families", "PRESETS"]
