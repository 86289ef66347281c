"""``coeflow bench``'s backtest section: what a backtest costs live processing, and how fast it
replays.

One worker with the processor and api roles (as one machine runs them), a fresh consumer group
started where the record changes end now. A tenant's history of ``history`` lead creations over
the last week (every one in the backtest's window) is published and processed first (no active
workflow of that tenant: live, they start nothing). Then, alternating for ``rounds`` rounds:

1. live alone: ``live`` leads of another tenant, each starting a run of its active workflow,
   published at once; events a second from the first send to the last run record read back;
2. live during a backtest: the same, sent once the backtest's child has begun to read the topic
   (``POST /api/v1/workflows/{id}/backtest`` of the history tenant's two versions, through the
   API like any client); the share of the live batch's time the backtest was still running is
   reported with it (``overlap``: 1 means the whole batch ran beside it).

Each reports its best round. Before them, a backtest with nothing beside it. Besides: the
backtest's own events a second (``events_scanned`` over its time from start to result, its
process's start included, and the messages of every tenant it read a second), and the pure
fold's over the same events in memory (decoded beforehand, and from the bytes with the hot
decoder, as the child decodes them).
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.kafka_io import RunCounter, fences, position_worker, progress, publish
from coeflow.tools.processes import TOKEN, WorkerProcess
from processor.core.backtest import ReplaySpec, replay
from processor.core.compiler import compile_workflow
from processor.core.pipeline import decode_change
from topics import codec
from topics.catalog import RECORD_CHANGES, RUNS
from topics.workflows import Workflow

HISTORY_TENANT, LIVE_TENANT = "bench-history", "bench-live"
WORKFLOW_ID, LIVE_WORKFLOW_ID = "wf-bench-backtest", "wf-bench-live"
EMAIL = {
    "type": "send_email",
    "to": "{{record.email}}",
    "subject": "Hi",
    "body": "Hi {{record.name}}",
}
TASK = {"type": "create_task", "title": "Call {{record.name}}", "due_in": "2d"}


@dataclass
class BacktestFigures:
    history_events: int = 0
    live_events: int = 0
    rounds: int = 0
    live_alone_events_per_second: int = 0
    live_during_backtest_events_per_second: int = 0
    live_during_to_alone: float = 0.0
    """During / alone, best round to best round: 1.0 is no slowdown."""
    live_during_to_alone_median: float = 0.0
    """The median over the rounds of during / alone within each round (the two measured a
    few seconds apart: less of this machine's drift than best to best)."""
    overlap: float = 0.0
    """Of the best round during a backtest: the share of the live batch's time the backtest
    was still running."""
    backtest_events_per_second: int = 0
    """The tenant's events scanned a second, from the start of the backtest's process to its
    result (best round)."""
    backtest_messages_per_second: int = 0
    """Messages of every tenant read a second (the same time)."""
    backtest_seconds: float = 0.0
    backtest_alone_events_per_second: int = 0
    """A backtest with no live work beside it: what it does on a machine otherwise idle."""
    backtest_alone: dict[str, Any] = field(default_factory=dict)
    fold_events_per_second: int = 0
    """The pure fold in memory over the events decoded beforehand."""
    fold_with_decode_events_per_second: int = 0
    """The same from the bytes (the hot decoder, then the fold), as the child does."""
    live_alone_rounds: list[int] = field(default_factory=list)
    live_during_rounds: list[int] = field(default_factory=list)
    overlap_rounds: list[float] = field(default_factory=list)
    backtest_rounds: list[dict[str, Any]] = field(default_factory=list)


def leads(
    tenant_id: str, count: int, prefix: str, since: datetime, span: timedelta
) -> Iterator[tuple[bytes, bytes]]:
    """``count`` leads of ``tenant_id`` created evenly over ``span`` from ``since``; scores
    0–99 in turn (half reach 50)."""
    for n in range(count):
        record_id = f"L-{prefix}-{n}"
        document = {
            "event_id": f"{prefix}-{n}",
            "tenant_id": tenant_id,
            "record_type": "lead",
            "record_id": record_id,
            "operation": "created",
            "occurred_at": since + span * (n / max(count, 1)),
            "before": None,
            "after": {
                "name": f"Lead {record_id}",
                "email": f"{record_id.lower()}@example.com",
                "owner_id": f"u-{n % 50}",
                "status": "open",
                "score": (n * 37) % 100,
                "source": "web",
            },
            "actor_id": "u-bench",
            "causation": None,
        }
        yield record_id.encode(), codec.dumps(document)


def lead_workflow(workflow_id: str, tenant_id: str, score: int, status: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "tenant_id": tenant_id,
        "name": f"Leads of {score} or more",
        "status": status,
        "trigger": {"type": "record_created", "record_type": "lead"},
        "conditions": {"all": [{"field": "score", "op": "gte", "value": score}]},
        "actions": [EMAIL, TASK],
    }


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                self.url + path,
                data=codec.dumps(body) if body is not None else None,
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response,
        ):
            return response.status, codec.loads(await response.read())


