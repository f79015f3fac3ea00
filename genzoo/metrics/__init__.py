"""genzoo.metrics: how good, how fast, how stable a generative model is, each beside its floor.

Functions take NumPy arrays (real ``X``, generated ``Y``) and return floats or dicts;
``evaluate`` runs every metric that applies to a fitted model in one call.

>>> import numpy as np
>>> from genzoo.metrics import wasserstein
>>> X = np.random.default_rng(0).standard_normal((500, 2))
>>> round(wasserstein(X, X + [3.0, 4.0]), 6)
5.0
"""
from .conditioning import conditioning_metrics, guidance_sweep
from .cost import sampling_speed
from .evaluation import clear_cache, evaluate, sample_metrics
from .images import (
    class_alignment,
    digit_features,
    digit_probabilities,
    image_scores,
    inception_score_digits,
    memorisation,
)
from .infill import infill_metrics, true_conditional
from .labels import class_posterior, conditional_alignment, inception_score
from .likelihood import nll, nll_gap
from .manifold import density_coverage, manifold_metrics, precision_recall
from .modes import mode_metrics, on_support
from .sample import (
    column_distances,
    column_metrics,
    column_units,
    correlation_error,
    correlation_matrix,
    frechet_distance,
    median_bandwidth,
    mmd,
    wasserstein,
)
from .stability import divergence, stability, trajectory

__all__ = [
    "frechet_distance", "wasserstein", "mmd", "median_bandwidth",
    "column_units", "column_distances", "correlation_matrix", "correlation_error", "column_metrics",
    "precision_recall", "density_coverage", "manifold_metrics",
    "mode_metrics", "on_support",
    "nll", "nll_gap",
    "inception_score", "conditional_alignment", "class_posterior",
    "sampling_speed",
    "stability", "divergence", "trajectory",
    "infill_metrics", "true_conditional", "conditioning_metrics", "guidance_sweep",
    "evaluate", "sample_metrics", "clear_cache",
    "image_scores", "inception_score_digits", "class_alignment", "memorisation", "digit_features",
    "digit_probabilities",
]
