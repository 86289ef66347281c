"""Fault tests that count every event: workers killed, workers added and removed, poison mixed
into good traffic. Each prints what it injected and what it counted.

Sizes: ``COEFLOW_FAULT_EVENTS`` events (``make faults``: 100,000; the suite: 12,000). The
workload is the benchmark's (1,000 workflows over 100 tenants); one workflow per tenant also
calls a webhook on a local peer, so effects are counted where they happen.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bench.workload import EventSource, decided_runs, index_of, tenant, workflows
from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import Record, own_broker, publish, read_until, until
from tests.peers import HttpPeer
from topics import codec
from topics.catalog import DEAD_LETTER, DEFINITIONS, RECORD_CHANGES, RUNS, action_topic
from topics.workflows import Workflow

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENTS = int(os.environ.get("COEFLOW_FAULT_EVENTS", "12000"))
TENANTS = 100


def webhook_workflows(peer: HttpPeer) -> list[Workflow]:
    """Per tenant: a deal moved to closed_won calls the peer (an effect to count)."""
    return [
        Workflow.model_validate(
            {
                "id": f"wf-hook-{tenant(n)}",
                "tenant_id": tenant(n),
                "name": "won → webhook",
                "status": "active",
                "version": 1,
                "trigger": {
                    "type": "pipeline_stage_changed",
                    "record_type": "deal",
                    "to": "closed_won",
                },
                "actions": [{"type": "call_webhook", "url": peer.url("/ok/won")}],
            }
        )
        for n in range(TENANTS)
    ]


class Expected:
    """What the pure core says the events must produce: run ids and webhook action ids."""

    def __init__(self, loaded: list[Workflow], events: list[tuple[bytes, bytes]]) -> None:
        self.runs: set[str] = set()
        self.webhooks: set[str] = set()
        for runs in decided_runs(events, index_of(loaded)):
            for run in runs:
                self.runs.add(run.record.run_id)
                self.webhooks.update(c.action_id for c in run.commands if c.type == "call_webhook")


def decisions(records: list[Record]) -> list[dict[str, Any]]:
    """Run records as decided (not the tracker's completed copies)."""
    return [r.value for r in records if r.topic == RUNS and r.value and not r.value["completed_at"]]


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as http:
        yield http


class SteadyPublisher:
    """Publishes events in the background at a steady rate, so faults land mid-stream."""

    def __init__(self, bootstrap: str, events: list[tuple[bytes, bytes]]) -> None:
        self.bootstrap, self.events = bootstrap, events
        # Faster than one worker processes them: a backlog, so kills land mid-batch.
        self.rate = max(5000, len(events) // 5)
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> SteadyPublisher:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        step = max(self.rate // 10, 1)
        # One producer throughout: a producer per chunk held the rate below what a worker
        # processes, so kills landed between batches.
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            while self.sent < len(self.events):
                chunk = self.events[self.sent : self.sent + step]
                stored = [await producer.send(RECORD_CHANGES, v, key=k) for k, v in chunk]
                await asyncio.gather(*stored)
                self.sent += len(chunk)
                await asyncio.sleep(0.1)
        finally:
            await producer.stop()

    async def reached(self, share: float) -> None:
        await until(lambda: self.sent >= len(self.events) * share, within=300)

    async def done(self) -> None:
        assert self.task is not None
        await self.task


async def load(bootstrap: str, loaded: list[Workflow]) -> None:
    await publish(bootstrap, DEFINITIONS, [(w.id.encode(), codec.dumps(w)) for w in loaded])


def worker_env(**overrides: str) -> dict[str, str]:
    return {
        "COEFLOW_OUTBOUND_ALLOWLIST": "127.0.0.1",
        "COEFLOW_ACTION_TIMEOUT": "2",
        "COEFLOW_WEBHOOK_SIGNING_SECRET": "whsec-faults",
        **overrides,
    }


async def until_seen(
    bootstrap: str, expected: set[str], share: float, within: float = 120.0
) -> list[Record]:
    """Read run records until ``share`` of the expected run ids are there."""
    want = int(len(expected) * share)
    return await read_until(
        bootstrap,
        [RUNS],
        lambda rs: len({r["run_id"] for r in decisions(rs)} & expected) >= want,
        within=within,
    )


async def test_three_sigkills_lose_no_event_and_repeat_no_effect(
    workdir: Path, peer: HttpPeer
) -> None:
    loaded = workflows(1000, TENANTS) + webhook_workflows(peer)
    events = list(EventSource(TENANTS, seed=21).events(EVENTS, prefix="k"))
    expected = Expected(loaded, events)
    with own_broker(workdir / "kills") as broker:
        await load(broker.bootstrap, loaded)
        group = f"faults-kills-{uuid.uuid4().hex[:6]}"
        processor = WorkerProcess(
            broker.bootstrap, group, workdir, **worker_env(COEFLOW_ROLES="processor,api")
        )
        executors = WorkerProcess(
            broker.bootstrap,
            f"{group}-executors",
            workdir,
            **worker_env(COEFLOW_ROLES="executors"),
        )
        executors.start()
        await processor.start().wait_ready()
        await executors.wait_ready()
        publisher = SteadyPublisher(broker.bootstrap, events).start()
        try:
            for share in (0.25, 0.5, 0.75):
                await publisher.reached(share)
                processor.kill()
                await processor.start().wait_ready()
            await publisher.done()
            records = await until_seen(broker.bootstrap, expected.runs, 1.0)
            commands = await read_until(
                broker.bootstrap,
                [action_topic("call_webhook")],
                lambda rs: {r.value["action_id"] for r in rs if r.value} >= expected.webhooks,
            )
            await until(lambda: len(peer.to("/ok/won")) >= len(expected.webhooks), within=120)
            await asyncio.sleep(2)  # anything that would arrive twice
        finally:
            processor.stop()
            executors.stop()

    seen = Counter(r["run_id"] for r in decisions(records))
    missing = expected.runs - set(seen)
    repeated_runs = sum(n - 1 for n in seen.values())
    issued = Counter(r.value["action_id"] for r in commands if r.value)
    effects = Counter(r.headers.get("idempotency-key") for r in peer.to("/ok/won"))
    print(
        f"\n{EVENTS:,} events, 3 SIGKILLs of the processor: {len(expected.runs):,} runs expected, "
        f"{len(missing)} missing; {repeated_runs:,} run records and "
        f"{sum(n - 1 for n in issued.values()):,} webhook commands repeated by the replays; "
        f"{len(effects):,} webhooks performed, {sum(n - 1 for n in effects.values())} twice"
    )
    assert missing == set(), "an event lost its run"
    assert set(effects) == expected.webhooks, "an effect is missing or unexpected"
    assert all(n == 1 for n in effects.values()), "an effect happened twice"


async def test_one_to_two_to_one_workers_lose_nothing_and_keep_each_partitions_order(
    workdir: Path,
) -> None:
    loaded = workflows(1000, TENANTS)
    events = list(EventSource(TENANTS, seed=22).events(EVENTS, prefix="s"))
    expected = Expected(loaded, events)
    with own_broker(workdir / "scale") as broker:
        await load(broker.bootstrap, loaded)
        group = f"faults-scale-{uuid.uuid4().hex[:6]}"
        first = WorkerProcess(broker.bootstrap, group, workdir, COEFLOW_ROLES="processor,api")
        second = WorkerProcess(broker.bootstrap, group, workdir, COEFLOW_ROLES="processor,api")
        await first.start().wait_ready()
        publisher = SteadyPublisher(broker.bootstrap, events).start()
        try:
            await publisher.reached(0.3)
            await second.start().wait_ready()
            await publisher.reached(0.6)
            second.stop()
            await publisher.done()
            records = await until_seen(broker.bootstrap, expected.runs, 1.0)
        finally:
            first.stop()
            second.stop()

    decided = decisions(records)
    missing = expected.runs - {r["run_id"] for r in decided}
    # Each partition's changes are decided in order: first decisions, by source offset, never
    # go back in time (a batch shares one decision time).
    first_decided: dict[int, dict[int, str]] = defaultdict(dict)
    for run in decided:
        source = run["source"]
        first_decided[source["partition"]].setdefault(source["offset"], run["decided_at"])
    out_of_order = sum(
        1
        for by_offset in first_decided.values()
        for earlier, later in zip(sorted(by_offset), sorted(by_offset)[1:], strict=False)
        if by_offset[later] < by_offset[earlier]
    )
    print(
        f"\n{EVENTS:,} events, 1 → 2 → 1 workers: {len(expected.runs):,} runs expected, "
        f"{len(missing)} missing, {len(decided) - len(expected.runs):,} repeated at the "
        f"handovers, {out_of_order} decided out of partition order"
    )
    assert missing == set()
    assert out_of_order == 0


def dated_past_the_range() -> dict[str, Any]:
    """An event of 9999-12-31 for the workload's welcome workflow, whose task is due two days
    after the event (past the last date there is): it used to raise while deciding, and is
    refused now where it enters, like every time outside 1970-2999."""
    return {
        "event_id": "late-lead",
        "tenant_id": tenant(1),
        "record_type": "lead",
        "record_id": "L-late",
        "operation": "created",
        "occurred_at": "9999-12-31T12:00:00Z",
        "after": {"name": "Ada", "email": "ada@example.com", "score": 80, "owner_id": "u-1"},
    }


async def test_poison_in_good_traffic_is_dead_lettered_one_for_one(
    workdir: Path,
) -> None:
    loaded = workflows(1000, TENANTS)
    good = list(EventSource(TENANTS, seed=23).events(EVENTS // 4, prefix="p"))
    poison: list[tuple[bytes, bytes | None]] = [
        (b"bad-1", b"{not json"),
        (b"bad-2", b"\xff\xfe not utf-8"),
        (b"bad-3", codec.dumps({"event_id": "x", "tenant_id": "t-00001"})),
        (b"bad-4", codec.dumps({**codec.loads(good[0][1]), "operation": "exploded"})),
        (b"bad-5", None),
        (b"bad-6", b"{" + b'"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'),
        (b"bad-7", codec.dumps(dated_past_the_range())),
    ]
    mixed: list[tuple[bytes, bytes | None]] = list(good)
    for n, bad in enumerate(poison):
        mixed.insert((n + 1) * len(good) // (len(poison) + 1), bad)
    expected = Expected(loaded, good)
    with own_broker(workdir / "poison") as broker:
        await load(broker.bootstrap, loaded)
        await publish(broker.bootstrap, RECORD_CHANGES, mixed)
        worker = WorkerProcess(
            broker.bootstrap,
            f"faults-poison-{uuid.uuid4().hex[:6]}",
            workdir,
            COEFLOW_ROLES="processor,api",
        )
        await worker.start().wait_ready()
        pid = worker.process.pid if worker.process else None
        try:
            records = await until_seen(broker.bootstrap, expected.runs, 1.0)
            letters = await read_until(
                broker.bootstrap, [DEAD_LETTER], lambda rs: len(rs) >= len(poison)
            )
            await asyncio.sleep(2)
            letters = await read_until(
                broker.bootstrap, [DEAD_LETTER], lambda rs: len(rs) >= len(letters)
            )
            health = await worker.health()
            alive = worker.process is not None and worker.process.poll() is None
        finally:
            worker.stop()

    missing = expected.runs - {r["run_id"] for r in decisions(records)}
    keys = sorted(r.key or b"" for r in letters)
    print(
        f"\n{len(good):,} good events with {len(poison)} poison messages: "
        f"{len(letters)} dead letters, {len(missing)} good runs missing, "
        f"worker {'still running' if alive else 'gone'} (pid {pid}), "
        f"{health['processed']['events']:,} events processed"
    )
    assert keys == sorted(key for key, _ in poison), "one dead letter per poison message"
    [late] = [r.value for r in letters if r.key == b"bad-7"]
    assert "occurred_at: Input should be less than 3000-01-01" in late["error"], late["error"]
    assert missing == set(), "a good event was lost among the poison"
    assert alive and health["processed"]["events"] == len(mixed)
