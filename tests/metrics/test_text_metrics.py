"""Text metrics: per-token likelihood units, TV statistics with floors, novelty, infill scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

import genzoo as gz
from genzoo.metrics.text import (
    bigram_tv,
    bits_per_char,
    infill_scores,
    length_tv,
    nats_per_token,
    novelty,
    sample_stats,
)


def test_likelihood_units():
    words = ["ab", "c"]  # 3 + 2 tokens, 3 characters
    lp = np.array([-3.0, -2.0])
    assert nats_per_token(lp, words) == pytest.approx(1.0)
    assert bits_per_char(lp, words) == pytest.approx(5 / math.log(2) / 3)
    with pytest.raises(ValueError, match="one log-probability per word"):
        nats_per_token(lp[:1], words)


def test_tv_statistics():
    a = ["ab", "ba", "abc"]
    assert length_tv(a, a[::-1]) == 0 and bigram_tv(a, a[::-1]) == 0
    assert length_tv(["a"], ["bb"]) == 1 and bigram_tv(["ab"], ["cd"]) == pytest.approx(1.0)
    assert bigram_tv(["ab"], ["ba"]) == pytest.approx(1.0)  # ^a ab b$ vs ^b ba a$
    assert 0 < bigram_tv(a, ["ab"]) < 1
    assert novelty(["x", "ab", "y", "ba"], a) == 0.5


def test_sample_stats_floor_separates_real_from_wrong_samples():
    ds = gz.datasets.get("names")
    test, train = ds.split("test"), ds.split("train")
    real = ds.split("val")
    good = sample_stats(real, test, pool=train, train=train)
    bad = sample_stats(["anna"] * 1000, test, pool=train)
    assert good["length_tv"] < 3 * good["length_tv_floor"] and good["bigram_tv"] < 3 * good["bigram_tv_floor"]
    assert bad["length_tv"] > 10 * bad["length_tv_floor"] and bad["bigram_tv"] > 5 * bad["bigram_tv_floor"]
    assert 0.8 < good["novelty"] < 0.9  # names repeat in the list: 85% of held-out names are not training names


class _Oracle:
    """Fills the masks with the held-out truth when it has seen it (tests the scoring, not a model)."""

    likelihood_kind = "none"

    def __init__(self, words):
        self.words = words

    def impute(self, queries, mask="_", random_state=None):
        out = []
        for q in queries:
            match = [w for w in self.words if len(w) == len(q) and all(c == mask or c == d for c, d in zip(q, w))]
            out.append(match[0] if match else q.replace(mask, "a"))
        return out


def test_infill_scores_count_exact_matches():
    words = ["emma", "olivia", "ava", "isabella", "sophia"]
    r = infill_scores(_Oracle(words), words, n_masks=(1, 2), n_words=5)
    assert r[1]["exact_match"] == 1.0 and r[2]["exact_match"] == 1.0 and 0 < r[1]["floor"] < 1
    wrong = infill_scores(_Oracle([]), ["bbbb", "cccc"], n_masks=(1,), n_words=2)
    assert wrong[1]["exact_match"] == 0.0
