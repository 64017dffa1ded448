"""Tolerant reading of what a node sends: a value of the wrong kind reads as None (or
empty), never as a crash, so a node that is newer or older than the integration still
shows what both understand."""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any


def float_or_none(value: Any) -> float | None:
    """A finite number, or None for anything else (missing, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def int_or_none(value: Any) -> int | None:
    number = float_or_none(value)
    return None if number is None else int(number)


def bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def mappings(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list (anything else in it is left out)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
