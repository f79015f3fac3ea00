"""Hyperparameter constraints: the validator itself, and every family's declaration checked at fit."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.params import (
    HasMethods,
    Interval,
    Options,
    Sequence,
    check_param,
    make_constraint,
    validate_params,
)
from genzoo.registry import family_class

FAMILIES = gz.families()


# ----------------------------------------------------------------------------- the validator
def test_interval_of_ints():
    c = Interval(int, 1, None)
    assert c.accepts(1) and c.accepts(10**9) and c.accepts(np.int64(3))
    for bad in (0, -1, 1.0, 2.5, True, "3", [3], None, np.float64(4.0)):
        assert not c.accepts(bad), bad
    assert c.describe() == "an int in [1, inf)"


def test_interval_of_floats_and_its_ends():
    half_open = Interval(float, 0, 1, closed="left")
    assert half_open.accepts(0) and half_open.accepts(0.5) and half_open.accepts(np.float32(0.9))
    assert not half_open.accepts(1.0) and not half_open.accepts(-1e-9)
    assert half_open.describe() == "a float in [0, 1)"
    open_ = Interval(float, 0, None, closed="neither")
    assert open_.accepts(1e-12) and not open_.accepts(0.0)
    assert open_.describe() == "a float in (0, inf)"
    for bad in (math.nan, math.inf, -math.inf, True, "0.1", None, 1j):
        assert not open_.accepts(bad), bad
    assert Interval(float, 0, 1, closed="right").describe() == "a float in (0, 1]"
    assert Interval(float, None, None).describe() == "a float"
    with pytest.raises(ValueError):
        Interval(float, 1, 0)
    with pytest.raises(ValueError):
        Interval(float, 0, 1, closed="sometimes")
    with pytest.raises(TypeError):
        Interval(str, 0, 1)


def test_options_keep_kinds_apart():
    c = Options(("auto", True, False))
    assert c.accepts("auto") and c.accepts(True) and c.accepts(np.bool_(False))
    assert not c.accepts(1) and not c.accepts(0) and not c.accepts("True") and not c.accepts([1])
    assert Options((1, 2)).accepts(2) and not Options((1, 2)).accepts(True)
    assert Options(("a", "b")).describe() == "one of 'a', 'b'"
    assert Options(("cv",)).describe() == "'cv'"


def test_named_constraints():
    boolean, rs, dev, none = (make_constraint(s) for s in ("boolean", "random_state", "device", None))
    assert boolean.accepts(True) and boolean.accepts(np.bool_(True)) and not boolean.accepts(1)
    for ok in (None, 0, 7, np.int32(3), np.random.default_rng(0), np.random.RandomState(0)):
        assert rs.accepts(ok), ok
    for bad in ("abc", -1, 1.5, True, [0]):
        assert not rs.accepts(bad), bad
    for ok in ("auto", "cpu", "cuda", "cuda:1", torch.device("cpu")):
        assert dev.accepts(ok), ok
    for bad in ("gpu0", 3, None, ""):
        assert not dev.accepts(bad), bad
    assert none.accepts(None) and not none.accepts(0)
    with pytest.raises(TypeError):
        make_constraint("nonsense")


def test_sequence_and_duck_typing():
    pair = Sequence([Interval(int, 1, None)], length=2, increasing=True)
    assert pair.accepts((8, 128)) and pair.accepts([8, 8])
    for bad in ((128, 8), (8,), (8, 0), (8.0, 16), "ab", 8):
        assert not pair.accepts(bad), bad
    assert "a list of 2 values in increasing order, each an int in [1, inf)" == pair.describe()
    times = Sequence(Interval(float, 0, 1))
    assert times.accepts((0.0, 0.8, 0.9)) and not times.accepts(()) and not times.accepts((0.5, 2.0))
    teacher = HasMethods("probability_flow")
    assert teacher.accepts(gz.make("flow_matching")) and not teacher.accepts(gz.make("flow"))
    assert not teacher.accepts(None)


def test_message_is_one_line_naming_parameter_allowed_values_and_value():
    with pytest.raises(ValueError) as e:
        check_param("lr", "fast", [Interval(float, 0, None, closed="neither")])
    assert str(e.value) == "lr must be a float in (0, inf); got 'fast'"
    with pytest.raises(ValueError) as e:
        check_param("latent_dim", 0, [Interval(int, 1, None), None])
    assert str(e.value) == "latent_dim must be an int in [1, inf) or None; got 0"
    with pytest.raises(ValueError) as e:
        check_param("x", "y" * 500, ["boolean"])
    assert "\n" not in str(e.value) and len(str(e.value)) < 140
    check_param("latent_dim", None, [Interval(int, 1, None), None])  # no error


# ----------------------------------------------------------------------------- every family
@pytest.mark.parametrize("family", FAMILIES)
def test_every_hyperparameter_is_declared(family):
    cls = family_class(family)
    declared = set(cls.__dict__.get("_parameter_constraints", {}))  # on the class itself, not inherited
    assert declared == set(gz.make(family).get_params()), family
    for name, spec in cls._parameter_constraints.items():
        assert isinstance(spec, list) and spec, name
        for c in spec:
            make_constraint(c)  # every entry is a known kind of constraint
    validate_params(gz.make(family))  # the defaults satisfy the declaration


def _numeric_interval(family: str):
    """A hyperparameter with a bounded numeric declaration, and a value outside the bound."""
    cls = family_class(family)
    for name, spec in sorted(cls._parameter_constraints.items()):
        if name in ("verbose", "random_state"):
            continue
        for c in spec:
            if isinstance(c, Interval) and len(spec) == 1:
                if c.left is not None:
                    return name, c.left - 1 if c.closed in ("both", "left") else c.left
                if c.right is not None:
                    return name, c.right + 1
    raise AssertionError(f"{family} declares no bounded number")


#: one wrong value per family that the old code only caught (if at all) deep in training
OUT_OF_RANGE = {
    "vae": ("kl_warmup", 1.0), "gan": ("rejection_quantile", 0.0), "flow": ("tail_bound", 0.0),
    "diffusion": ("label_dropout", 1.0), "autoregressive": ("n_components", 0), "gmm": ("max_components", 0),
    "kde": ("bandwidth", -0.1), "ebm": ("reinit_frac", 1.5), "score": ("focus", 2.0),
    "flow_matching": ("ema_decay", 1.0), "rectified_flow": ("n_reflow", -1), "consistency": ("n_levels", 1),
    "masked_diffusion": ("n_bins", 1), "latent_diffusion": ("latent_dim", 0),
    "vq_autoregressive": ("codebook_size", 0), "vq_masked": ("decode_steps", 0),
}


def _rejects(family, name, value, monkeypatch):
    """``fit`` on 10 rows raises a one-line ValueError naming ``name`` before any training starts."""
    cls = family_class(family)

    def no_training(self, *a, **k):
        raise AssertionError("training started with an invalid hyperparameter")

    monkeypatch.setattr(cls, "_fit_std", no_training)
    X = np.random.default_rng(0).normal(size=(10, 2))
    m = gz.make(family, **{name: value})
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as e:
        m.fit(X)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert msg.startswith(f"{name} must be ") and f"got {value!r}" in msg and "\n" not in msg, msg
    assert not hasattr(m, "n_features_in_")  # nothing was learned or set


@pytest.mark.parametrize("family", FAMILIES)
def test_wrong_type_is_rejected_before_training(family, monkeypatch):
    name, _ = _numeric_interval(family)
    _rejects(family, name, "abc", monkeypatch)
    _rejects(family, name, [1], monkeypatch)
    _rejects(family, "random_state", "abc", monkeypatch)


@pytest.mark.parametrize("family", FAMILIES)
def test_out_of_range_is_rejected_before_training(family, monkeypatch):
    name, value = OUT_OF_RANGE[family]
    _rejects(family, name, value, monkeypatch)
    name, value = _numeric_interval(family)
    _rejects(family, name, value, monkeypatch)


@pytest.mark.parametrize("family", [f for f in FAMILIES if {"label_dropout", "ema_decay"}
                                    & set(gz.make(f).get_params())])
def test_label_dropout_and_ema_decay_declared_once(family, monkeypatch):
    for name in ("label_dropout", "ema_decay"):
        if name in gz.make(family).get_params():
            _rejects(family, name, 1.0, monkeypatch)
            _rejects(family, name, -0.1, monkeypatch)


def test_hyperparameters_are_checked_before_the_data():
    with pytest.raises(ValueError, match="^lr must be"):
        gz.make("flow", lr="fast").fit(None)


def test_numpy_scalars_and_sequences_pass():
    validate_params(gz.make("flow", max_steps=np.int64(5), lr=np.float32(1e-3), random_state=np.int32(1)))
    validate_params(gz.make("consistency", ct_levels=[4, 64], sample_times=(0.0, 0.5)))
    validate_params(gz.make("kde", bandwidth="cv"))
    validate_params(gz.make("kde", bandwidth=0.2))
    with pytest.raises(ValueError, match="^ct_levels must be"):
        validate_params(gz.make("consistency", ct_levels=(64, 4)))
    with pytest.raises(ValueError, match="^teacher must be None or a diffusion"):
        validate_params(gz.make("consistency", teacher=gz.make("flow")))


def test_checks_that_need_several_parameters_stay():
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match="sigma_min must be below sigma_max"):
        gz.make("score", sigma_min=2.0, sigma_max=1.0, max_steps=1, verbose=0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="pack"):
        gz.make("gan", pack=64, batch_size=32, max_steps=1, verbose=0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="only used by objective='cd'"):
        gz.make("consistency", objective="ct", teacher=gz.make("flow_matching"), verbose=0).fit(X)
