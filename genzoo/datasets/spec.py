"""The data spec: what the columns a model was fitted on are called, and what kind each is.

``fit`` infers a :class:`DataSpec` from its input and stores it in the model (``spec_``) and
its checkpoint. Per column a name and a kind:

- ``continuous``: a real number per row (NumPy float arrays; float DataFrame columns);
- ``integer``: whole numbers in ``[low, high]``, the range seen in fit (NumPy integer arrays;
  integer DataFrame columns);
- ``categorical``: one of ``levels``, the original values kept (strings, bools, numbers)
  (category / object / bool DataFrame columns; NumPy bool arrays), coded ``0 .. L-1``;
- ``constant``: one value in every training row (any type): carried through, not modelled.

A NumPy array gives the names ``x0 .. x{d-1}``; a DataFrame with string column names gives its
own and asks for DataFrames back. Inputs to ``score_samples`` / ``impute`` are matched to the
spec by column name and coded by :meth:`DataSpec.encode`; ``sample`` / ``impute`` answers come
back through :meth:`DataSpec.output` with the input's kind (array or DataFrame), column names
and dtypes (categories as their original values). Float values in a NumPy float array are
never guessed to be integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: column kinds genzoo models
KINDS = ("continuous", "integer", "categorical", "constant")
#: kinds modelled as whole-number codes (dequantised by continuous densities)
DISCRETE = ("integer", "categorical")


@dataclass(frozen=True)
class Column:
    """One column: its name and kind, and what the kind needs.

    ``low`` / ``high``: an integer column's range (seen in fit). ``levels``: a categorical
    column's values, in code order. ``value``: a constant column's value. ``dtype``: the
    column's dtype in fit (so answers come back with it); None for float64.
    """

    name: str
    kind: str = "continuous"
    low: int | None = None
    high: int | None = None
    levels: tuple = ()
    value: Any = None
    dtype: str | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "integer":
            d["low"], d["high"] = int(self.low), int(self.high)
        if self.levels:
            d["levels"] = list(self.levels)
        if self.kind == "constant":
            d["value"] = self.value
        if self.dtype is not None:
            d["dtype"] = self.dtype
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Column:
        low, high = d.get("low"), d.get("high")
        return cls(str(d["name"]), str(d.get("kind", "continuous")), None if low is None else int(low),
                   None if high is None else int(high), tuple(d.get("levels", ())), d.get("value"), d.get("dtype"))

    @property
    def n_codes(self) -> int:
        """How many whole-number values a discrete column takes (its range, or its level count)."""
        if self.kind == "integer":
            return int(self.high) - int(self.low) + 1
        return len(self.levels)


@dataclass(frozen=True)
class DataSpec:
    """The columns a model was fitted on; ``frame``: it was fitted on a DataFrame, so it answers in
    DataFrames; ``array_dtype``: the dtype of a NumPy integer / bool input, so answers keep it."""

    columns: tuple[Column, ...]
    frame: bool = False
    array_dtype: str | None = field(default=None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dim(self) -> int:
        return len(self.columns)

    @property
    def kinds(self) -> list[str]:
        return [c.kind for c in self.columns]

    @property
    def modelled(self) -> np.ndarray:
        """Indices of the columns a family models (all but the constant ones)."""
        return np.array([j for j, c in enumerate(self.columns) if c.kind != "constant"], dtype=np.int64)

    @property
    def discrete(self) -> np.ndarray:
        """Indices of the integer and categorical columns."""
        return np.array([j for j, c in enumerate(self.columns) if c.kind in DISCRETE], dtype=np.int64)

    @property
    def has_discrete(self) -> bool:
        return any(c.kind in DISCRETE for c in self.columns)

    @classmethod
    def default(cls, dim: int) -> DataSpec:
        """The spec of a plain array of ``dim`` continuous columns (names ``x0 .. x{dim-1}``)."""
        return cls(tuple(Column(f"x{j}") for j in range(int(dim))))

    @classmethod
    def image(cls, dim: int, high: int, array_dtype: str | None = None) -> DataSpec:
        """The spec of flattened integer images: every pixel an integer column on one shared range
        ``0 .. high`` (the largest training level), none constant -- a pixel that was always 0 in
        training is still a pixel, and a test image that lights it has a small, not a zero, probability."""
        return cls(tuple(Column(f"x{j}", "integer", low=0, high=int(high), dtype=array_dtype) for j in range(int(dim))),
                   array_dtype=array_dtype)

    # ------------------------------------------------------------------ inference
    @classmethod
    def infer(cls, X: Any, dim: int | None = None) -> DataSpec:
        """The column names and kinds of fit's input ``X`` (before its values are read).

        Integer and categorical columns get their range / levels, and constant columns are found,
        by :meth:`fitted` on the coded values; levels of categorical columns are found here.
        """
        names = frame_names(X)
        if is_frame(X):
            if names is not None:
                dup = next((n for n in names if names.count(n) > 1), None)
                if dup is not None:
                    raise ValueError(f"X: column {dup!r} appears more than once")
            cols = tuple(_infer_frame_column(n if names is not None else f"x{j}", X.iloc[:, j])
                         for j, n in enumerate(names if names is not None else list(X.columns)))
            return cls(cols, frame=names is not None)
        try:
            kind = np.asarray(X).dtype.kind
        except Exception:  # ragged: check_array names the problem
            kind = "f"
        if dim is None:
            dim = np.asarray(X).shape[1]
        if kind in "iu":
            return cls(tuple(Column(f"x{j}", "integer", dtype=str(np.asarray(X).dtype)) for j in range(int(dim))),
                       array_dtype=str(np.asarray(X).dtype))
        if kind == "b":
            return cls(tuple(Column(f"x{j}", "categorical", levels=(False, True), dtype="bool")
                             for j in range(int(dim))), array_dtype="bool")
        return cls.default(dim)

    def fitted(self, A: np.ndarray) -> DataSpec:
        """This spec completed from fit's coded values ``A`` (n, d): integer ranges, and columns holding
        one value made ``constant``. Raises a ValueError for an integer column with fractions."""
        cols = []
        for j, c in enumerate(self.columns):
            a = A[:, j]
            lo, hi = float(np.min(a)), float(np.max(a))
            if c.kind == "integer":
                frac = a != np.floor(a)
                if frac.any():
                    i = int(np.flatnonzero(frac)[0])
                    raise ValueError(f"X: column {c.name!r} is an integer column but row {i} holds {float(a[i]):g}")
                c = replace(c, low=int(lo), high=int(hi))
            if lo == hi:
                value = c.levels[int(lo)] if c.kind == "categorical" else int(lo) if c.kind == "integer" else lo
                c = replace(c, kind="constant", value=_plain(value), low=None, high=None)
            cols.append(c)
        return replace(self, columns=tuple(cols))

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d: dict[str, Any] = {"columns": [c.to_dict() for c in self.columns], "frame": self.frame}
        if self.array_dtype is not None:
            d["array_dtype"] = self.array_dtype
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        cols = tuple(Column.from_dict(c) for c in d["columns"])
        unknown = sorted({c.kind for c in cols} - set(KINDS))
        if unknown:
            raise ValueError(f"column kind(s) {unknown} are not known to this genzoo (written by a newer one?)")
        return cls(cols, bool(d.get("frame", False)), d.get("array_dtype"))

    # ------------------------------------------------------------------ in
    def select(self, X: Any, name: str = "X") -> Any:
        """``X`` with its columns in the spec's order when it is a DataFrame with named columns and
        the model was fitted on one (matched by name); anything else is returned as is (by position)."""
        names = frame_names(X)
        if names is None or not self.frame:
            return X
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"{name}: column {dup!r} appears more than once")
        missing = [n for n in self.names if n not in names]
        if missing:
            raise ValueError(f"{name}: column {missing[0]!r} is missing (the model was fitted on columns "
                             f"{', '.join(map(repr, self.names))})")
        extra = [n for n in names if n not in self.names]
        if extra:
            raise ValueError(f"{name}: column {extra[0]!r} was not seen in fit (the model was fitted on columns "
                             f"{', '.join(map(repr, self.names))})")
        return X[self.names]

    @property
    def needs_coding(self) -> bool:
        """Whether inputs must be read column by column (categorical columns hold non-numbers)."""
        return any(c.kind == "categorical" or (c.kind == "constant" and not _is_number(c.value))
                   for c in self.columns)

    def encode(self, X: Any, name: str = "X") -> np.ndarray:
        """``X`` (a DataFrame already in the spec's column order, or an array by position) as float64
        codes: numbers as they are, a categorical value as its level index, a missing value as NaN,
        and a value the model never saw (an unknown level; another value in a constant column of
        non-numbers) as -1."""
        import pandas as pd

        n = len(X)
        d = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else None
        if d != self.dim:
            raise ValueError(f"{name} has {d} feature(s) but the model was fitted on {self.dim}")
        out = np.empty((n, self.dim), dtype=np.float64)
        for j, c in enumerate(self.columns):
            col = X.iloc[:, j] if is_frame(X) else pd.Series(np.asarray(X)[:, j])
            coded = c.kind == "categorical" or (c.kind == "constant" and not _is_number(c.value))
            if not coded:
                out[:, j] = _numeric_column(col, c.name, name)
                continue
            levels = c.levels if c.kind == "categorical" else (c.value,)
            values = col.astype(object).to_numpy()
            missing = pd.isna(values)
            lookup = {_key(v): i for i, v in enumerate(levels)}
            out[:, j] = [np.nan if m else lookup.get(_key(v), -1) for v, m in zip(values, missing)]
        return out

    # ------------------------------------------------------------------ out
    def output(self, A: np.ndarray, like: Any = None) -> Any:
        """Rows ``A`` (n, d) of codes as the caller expects them.

        A DataFrame with the spec's column names and dtypes (categories as their original
        values) when the model was fitted on one or ``like`` is one (keeping ``like``'s index);
        else an array, of the fit's integer / bool dtype when it was given one, else float64.
        """
        like_names = frame_names(like)
        A = np.asarray(A, dtype=np.float64)
        if not self.frame and like_names is None:
            if self.array_dtype is not None and np.isfinite(A).all():
                return A.astype(self.array_dtype)
            return A
        import pandas as pd

        cols = self.names if self.frame else like_names
        index = like.index if like_names is not None else None
        if not self.frame and self.array_dtype is None:
            return pd.DataFrame(A, columns=cols, index=index)
        data = {cname: _decode_column(A[:, j], c, self.array_dtype) for j, (cname, c) in
                enumerate(zip(cols, self.columns))}
        return pd.DataFrame(data, columns=cols, index=index)

    def decode(self, A: np.ndarray) -> list[np.ndarray]:
        """Each column of codes ``A`` as its original values (categories as levels)."""
        return [_decode_column(A[:, j], c, self.array_dtype) for j, c in enumerate(self.columns)]


# ----------------------------------------------------------------------------- helpers
def _plain(v: Any) -> Any:
    """A JSON-storable Python value (NumPy scalars unwrapped)."""
    return v.item() if isinstance(v, np.generic) else v


def _key(v: Any) -> Any:
    """A dictionary key that matches a level however it arrives (1, 1.0, np.int64(1) and True alike)."""
    return _plain(v)


def _is_number(v: Any) -> bool:
    return isinstance(_plain(v), (int, float)) and not isinstance(_plain(v), bool)


def _numeric_column(col: Any, cname: str, name: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_complex_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    numeric = pd.to_numeric(col, errors="coerce") if not isinstance(col.dtype, pd.CategoricalDtype) else None
    wrong = (numeric.isna() & col.notna()) if numeric is not None else col.notna()
    if col.dtype == object and not wrong.any():
        return numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    example = f"; e.g. {col[wrong].iloc[0]!r}" if wrong.any() else ""
    raise ValueError(f"{name}: column {cname!r} is not numeric (dtype {col.dtype}{example})")


def _infer_frame_column(cname: str, col: Any) -> Column:
    """A DataFrame column's kind from its dtype: float -> continuous, int -> integer,
    category / bool / object (not all numbers) -> categorical."""
    import pandas as pd

    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype):
        levels = tuple(_plain(v) for v in dt.categories)
        return Column(cname, "categorical", levels=_storable(levels, cname), dtype="category")
    if pd.api.types.is_bool_dtype(dt):
        return Column(cname, "categorical", levels=(False, True), dtype=str(dt))
    if pd.api.types.is_integer_dtype(dt):
        return Column(cname, "integer", dtype=str(dt))
    if pd.api.types.is_float_dtype(dt):
        return Column(cname, "continuous", dtype=None if str(dt) == "float64" else str(dt))
    if dt.kind == "O" or pd.api.types.is_string_dtype(dt):
        present = col[col.notna()]
        if dt.kind == "O" and len(present) and pd.to_numeric(present, errors="coerce").notna().all() \
                and not any(isinstance(v, (bool, np.bool_)) for v in present):
            return Column(cname, "continuous")  # Python numbers held as objects
        values = {_key(v): _plain(v) for v in present}
        try:
            levels = tuple(sorted(values.values()))
        except TypeError:  # mixed types: order by text
            levels = tuple(sorted(values.values(), key=lambda v: (type(v).__name__, str(v))))
        return Column(cname, "categorical", levels=_storable(levels, cname), dtype=str(dt))
    raise ValueError(f"X: column {cname!r} has dtype {dt}, which genzoo cannot model (use numbers, "
                     "integers or categories)")


def _storable(levels: tuple, cname: str) -> tuple:
    bad = next((v for v in levels if not isinstance(v, (str, int, float, bool))), None)
    if bad is not None:
        raise ValueError(f"X: column {cname!r} has a level {bad!r} of type {type(bad).__name__}; categorical "
                         "levels must be strings, numbers or bools")
    return levels


def _decode_column(a: np.ndarray, c: Column, array_dtype: str | None) -> Any:
    """One column of codes as the values (and dtype) it had in fit."""
    import pandas as pd

    missing = np.isnan(a)
    if c.kind == "categorical" or (c.kind == "constant" and not _is_number(c.value)):
        levels = c.levels if c.kind == "categorical" else (c.value,)
        if c.dtype == "category":
            codes = np.where(missing, -1, a).astype(np.int64)
            return pd.Categorical.from_codes(codes, categories=list(levels))
        vals = np.empty(len(a), dtype=object)
        for i, (v, m) in enumerate(zip(a, missing)):
            vals[i] = None if m else levels[int(v)]
        if c.dtype == "bool" and not missing.any():
            return vals.astype(bool)
        return vals
    dtype = c.dtype or (array_dtype if c.kind != "continuous" else None)
    if dtype is not None and not missing.any():
        return a.astype(dtype)
    if dtype is not None and dtype[:1].isupper():  # pandas' nullable integers hold missing values
        return pd.array([None if m else int(v) for v, m in zip(a, missing)], dtype=dtype)
    return a


def is_frame(X: Any) -> bool:
    """Whether ``X`` is a pandas DataFrame (checked without importing pandas)."""
    return type(X).__module__.startswith("pandas") and hasattr(X, "columns") and hasattr(X, "dtypes")


def frame_names(X: Any) -> list[str] | None:
    """The column names of a DataFrame whose columns are all strings (scikit-learn's rule), else None."""
    if not is_frame(X):
        return None
    cols = list(X.columns)
    return cols if cols and all(isinstance(c, str) for c in cols) else None


def frame_to_array(df: Any, name: str = "X") -> np.ndarray:
    """A DataFrame's values as float64, or a ValueError naming the first column that is not numeric.

    Integer, float and boolean columns are numbers (pandas' nullable ones too: a missing value
    becomes NaN); an object column is accepted when every value in it is a number.
    """
    out = np.empty(df.shape, dtype=np.float64)
    for j, (label, col) in enumerate(df.items()):
        out[:, j] = _numeric_column(col, label, name)
    return out


__all__ = ["KINDS", "DISCRETE", "Column", "DataSpec", "is_frame", "frame_names", "frame_to_array"]
