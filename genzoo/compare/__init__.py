"""The experiment grid behind ``genzoo compare``: same data, every family, measured side by side.

Each (family, seed) run is keyed by a hash of the data, the family, its hyperparameters,
the seed, the genzoo version and the genzoo code (a hash of the package sources); a finished
run leaves ``runs/<key>/record.json`` (plus the model, ``model.genzoo``, and the arrays its
figures need, and the environment it was measured in) and is reused by the next call with
the same ``out`` unless ``force=True``. Results files are written whole or not at all, so an
interrupted or failed run never loses earlier results.
"""

from genzoo.compare.runner import PRESETS, resolve_families, run_compare

__all__ = ["run_compare", "resolve_families", "PRESETS"]
