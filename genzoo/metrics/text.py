"""Metrics of string models: likelihood per token, novelty, length and bigram statistics, infill.

Conventions (makemore's): a string of n characters has n + 1 tokens (its characters and the end
token); ``nats_per_token`` is minus the summed log-probabilities over the summed tokens. Sample
statistics are total variation distances between histograms (of lengths, of character bigrams
with start and end markers) of the samples and of the reference words, each beside its floor:
the same distance for real words of the same number, drawn from a disjoint pool.

>>> from genzoo.metrics.text import length_tv, novelty
>>> length_tv(["ab", "abc"], ["xy", "xyz"]), novelty(["ab", "zz"], ["ab"])
(0.0, 0.5)
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from genzoo.datasets.text import check_words


def n_tokens(words: list[str]) -> int:
    """Characters plus one end token per string."""
    return sum(len(w) + 1 for w in words)


def nats_per_token(log_probs: Any, words: list[str]) -> float:
    """``-sum log P(word) / sum (len + 1)``: the per-token NLL in nats (lower is better)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.shape != (len(words),):
        raise ValueError(f"need one log-probability per word ({len(words)}); got shape {lp.shape}")
    return float(-lp.sum() / n_tokens(words))


def bits_per_char(log_probs: Any, words: list[str]) -> float:
    """``-sum log2 P(word) / sum len``: bits per character (the end tokens' cost included)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    return float(-lp.sum() / math.log(2) / max(1, sum(len(w) for w in words)))


def novelty(samples: list[str], train: list[str]) -> float:
    """Share of samples that are not training strings."""
    seen = set(train)
    samples = check_words(samples, "samples")
    return float(np.mean([s not in seen for s in samples]))


def _tv(a: Counter, b: Counter) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))


def length_tv(samples: list[str], reference: list[str]) -> float:
    """Total variation between the length histograms of two lists of strings."""
    return _tv(Counter(map(len, check_words(samples, "samples"))), Counter(map(len, check_words(reference))))


def _bigrams(words: list[str]) -> Counter:
    out: Counter = Counter()
    for w in words:
        s = "^" + w + "$"  # start and end markers: first and last characters count too
        out.update(s[i:i + 2] for i in range(len(s) - 1))
    return out


def bigram_tv(samples: list[str], reference: list[str]) -> float:
    """Total variation between the character-bigram distributions (with start/end markers)."""
    return _tv(_bigrams(check_words(samples, "samples")), _bigrams(check_words(reference)))


def sample_stats(samples: list[str], reference: list[str], pool: list[str], train: list[str] | None = None,
                 reps: int = 5, random_state: int = 0) -> dict[str, float]:
    """Length and bigram TV of ``samples`` against ``reference``, each with its floor.

    The floor: the same TV for ``len(samples)`` real strings drawn (with replacement) from
    ``pool`` (real strings disjoint from ``reference``, e.g. the training set), averaged over
    ``reps`` draws. With ``train``, also the novelty of the samples.
    """
    rng = np.random.default_rng(random_state)
    draws = [[pool[i] for i in rng.integers(0, len(pool), len(samples))] for _ in range(reps)]
    out = {"length_tv": length_tv(samples, reference),
           "length_tv_floor": float(np.mean([length_tv(d, reference) for d in draws])),
           "bigram_tv": bigram_tv(samples, reference),
           "bigram_tv_floor": float(np.mean([bigram_tv(d, reference) for d in draws]))}
    if train is not None:
        out["novelty"] = novelty(samples, train)
    return out


def infill_scores(model, words: list[str], n_masks=(1, 2, 3), n_words: int = 200, mask: str = "_",
                  random_state: int = 0, conditional_nll: bool = False) -> dict[int, dict[str, float]]:
    """Infill of held-out ``words`` with ``k`` random characters masked, for each k in ``n_masks``.

    Per k: ``exact_match``, the share of fills equal to the held-out word (beside ``floor``, the
    rate of guessing from the character frequencies of the words); with ``conditional_nll`` (exact
    models, k <= 2) also the model's own ``-log P(true fill | rest)``, by enumeration, in nats.
    """
    rng = np.random.default_rng(random_state)
    chars = sorted(set("".join(words)))
    freq = Counter("".join(words))
    p_char = np.array([freq[c] for c in chars], dtype=np.float64) / sum(freq.values())
    out: dict[int, dict[str, float]] = {}
    for k in n_masks:
        pool = [w for w in words if len(w) > k]
        pick = [pool[i] for i in rng.choice(len(pool), size=min(n_words, len(pool)), replace=False)]
        holes = [sorted(rng.choice(len(w), size=k, replace=False)) for w in pick]
        queries = ["".join(mask if j in h else c for j, c in enumerate(w)) for w, h in zip(pick, holes)]
        fills = model.impute(queries, mask=mask, random_state=int(rng.integers(2**31)))
        res = {"exact_match": float(np.mean([f == w for f, w in zip(fills, pick)])),
               # guessing each hole independently from the character frequencies matches with prob sum p^2
               "floor": float((p_char ** 2).sum() ** k)}
        if conditional_nll and k <= 2 and model.likelihood_kind == "exact":
            res["conditional_nll"] = float(np.mean([_conditional_nll(model, w, h) for w, h in zip(pick, holes)]))
        out[k] = res
    return out


def _conditional_nll(model, word: str, holes) -> float:
    from itertools import product

    from scipy.special import logsumexp

    cands = []
    for fill in product(model.text_spec_.chars, repeat=len(holes)):
        s = list(word)
        for j, c in zip(holes, fill):
            s[j] = c
        cands.append("".join(s))
    lp = model.score_samples(cands)
    return float(logsumexp(lp) - lp[cands.index(word)])


__all__ = ["n_tokens", "nats_per_token", "bits_per_char", "novelty", "length_tv", "bigram_tv", "sample_stats",
           "infill_scores"]
