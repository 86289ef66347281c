"""Small value types shared by several schemas."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]

_DURATION = re.compile(r"([0-9]+)\s*([smhdw])")  # not \d: it takes every script's digits
_DURATION_FULL = re.compile(r"\s*(?:[0-9]+\s*[smhdw]\s*)+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_MAX_CHARS = 64

MAX_DURATION = timedelta(days=3650)
"""The longest relative time a workflow may give (``due_in``, a stall's ``for``): ten years.
With event times bounded by ``LATEST_TIME``, no time computed from one can overflow."""


def parse_duration(text: str) -> timedelta:
    """``"2d"``, ``"90m"``, ``"1d12h"``, ``"30s"`` → a timedelta of at most ``MAX_DURATION``.
    Raises ``ValueError`` with the reason."""
    if len(text) > _DURATION_MAX_CHARS or not _DURATION_FULL.fullmatch(text):
        raise ValueError(
            f"{text[:_DURATION_MAX_CHARS]!r} is not a duration; write a number and a unit "
            "(s, m, h, d, w), for example '30s', '15m', '2h', '2d' or '1d12h'"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"{text!r} is longer than the longest duration a workflow may give, "
            f"{MAX_DURATION.days}d (ten years)"
        )
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
"""A relative time as written in a workflow (kept as text; see ``parse_duration``)."""

_FIELD_PATH = re.compile(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*")


def _check_field_path(text: str) -> str:
    if not _FIELD_PATH.fullmatch(text):  # not match(): its $ lets a trailing newline by
        raise ValueError(
            f"{text!r} is not a field path; write field names joined by dots, e.g. 'owner.name'"
        )
    return text


FieldPath = Annotated[str, AfterValidator(_check_field_path)]
"""A dotted path into a record snapshot, such as ``score`` or ``owner.name``."""


EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)
"""Event times outside [``EARLIEST_TIME``, ``LATEST_TIME``) are refused where they enter: a
time in year 9999 plus a day is past what ``datetime`` can hold, and no CRM change happens
then. A *field* of a record may hold any date; see ``processor/core/timer_rules.py``."""


def in_time_range(moment: datetime) -> bool:
    try:
        return EARLIEST_TIME <= moment < LATEST_TIME
    except OverflowError:  # an offset that moves the time past year 9999
        return False


EventTime = Annotated[AwareDatetime, Field(ge=EARLIEST_TIME, lt=LATEST_TIME)]
"""When something happened: an aware date and time within ``EARLIEST_TIME``–``LATEST_TIME``
(checked by pydantic itself: a Python validator here cost a microsecond an event)."""

MAX_NESTING = 64
"""Levels of objects and arrays a record snapshot or a workflow's JSON value may nest. Our
JSON encoder refuses more than 254, and a run record embeds its event a few levels down."""

_CONTAINERS = (dict, list)


def nesting(value: Any, limit: int = MAX_NESTING) -> int:
    """How many levels of dicts and lists ``value`` nests (0 for a scalar), counted up to
    ``limit + 1``: enough to tell that it is too deep without walking the rest. For values
    that may hold models (a workflow's parts being validated), which count as no level;
    decoded JSON is checked faster by ``within_nesting``."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        inner: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            inner.extend(c for c in children if type(c) in _CONTAINERS)
        level = inner
    return depth


_ORJSON_DEPTH = 254
"""The deepest orjson encodes: ``within_nesting`` asks it, in C, rather than walking in Python."""
_WRAPPER: list[Any] = []
_INNERMOST = _WRAPPER
for _ in range(_ORJSON_DEPTH - MAX_NESTING - 1):
    _INNERMOST.append([])
    _INNERMOST = _INNERMOST[0]


def within_nesting(value: Any) -> bool:
    """Whether ``value`` (decoded JSON) nests at most ``MAX_NESTING`` levels: orjson encodes it
    inside ``254 - MAX_NESTING`` levels of lists, or refuses past its 254 (a tenth of the cost
    of ``nesting`` on a record of a hundred items). Not for threads: one wrapper is reused."""
    _INNERMOST.append(value)
    try:
        orjson.dumps(_WRAPPER)
    except orjson.JSONEncodeError:
        return False
    finally:
        _INNERMOST.pop()
    return True


def check_nesting(value: Any, limit: int = MAX_NESTING) -> Any:
    """``value`` unchanged, or ``ValueError`` when it nests deeper than ``limit``."""
    if nesting(value, limit) > limit:
        raise ValueError(f"nests objects and arrays more than {limit} levels deep")
    return value


Nested = AfterValidator(check_nesting)
"""For a JSON value of open shape (a snapshot, a webhook body): at most ``MAX_NESTING`` deep."""
