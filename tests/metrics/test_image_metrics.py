"""Image metrics on the digits: the shipped classifier, and each metric read against real images.

Properties: the shipped weights reproduce their recorded test accuracy; held-out real images score
near the floor while noise, a collapsed model and a copier are each caught by the metric meant for
them; class alignment of real images is the classifier's accuracy and falls to chance when the
labels are shuffled; a short retrain already classifies well (the training script works).
"""

from __future__ import annotations

import numpy as np
import pytest

import genzoo as gz
from genzoo.metrics.digits_classifier import (
    digit_features,
    digit_probabilities,
    load_classifier,
    train_digits_classifier,
)
from genzoo.metrics.images import class_alignment, image_scores, memorisation


@pytest.fixture(scope="module")
def split():
    ds = gz.datasets.get("digits")
    return {p: ds.split(p) for p in ("train", "val", "test")}


def test_shipped_classifier_reproduces_its_recorded_test_accuracy(split):
    _, info = load_classifier()
    Xte, yte = split["test"]
    acc = float(np.mean(digit_probabilities(Xte).argmax(1) == yte))
    assert acc == pytest.approx(info["test_accuracy"], abs=1e-9)
    assert acc >= 0.97, acc


def test_features_and_probabilities_have_the_documented_shapes(split):
    X = split["val"][0][:50]
    F, P = digit_features(X), digit_probabilities(X)
    assert F.shape == (50, 64) and (F >= 0).all()
    assert P.shape == (50, 10) and np.allclose(P.sum(1), 1)
    assert np.allclose(digit_features(X.reshape(50, 1, 8, 8)), F)
    assert np.allclose(digit_features(X.reshape(50, 64)), F)


def test_bad_image_shape_raises():
    with pytest.raises(ValueError, match="8x8 digit images"):
        digit_features(np.zeros((3, 7, 7)))


def test_held_out_real_images_score_near_the_floor(split):
    s = image_scores(split["val"][0], split["test"][0], split["train"][0])
    assert s["fd_ratio"] < 2, s["fd_ratio"]  # 1.62: the validation writers differ a little from the rest
    assert abs(s["precision"] - s["precision_floor"]) < 0.1 and abs(s["recall"] - s["recall_floor"]) < 0.1
    assert s["inception"] > 8.5 and s["inception_floor"] > 8.5
    assert s["copies"] < 0.05 and s["exact_copies"] == 0


def test_noise_collapse_and_copying_are_each_caught(split):
    (Xtr, _), (Xte, _) = split["train"], split["test"]
    noise = image_scores(np.random.default_rng(0).integers(0, 17, (500, 8, 8)), Xte, Xtr)
    assert noise["fd_ratio"] > 10
    collapsed = image_scores(np.repeat(Xtr[:1], 500, 0), Xte, Xtr)
    assert collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.05 and collapsed["inception"] < 1.01
    copier = memorisation(Xtr[:300], Xtr, Xte)
    assert copier["exact_copies"] == 1 and copier["nn_median"] == 0
    real = memorisation(split["val"][0], Xtr, Xte)
    assert real["copies"] < 0.05 and 0.7 < real["nn_median"] / real["nn_median_floor"] < 1.4


def test_class_alignment_is_accuracy_and_chance_for_wrong_labels(split):
    Xte, yte = split["test"]
    assert class_alignment(Xte, yte) > 0.97
    assert class_alignment(Xte, np.random.default_rng(0).permutation(yte)) < 0.2


def test_a_short_retrain_classifies_well():
    net, info = train_digits_classifier(epochs=40)
    assert info["test_accuracy"] > 0.92, info  # 0.944 at 40 epochs; the shipped 150 reach 0.984
    assert info["val_accuracy"] >= 0.9