def fold_rates(history: list[tuple[bytes, bytes]], versions: list[Workflow]) -> tuple[int, int]:
    """The pure fold's events a second over ``history``: decoded beforehand, and from bytes."""
    now = datetime.now(UTC)
    spec = ReplaySpec(
        candidate=compile_workflow(versions[1]),
        candidate_version=2,
        baseline=compile_workflow(versions[0]),
        baseline_version=1,
        since=now - timedelta(days=7),
        until=now,
        max_events=10_000_000,
        max_changed=1_000,
        max_records=100_000,
        max_depth=8,
    )
    decoded = [decode_change(value, 1 << 20) for _, value in history]
    # The inputs held here are no part of the fold's work (the child holds none of them): keep
    # the cyclic collector from walking them again and again, as the worker's gc.freeze does.
    gc.collect()
    gc.freeze()
    try:
        folded = with_decode = float("inf")
        for _ in range(2):  # the better of two: this machine's speed drifts
            began = time.perf_counter()
            result = replay(decoded, spec)
            folded = min(folded, time.perf_counter() - began)
            began = time.perf_counter()
            replay((decode_change(value, 1 << 20) for _, value in history), spec)
            with_decode = min(with_decode, time.perf_counter() - began)
    finally:
        gc.unfreeze()
    assert result.events_scanned == len(history), result.events_scanned
    return round(len(history) / folded), round(len(history) / with_decode)


async def live_batch(bootstrap: str, count: int, prefix: str) -> tuple[float, float, float]:
    """Publish ``count`` live leads at once; (when the first was sent, when the last run
    record was read, events a second)."""
    counter = RunCounter(bootstrap, await fences(bootstrap, [RUNS]))
    await counter.start()
    try:
        events = list(leads(LIVE_TENANT, count, prefix, datetime.now(UTC), timedelta(seconds=1)))
        began = time.monotonic()
        await publish(bootstrap, RECORD_CHANGES, events, f"live {prefix}")
        ended = await counter.until(count, f"live {prefix}", within=300)
    finally:
        await counter.stop()
    return began, ended, count / (ended - began)


async def processed(worker: WorkerProcess, at_least: int, within: float = 300.0) -> None:
    deadline = time.monotonic() + within
    while (await worker.health())["processed"]["events"] < at_least:
        if time.monotonic() > deadline:
            raise RuntimeError("the processor did not get through the history in time")
        await asyncio.sleep(0.2)


