"""Time comes from one injectable clock, so tests can control it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def scaled_clock(start: datetime, speed: float, anchor: float) -> Clock:
    """A clock that read ``start`` at the Unix time ``anchor`` and runs ``speed`` times as fast:
    integration tests give two worker processes the same one, to run a week in seconds."""

    def now() -> datetime:
        return start + timedelta(seconds=(time.time() - anchor) * speed)

    return now
