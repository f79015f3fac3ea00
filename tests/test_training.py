"""The one training loop (phases) and the one weight average (genzoo.training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import genzoo as gz
from genzoo.training import EMA, Phase, descend, train


def test_ema_warm_up_formula():
    ema = EMA(nn.Linear(2, 2), decay=0.999)
    for step in (0, 1, 5, 100, 10_000, 10**6):
        assert ema.decay_at(step) == min(0.999, (1 + step) / (10 + step))
    assert ema.decay_at(0) == pytest.approx(0.1)


def test_ema_update_is_a_lerp_with_the_warmed_up_decay():
    torch.manual_seed(0)
    src = nn.Linear(3, 2)
    ema = EMA(src, decay=0.9)
    before = {k: v.clone() for k, v in ema.params().items()}
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)
    ema.update(step=50)  # decay = min(0.9, 51 / 60) = 0.85
    for k, p in src.named_parameters():
        expect = before[k] + (1 - 0.85) * (p.detach() - before[k])
        assert torch.allclose(ema.params()[k], expect)


def test_ema_buffers_keep_the_checkpoint_keys_and_swap_in():
    host = nn.Module()
    host.net = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 2))
    ema = EMA(host.net, 0.5, host=host)
    assert {k for k in host.state_dict() if k.startswith("ema_")} == {
        "ema_0__weight", "ema_0__bias", "ema_1__weight", "ema_1__bias"}
    with torch.no_grad():
        host.ema_0__weight.fill_(3.0)
    raw = host.net[0].weight.detach().clone()
    with ema.swapped():
        assert torch.all(host.net[0].weight == 3.0)
    assert torch.equal(host.net[0].weight, raw)  # the raw weights are back
    state = ema.state_dict()
    ema.reset()
    assert torch.equal(host.ema_0__weight, raw)
    ema.load_state_dict(state)
    assert torch.all(host.ema_0__weight == 3.0)


class _Toy:
    """The least a model needs for ``train``: a module, a device and a family name."""

    family = "toy"

    def __init__(self):
        self.device_ = "cpu"
        self.module_ = nn.Linear(1, 1)


def _phase(model, **kw) -> Phase:
    def step(z, y, step):
        return descend(((model.module_(z) - 3.0) ** 2).mean(), model.optimizers_[0],
                       model.module_.parameters(), 10.0)

    base = dict(name="toy", max_steps=60, batch_size=16, lr=0.05,
                optimizers=lambda lr: [torch.optim.SGD(model.module_.parameters(), lr=lr)],
                step=step, val_loss=lambda z, y: float(((model.module_(z) - 3.0) ** 2).mean()),
                validation_fraction=0.25, eval_every=10)
    base.update(kw)
    return Phase(**base)


def test_phase_record_counts_steps_and_history():
    m = _Toy()
    Z = np.random.default_rng(0).normal(size=(64, 1))
    rec = train(m, Z, None, _phase(m), seed=0)
    assert rec.name == "toy" and rec.n_steps == 60 and not rec.diverged
    assert rec.history["val_step"] == [9, 19, 29, 39, 49, 59]
    assert rec.history["step"] == [0, 50, 59]
    assert rec.best_val_loss == min(rec.history["val_loss"])
    assert not hasattr(m, "optimizers_") and not m.module_.training


def test_phase_early_stops_and_restores_the_best_weights():
    m = _Toy()
    Z = np.random.default_rng(0).normal(size=(64, 1))
    calls = []

    def val_loss(z, y):  # improves twice, then only gets worse
        calls.append(1)
        return [3.0, 2.0, 1.0][len(calls) - 1] if len(calls) <= 3 else 5.0 + len(calls)

    rec = train(m, Z, None, _phase(m, max_steps=1000, val_loss=val_loss, early_stopping=True, patience=2), seed=0)
    assert rec.n_steps == 50  # evaluations at 10, 20, 30 (best), 40, 50: two without improvement
    assert rec.best_val_loss == 1.0


@pytest.mark.filterwarnings("ignore:Detected call of")  # the stub step never calls the optimiser
def test_phase_stops_on_a_non_finite_loss():
    m = _Toy()
    Z = np.random.default_rng(0).normal(size=(64, 1))
    rec = train(m, Z, None, _phase(m, step=lambda z, y, s: float("nan") if s == 3 else 1.0), seed=0)
    assert rec.n_steps == 4 and rec.diverged and np.isnan(rec.history["train_loss"][-1])


def test_rectified_flow_is_flow_matching_plus_reflow():
    from genzoo.families.flow_matching import FlowMatching
    from genzoo.families.rectified_flow import RectifiedFlow

    assert issubclass(RectifiedFlow, FlowMatching)
    assert RectifiedFlow._log_prob_std is FlowMatching._log_prob_std
    assert RectifiedFlow._sample_std is FlowMatching._sample_std
    X = gz.datasets.get("ring").sample(300, random_state=0)
    m = gz.make("rectified_flow", max_steps=20, reflow_steps=10, reflow_pairs=200, n_reflow=2, hidden=16,
                fourier_features=4, batch_size=64, verbose=0, random_state=0).fit(X)
    assert [p["name"] for p in m.phases_] == ["1-RF", "reflow 1", "reflow 2"]
    assert m.n_steps_ == 40 and sum(p["n_steps"] for p in m.phases_) == 40


def test_no_family_rewrites_its_budget_mid_fit():
    import inspect

    from genzoo.families import consistency, rectified_flow

    for mod in (consistency, rectified_flow):
        src = inspect.getsource(mod)
        assert "self.max_steps =" not in src.replace("        self.max_steps = max_steps", "")
        assert "_overriding" not in src and "_reflowing" not in src
