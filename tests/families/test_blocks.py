"""Independent column blocks (``genzoo.families._blocks``): the dependence test splits what is independent
and only that, a product of block models answers every question block by block (density, samples,
imputation, checkpoint), and the held-out comparison keeps the joint model when the test misses a
dependence."""

import numpy as np
import pytest

import genzoo as gz
from genzoo.families._blocks import dependence_blocks, merge_small_blocks

# one start each (the mixture-start choice is tested in test_mixture_prior.py), short fits
SMALL = {"flow": {"max_steps": 200, "base": "normal"},
         "flow_matching": {"max_steps": 300, "likelihood_steps": 32, "sample_steps": 20, "prior": "none"},
         "diffusion": {"max_steps": 300, "likelihood_steps": 32, "sample_steps": 50, "prior": "none"},
         "autoregressive": {"max_steps": 300, "prior": "none"}}


def _rings(n, k=2, seed=0):
    """``k`` independent noisy rings (radius 2, width 0.1), one per pair of columns."""
    rng = np.random.default_rng(seed)
    cols = []
    for _ in range(k):
        a, r = rng.uniform(0, 2 * np.pi, n), 2 + 0.1 * rng.standard_normal(n)
        cols += [r * np.cos(a), r * np.sin(a)]
    return np.stack(cols, 1)


def test_the_dependence_test_splits_independent_blocks_only():
    """Rings pair up (x and y are uncorrelated, yet dependent); a correlated Gaussian and a tilted mixture
    stay one block; independent normals fall apart; a shuffled column order gives the same partition."""
    assert [b.tolist() for b in dependence_blocks(_rings(5000, 3))] == [[0, 1], [2, 3], [4, 5]]
    rng = np.random.default_rng(1)
    C = rng.standard_normal((5000, 5)) @ rng.standard_normal((5, 5))
    assert [b.tolist() for b in dependence_blocks(C)] == [[0, 1, 2, 3, 4]]
    assert len(dependence_blocks(rng.standard_normal((5000, 6)))) == 6
    perm = np.array([3, 0, 5, 1, 4, 2])
    got = {tuple(sorted(perm[b])) for b in dependence_blocks(_rings(5000, 3)[:, perm])}
    assert got == {(0, 1), (2, 3), (4, 5)}


def test_narrow_blocks_merge_into_the_next_narrowest():
    blocks = [np.array([0, 1]), np.array([2]), np.array([3, 4, 5]), np.array([6])]
    assert [b.tolist() for b in merge_small_blocks(blocks, 2)] == [[0, 1], [2, 6], [3, 4, 5]]
    assert [b.tolist() for b in merge_small_blocks([np.array([0]), np.array([1, 2])], 2)] == [[0, 1, 2]]
    assert [b.tolist() for b in merge_small_blocks(blocks, 1)] == [[0, 1], [2], [3, 4, 5], [6]]


