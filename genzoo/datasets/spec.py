"""The data spec: what the columns a model was fitted on are called, and what kind each is.

``fit`` infers a :class:`DataSpec` from its input -- a NumPy array gives the names
``x0 .. x{d-1}``; a pandas DataFrame with string column names gives its own names and asks
for DataFrames back -- and stores it in the model (``spec_``) and its checkpoint. Inputs
to ``score_samples`` / ``impute`` are matched to it by column name, and ``sample`` /
``impute`` return data of the same shape and names.

Every column is ``continuous`` for now (a real number per row); other kinds (integers with
a range, categories with levels) extend ``KINDS`` together with the code that models them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: column kinds genzoo models
KINDS = ("continuous",)


@dataclass(frozen=True)
class Column:
    """One column: its name and kind."""

    name: str
    kind: str = "continuous"


@dataclass(frozen=True)
class DataSpec:
    """The columns a model was fitted on; ``frame``: it was fitted on a DataFrame, so it answers in DataFrames."""

    columns: tuple[Column, ...]
    frame: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dim(self) -> int:
        return len(self.columns)

    @classmethod
    def default(cls, dim: int) -> DataSpec:
        """The spec of a plain array of ``dim`` continuous columns (names ``x0 .. x{dim-1}``)."""
        return cls(tuple(Column(f"x{j}") for j in range(int(dim))))

    @classmethod
    def infer(cls, X: Any, dim: int) -> DataSpec:
        """The spec of fit's input ``X`` (already checked to have ``dim`` numeric columns)."""
        names = frame_names(X)
        if names is None:
            return cls.default(dim)
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"X: column {dup!r} appears more than once")
        return cls(tuple(Column(n) for n in names), frame=True)

    def to_dict(self) -> dict:
        return {"columns": [{"name": c.name, "kind": c.kind} for c in self.columns], "frame": self.frame}

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        cols = tuple(Column(str(c["name"]), str(c.get("kind", "continuous"))) for c in d["columns"])
        unknown = sorted({c.kind for c in cols} - set(KINDS))
        if unknown:
            raise ValueError(f"column kind(s) {unknown} are not known to this genzoo (written by a newer one?)")
        return cls(cols, bool(d.get("frame", False)))

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

    def output(self, A: np.ndarray, like: Any = None) -> Any:
        """Rows ``A`` (n, d) as the caller expects them: a float DataFrame with the spec's column names when
        the model was fitted on a DataFrame or ``like`` is one (keeping ``like``'s index), else the array."""
        like_names = frame_names(like)
        if not self.frame and like_names is None:
            return A
        import pandas as pd

        cols = self.names if self.frame else like_names
        index = like.index if like_names is not None else None
        return pd.DataFrame(np.asarray(A, dtype=np.float64), columns=cols, index=index)


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
    import pandas as pd

    out = np.empty(df.shape, dtype=np.float64)
    for j, (label, col) in enumerate(df.items()):
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_complex_dtype(col.dtype):
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        numeric = pd.to_numeric(col, errors="coerce") if not isinstance(col.dtype, pd.CategoricalDtype) else None
        wrong = (numeric.isna() & col.notna()) if numeric is not None else col.notna()
        if col.dtype == object and not wrong.any():  # Python numbers held as objects
            out[:, j] = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        example = f"; e.g. {col[wrong].iloc[0]!r}" if wrong.any() else ""
        raise ValueError(f"{name}: column {label!r} is not numeric (dtype {col.dtype}{example})")
    return out


__all__ = ["KINDS", "Column", "DataSpec", "is_frame", "frame_names", "frame_to_array"]
