"""The data spec: inferred from arrays and DataFrames, matched by column name, stored as JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genzoo.datasets.spec import DataSpec, frame_names, frame_to_array


def test_array_gives_plain_names_and_no_frame():
    spec = DataSpec.infer(np.zeros((4, 3)), 3)
    assert spec.names == ["x0", "x1", "x2"] and spec.dim == 3 and not spec.frame
    assert all(c.kind == "continuous" for c in spec.columns)


def test_frame_gives_its_names_and_asks_for_frames():
    spec = DataSpec.infer(pd.DataFrame({"height": [1.0], "width": [2.0]}), 2)
    assert spec.names == ["height", "width"] and spec.frame


def test_frame_with_non_string_columns_is_treated_as_an_array():
    """scikit-learn's rule: names only when every column name is a string."""
    df = pd.DataFrame(np.zeros((3, 2)))
    assert frame_names(df) is None
    assert not DataSpec.infer(df, 2).frame


def test_duplicate_names_are_refused():
    df = pd.DataFrame(np.zeros((3, 2)), columns=["a", "a"])
    with pytest.raises(ValueError, match="column 'a' appears more than once"):
        DataSpec.infer(df, 2)


def test_json_round_trip_and_unknown_kinds():
    spec = DataSpec.infer(pd.DataFrame({"a": [1.0], "b": [2.0]}), 2)
    back = DataSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    d = spec.to_dict()
    d["columns"][1]["kind"] = "hologram"  # a kind from a newer genzoo
    with pytest.raises(ValueError, match="newer"):
        DataSpec.from_dict(d)


def test_select_matches_by_name():
    spec = DataSpec.infer(pd.DataFrame({"a": [1.0], "b": [2.0]}), 2)
    swapped = pd.DataFrame({"b": [20.0, 21.0], "a": [10.0, 11.0]})
    assert spec.select(swapped).columns.tolist() == ["a", "b"]
    np.testing.assert_array_equal(frame_to_array(spec.select(swapped)), [[10.0, 20.0], [11.0, 21.0]])
    with pytest.raises(ValueError, match="column 'b' is missing"):
        spec.select(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(ValueError, match="column 'c' was not seen in fit"):
        spec.select(pd.DataFrame({"a": [1.0], "b": [1.0], "c": [1.0]}))
    arr = np.ones((2, 2))
    assert spec.select(arr) is arr  # arrays go by position


def test_output_follows_the_fit_and_the_input():
    A = np.arange(6.0).reshape(3, 2)
    plain = DataSpec.default(2)
    assert plain.output(A) is A
    named = DataSpec.infer(pd.DataFrame({"a": [1.0], "b": [2.0]}), 2)
    out = named.output(A)
    assert isinstance(out, pd.DataFrame) and out.columns.tolist() == ["a", "b"]
    assert (out.dtypes == np.float64).all()
    like = pd.DataFrame(np.zeros((3, 2)), columns=["p", "q"], index=[7, 8, 9])
    out = plain.output(A, like)  # a frame came in: a frame goes out, same index
    assert out.columns.tolist() == ["p", "q"] and out.index.tolist() == [7, 8, 9]


@pytest.mark.parametrize("column, needle", [
    (["1.5", "x"], "column 'b' is not numeric"),
    (pd.Categorical(["u", "v"]), "column 'b' is not numeric (dtype category"),
    (pd.to_datetime(["2020-01-01", "2020-01-02"]), "column 'b' is not numeric (dtype datetime"),
])
def test_non_numeric_columns_are_named(column, needle):
    df = pd.DataFrame({"a": [1.0, 2.0], "b": column})
    with pytest.raises(ValueError) as e:
        frame_to_array(df)
    assert needle in str(e.value)


def test_numeric_kinds_are_read_as_floats():
    df = pd.DataFrame({"i": pd.array([1, None], dtype="Int64"), "f": [0.5, 1.5], "t": [True, False],
                       "o": pd.Series([1, 2.5], dtype=object)})
    np.testing.assert_array_equal(frame_to_array(df), [[1.0, 0.5, 1.0, 1.0], [np.nan, 1.5, 0.0, 2.5]])


def test_kinds_are_inferred_from_dtypes():
    df = pd.DataFrame({"f": [0.5, 1.5, 2.0], "i": [1, 5, 3], "c": pd.Categorical(["b", "a", "b"]),
                       "s": ["x", "y", "x"], "t": [True, False, True], "k": [4, 4, 4],
                       "o": pd.Series([1, 2.5, 3], dtype=object)})
    spec = DataSpec.infer(df)
    assert spec.kinds == ["continuous", "integer", "categorical", "categorical", "categorical", "integer",
                          "continuous"]
    assert spec.columns[2].levels == ("a", "b") and spec.columns[3].levels == ("x", "y")
    assert spec.columns[4].levels == (False, True)
    codes = spec.encode(df)
    np.testing.assert_array_equal(codes[:, 2], [1, 0, 1])
    done = spec.fitted(codes)
    assert (done.columns[1].low, done.columns[1].high) == (1, 5)
    assert done.columns[5].kind == "constant" and done.columns[5].value == 4
    assert list(done.modelled) == [0, 1, 2, 3, 4, 6] and list(done.discrete) == [1, 2, 3, 4]


def test_arrays_integer_dtypes_are_integers_floats_stay_continuous():
    assert DataSpec.infer(np.array([[1, 2], [3, 4]])).kinds == ["integer", "integer"]
    assert DataSpec.infer(np.array([[1.0, 2.0], [3.0, 4.0]])).kinds == ["continuous", "continuous"]
    with pytest.raises(ValueError, match="integer column but row 1 holds 2.5"):
        DataSpec.infer(np.array([[1], [2]])).fitted(np.array([[1.0], [2.5]]))


def test_encode_marks_unknown_levels_and_missing_values():
    spec = DataSpec.infer(pd.DataFrame({"c": ["red", "blue"]}))
    np.testing.assert_array_equal(spec.encode(pd.DataFrame({"c": ["blue", "green", None]})), [[0], [-1], [np.nan]])


def test_typed_spec_round_trips_json_and_decodes_to_original_values():
    df = pd.DataFrame({"f": [0.5, 1.5], "i": [1, 5], "c": pd.Categorical(["b", "a"]), "s": ["x", "y"],
                       "t": [True, False], "k": ["same", "same"]})
    spec = DataSpec.infer(df)
    spec = spec.fitted(spec.encode(df))
    back = DataSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    out = back.output(back.encode(df))
    pd.testing.assert_frame_equal(out, df, check_categorical=True)
