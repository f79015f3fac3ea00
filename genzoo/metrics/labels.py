"""Label-based metrics with the data's TRUE class posterior p(y|x) as the classifier.

In 2-D there is no Inception network to ask; the built-in distributions know
p(y|x) exactly, so these are the Inception Score and CLIP-score analogues without a
classifier's own errors.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from ._checks import as_points


def class_posterior(Y: Any, dist: Any) -> np.ndarray:
    """True p(y|x) for each row of ``Y``, shape (n, n_classes), rows summing to 1.

    Rows where the density is zero or undefined (every class log-probability -inf/NaN)
    get the uniform posterior: the classifier knows nothing there.
    """
    Y = as_points(Y, "Y")
    if Y.shape[1] != dist.dim:
        raise ValueError(f"Y has {Y.shape[1]} columns but the distribution has dim {dist.dim}")
    if not getattr(dist, "n_classes", None):
        raise ValueError(f"distribution {getattr(dist, 'name', dist)!r} has no class labels")
    L = np.asarray(dist.class_log_posterior(Y), dtype=np.float64)
    L = np.where(np.isnan(L), -np.inf, L)
    z = logsumexp(L, axis=1, keepdims=True)
    bad = ~np.isfinite(z[:, 0])
    P = np.exp(L - np.where(np.isfinite(z), z, 0.0))
    P[bad] = 1.0 / L.shape[1]
    return P


def inception_score(Y: Any, dist: Any) -> float:
    """Inception Score analogue exp(E_x KL(p(y|x) || p(y))), p(y) = mean posterior over Y.

    High when each sample is confidently one class (sharp p(y|x)) and the classes are
    used evenly (broad p(y)): at most n_classes, about n_classes for a perfect model of
    a mixture of well-separated equal-weight classes, 1 for total collapse onto one
    class (or samples the posterior cannot tell apart). 0 log 0 = 0.
    """
    return inception_from_posterior(class_posterior(Y, dist))


def inception_from_posterior(P: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) from the rows of a class posterior ``P`` (n, n_classes)."""
    py = P.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(P > 0, P * (np.log(P) - np.log(py)[None, :]), 0.0)
    return float(np.exp(terms.sum(1).mean()))


def conditional_alignment(Y: Any, y_asked: Any, dist: Any) -> float:
    """Share of samples whose most probable true class (argmax p(y|x)) equals the asked label.

    ``y_asked`` is one label or one per row, in the distribution's own class indices.
    The analogue of CLIP score for class-conditional generation; chance level is about
    1 / n_classes.
    """
    P = class_posterior(Y, dist)
    asked = np.asarray(y_asked)
    if asked.ndim == 0:
        asked = np.full(len(P), asked)
    if asked.shape != (len(P),):
        raise ValueError(f"y_asked has {asked.size} labels but Y has {len(P)} rows")
    return float(np.mean(P.argmax(1) == asked))
