"""Text data: the built-in ``names`` word list, the token spec of a string model, input checks.

>>> import genzoo as gz
>>> ds = gz.datasets.get("names")
>>> len(ds.split("train")), len(ds.split("val")), len(ds.split("test"))
(30033, 1000, 1000)

A string model (``autoregressive`` or ``masked_diffusion`` fitted on a list of strings) keeps a
:class:`TextSpec`: its characters, its longest training string and the token ids built from them.
Every public entry point checks its strings with :func:`check_words` and :meth:`TextSpec.check`,
so a wrong input is one ``ValueError`` naming the item and the problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

#: the end-of-string token: an autoregressive model's last prediction, and the separator of packed rows
END = 0
_DATA = Path(__file__).parent / "data"


# ----------------------------------------------------------------------------- input checks
def is_text(X: Any) -> bool:
    """Whether ``X`` looks like string data (a string, or a 1-D sequence holding strings) rather than an array."""
    if isinstance(X, str):
        return True
    if isinstance(X, np.ndarray):
        return X.ndim <= 1 and (X.dtype.kind in "US" or (X.dtype == object and any(isinstance(v, str) for v in X)))
    if hasattr(X, "dtype") and hasattr(X, "to_numpy") and getattr(X, "ndim", 2) == 1:  # a pandas Series
        return is_text(X.to_numpy())
    if isinstance(X, (list, tuple)):
        return any(isinstance(v, str) for v in X)
    return False


def check_words(X: Any, name: str = "X", *, min_items: int = 1) -> list[str]:
    """Return ``X`` as a list of ``str`` or raise a ValueError naming the problem."""
    if isinstance(X, str):
        raise ValueError(f"{name} is a single string ({X[:30]!r}); pass a list of strings, e.g. [{X[:30]!r}]")
    if X is None:
        raise ValueError(f"{name} is None; expected a list of strings")
    if isinstance(X, np.ndarray) and X.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of strings; got an array of shape {X.shape}")
    try:
        words = list(X)
    except TypeError:
        raise ValueError(f"{name} must be a list of strings; got {type(X).__name__}") from None
    if len(words) < min_items:
        raise ValueError(f"{name} is empty; need at least {min_items} string(s)" if not words else
                         f"{name} has {len(words)} string(s); need at least {min_items}")
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise ValueError(f"{name}[{i}] is {type(w).__name__} ({w!r}), not a string; "
                             "a string model takes a list of str")
    return [str(w) for w in words]


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class TextSpec:
    """Vocabulary and maximum length of a string model (stored in its checkpoint).

    Token ids: ``0`` = end of string; ``1..K`` = the ``K`` characters (sorted); ``K + 1`` = MASK
    (masked diffusion's absorbing state); ``K + 2`` = the start token without a label, which is
    also the null label of classifier-free guidance; ``K + 3 + k`` = the start token carrying
    label ``k``. Conditioning thus enters the network as the first token of each string.
    """

    chars: str
    max_len: int

    @classmethod
    def from_words(cls, words: list[str]) -> TextSpec:
        chars = "".join(sorted(set("".join(words))))
        if not chars:
            raise ValueError("every string is empty; a string model needs at least one character")
        return cls(chars, max(len(w) for w in words))

    @property
    def n_chars(self) -> int:
        return len(self.chars)

    @property
    def mask_id(self) -> int:
        return self.n_chars + 1

    def start_id(self, label: int | None = None) -> int:
        """The first token of a string: unlabelled / null label, or carrying class ``label``."""
        return self.n_chars + 2 if label is None else self.n_chars + 3 + int(label)

    def n_tokens(self, n_classes: int = 0) -> int:
        """Size of the input vocabulary for a model with ``n_classes`` labels."""
        return self.n_chars + 3 + int(n_classes)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.chars)}

    def encode(self, word: str) -> list[int]:
        """Character ids (no end token); a character outside the vocabulary raises ValueError."""
        try:
            return [self._index[c] for c in word]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} in {word!r} is not in the model's vocabulary "
                             f"({self.chars!r})") from None

    def decode(self, ids) -> str:
        """Ids -> string, up to the first end token (other non-character ids are an error)."""
        out = []
        for t in ids:
            t = int(t)
            if t == END:
                break
            if not 1 <= t <= self.n_chars:
                raise ValueError(f"token {t} is not a character of this vocabulary")
            out.append(self.chars[t - 1])
        return "".join(out)

    def check(self, words: list[str], name: str = "X", *, mask: str | None = None) -> None:
        """Every character in the vocabulary (or the ``mask`` character); no string longer than ``max_len``."""
        for w in words:
            if len(w) > self.max_len:
                raise ValueError(f"{name}: {w[:40]!r} has {len(w)} characters; this model handles strings of "
                                 f"at most {self.max_len} (its longest training string)")
            bad = set(w) - set(self.chars) - ({mask} if mask else set())
            if bad:
                raise ValueError(f"{name}: character {sorted(bad)[0]!r} in {w!r} is not in the model's vocabulary "
                                 f"({self.chars!r})")

    def to_meta(self) -> dict:
        return {"chars": self.chars, "max_len": int(self.max_len)}

    @classmethod
    def from_meta(cls, meta: dict) -> TextSpec:
        return cls(str(meta["chars"]), int(meta["max_len"]))


# ----------------------------------------------------------------------------- files
def read_text_file(path: str | os.PathLike[str]) -> list[str]:
    """One string per non-blank line of a UTF-8 text file (line ends and surrounding spaces removed)."""
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a UTF-8 text file") from None
    words = [ln.strip() for ln in lines if ln.strip()]
    if not words:
        raise ValueError(f"{p} is empty: no non-blank lines")
    return words


# ----------------------------------------------------------------------------- built-in word lists
class TextDataset:
    """A built-in list of strings with a fixed train / validation / test split.

    The split: ``np.random.default_rng(seed).permutation(n)``; its first ``n_test`` indices are the
    test words, the next ``n_val`` the validation words, the rest the training words (seed 0,
    1,000 and 1,000 for ``names``). ``sample(n)`` draws from the words' empirical distribution.
    """

    kind = "text"

    def __init__(self, name: str, filename: str, *, n_test: int = 1000, n_val: int = 1000, seed: int = 0,
                 description: str = ""):
        self.name, self.filename = name, filename
        self.n_test, self.n_val, self.seed, self.description = n_test, n_val, seed, description

    @cached_property
    def words(self) -> list[str]:
        """Every word, in file order."""
        return read_text_file(_DATA / self.filename)

    def __len__(self) -> int:
        return len(self.words)

    def split(self, part: str) -> list[str]:
        """The ``'train'``, ``'val'`` or ``'test'`` words (a fixed permutation of the file, see the class)."""
        perm = np.random.default_rng(self.seed).permutation(len(self.words))
        a, b = self.n_test, self.n_test + self.n_val
        parts = {"test": perm[:a], "val": perm[a:b], "train": perm[b:]}
        if part not in parts:
            raise ValueError(f"unknown split {part!r}; choose from 'train', 'val', 'test'")
        return [self.words[i] for i in parts[part]]

    def sample(self, n: int, random_state=None) -> list[str]:
        """``n`` words drawn uniformly (with replacement) from the whole list."""
        from .base import check_n

        idx = np.random.default_rng(random_state).integers(0, len(self.words), size=check_n(n))
        return [self.words[i] for i in idx]

    def __repr__(self) -> str:
        return f"TextDataset({self.name!r}, {len(self)} strings)"


NAMES = TextDataset("names", "names.txt", description="32,033 first names (US SSA records via makemore), a-z")

__all__ = ["END", "TextSpec", "TextDataset", "NAMES", "check_words", "is_text", "read_text_file"]
