"""pandas in and out, and a quiet library: DataFrames in give DataFrames back, columns matched by name."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

import genzoo as gz
from genzoo.training import Progress


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    X = gz.datasets.get("gaussians8").sample(800, random_state=0)
    return pd.DataFrame({"height": X[:, 0], "width": X[:, 1]})


@pytest.fixture(scope="module")
def gmm(frame):
    return gz.make("gmm", random_state=0).fit(frame)


def test_frame_in_frame_out(gmm, frame):
    assert gmm.feature_names_in_.tolist() == ["height", "width"] and gmm.n_features_in_ == 2
    S = gmm.sample(20, random_state=0)
    assert isinstance(S, pd.DataFrame) and S.columns.tolist() == ["height", "width"]
    assert (S.dtypes == np.float64).all() and len(S) == 20
    # the same numbers as the array fit would draw: the frame is only the wrapping
    A = gz.make("gmm", random_state=0).fit(frame.to_numpy()).sample(20, random_state=0)
    np.testing.assert_allclose(S.to_numpy(), A)


def test_columns_are_matched_by_name(gmm, frame):
    lp = gmm.score_samples(frame.head(10))
    np.testing.assert_allclose(gmm.score_samples(frame.head(10)[["width", "height"]]), lp)
    np.testing.assert_allclose(gmm.score_samples(frame.head(10).to_numpy()), lp)  # arrays: by position
    with pytest.raises(ValueError, match="column 'width' is missing"):
        gmm.score_samples(frame[["height"]])
    with pytest.raises(ValueError, match="column 'depth' was not seen in fit"):
        gmm.score_samples(frame.head(3).assign(depth=1.0))
    with pytest.raises(ValueError, match="column 'width' is not numeric"):
        gmm.score_samples(frame.head(2).assign(width=["wide", "narrow"]))


def test_impute_keeps_the_index_and_the_observed_cells(gmm, frame):
    Q = frame.head(6)[["width", "height"]].copy()
    Q.index = [10, 11, 12, 13, 14, 15]
    Q.iloc[0, 0] = np.nan
    Q.iloc[1, :] = np.nan
    F = gmm.impute(Q, random_state=0)
    assert isinstance(F, pd.DataFrame) and F.index.tolist() == Q.index.tolist()
    assert F.columns.tolist() == ["height", "width"] and np.isfinite(F.to_numpy()).all()
    np.testing.assert_array_equal(F.loc[12:, "width"], Q.loc[12:, "width"])
    assert F.loc[10, "height"] == Q.loc[10, "height"]


def test_nan_and_inf_errors_name_the_column(gmm, frame):
    Q = frame.head(4).copy()
    Q.iloc[2, 1] = np.inf
    with pytest.raises(ValueError, match="infinite.*row 2, column 'width'"):
        gmm.score_samples(Q)


def test_an_array_fit_has_no_feature_names_and_answers_in_arrays(frame):
    m = gz.make("gmm", random_state=0).fit(frame)
    m.fit(frame.to_numpy())  # refitted on an array: the names go (scikit-learn's rule)
    assert not hasattr(m, "feature_names_in_")
    assert isinstance(m.sample(3, random_state=0), np.ndarray)


def test_gridsearch_on_a_frame(frame):
    grid = {"bandwidth": [0.003, 0.05, 1.0]}
    gs = GridSearchCV(gz.make("kde"), grid, cv=2).fit(frame)
    ga = GridSearchCV(gz.make("kde"), grid, cv=2).fit(frame.to_numpy())
    assert gs.best_params_ == ga.best_params_ and gs.best_score_ == pytest.approx(ga.best_score_)
    assert gs.best_estimator_.feature_names_in_.tolist() == ["height", "width"]


def test_fit_is_quiet_logs_and_reports_progress(frame, capsys, caplog):
    seen: list[Progress] = []
    with caplog.at_level(logging.INFO, logger="genzoo"):
        m = gz.make("autoregressive", random_state=0, max_steps=60, device="cpu").fit(frame, progress=seen.append)
    out, err = capsys.readouterr()
    assert out == "" and err == "", "the library prints nothing unless asked"
    assert [p.step for p in seen] == [1, 51, 60, 60] and seen[-1].done and not any(p.done for p in seen[:-1])
    assert all(p.max_steps == 60 and p.phase == "fit" for p in seen)
    assert any("fit autoregressive: 60 of 60 steps" in r.getMessage() for r in caplog.records)
    assert not hasattr(m, "_progress")  # the callback is not kept in the model
    assert isinstance(m.sample(5, random_state=0), pd.DataFrame)
