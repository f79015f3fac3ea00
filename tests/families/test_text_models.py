"""String models of autoregressive and masked_diffusion: normalisation, bounds, sampling, infill, I/O."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import genzoo as gz

TINY = {"text_steps": 40, "text_width": 16, "text_layers": 1, "text_heads": 2, "text_batch": 256,
        "random_state": 0, "device": "cpu"}
AB = ["a", "ab", "ba", "abb", "bab", "b", "aa", "bba", "ab", "a"]  # vocabulary {a, b}, max length 3


def every_string(chars: str, max_len: int) -> list[str]:
    return ["".join(t) for n in range(max_len + 1) for t in itertools.product(chars, repeat=n)]


@pytest.fixture(scope="module")
def names() -> tuple[list[str], list[str]]:
    ds = gz.datasets.get("names")
    return ds.split("train")[:400], ds.split("test")[:100]


@pytest.fixture(scope="module")
def fitted(names):
    tr, _ = names
    return {fam: gz.make(fam, **TINY).fit(tr) for fam in ("autoregressive", "masked_diffusion")}


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("kw", [{}, {"text_model": "bigram"}])
def test_autoregressive_probabilities_of_every_string_sum_to_one(kw):
    m = gz.make("autoregressive", **{**TINY, **kw}).fit(AB)
    lp = m.score_samples(every_string("ab", 3))
    assert m.likelihood_kind == "exact"
    assert abs(logsumexp(lp)) < 1e-5  # exact and normalised over the strings the model can hold


def test_labelled_autoregressive_is_normalised_per_class_and_as_a_marginal():
    y = np.array([len(w) % 2 for w in AB])
    m = gz.make("autoregressive", **TINY).fit(AB, y)
    S = every_string("ab", 3)
    for k in (0, 1):
        assert abs(logsumexp(m.score_samples(S, y=k))) < 1e-5
    assert abs(logsumexp(m.score_samples(S))) < 1e-5
    assert abs(logsumexp(m.score_samples(S, null_label=True))) < 1e-5


def test_masked_diffusion_bound_probabilities_sum_to_at_most_one():
    m = gz.make("masked_diffusion", **TINY).fit(AB)
    lp = m.score_samples(every_string("ab", 3))
    assert m.likelihood_kind == "bound"
    assert logsumexp(lp) <= 1e-6  # an ELBO: the bounds of all strings cannot exceed total mass 1
    assert abs(logsumexp(m.length_log_prob_[-1])) < 1e-9  # the length model is a distribution
    # deterministic: the same string gets the same number in any batch
    S = every_string("ab", 3)
    np.testing.assert_array_equal(m.score_samples(S[::-1])[::-1], lp)


# ----------------------------------------------------------------------------- sampling and infill
@pytest.mark.parametrize("family", ["autoregressive", "masked_diffusion"])
def test_samples_are_strings_over_the_vocabulary_and_reproducible(fitted, family):
    m = fitted[family]
    S = m.sample(200, random_state=3)
    assert isinstance(S, list) and len(S) == 200 and all(isinstance(s, str) for s in S)
    assert set("".join(S)) <= set(m.text_spec_.chars) and max(map(len, S)) <= m.text_spec_.max_len
    assert S == m.sample(200, random_state=3) and S != m.sample(200, random_state=4)


def test_masked_diffusion_steps_set_the_network_evaluations(fitted):
    m = fitted["masked_diffusion"]
    m.sample(50, steps=4, random_state=0)
    assert m.last_nfe_ <= 4
    m.sample(50, steps=1, random_state=0)
    assert m.last_nfe_ == 1


@pytest.mark.parametrize("family", ["autoregressive", "masked_diffusion"])
def test_infill_keeps_the_given_characters(fitted, family):
    m = fitted[family]
    Q = ["em__y", "ol_v_a", "_ames", "anna"]
    F = m.impute(Q, mask="_", random_state=2)
    assert [len(f) for f in F] == [len(q) for q in Q] and F[3] == "anna"
    for f, q in zip(F, Q):
        assert all(a == b for a, b in zip(f, q) if b != "_") and set(f) <= set(m.text_spec_.chars)
    assert F == m.impute(Q, mask="_", random_state=2)


def test_autoregressive_infill_draws_from_the_exact_conditional():
    """One hole: the fills follow P(fill | rest) from score_samples (chi-square test)."""
    m = gz.make("autoregressive", **TINY).fit(AB)
    F = m.impute(["a_b"] * 3000, mask="_", random_state=0)
    p = np.exp(m.score_samples(["aab", "abb"]))
    p /= p.sum()
    counts = np.array([F.count("aab"), F.count("abb")])
    expected = 3000 * p
    assert ((counts - expected) ** 2 / expected).sum() < 15  # chi2 with 1 dof: p ~ 1e-4


def test_autoregressive_gibbs_infill_for_long_gaps(names):
    m = gz.make("autoregressive", text_model="bigram").fit(names[0])
    F = m.impute(["a" + "_" * 5], mask="_", random_state=0, sweeps=3)  # 26^5 > enumeration limit
    assert len(F[0]) == 6 and F[0][0] == "a" and "_" not in F[0]


@pytest.mark.parametrize("family", ["autoregressive", "masked_diffusion"])
def test_guidance_follows_the_one_convention(names, family):
    """g = 0 is the unconditional model whatever the label; g = 1 the conditional; g != 0, 1 costs two passes."""
    tr, _ = names
    y = np.array([w[0] in "aeiou" for w in tr])
    m = gz.make(family, **{**TINY, "label_dropout": 0.3}).fit(tr, y)
    opts = {"steps": 4} if family == "masked_diffusion" else {}
    assert m.sample(30, y=True, guidance=0.0, random_state=5, **opts) == \
        m.sample(30, y=False, guidance=0.0, random_state=5, **opts)
    assert m.sample(30, y=True, random_state=5, **opts) != m.sample(30, y=False, random_state=5, **opts)
    for g, cost in ((1.0, 1), (2.0, 2)):
        S = m.sample(30, y=True, guidance=g, random_state=5, **opts)
        # passes: 4 unmasking steps, or one per character until every string has ended
        passes = 4 if family == "masked_diffusion" else min(m.text_spec_.max_len, max(map(len, S)) + 1)
        assert m.last_nfe_ == cost * passes


# ----------------------------------------------------------------------------- likelihood sanity
def test_bigram_baseline_and_the_transformer_score_held_out_names(names, fitted):
    tr, te = names
    tokens = sum(len(w) + 1 for w in te)
    big = gz.make("autoregressive", text_model="bigram").fit(tr)
    npt = -big.score_samples(te).sum() / tokens
    assert 2.3 < npt < 2.9  # counts of 400 names; about 2.45 on the full list
    for fam, m in fitted.items():
        lp = m.score_samples(te)
        assert np.isfinite(lp).all() and (lp < 0).all(), fam


# ----------------------------------------------------------------------------- I/O and errors
@pytest.mark.parametrize("family, kw", [("autoregressive", {}), ("autoregressive", {"text_model": "bigram"}),
                                        ("masked_diffusion", {})])
def test_save_load_round_trip(tmp_path, names, family, kw):
    tr, te = names
    y = np.array([w[0] < "k" for w in tr]) if "text_model" not in kw else None
    m = gz.make(family, **{**TINY, **kw}).fit(tr, y)
    m.save(tmp_path / "m.genzoo")
    m2 = gz.load(tmp_path / "m.genzoo")
    np.testing.assert_allclose(m2.score_samples(te), m.score_samples(te), rtol=0, atol=1e-9)
    assert m2.sample(20, random_state=0) == m.sample(20, random_state=0)
    assert m2.text_spec_ == m.text_spec_


@pytest.mark.parametrize("family", ["autoregressive", "masked_diffusion"])
def test_bad_string_input_is_named(fitted, family):
    m = fitted[family]
    with pytest.raises(ValueError, match="character '7'"):
        m.score_samples(["emma", "ab7"])
    with pytest.raises(ValueError, match="at most"):
        m.score_samples(["a" * 40])
    with pytest.raises(ValueError, match="list of strings"):
        m.score_samples(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="single string"):
        m.score_samples("emma")
    with pytest.raises(ValueError, match="mask="):
        m.impute(["em__y"])
    with pytest.raises(ValueError, match="in the model's vocabulary"):
        m.impute(["emma"], mask="a")
    with pytest.raises(ValueError, match="empty"):
        gz.make(family, **TINY).fit([])
    with pytest.raises(ValueError, match=r"X\[1\] is float"):
        gz.make(family, **TINY).fit(["ab", 1.5])
    with pytest.raises(ValueError, match="unknown"):
        m.sample(3, sampler="ode")
    with pytest.raises(gz.UnsupportedError):
        m.sample_path(3)


def test_text_fit_then_array_fit_on_the_same_estimator(names):
    m = gz.make("autoregressive", **TINY, max_steps=20, batch_size=64).fit(names[0])
    X = gz.datasets.get("ring").sample(300, random_state=0)
    m.fit(X)
    assert m.text_spec_ is None and m.sample(4, random_state=0).shape == (4, 2)
    with pytest.raises(ValueError, match="cannot score strings"):
        m.score_samples(["emma"])


def test_text_hyperparameters_are_validated():
    with pytest.raises(ValueError, match="text_model"):
        gz.make("autoregressive", text_model="trigram").fit(AB)
    with pytest.raises(ValueError, match="text_steps"):
        gz.make("masked_diffusion", text_steps=0).fit(AB)
