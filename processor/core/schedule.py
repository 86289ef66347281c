"""Recurring schedules: 5-field cron expressions in an IANA time zone, in wall-clock time.

Ticks are computed on the local wall clock and only then placed in time, so a daily 09:00 stays
at 09:00 across daylight-saving changes. A wall time that does not exist (in the hour skipped
in spring) fires shifted forward by the gap (02:30 → 03:30); a wall time that happens twice
(in the hour repeated in autumn) fires once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from topics.events import ChangeEvent
from topics.schedule import SCHEDULE_RECORD_TYPE, ScheduledTick

LATE_AFTER = 60.0
"""Seconds after its time from which a tick's run record says it ran late."""

MAX_CATCH_UP = 100
"""Missed ticks counted at most when a worker comes back from downtime; past that the schedule
jumps to its latest due tick (counting them all would block the worker: a minutely schedule
down for 70 days is 100,000 ticks, seconds of croniter)."""


def _placed(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of the local wall time ``wall``: the first of two in an autumn overlap;
    shifted forward by the gap for a spring-forward time that never happens."""
    aware = wall.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(UTC).astimezone(zone)
    return back.astimezone(UTC)


def next_tick(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first tick strictly after ``after`` (an aware datetime), in UTC. Raises croniter's
    ``CroniterBadDateError`` for a schedule that never fires (``0 0 31 2 *``), which saving
    refuses."""
    wall = after.astimezone(zone).replace(tzinfo=None)
    ticks = croniter(cron, wall)
    while True:
        candidate = _placed(ticks.get_next(datetime), zone)
        if candidate > after:
            return candidate


def latest_tick(cron: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The last tick at or before ``now``, in UTC."""
    ticks = croniter(cron, (now + timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None))
    while True:
        candidate = _placed(ticks.get_prev(datetime), zone)
        if candidate <= now:
            return candidate


@dataclass(frozen=True, slots=True)
class DueTick:
    scheduled_for: datetime
    """The latest tick that is due."""
    skipped: int
    """Earlier due ticks that were missed (downtime) and run as part of this one."""


def due_tick(cron: str, zone: ZoneInfo, after: datetime, now: datetime) -> DueTick | None:
    """The tick to run now, if any: the latest one in (``after``, ``now``]. Missed earlier
    ticks are not run one by one: a schedule that was down runs once, late, and says how many
    ticks it skipped."""
    tick = next_tick(cron, zone, after)
    if tick > now:
        return None
    skipped = 0
    while skipped < MAX_CATCH_UP:
        following = next_tick(cron, zone, tick)
        if following > now:
            return DueTick(tick, skipped)
        tick, skipped = following, skipped + 1
    return DueTick(max(tick, latest_tick(cron, zone, now)), skipped)


def tick_event(tick: ScheduledTick) -> ChangeEvent:
    """The event a scheduled run sees: ``{{record.scheduled_for}}`` and friends."""
    return ChangeEvent(
        event_id=tick.event_id,
        tenant_id=tick.tenant_id,
        record_type=SCHEDULE_RECORD_TYPE,
        record_id=tick.workflow_id,
        operation="created",
        occurred_at=tick.scheduled_for,
        before=None,
        after={
            "scheduled_for": tick.scheduled_for.isoformat(),
            "late_by_seconds": round(tick.late_by, 3),
            "skipped_ticks": tick.skipped,
        },
    )


def late_note(tick: ScheduledTick) -> str | None:
    """What a run record says about a tick that ran late, or ``None`` if it ran on time."""
    if tick.late_by < LATE_AFTER and tick.skipped == 0:
        return None
    note = f"ran {tick.late_by:.0f}s late, for the tick at {tick.scheduled_for.isoformat()}"
    if tick.skipped:
        note += f"; {tick.skipped} earlier missed ticks ran as this one"
    return note