@pytest.mark.parametrize("family", ["flow", "flow_matching", "diffusion", "autoregressive"])
def test_a_product_of_blocks_answers_block_by_block(family, tmp_path):
    """Two independent rings in 4-D, factorise=True: the density is the sum of the blocks' densities (each
    block model scored on its own columns), samples land on both rings with no correlation between the
    blocks, imputation keeps observed values and puts a missing coordinate back on its ring, and a save /
    load keeps every number."""
    X = _rings(2000)
    m = gz.make(family, factorise=True, random_state=0, verbose=0, **SMALL[family]).fit(X)
    assert m.blocks_ == [[0, 1], [2, 3]] and len(m.block_models_) == 2
    assert set(m.factorise_losses_) == {"joint", "blocks"}
    assert any("(block 2: x2, x3)" in p["name"] for p in m.phases_)
    said = m.fit_choices()
    assert said[0].startswith("kept a product of 2 independent column blocks (x0, x1 | x2, x3): held-out NLL")
    assert f"joint {m.factorise_losses_['joint']:.4f}, blocks {m.factorise_losses_['blocks']:.4f}" in said[0]
    assert len(said) == 1  # one start each here: the block models chose nothing
    Xte = _rings(200, seed=1)
    lp = m.score_samples(Xte)
    parts = sum(s.score_samples((Xte[:, c] - m.loc_[c]) / m.scale_[c]) for c, s in zip(m.blocks_, m.block_models_))
    np.testing.assert_allclose(lp, parts - np.log(m.scale_).sum(), rtol=1e-6, atol=1e-6)

    S = m.sample(2000, random_state=3)
    r = np.hypot(S[:, [0, 2]], S[:, [1, 3]])
    assert np.mean(np.abs(r - 2) < 0.4) > 0.9
    assert abs(np.corrcoef(r[:, 0], r[:, 1])[0, 1]) < 0.1 and abs(np.corrcoef(S[:, 0], S[:, 2])[0, 1]) < 0.1

    Q = Xte[:50].copy()
    Q[:25, 1] = np.nan  # one coordinate of the first ring
    Q[25:, 2:] = np.nan  # the whole second ring
    F = m.impute(Q, random_state=0)
    seen = ~np.isnan(Q)
    assert np.array_equal(F[seen], Q[seen]) and not np.isnan(F).any()
    assert np.mean(np.abs(np.hypot(F[:25, 0], F[:25, 1]) - 2) < 0.4) > 0.9
    assert np.mean(np.abs(np.hypot(F[25:, 2], F[25:, 3]) - 2) < 0.4) > 0.8

    m.save(tmp_path / "m.genzoo")
    again = gz.load(tmp_path / "m.genzoo")
    assert again.blocks_ == m.blocks_ and again.factorise_losses_ == pytest.approx(m.factorise_losses_)
    assert again.fit_choices() == said
    np.testing.assert_allclose(again.score_samples(Xte), lp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(again.sample(5, random_state=4), m.sample(5, random_state=4))
    # a block model's own choice follows the product's line, named by its columns
    sub = m.block_models_[1]
    scores_attr, (kept_attr, phrases) = next(iter(type(sub)._fit_choice_phrases.items()))
    other = next(k for k in phrases if k != "mixture")
    setattr(sub, scores_attr, {"mixture": 1.0, other: 1.5})
    setattr(sub, kept_attr, "mixture")
    assert m.fit_choices()[1:] == [f"block (x2, x3): kept the {phrases['mixture']}: held-out NLL per row, "
                                   f"standardised columns, 1.0000 ({phrases[other]} 1.5000)"]


def test_no_blocks_with_labels_in_two_columns_or_when_asked_not_to():
    X = _rings(1500)
    kw = dict(random_state=0, verbose=0, **{**SMALL["diffusion"], "max_steps": 50})
    assert gz.make("diffusion", factorise=False, **kw).fit(X).blocks_ is None
    labelled = gz.make("diffusion", factorise=True, **kw).fit(X, (X[:, 0] > 0).astype(int))
    assert labelled.blocks_ is None and labelled.factorise_losses_ is None
    assert gz.make("diffusion", factorise=True, **kw).fit(X[:, :2]).blocks_ is None
    # a coupling flow needs two columns per block: a lone independent column joins another block
    Y = np.column_stack([_rings(1500), np.random.default_rng(5).standard_normal(1500)])
    flow = gz.make("flow", factorise=True, random_state=0, verbose=0, **{**SMALL["flow"], "max_steps": 50}).fit(Y)
    assert flow.blocks_ == [[0, 1, 4], [2, 3]]


def test_a_dependence_the_test_misses_keeps_the_joint_model():
    """x2's sign is sign(x0 x1): every pair of columns is independent, so the test splits all three, but
    the product loses log 2 nats per row against a joint model; the held-out comparison keeps the joint."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    X = np.column_stack([a[:, 0], a[:, 1], np.sign(a[:, 0] * a[:, 1]) * np.abs(a[:, 2])])
    assert len(dependence_blocks(X)) == 3
    m = gz.make("autoregressive", prior="none", random_state=0, verbose=0, max_steps=600).fit(X)
    assert m.blocks_ is None and m.block_models_ is None
    assert m.factorise_losses_["joint"] < m.factorise_losses_["blocks"] - 0.2
    assert m.fit_choices()[0].startswith("kept the joint model (independent column blocks were tried)")