async def measure(
    bootstrap: str, workdir: Path, history: int = 100_000, live: int = 20_000, rounds: int = 2
) -> BacktestFigures:
    figures = BacktestFigures(history_events=history, live_events=live, rounds=rounds)
    app_id = f"bench-backtest-{uuid.uuid4().hex[:6]}"
    await position_worker(bootstrap, app_id, await fences(bootstrap, [RECORD_CHANGES]))
    worker = WorkerProcess(bootstrap, app_id, workdir, COEFLOW_ROLES="processor,api").start()
    try:
        await worker.wait_ready(within=180)
        api = Client(worker.url)
        for body in (
            lead_workflow(LIVE_WORKFLOW_ID, LIVE_TENANT, 0, "active"),  # every lead runs
            lead_workflow(WORKFLOW_ID, HISTORY_TENANT, 50, "draft"),
        ):
            status, answer = await api.call("POST", "/api/v1/workflows", body)
            assert status == 201, answer
        edited = lead_workflow(WORKFLOW_ID, HISTORY_TENANT, 80, "draft")
        status, answer = await api.call("PUT", f"/api/v1/workflows/{WORKFLOW_ID}", edited)
        assert status == 200, answer
        now = datetime.now(UTC)
        events = list(
            leads(
                HISTORY_TENANT,
                history,
                f"h{uuid.uuid4().hex[:4]}",
                now - timedelta(days=6.9),
                timedelta(days=6.8),
            )
        )
        versions = [
            Workflow.model_validate(lead_workflow(WORKFLOW_ID, HISTORY_TENANT, s, "draft"))
            for s in (50, 80)
        ]
        figures.fold_events_per_second, figures.fold_with_decode_events_per_second = fold_rates(
            events, versions
        )
        progress.done(
            f"backtest: the pure fold {figures.fold_events_per_second:,} events/s in memory, "
            f"{figures.fold_with_decode_events_per_second:,} from bytes"
        )
        before = (await worker.health())["processed"]["events"]
        await publish(bootstrap, RECORD_CHANGES, events, "backtest history")
        await processed(worker, before + history)
        state = await finished(api, await start_backtest(api))
        figures.backtest_alone = backtest_figures(state)
        figures.backtest_alone_events_per_second = figures.backtest_alone["events_per_second"]
        progress.done(
            f"backtest: alone {figures.backtest_alone_events_per_second:,} events/s, "
            f"{figures.backtest_alone['messages_per_second']:,} messages/s, "
            f"{figures.backtest_alone['seconds']} s"
        )
        for n in range(rounds):
            _, _, alone = await live_batch(bootstrap, live, f"alone{n}-{uuid.uuid4().hex[:4]}")
            figures.live_alone_rounds.append(round(alone))
            progress.done(f"backtest: live alone {alone:,.0f} events/s")
            during, overlap, backtest = await beside_a_backtest(api, bootstrap, live, n)
            figures.live_during_rounds.append(round(during))
            figures.overlap_rounds.append(overlap)
            figures.backtest_rounds.append(backtest)
            progress.done(
                f"backtest: live during a backtest {during:,.0f} events/s "
                f"(overlap {overlap:.2f}); the backtest: {backtest['events_per_second']:,} "
                f"events/s, {backtest['messages_per_second']:,} messages/s, "
                f"{backtest['seconds']} s"
            )
    finally:
        worker.stop()
    figures.live_alone_events_per_second = max(figures.live_alone_rounds)
    best = max(range(rounds), key=lambda n: figures.live_during_rounds[n])
    figures.live_during_backtest_events_per_second = figures.live_during_rounds[best]
    figures.overlap = figures.overlap_rounds[best]
    figures.live_during_to_alone = round(
        figures.live_during_backtest_events_per_second / figures.live_alone_events_per_second, 3
    )
    pairs = sorted(
        d / a for d, a in zip(figures.live_during_rounds, figures.live_alone_rounds, strict=True)
    )
    figures.live_during_to_alone_median = round(pairs[len(pairs) // 2], 3)
    fastest = max(figures.backtest_rounds, key=lambda b: b["events_per_second"])
    figures.backtest_events_per_second = fastest["events_per_second"]
    figures.backtest_messages_per_second = fastest["messages_per_second"]
    figures.backtest_seconds = fastest["seconds"]
    return figures


async def start_backtest(api: Client) -> str:
    """Start a backtest of the history tenant's version 2 against version 1; its path."""
    status, started = await api.call(
        "POST", f"/api/v1/workflows/{WORKFLOW_ID}/backtest", {"compare_to": 1}
    )
    assert status == 202, started
    return f"/api/v1/backtests/{started['backtest_id']}"


async def finished(api: Client, path: str) -> dict[str, Any]:
    while True:
        _, state = await api.call("GET", path)
        if state["status"] not in ("queued", "running"):
            assert state["status"] == "done", state
            return state
        await asyncio.sleep(0.05)


def backtest_figures(state: dict[str, Any]) -> dict[str, Any]:
    """A finished backtest's speed, from its process's start to its result."""
    seconds = (
        datetime.fromisoformat(state["finished_at"]) - datetime.fromisoformat(state["started_at"])
    ).total_seconds()
    result = state["result"]
    return {
        "events_scanned": result["events_scanned"],
        "messages_read": state["progress"]["messages_read"],
        "seconds": round(seconds, 2),
        "events_per_second": round(result["events_scanned"] / seconds),
        "messages_per_second": round(state["progress"]["messages_read"] / seconds),
        "changed_count": result["changed_count"],
    }


async def beside_a_backtest(
    api: Client, bootstrap: str, live: int, n: int
) -> tuple[float, float, dict[str, Any]]:
    """A live batch sent once a backtest's child reads the topic: its events a second, the
    share of its time the backtest ran beside it, and the backtest's figures."""
    path = await start_backtest(api)
    while True:
        _, state = await api.call("GET", path)
        if state["status"] != "running" or state["progress"]["messages_read"] > 0:
            break
        await asyncio.sleep(0.02)
    began, ended, rate = await live_batch(bootstrap, live, f"during{n}-{uuid.uuid4().hex[:4]}")
    state = await finished(api, path)
    # When the result came, on the monotonic clock (within the poll's 50 ms).
    backtest_end = (
        time.monotonic()
        - (datetime.now(UTC) - datetime.fromisoformat(state["finished_at"])).total_seconds()
    )
    overlap = max(0.0, min(backtest_end, ended) - began) / (ended - began)
    return rate, round(min(overlap, 1.0), 2), backtest_figures(state)
