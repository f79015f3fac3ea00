"""scikit-learn conventions: GridSearchCV selects hyperparameters by held-out likelihood."""

import numpy as np
from sklearn.model_selection import GridSearchCV

import genzoo as gz


def test_gridsearch_selects_bandwidth_by_heldout_likelihood():
    X = gz.datasets.get("ring").sample(600, random_state=0)
    gs = GridSearchCV(gz.make("kde"), {"bandwidth": [0.005, 0.1, 3.0]}, cv=3).fit(X)
    assert gs.best_params_["bandwidth"] == 0.1
    assert np.isfinite(gs.best_score_)


def test_gridsearch_on_a_mixture_picks_enough_components():
    X = gz.datasets.get("gaussians8").sample(800, random_state=1)
    gs = GridSearchCV(gz.make("gmm"), {"max_components": [1, 12]}, cv=2).fit(X)
    assert gs.best_params_["max_components"] == 12


def test_gridsearch_over_a_network_family_prints_nothing(capsys):
    """Quiet by default, like scikit-learn: no progress bar per fold unless verbose=1."""
    X = gz.datasets.get("ring").sample(400, random_state=0)
    est = gz.make("vae", random_state=0, max_steps=15, device="cpu")
    GridSearchCV(est, {"lr": [1e-3]}, cv=2, refit=False).fit(X)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    est.set_params(verbose=1).fit(X)
    assert "fit vae" in capsys.readouterr().err  # asked for: a bar on stderr
