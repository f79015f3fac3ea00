"""Hyperparameter constraints, declared once per family and checked once when ``fit`` starts.

Every family class carries ``_parameter_constraints``: a dict from each hyperparameter name
to a list of constraints, any one of which the value must satisfy. A constraint is one of

- ``Interval(Integral | Real, left, right, closed=...)``: a number in a range (``None`` =
  unbounded); ``Integral`` takes ints only (not bools, not ``2.0``), ``Real`` any finite number;
- ``Options({...})``: one of a few values (compared by type and value, so ``1`` is not ``True``);
- ``InstanceOf(cls, ...)``, ``HasMethods("name", ...)``, ``Sequence(constraint, length=...)``;
- the strings ``"boolean"``, ``"random_state"`` (None, an int >= 0, a numpy Generator or
  RandomState) and ``"device"`` ('auto', a torch device name, or a ``torch.device``);
- ``None``: the value None.

:func:`validate_params` checks an estimator's ``get_params()`` against its declaration and
raises one ``ValueError`` whose one-line message names the parameter, what is allowed and the
value it got, e.g. ``lr must be a float in (0, inf); got 'fast'``. Checks that depend on the
data or on several parameters together stay in the families.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["Interval", "Options", "InstanceOf", "HasMethods", "Sequence", "make_constraint",
           "validate_params", "TRAINING"]


class Constraint:
    """One acceptable kind of value: ``accepts(value)`` and a phrase for error messages."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _fmt_bound(v: float | None, low: bool) -> str:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return "-inf" if low else "inf"
    return repr(v) if isinstance(v, float) else str(v)


class Interval(Constraint):
    """A number of type ``kind`` (``Integral`` or ``Real``; ``int``/``float`` also accepted) in a range.

    ``closed``: which ends belong to the range, ``'both'``, ``'left'``, ``'right'`` or
    ``'neither'``; an end given as ``None`` is unbounded. Reals must be finite.
    """

    def __init__(self, kind: type, left: float | None, right: float | None, *, closed: str = "both"):
        if kind in (int, Integral):
            self.kind = Integral
        elif kind in (float, Real):
            self.kind = Real
        else:
            raise TypeError(f"Interval kind must be Integral or Real; got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither'; got {closed!r}")
        if left is not None and right is not None and left > right:
            raise ValueError(f"empty interval: left {left} > right {right}")
        self.left, self.right, self.closed = left, right, closed

    def accepts(self, value: Any) -> bool:
        if self.kind is Integral:
            if not _is_int(value):
                return False
        elif not _is_real(value) or not math.isfinite(float(value)):
            return False
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.left is not None and not (value >= self.left if lo_in else value > self.left):
            return False
        if self.right is not None and not (value <= self.right if hi_in else value < self.right):
            return False
        return True

    def describe(self) -> str:
        what = "an int" if self.kind is Integral else "a float"
        if self.left is None and self.right is None:
            return what
        lo = "[" if self.closed in ("both", "left") and self.left is not None else "("
        hi = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        return f"{what} in {lo}{_fmt_bound(self.left, True)}, {_fmt_bound(self.right, False)}{hi}"


def _same(value: Any, option: Any) -> bool:
    """Equality that keeps kinds apart: True is not 1, 'cv' is not b'cv'."""
    if isinstance(option, (bool, np.bool_)) or isinstance(value, (bool, np.bool_)):
        return isinstance(option, (bool, np.bool_)) and isinstance(value, (bool, np.bool_)) \
            and bool(value) == bool(option)
    if isinstance(option, str) or isinstance(value, str):
        return isinstance(option, str) and isinstance(value, str) and str(value) == str(option)
    try:
        return bool(value == option)
    except Exception:  # arrays and other values without a plain truth value
        return False


class Options(Constraint):
    """One of a few fixed values (usually strings); order kept for the message."""

    def __init__(self, options):
        self.options = tuple(options)
        if not self.options:
            raise ValueError("Options needs at least one value")

    def accepts(self, value: Any) -> bool:
        return any(_same(value, o) for o in self.options)

    def describe(self) -> str:
        shown = [repr(o) for o in self.options]
        if len(shown) == 1:
            return shown[0]
        return "one of " + ", ".join(shown)


class InstanceOf(Constraint):
    """An instance of one of the given classes."""

    def __init__(self, *types: type, name: str | None = None):
        self.types, self.name = types, name

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        return self.name or ("an instance of " + " or ".join(t.__name__ for t in self.types))


class HasMethods(Constraint):
    """Any object with the named callable attributes (duck typing, e.g. a teacher model)."""

    def __init__(self, *methods: str, name: str | None = None):
        self.methods, self.name = methods, name

    def accepts(self, value: Any) -> bool:
        return value is not None and all(callable(getattr(value, m, None)) for m in self.methods)

    def describe(self) -> str:
        return self.name or "an object with " + ", ".join(f"{m}()" for m in self.methods)


