"""A worker killed mid-stream loses no event, and what it reprocesses gets the same ids; an
executor killed mid-action repeats only that action."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from coeflow.tools.processes import WorkerProcess
from processor.run_tracker import RunTracker
from tests.factories import command_source, make_command
from tests.integration.harness import (
    SIGNING_SECRET,
    Api,
    Record,
    actions_read,
    decided,
    lead_created,
    own_broker,
    publish,
    read_until,
    seed_workflow,
    tenant,
)
from tests.peers import HttpPeer
from topics import codec
from topics.catalog import (
    ACTION_OUTCOMES,
    RECORD_CHANGES,
    RUNS,
    action_topic,
    run_progress_changelog,
)
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome

pytestmark = pytest.mark.integration

EVENTS = 1500


def distinct_events(records: list[Record]) -> int:
    return len({r.value["event_id"] for r in records if r.topic == RUNS})


def complete(records: list[Record]) -> bool:
    return distinct_events(records) >= EVENTS and actions_read(records)


async def test_sigkill_and_restart_lose_nothing_and_repeat_the_same_ids(
    bootstrap: str, workdir: Path
) -> None:
    worker = WorkerProcess(
        bootstrap,
        f"coeflow-it-restart-{uuid.uuid4().hex[:6]}",
        workdir,
        COEFLOW_ROLES="processor,api",  # what is under test here
    )
    await worker.start().wait_ready()
    try:
        acme = tenant()
        await Api(worker.url).create(seed_workflow(acme))
        events = [lead_created(acme, n) for n in range(EVENTS)]
        await publish(
            bootstrap, RECORD_CHANGES, [(f"L-{n % 50}".encode(), e) for n, e in enumerate(events)]
        )
        mine = lambda r: (  # noqa: E731
            isinstance(r.value, dict) and r.value.get("tenant_id") == acme and decided(r)
        )
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


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(tp) or 0
    finally:
        await consumer.stop()


async def test_a_run_issued_before_a_kill_completes_after_the_restart(workdir: Path) -> None:
    """The run tracker's progress outlives its worker: restored from its changelog, it
    completes a run whose record was read (and committed) before the kill. On a broker of its
    own: the session's executors would complete the run before the kill."""
    with own_broker(workdir) as broker:
        bootstrap = broker.bootstrap
        app_id = f"coeflow-it-tracker-{uuid.uuid4().hex[:6]}"
        worker = WorkerProcess(bootstrap, app_id, workdir, COEFLOW_ROLES="processor,api")
        await worker.start().wait_ready()
        try:
            acme = tenant()
            await Api(worker.url).create(seed_workflow(acme))
            await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1))])
            mine = lambda r: (  # noqa: E731
                isinstance(r.value, dict) and r.value.get("tenant_id") == acme
            )
            commands = [action_topic("send_email"), action_topic("create_task")]
            records = await read_until(
                bootstrap,
                [RUNS, *commands],
                lambda rs: any(r.topic == RUNS for r in rs) and actions_read(rs),
                keep=mine,
                within=30,
            )
            [run] = [r for r in records if r.topic == RUNS]
            assert run.value["status"] == "actions_issued"
            await read_until(
                bootstrap,
                [run_progress_changelog(app_id)],
                lambda rs: bool(rs),
                keep=lambda r: r.key == run.key,
            )
            tracker_group = f"{app_id}-{RunTracker.name}"
            deadline = time.monotonic() + 10
            where = TopicPartition(RUNS, run.partition)
            while await committed(bootstrap, tracker_group, where) <= run.offset:
                assert time.monotonic() < deadline, "the run tracker never committed the run"
                await asyncio.sleep(0.1)
            worker.kill()
            await worker.start().wait_ready()

            outcomes = [
                ActionOutcome.of(
                    codec.decode(codec.dumps(r.value), ActionCommand),
                    source=command_source(r.topic.removeprefix("workflow.actions.")),
                    attempt=1,
                    status="succeeded",
                    at=datetime.now(UTC),
                )
                for r in records
                if r.topic in commands
            ]
            await publish(bootstrap, ACTION_OUTCOMES, [(run.key, o) for o in outcomes])
            [done] = await read_until(
                bootstrap,
                [RUNS],
                lambda rs: bool(rs),
                keep=lambda r: mine(r) and r.value.get("completed_at") is not None,
                within=30,
            )
        finally:
            worker.stop()
        assert done.value["run_id"] == run.value["run_id"] and done.value["status"] == "succeeded"


