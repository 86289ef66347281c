"""Dotted field paths into record snapshots (``owner.name``, ``items.0.sku``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final


class _Missing:
    """The value of a field that a record does not have (distinct from ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def compile_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def lookup(document: Mapping[str, Any] | None, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` in ``document``, or ``MISSING`` when any step is absent."""
    current: Any = document
    for key in keys:
        if type(current) is dict or isinstance(current, Mapping):  # a dict: no ABC check
            if key not in current:
                return MISSING
            current = current[key]
        elif isinstance(current, Sequence) and not isinstance(current, str) and key.isdigit():
            index = int(key)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def plain(value: Any) -> Any:
    """``value`` for a JSON document: a missing field is shown as ``null``."""
    return None if value is MISSING else value
