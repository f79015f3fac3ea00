"""Image metrics for the 8x8 digits, in the feature space of genzoo's own digits classifier.

The classifier (``genzoo.metrics.digits_classifier``, trained on the train split, weights shipped)
plays the part Inception plays for FID: its 64 penultimate features carry FD-digits, precision /
recall and density / coverage; its class posterior carries the Inception-Score analogue and the
class alignment of conditional samples. Memorisation is measured in pixel space: each sample's
distance to its nearest training image.

Every figure comes with its floor: the same metric for real images that the model never saw (the
test split against the train split, or the test split's own value), so a model is read against
what real data scores, not against zero.

>>> import genzoo as gz
>>> from genzoo.metrics.images import image_scores
>>> ds = gz.datasets.get("digits")
>>> s = image_scores(ds.split("val")[0], ds.split("test")[0], ds.split("train")[0])
>>> 0.5 < s["fd"] / s["fd_floor"] < 2.0
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from .digits_classifier import digit_features, digit_probabilities
from .labels import inception_from_posterior
from .manifold import density_coverage, precision_recall
from .sample import frechet_distance


def inception_score_digits(images) -> float:
    """exp(E_x KL(p(y|x) || p(y))) under the digits classifier: 10 for confident, balanced samples,
    1 for one class or for samples the classifier cannot tell apart."""
    return inception_from_posterior(digit_probabilities(images))


def class_alignment(images, asked) -> float:
    """Share of images the classifier assigns to the class asked for (the CLIP-score analogue)."""
    asked = np.broadcast_to(np.asarray(asked), (len(images),))
    return float(np.mean(digit_probabilities(images).argmax(1) == asked))


def nearest_training(images, train) -> tuple[np.ndarray, np.ndarray]:
    """For each image its nearest training image: ``(distance, index)``, Euclidean on pixels / 16."""
    T = np.asarray(train, float).reshape(len(train), -1) / 16
    Q = np.asarray(images, float).reshape(len(images), -1) / 16
    d, i = cKDTree(T).query(Q, k=1, workers=-1)
    return d, i


def memorisation(images, train, real) -> dict[str, float]:
    """How close samples sit to the training images, against real unseen images.

    ``nn_median``: median distance from a sample to its nearest training image; ``nn_median_floor``:
    the same for ``real`` (images the model never saw); ``copies``: share of samples closer to a
    training image than the 1st percentile of the real images' distances (a real image is that close
    1% of the time); ``exact_copies``: share identical to a training image.
    """
    ds, _ = nearest_training(images, train)
    dr, _ = nearest_training(real, train)
    q = np.quantile(dr, 0.01)
    return {"nn_median": float(np.median(ds)), "nn_median_floor": float(np.median(dr)),
            "copies": float(np.mean(ds < q)), "exact_copies": float(np.mean(ds == 0))}


def image_scores(samples, real, train) -> dict[str, Any]:
    """Every unconditional image metric of ``samples`` against the ``real`` (held-out) images, each
    beside its floor: the same metric of the ``train`` images against ``real``, at the samples' n (a
    seeded subset of ``train`` when there are fewer samples: FD and the k-NN metrics depend on n).

    Keys: ``fd`` / ``fd_floor`` (Frechet distance of classifier features), ``fd_ratio``;
    ``precision``, ``recall`` (k = 3) and ``density``, ``coverage`` (k = 5) in feature space, each
    with ``_floor``; ``inception`` and ``inception_floor`` (of ``real``); the memorisation figures.
    """
    train = np.asarray(train)
    if len(samples) < len(train):
        train = train[np.sort(np.random.default_rng(0).choice(len(train), len(samples), replace=False))]
    Fs, Fr, Ft = digit_features(samples), digit_features(real), digit_features(train)
    out: dict[str, Any] = {"n": len(Fs)}
    out["fd"], out["fd_floor"] = frechet_distance(Fs, Fr), frechet_distance(Ft, Fr)
    out["fd_ratio"] = out["fd"] / out["fd_floor"]
    (p, r), (pf, rf) = precision_recall(Fr, Fs), precision_recall(Fr, Ft)  # real first: its manifold
    (d, c), (df, cf) = density_coverage(Fr, Fs), density_coverage(Fr, Ft)
    out.update(precision=p, precision_floor=pf, recall=r, recall_floor=rf,
               density=d, density_floor=df, coverage=c, coverage_floor=cf)
    out["inception"], out["inception_floor"] = inception_score_digits(samples), inception_score_digits(real)
    out.update(memorisation(samples, train, real))
    return out


__all__ = ["image_scores", "inception_score_digits", "class_alignment", "nearest_training", "memorisation",
           "digit_features", "digit_probabilities"]
