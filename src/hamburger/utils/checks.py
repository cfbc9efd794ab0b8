"""Argument checks with one convention: a value of the wrong *type* raises ``TypeError``, a value of the right
type outside its range raises ``ValueError``; both messages name the argument, the value and what is expected."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a bool) ``>= minimum``."""
    expected = "an int" if minimum is None else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_float(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """Return ``float(value)`` for a real number (int or float, not a bool) in the given interval.

    ``low_open`` / ``high_open`` exclude the bound itself; ``finite`` rejects inf (NaN is always rejected).
    """
    lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
    hi = "" if high is None else f"{high}" + (")" if high_open else "]")
    if low is not None and high is not None:
        expected = f"a {'finite ' if finite else ''}number in {lo}{hi}"
    elif low is not None:
        expected = f"a {'finite ' if finite else ''}number {'>' if low_open else '>='} {low}"
    elif high is not None:
        expected = f"a {'finite ' if finite else ''}number {'<' if high_open else '<='} {high}"
    else:
        expected = f"a {'finite ' if finite else ''}number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    number = float(value)
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if low is not None and (number < low or (low_open and number == low)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if high is not None and (number > high or (high_open and number == high)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def check_choice(name: str, value: object, choices: Sequence[T]) -> T:
    """Return ``value`` if it is one of ``choices`` (compared with ``==``; strings are not lower-cased)."""
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
        raise TypeError(f"{name} must be one of {list(choices)}, got {value!r}")
    if value not in choices:
        if choices and all(isinstance(c, str) for c in choices) and not isinstance(value, str):
            raise TypeError(f"{name} must be one of {list(choices)}, got {type(value).__name__} {value!r}")
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_pair(name: str, value: object) -> tuple[int, int]:
    """``value`` as ``(h, w)``: a positive int (used for both) or a pair of positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        check_positive_int(name, value)
        return (value, value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} must be a positive int or a pair (h, w) of them, got {value!r}")
    h, w = value
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be a positive int or a pair (h, w) of them, got {value!r}")
        if v < 1:
            raise ValueError(f"{name} must be a positive int or a pair (h, w) of them, got {value!r}")
    return (h, w)