class Sequence(Constraint):
    """A list or tuple whose items each satisfy ``item`` (a constraint, or a list of them: any one);
    ``length`` fixes the size, ``min_length`` bounds it below, ``increasing`` asks for
    non-decreasing items."""

    def __init__(self, item: Any, *, length: int | None = None, min_length: int = 1, increasing: bool = False):
        self.items = [make_constraint(c) for c in (item if isinstance(item, list) else [item])]
        self.length, self.min_length, self.increasing = length, min_length, increasing

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)):
            return False
        if self.length is not None and len(value) != self.length:
            return False
        if len(value) < self.min_length or not all(any(c.accepts(v) for c in self.items) for v in value):
            return False
        return not self.increasing or all(a <= b for a, b in zip(value[:-1], value[1:]))

    def describe(self) -> str:
        size = f"{self.length}" if self.length is not None else f"{self.min_length} or more"
        order = " in increasing order" if self.increasing else ""
        return f"a list of {size} values{order}, each {_allowed(self.items)}"


class _Boolean(Constraint):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "a boolean"


class _NoneValue(Constraint):
    def accepts(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"


class _RandomState(Constraint):
    def accepts(self, value: Any) -> bool:
        return (value is None or (_is_int(value) and value >= 0)
                or isinstance(value, (np.random.Generator, np.random.RandomState)))

    def describe(self) -> str:
        return "None, an int >= 0, or a numpy Generator / RandomState"


class _Device(Constraint):
    def accepts(self, value: Any) -> bool:
        import torch

        if isinstance(value, torch.device):
            return True
        if not isinstance(value, str):
            return False
        if value == "auto":
            return True
        try:
            torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            return False
        return True

    def describe(self) -> str:
        return "'auto', a torch device name ('cpu', 'cuda', 'cuda:1', ...) or a torch.device"


_NAMED = {"boolean": _Boolean, "random_state": _RandomState, "device": _Device}


def make_constraint(spec: Any) -> Constraint:
    """A constraint object from a declaration entry (an object, a name, or None)."""
    if isinstance(spec, Constraint):
        return spec
    if spec is None:
        return _NoneValue()
    if isinstance(spec, str) and spec in _NAMED:
        return _NAMED[spec]()
    if isinstance(spec, type):
        return InstanceOf(spec)
    raise TypeError(f"unknown parameter constraint {spec!r}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed(constraints: list[Constraint]) -> str:
    phrases = [c.describe() for c in constraints]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def check_param(name: str, value: Any, spec: list) -> None:
    """Raise ValueError unless ``value`` satisfies one of the constraints in ``spec``."""
    constraints = [make_constraint(s) for s in spec]
    if not any(c.accepts(value) for c in constraints):
        raise ValueError(f"{name} must be {_allowed(constraints)}; got {_show(value)}")


def validate_params(estimator: Any) -> None:
    """Check every hyperparameter of ``estimator`` against its class's ``_parameter_constraints``.

    Parameters without a declaration are not checked (the test suite insists that every family
    declares all of its parameters); ``"no_validation"`` opts one out on purpose.
    """
    constraints = getattr(type(estimator), "_parameter_constraints", None) or {}
    params = estimator.get_params(deep=False)
    for name, value in params.items():
        spec = constraints.get(name)
        if spec is None or spec == "no_validation":
            continue
        check_param(name, value, spec)


def _pos_int() -> list:
    return [Interval(Integral, 1, None)]


#: the hyperparameters of the shared training loop (``TorchGenerativeModel``)
TRAINING: dict[str, list] = {
    "max_steps": _pos_int(),
    "batch_size": _pos_int(),
    "lr": [Interval(Real, 0, None, closed="neither")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "early_stopping": ["boolean"],
    "patience": _pos_int(),
    "random_state": ["random_state"],
    "device": ["device"],
    "verbose": [Interval(Integral, 0, None), "boolean"],
}

#: shorthands for the families' declarations
POSITIVE_INT = _pos_int()
NON_NEGATIVE_INT = [Interval(Integral, 0, None)]
POSITIVE = [Interval(Real, 0, None, closed="neither")]
NON_NEGATIVE = [Interval(Real, 0, None)]
UNIT = [Interval(Real, 0, 1)]              # [0, 1]
UNIT_OPEN_RIGHT = [Interval(Real, 0, 1, closed="left")]   # [0, 1): label dropout, EMA decay
ANY_REAL = [Interval(Real, None, None)]


def _ode_methods() -> list:
    from genzoo.samplers.ode import METHODS

    return [Options(METHODS)]


#: an ODE integrator name (``genzoo.samplers.ode.METHODS``)
ODE_METHOD = _ode_methods()
