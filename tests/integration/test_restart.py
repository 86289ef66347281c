"""A worker killed mid-stream loses no event, and what it reprocesses gets the same ids."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from tests.integration.harness import (
    Api,
    Record,
    WorkerProcess,
    actions_read,
    lead_created,
    publish,
    read_until,
    seed_workflow,
    tenant,
)
from topics.catalog import RECORD_CHANGES, RUNS, action_topic

pytestmark = pytest.mark.integration

EVENTS = 1500


def distinct_events(records: list[Record]) -> int:
    return len({r.value["event_id"] for r in records if r.topic == RUNS})


def complete(records: list[Record]) -> bool:
    return distinct_events(records) >= EVENTS and actions_read(records)


async def test_sigkill_and_restart_lose_nothing_and_repeat_the_same_ids(
    bootstrap: str, workdir: Path
) -> None:
    worker = WorkerProcess(bootstrap, f"coeflow-it-restart-{uuid.uuid4().hex[:6]}", workdir)
    await worker.start().wait_ready()
    try:
        acme = tenant()
        await Api(worker.url).create(seed_workflow(acme))
        events = [lead_created(acme, n) for n in range(EVENTS)]
        await publish(
            bootstrap, RECORD_CHANGES, [(f"L-{n % 50}".encode(), e) for n, e in enumerate(events)]
        )
        mine = lambda r: isinstance(r.value, dict) and r.value.get("tenant_id") == acme  # noqa: E731
        outputs = [RUNS, action_topic("send_email"), action_topic("create_task")]

        # Kill without warning a third of the way in, then stop politely two thirds in.
        await read_until(
            bootstrap, [RUNS], lambda rs: distinct_events(rs) >= EVENTS // 3, keep=mine, within=60
        )
        worker.kill()
        await worker.start().wait_ready()
        await read_until(
            bootstrap,
            [RUNS],
            lambda rs: distinct_events(rs) >= 2 * EVENTS // 3,
            keep=mine,
            within=60,
        )
        worker.stop()
        await worker.start().wait_ready()

        records = await read_until(bootstrap, outputs, complete, keep=mine, within=90)
    finally:
        worker.stop()

    run_ids: dict[str, set[str]] = defaultdict(set)
    action_ids: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.topic == RUNS:
            run_ids[record.value["event_id"]].add(record.value["run_id"])
            action_ids[record.value["run_id"]].add(
                tuple(a["action_id"] for a in record.value["actions"])
            )  # type: ignore[arg-type]
    assert set(run_ids) == {e["event_id"] for e in events}, "an event has no run record"
    assert all(len(ids) == 1 for ids in run_ids.values()), "a reprocessed event got a new run id"
    assert all(len(ids) == 1 for ids in action_ids.values()), "a rerun issued other action ids"
    commands = [r for r in records if r.topic != RUNS]
    assert {r.value["run_id"] for r in commands} == {i for ids in run_ids.values() for i in ids}
    runs = sum(1 for r in records if r.topic == RUNS)
    print(
        f"\n{EVENTS} events, 1 SIGKILL + 1 SIGTERM restart: {runs} run records "
        f"({runs - EVENTS} repeated after the kill), 0 events without a run"
    )
