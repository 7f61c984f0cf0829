"""Typed reads of a decoded JSON object (a vendor decoder's output, an event body).

Each read names the field and what is wrong in a
:class:`~controller.core.errors.ProtocolViolation`: ``true`` is never a number, a
count is never ``1.5``, and ranges are checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from controller.core.errors import ProtocolViolation


def _missing(where: str, key: str) -> ProtocolViolation:
    return ProtocolViolation(f"{where}: {key} is missing")


def number(
    obj: Mapping[str, Any],
    key: str,
    where: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    """``obj[key]`` as a finite number within bounds, ``None`` if absent."""
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolViolation(f"{where}: {key} must be a number, got {value!r}")
    try:
        as_float = float(value)
    except OverflowError:  # an integer beyond any float: JSON allows it
        raise ProtocolViolation(
            f"{where}: {key} is out of range ({len(str(value))} digits)"
        ) from None
    if not math.isfinite(as_float):
        raise ProtocolViolation(f"{where}: {key} must be finite, got {value!r}")
    if (minimum is not None and as_float < minimum) or (maximum is not None and as_float > maximum):
        raise ProtocolViolation(f"{where}: {key} must be {minimum}..{maximum}, got {value!r}")
    return as_float


def integer(
    obj: Mapping[str, Any],
    key: str,
    where: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """``obj[key]`` as an integer within bounds (``70.0`` is accepted, ``70.5`` is not)."""
    value = number(obj, key, where, minimum=minimum, maximum=maximum)
    if value is None:
        return None
    if not value.is_integer():
        raise ProtocolViolation(f"{where}: {key} must be a whole number, got {obj[key]!r}")
    return int(value)


def boolean(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if not isinstance(value, bool):
        raise ProtocolViolation(f"{where}: {key} must be true or false, got {value!r}")
    return value


def text(obj: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            raise _missing(where, key)
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where}: {key} must be a string, got {value!r}")
    return value


def required_text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = text(obj, key, where, required=True)
    assert value is not None  # required=True raised otherwise
    return value


def mapping(
    obj: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> Mapping[str, Any] | None:
    if key not in obj or obj[key] is None:
        if required:
            raise _missing(where, key)
        return None
    value = obj[key]
    if not isinstance(value, Mapping):
        raise ProtocolViolation(f"{where}: {key} must be an object, got {value!r}")
    return value
