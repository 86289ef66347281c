from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from coeflow.errors import InvalidWorkflow
from coeflow.settings import Settings
from processor.core.compiler import compile_workflow
from processor.core.pipeline import RUN_BY_TICK
from processor.core.schedule import MAX_CATCH_UP, DueTick, due_tick, latest_tick, next_tick
from tests.factories import NOW, make_workflow, source
from topics import codec
from topics.schedule import ScheduledTick

BERLIN = ZoneInfo("Europe/Berlin")


def local_ticks(cron: str, zone: ZoneInfo, start: datetime, count: int) -> list[str]:
    ticks, at = [], start
    for _ in range(count):
        at = next_tick(cron, zone, at)
        ticks.append(at.astimezone(zone).isoformat())
    return ticks


def test_a_daily_time_stays_on_the_wall_clock_across_daylight_saving() -> None:
    spring = local_ticks("0 9 * * *", BERLIN, datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert spring == [
        "2026-03-28T09:00:00+01:00",
        "2026-03-29T09:00:00+02:00",
        "2026-03-30T09:00:00+02:00",
    ]
    autumn = local_ticks("0 9 * * *", BERLIN, datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    assert autumn == [
        "2026-10-25T09:00:00+01:00",
        "2026-10-26T09:00:00+01:00",
        "2026-10-27T09:00:00+01:00",
    ]


def test_a_skipped_wall_time_shifts_and_a_repeated_one_fires_once() -> None:
    spring = local_ticks("30 2 * * *", BERLIN, datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert spring == ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    autumn = local_ticks("30 2 * * *", BERLIN, datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    assert autumn == [
        "2026-10-25T02:30:00+02:00",  # the first of the two 02:30s, only
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_nothing_is_due_before_the_next_tick() -> None:
    after = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert due_tick("*/15 * * * *", ZoneInfo("UTC"), after, after + timedelta(minutes=14)) is None
    due = due_tick("*/15 * * * *", ZoneInfo("UTC"), after, after + timedelta(minutes=15))
    assert due == DueTick(after + timedelta(minutes=15), skipped=0)


def test_after_downtime_only_the_latest_missed_tick_is_due_with_the_count_of_the_others() -> None:
    after = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # 09:00 Berlin
    due = due_tick("0 9 * * *", BERLIN, after, datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert due == DueTick(datetime(2026, 11, 25, 8, 0, tzinfo=UTC), skipped=4)


def test_a_long_downtime_jumps_to_the_latest_tick_and_counts_no_further_than_the_cap() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)  # a minutely schedule, down for 73 days
    now = datetime(2026, 3, 15, 8, 30, 20, tzinfo=UTC)
    due = due_tick("* * * * *", ZoneInfo("UTC"), after, now)
    assert due == DueTick(datetime(2026, 3, 15, 8, 30, tzinfo=UTC), skipped=MAX_CATCH_UP)


def test_the_latest_tick_keeps_to_the_wall_clock() -> None:
    assert latest_tick("0 9 * * *", BERLIN, datetime(2026, 3, 15, 8, 0, tzinfo=UTC)) == datetime(
        2026, 3, 15, 8, 0, tzinfo=UTC
    )
    assert latest_tick("0 9 * * *", BERLIN, datetime(2026, 3, 15, 7, 59, tzinfo=UTC)) == datetime(
        2026, 3, 14, 8, 0, tzinfo=UTC
    )


def test_a_schedule_that_never_fires_is_refused_at_save() -> None:
    with pytest.raises(InvalidWorkflow, match="names no date that exists"):
        compile_workflow(
            make_workflow(trigger={"type": "scheduled", "cron": "0 0 31 2 *"}, conditions=None)
        )


def scheduled_workflow() -> object:
    return compile_workflow(
        make_workflow(
            id="wf-daily",
            status="active",
            trigger={"type": "scheduled", "cron": "0 9 * * *", "timezone": "Europe/Berlin"},
            conditions=None,
            actions=[{"type": "add_note", "body": "Daily at {{record.scheduled_for}}"}],
        )
    )


def tick(late_by: float, skipped: int = 0) -> ScheduledTick:
    at = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    return ScheduledTick(
        workflow_id="wf-daily",
        tenant_id="acme",
        scheduled_for=at,
        emitted_at=at + timedelta(seconds=late_by),
        skipped=skipped,
    )


def test_a_tick_runs_its_workflow_once_per_tick_and_a_late_one_says_so(
    settings: Settings,
) -> None:
    compiled = scheduled_workflow()

    def run(t: ScheduledTick):  # type: ignore[no-untyped-def]
        return RUN_BY_TICK.process(
            b"wf-daily", codec.dumps(t), source(), lambda w: compiled, settings, NOW
        )

    [on_time] = run(tick(0.4)).runs
    assert on_time.record.trigger == "scheduled" and on_time.record.note is None
    assert on_time.commands[0].params == {"body": "Daily at 2026-11-25T08:00:00+00:00"}
    assert run(tick(0.4)).runs[0].record.run_id == on_time.record.run_id  # same tick, same run
    [late] = run(tick(3 * 3600, skipped=2)).runs
    assert late.record.note == (
        "ran 10800s late, for the tick at 2026-11-25T08:00:00+00:00; "
        "2 earlier missed ticks ran as this one"
    )
    assert RUN_BY_TICK.process(b"x", b"{", source(), lambda w: compiled, settings, NOW).dead_letter