def not_a_fence(record: Record) -> bool:
    return record.value is not None


async def test_an_executor_killed_between_effect_and_record_repeats_only_that_action(
    workdir: Path,
) -> None:
    """The one at-least-once window of the executors, shown on a broker of its own (so no
    other worker of the session performs these commands)."""
    with own_broker(workdir) as broker, HttpPeer(hang_seconds=2) as peer:
        env = {
            "COEFLOW_ROLES": "executors",
            "COEFLOW_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "COEFLOW_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET,
            "COEFLOW_ACTION_TIMEOUT": "10",
        }
        first = WorkerProcess(broker.bootstrap, "coeflow-it-executor", workdir, **env)
        await first.start().wait_ready()
        done = make_command("call_webhook", {"url": peer.url("/ok/done")})
        slow = make_command("call_webhook", {"url": peer.url("/hang/slow")})
        topic = action_topic("call_webhook")
        try:
            await publish(broker.bootstrap, topic, [(done.action_id.encode(), done)])
            await read_until(
                broker.bootstrap, [ACTION_OUTCOMES], lambda rs: len(rs) >= 1, keep=not_a_fence
            )
            await publish(broker.bootstrap, topic, [(slow.action_id.encode(), slow)])
            deadline = time.monotonic() + 20
            while not any(path == "/hang/slow" for path, _ in peer.arrivals):
                assert time.monotonic() < deadline, "the slow call never arrived"
                await asyncio.sleep(0.05)
            first.kill()  # the peer has the request; its outcome was never recorded
        finally:
            first.stop()

        # A new consumer group reads every command again from the start: only the ledger,
        # rebuilt from the outcome log, can tell that one of them was already performed.
        second = WorkerProcess(broker.bootstrap, "coeflow-it-executor-2", workdir, **env)
        await second.start().wait_ready()
        try:
            outcomes = await read_until(
                broker.bootstrap,
                [ACTION_OUTCOMES],
                lambda rs: {r.value["action_id"] for r in rs} == {done.action_id, slow.action_id},
                keep=not_a_fence,
                within=30,
            )
        finally:
            second.stop()

    assert [path for path, _ in peer.arrivals] == ["/ok/done", "/hang/slow", "/hang/slow"]
    repeat_keys = {h["idempotency-key"] for path, h in peer.arrivals if path == "/hang/slow"}
    assert repeat_keys == {slow.action_id}, "the repeat carries the same idempotency key"
    assert [(r.value["action_id"], r.value["status"]) for r in outcomes] == [
        (done.action_id, "succeeded"),
        (slow.action_id, "succeeded"),
    ]


async def test_a_retry_schedule_survives_an_executor_kill(workdir: Path) -> None:
    """Attempts after the first wait in the outcome log: a restarted executor resumes them,
    numbered on, at the time they were due."""
    with own_broker(workdir) as broker, HttpPeer() as peer:
        env = {
            "COEFLOW_ROLES": "executors",
            "COEFLOW_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "COEFLOW_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET,
            "COEFLOW_ACTION_BACKOFF": "3",
            "COEFLOW_ACTION_BACKOFF_MAX": "3",
            "COEFLOW_ACTION_MAX_ATTEMPTS": "3",
        }
        worker = WorkerProcess(broker.bootstrap, "coeflow-it-retries", workdir, **env)
        await worker.start().wait_ready()
        failing = make_command("call_webhook", {"url": peer.url("/status/503/again")})
        try:
            await publish(
                broker.bootstrap,
                action_topic("call_webhook"),
                [(failing.action_id.encode(), failing)],
            )
            [first] = await read_until(
                broker.bootstrap, [ACTION_OUTCOMES], lambda rs: len(rs) >= 1, keep=not_a_fence
            )
            assert first.value["status"] == "retrying"
            worker.kill()  # the second attempt is due in 1.5 to 3 seconds
            await worker.start().wait_ready()
            outcomes = await read_until(
                broker.bootstrap,
                [ACTION_OUTCOMES],
                lambda rs: any(r.value["status"] == "failed" for r in rs),
                keep=not_a_fence,
                within=30,
            )
        finally:
            worker.stop()

    assert [(o.value["attempt"], o.value["status"]) for o in outcomes] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "failed"),
    ]
    assert len(peer.received) == 3
    due = datetime.fromisoformat(first.value["next_attempt_at"]).timestamp()
    assert peer.received[1].arrived_at >= due - 0.05, "the resumed attempt came early"
