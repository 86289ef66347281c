"""Scheduled workflows through the broker, on a clock that runs a minute per second: two
workers give one tick per minute; a kill moves the schedule without a double tick; downtime
gives one late run that says so."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import Api, Record, fast_clock, own_broker, read_until
from topics.catalog import DEAD_LETTER, RUNS, SCHEDULE_TICKS

pytestmark = pytest.mark.integration

START = "2026-11-25T08:58:00+00:00"


def ticks_of(records: list[Record]) -> list[dict]:
    return [r.value for r in records if r.topic == SCHEDULE_TICKS and r.value is not None]


def run_ids_by_tick(records: list[Record]) -> dict[datetime, set[str]]:
    by_tick: dict[datetime, set[str]] = defaultdict(set)
    for r in records:
        if r.topic == RUNS:
            by_tick[datetime.fromisoformat(r.value["occurred_at"])].add(r.value["run_id"])
    return by_tick


def every_tick_ran(records: list[Record]) -> bool:
    ran = run_ids_by_tick(records)
    return all(datetime.fromisoformat(t["scheduled_for"]) in ran for t in ticks_of(records))


async def test_one_tick_per_minute_across_two_workers_a_kill_and_downtime(workdir: Path) -> None:
    with own_broker(workdir) as broker:
        env = {"COEFLOW_ROLES": "processor,api", **fast_clock(START)}
        group = f"coeflow-it-schedule-{uuid.uuid4().hex[:6]}"
        first = WorkerProcess(broker.bootstrap, group, workdir, **env).start()
        second = WorkerProcess(broker.bootstrap, group, workdir, **env).start()
        try:
            await asyncio.gather(first.wait_ready(), second.wait_ready())
            await Api(first.url).create(
                {
                    "id": "wf-every-minute",
                    "tenant_id": "acme",
                    "name": "Every minute",
                    "status": "active",
                    "trigger": {"type": "scheduled", "cron": "* * * * *", "timezone": "UTC"},
                    "actions": [{"type": "add_note", "body": "tick {{record.scheduled_for}}"}],
                }
            )
            await read_until(broker.bootstrap, [SCHEDULE_TICKS], lambda rs: len(ticks_of(rs)) >= 5)

            # Kill one worker (the owner or not): the schedule stays with exactly one worker.
            first.kill()
            await read_until(
                broker.bootstrap, [SCHEDULE_TICKS], lambda rs: len(ticks_of(rs)) >= 12, within=60
            )
            # Downtime: no worker for about five minutes of the clock.
            second.stop()
            await asyncio.sleep(5)
            await second.start().wait_ready()
            records = await read_until(
                broker.bootstrap,
                [SCHEDULE_TICKS, RUNS, DEAD_LETTER],
                lambda rs: any(t["skipped"] >= 3 for t in ticks_of(rs)) and every_tick_ran(rs),
                within=60,
            )
        finally:
            first.stop()
            second.stop()

    ticks = ticks_of(records)
    times = [datetime.fromisoformat(t["scheduled_for"]) for t in ticks]
    assert not [t for t, n in Counter(times).items() if n > 1], "a tick was published twice"
    assert times == sorted(times)
    assert all(t.second == 0 for t in times)
    covered = sum(1 + t["skipped"] for t in ticks)
    # The first tick may itself be late (the schedule's owner was still joining its group when
    # the workflow was saved): the minutes it covers count from before it.
    first = times[0] - timedelta(minutes=ticks[0]["skipped"])
    span = int((times[-1] - first) / timedelta(minutes=1)) + 1
    assert covered == span, "every minute is one tick, or counted in a late tick's skipped"
    runs = [r.value for r in records if r.topic == RUNS]
    print(
        f"\n{len(ticks)} ticks over {span} minutes of the clock "
        f"({covered - len(ticks)} missed ones folded into late ticks), {len(runs)} run records "
        f"({len(runs) - len(ticks)} repeated by the killed worker's successor, same run ids)"
    )
    by_tick = run_ids_by_tick(records)
    assert set(by_tick) == set(times), "a tick without a run, or a run without a tick"
    assert all(len(ids) == 1 for ids in by_tick.values()), "a tick ran twice"
    letters = [r.value for r in records if r.topic == DEAD_LETTER]
    assert letters == [], "the tick log's fences are not ticks, nor bad input"
    late = [r for r in runs if r["note"]]
    assert late and "late, for the tick at" in late[-1]["note"]
    assert "earlier missed ticks ran as this one" in late[-1]["note"]
