"""Small value types shared by several schemas."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_DURATION_FULL = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"2d"``, ``"90m"``, ``"1d12h"``, ``"30s"`` → a timedelta. Raises ``ValueError``."""
    if not _DURATION_FULL.match(text):
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit (s, m, h, d, w), "
            "for example '30s', '15m', '2h', '2d' or '1d12h'"
        )
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
"""A relative time as written in a workflow (kept as text; see ``parse_duration``)."""

_FIELD_PATH = re.compile(r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")


def _check_field_path(text: str) -> str:
    if not _FIELD_PATH.match(text):
        raise ValueError(
            f"{text!r} is not a field path; write field names joined by dots, e.g. 'owner.name'"
        )
    return text


FieldPath = Annotated[str, AfterValidator(_check_field_path)]
"""A dotted path into a record snapshot, such as ``score`` or ``owner.name``."""
