"""Backtests through the broker: a week of a tenant's record changes replayed by the api role's
child process, checked against the pure fold over the same events; tenants kept apart;
cancelling; the CSV; what is refused."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.backtest import leads
from coeflow.tools.processes import WorkerProcess
from processor.core.backtest import ReplaySpec, replay
from processor.core.compiler import compile_workflow
from processor.core.pipeline import decode_change
from tests.integration.harness import (
    Api,
    Record,
    email_workflow,
    own_broker,
    publish,
    read_until,
    tenant,
)
from topics.backtests import BacktestResult
from topics.catalog import RECORD_CHANGES, RUNS
from topics.workflows import Workflow

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"
B = "/api/v1/backtests"
EVENTS = 300


def week_of_leads(acme: str, now: datetime) -> list[tuple[bytes, dict[str, Any]]]:
    """``EVENTS`` lead changes of ``acme`` spread over the 7 days before ``now`` (creates, then
    updates of some), a few before the window and a few after ``now``; one record id that a
    spreadsheet would read as a formula."""
    events = []
    for n in range(EVENTS):
        at = now - timedelta(days=7) + timedelta(seconds=(n + 0.5) * 7 * 86400 / EVENTS)
        record_id = "=HYPERLINK(1)" if n == 7 else f"L-{n}"
        score = (n * 37) % 101
        events.append(lead(acme, n, record_id, "created", at, score))
        if n % 5 == 0:
            events.append(lead(acme, n, record_id, "updated", at + timedelta(hours=1), score + 1))
    for n in range(EVENTS, EVENTS + 3):  # before the window: state only
        events.append(lead(acme, n, f"L-{n}", "created", now - timedelta(days=9), 90))
    for n in range(EVENTS + 3, EVENTS + 6):  # after until: left out
        events.append(lead(acme, n, f"L-{n}", "created", now + timedelta(days=1), 90))
    return [(e["record_id"].encode(), e) for e in events]


def lead(
    acme: str, n: int, record_id: str, operation: str, at: datetime, score: int
) -> dict[str, Any]:
    after = {"name": f"Lead {n}", "email": f"lead{n}@example.com", "score": score}
    return {
        "event_id": f"{acme}-{operation}-{n}",
        "tenant_id": acme,
        "record_type": "lead",
        "record_id": record_id,
        "operation": operation,
        "occurred_at": at.isoformat(),
        "before": None if operation == "created" else {**after, "score": score - 1},
        "after": after,
        "actor_id": "u-7",
        "causation": None,
    }


def scored(acme: str, score: int, **overrides: Any) -> dict[str, Any]:
    """A lead workflow of ``acme`` that only emails (no CRM change of its own)."""
    return email_workflow(acme, score, **overrides)


async def finished(api: Api, backtest_id: str, within: float = 60.0) -> dict[str, Any]:
    return await api.poll(
        f"{B}/{backtest_id}",
        lambda b: b["status"] in ("done", "failed", "cancelled"),
        within=within,
    )


def of_tenant(acme: str) -> Any:
    return lambda r: isinstance(r.value, dict) and r.value.get("tenant_id") == acme


def expected(
    records: list[Record], versions: dict[int, Workflow], started: dict[str, Any]
) -> BacktestResult:
    """What the pure fold computes over the tenant's changes as the topic holds them."""
    events = [
        decode_change(r.value if isinstance(r.value, bytes) else _raw(r), 1_048_576)
        for r in sorted(records, key=lambda r: (r.partition, r.offset))
    ]
    baseline = started["baseline_version"]
    spec = ReplaySpec(
        candidate=compile_workflow(versions[started["candidate_version"]]),
        candidate_version=started["candidate_version"],
        baseline=compile_workflow(versions[baseline]) if baseline else None,
        baseline_version=baseline,
        since=datetime.fromisoformat(started["since"]),
        until=datetime.fromisoformat(started["until"]),
        max_events=1_000_000,
        max_changed=1_000,
        max_records=100_000,
        max_depth=8,
    )
    return replay(events, spec)


def _raw(record: Record) -> bytes:
    from topics import codec

    return codec.dumps(record.value)


async def test_a_backtest_of_an_edited_condition_equals_the_pure_fold_over_the_same_events(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    now = datetime.now(UTC)
    published = week_of_leads(acme, now)
    await publish(bootstrap, RECORD_CHANGES, published)
    workflow = scored(acme, 50)
    await api.create(workflow)  # active: version 1
    path = f"{W}/{workflow['id']}"
    status, body = await api.call("PUT", path, {**scored(acme, 80), "status": "draft"})
    assert status == 200 and body["version"] == 2, body
    records = await read_until(
        bootstrap, [RECORD_CHANGES], lambda rs: len(rs) >= len(published), keep=of_tenant(acme)
    )
    reader = await api.as_tenant(acme, "read")  # read scope may run one

    status, started = await reader.call("POST", f"{path}/backtest", {})
    assert status == 202, started
    assert started["status"] in ("queued", "running") and started["backtest_id"].startswith("bt-")
    assert (started["candidate_version"], started["baseline_version"]) == (2, 1)
    until = datetime.fromisoformat(started["until"])
    assert datetime.fromisoformat(started["since"]) == until - timedelta(days=7)
    done = await finished(reader, started["backtest_id"])
    assert done["status"] == "done", done
    progress = done["progress"]
    assert progress["messages_read"] >= len(published) and progress["messages_total"]

    versions = {
        v["version"]: Workflow.model_validate(v)
        for v in (await api.call("GET", f"{path}/versions"))[1]["versions"]
    }
    want = expected(records, versions, started)
    got = BacktestResult.model_validate(done["result"])
    assert got.events_scanned == want.events_scanned >= EVENTS
    assert got.events_before_window == want.events_before_window >= 3
    assert got.candidate == want.candidate and got.baseline == want.baseline
    assert got.changed_count == want.changed_count > 0
    assert got.changed == want.changed
    # Scores 50-79 ran in version 1 and are not met in version 2.
    assert got.baseline.runs["actions_issued"] > got.candidate.runs["actions_issued"]
    assert got.baseline.actions["send_email"] == got.baseline.runs["actions_issued"]

    # Paged, and as CSV (the query, and Accept), formula cells defused.
    status, page = await reader.call(
        "GET", f"{B}/{started['backtest_id']}?changed_offset=2&changed_limit=3"
    )
    assert status == 200 and page["result"]["changed"] == done["result"]["changed"][2:5]
    for url, headers in (
        (f"{B}/{started['backtest_id']}?format=csv", {}),
        (f"{B}/{started['backtest_id']}", {"Accept": "text/csv"}),
    ):
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                reader.base_url + url,
                headers={"Authorization": f"Bearer {reader.token}", **headers},
            ) as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
            body = await response.read()
            assert body.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel reads
            rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        assert rows[0][:3] == ["record_type", "record_id", "event_id"]
        header = rows[0]
        named = {
            (r[header.index("candidate_version")], r[header.index("baseline_version")])
            for r in rows[1:]
        }
        assert named == {(str(started["candidate_version"]), str(started["baseline_version"]))}
        assert len(rows) == 1 + min(got.changed_count, got.changed_cap)
        ids = {row[1] for row in rows[1:]}
        assert "'=HYPERLINK(1)" in ids and "=HYPERLINK(1)" not in ids


async def test_another_tenant_can_neither_see_nor_start_nor_cancel_a_backtest(api: Api) -> None:
    acme, other = tenant(), tenant()
    workflow = scored(acme, 50)
    await api.create(workflow)
    mine, theirs = await api.as_tenant(acme, "read"), await api.as_tenant(other, "admin")
    status, started = await mine.call("POST", f"{W}/{workflow['id']}/backtest", {})
    assert status == 202, started
    backtest = f"{B}/{started['backtest_id']}"
    assert (await theirs.call("GET", backtest))[0] == 404
    assert (await theirs.call("DELETE", backtest))[0] == 404
    status, body = await theirs.call("POST", f"{W}/{workflow['id']}/backtest", {})
    assert status == 404 and "no workflow" in body["error"]
    # Nor with a definition of the same id: ids are one namespace.
    status, body = await theirs.call(
        "POST", f"{W}/{workflow['id']}/backtest", {"definition": scored(other, 1)}
    )
    assert status == 404, body
    assert (await mine.call("GET", backtest))[0] == 200
    assert (await api.call("GET", backtest))[0] == 200  # the operator sees every tenant's


async def test_delete_cancels_a_running_backtest(api: Api) -> None:
    acme = tenant()
    workflow = scored(acme, 50)
    await api.create(workflow)
    status, started = await api.call("POST", f"{W}/{workflow['id']}/backtest", {})
    assert status == 202, started
    status, cancelled = await api.call("DELETE", f"{B}/{started['backtest_id']}")
    assert status == 200 and cancelled["status"] == "cancelled", cancelled
    assert (await finished(api, started["backtest_id"]))["status"] == "cancelled"
    status, body = await api.call("GET", f"{B}/{started['backtest_id']}?format=csv")
    assert status == 409 and "no result" in body["error"]


async def test_a_window_without_history_fails_with_the_reason(api: Api) -> None:
    acme = tenant()
    workflow = scored(acme, 50)
    await api.create(workflow)
    status, started = await api.call("POST", f"{W}/{workflow['id']}/backtest", {})
    assert status == 202, started
    done = await finished(api, started["backtest_id"])
    assert done["status"] == "failed" and "no record change of this tenant" in done["error"]
    assert done["result"]["events_scanned"] == 0


async def test_a_definition_of_a_workflow_not_saved_yet_is_backtested_without_baseline(
    api: Api,
) -> None:
    acme = tenant()
    reader = await api.as_tenant(acme, "read")
    definition = {k: v for k, v in scored(acme, 50).items() if k not in ("id", "tenant_id")}
    status, started = await reader.call(
        "POST", f"{W}/wf-new-{acme}/backtest", {"definition": definition}
    )
    assert status == 202, started
    assert started["candidate_version"] is None and started["baseline_version"] is None
    status, body = await reader.call(
        "POST", f"{W}/wf-new-{acme}/backtest", {"definition": {**definition, "tenant_id": "x"}}
    )
    assert status == 422 and body["problems"][0]["loc"] == "tenant_id", body


async def test_what_is_refused_and_why(api: Api) -> None:
    acme = tenant()
    workflow = scored(acme, 50)
    await api.create(workflow)
    path = f"{W}/{workflow['id']}/backtest"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"version": 9}, 404, "has no version 9"),
        ({"compare_to": 9}, 404, "has no version 9"),
        ({"since": "2026-11-30T00:00:00Z", "until": "2026-11-29T00:00:00Z"}, 422, "window"),
        ({"since": "2999-01-01T00:00:00Z", "until": "2999-02-01T00:00:00Z"}, 422, "window"),
        ({"max_events": 0}, 422, "invalid body"),
        ({"versoin": 1}, 422, "invalid body"),
        ({"definition": {**workflow, "conditions": {"field": "score", "op": "bigger"}}}, 422, ""),
    ]
    for body, want, says in cases:
        status, answer = await api.call("POST", path, body)
        assert status == want and says in answer["error"], (body, answer)
    status, answer = await api.call("POST", path, raw=b"[1]")
    assert status == 400, answer
    status, answer = await api.call("POST", f"{W}/wf-nothing-{acme}/backtest", {})
    assert status == 404, answer

    ticking = scored(
        acme, 50, id=f"wf-tick-{acme}", trigger={"type": "scheduled", "cron": "0 9 * * *"}
    )
    await api.create(ticking)
    status, answer = await api.call("POST", f"{W}/{ticking['id']}/backtest", {})
    assert status == 422 and "ticks" in answer["problems"][0]["msg"], answer


async def test_a_tenant_past_its_limit_is_told_to_wait(api: Api) -> None:
    acme = tenant()
    workflow = scored(acme, 50)
    await api.create(workflow)
    path = f"{W}/{workflow['id']}/backtest"
    started = []
    for _ in range(3):
        status, body = await api.call("POST", path, {})
        assert status == 202, body
        started.append(body["backtest_id"])
    status, body = await api.call("POST", path, {})
    assert status == 429 and "COEFLOW_BACKTEST_PER_TENANT" in body["error"], body
    for backtest_id in started:
        await api.call("DELETE", f"{B}/{backtest_id}")
    status, body = await api.call("POST", path, {})
    assert status == 202, body
    await api.call("DELETE", f"{B}/{body['backtest_id']}")
    # Five starts in a row (the refused one too) are the burst: the next is told when to retry.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            api.base_url + path, data=b"{}", headers={"Authorization": f"Bearer {api.token}"}
        ) as answer,
    ):
        body = await answer.json()
        assert answer.status == 429 and "one every 5 seconds" in body["error"], body
        assert body["retry_after_seconds"] > 0
        assert answer.headers["Retry-After"] == str(math.ceil(body["retry_after_seconds"]))


BIG = 100_000


async def test_live_runs_keep_coming_while_a_backtest_reads_100000_events(workdir: Path) -> None:
    """A worker with the processor and api roles on a broker of its own: while its backtest
    folds a tenant's 100,000 record changes, another tenant's live leads get their runs within
    seconds, all along; both rates are printed (the bench measures them properly)."""
    with own_broker(workdir) as broker:
        worker = WorkerProcess(
            broker.bootstrap, "coeflow-it-backtest-live", workdir, COEFLOW_ROLES="processor,api"
        ).start()
        try:
            await worker.wait_ready()
            api = Api(worker.url)
            live, history = tenant(), tenant()
            await api.create(scored(live, 0, id=f"wf-live-{live}"))  # every lead runs
            await api.create(scored(history, 50, id=f"wf-history-{history}", status="draft"))
            now = datetime.now(UTC)
            before = (await worker.health())["processed"]["events"]
            await publish(
                broker.bootstrap,
                RECORD_CHANGES,
                leads(history, BIG, "h", now - timedelta(days=6.9), timedelta(days=6.8)),
            )
            # The live processor gets through the history first (it starts nothing there), so
            # that what follows measures the backtest beside live work, not a backlog.
            await until_processed(worker, before + BIG)

            arrivals: dict[str, float] = {}
            reader = asyncio.create_task(runs_of(broker.bootstrap, live, arrivals))
            status, started = await api.call(
                "POST", f"{W}/wf-history-{history}/backtest", {"compare_to": 0}
            )
            assert status == 202, started
            path = f"{B}/{started['backtest_id']}"
            sent: dict[str, float] = {}
            state = started
            began = time.monotonic()
            while state["status"] in ("queued", "running"):
                wave = list(leads(live, 20, f"w{len(sent)}", datetime.now(UTC), timedelta(0)))
                at = time.monotonic()
                await publish(broker.bootstrap, RECORD_CHANGES, wave)
                sent |= {orjson.loads(v)["event_id"]: at for _, v in wave}
                await asyncio.sleep(0.2)
                state = (await api.call("GET", path))[1]
                assert time.monotonic() - began < 120, state
            backtest_ended = time.monotonic()
            assert state["status"] == "done", state
            assert state["result"]["events_scanned"] == BIG
            for _ in range(200):  # the last waves' runs
                if len(arrivals) >= len(sent):
                    break
                await asyncio.sleep(0.1)
            reader.cancel()
        finally:
            worker.stop()
    assert len(sent) >= 100, "the backtest ended before live events could be sent beside it"
    assert set(sent) <= set(arrivals), "every live event sent during the backtest got its run"
    lags = sorted(arrivals[e] - sent[e] for e in sent)
    during = [t for t in arrivals.values() if t < backtest_ended]
    assert len(during) >= len(sent) // 2, "runs kept coming while the backtest ran"
    assert lags[-1] < 10.0, f"a live event waited {lags[-1]:.1f}s for its run"
    seconds = backtest_ended - began
    print(
        f"\nbacktest of {BIG:,} events in {seconds:.1f}s ({BIG / seconds:,.0f} events/s); "
        f"beside it {len(sent):,} live events, run p50 {lags[len(lags) // 2] * 1000:.0f} ms, "
        f"max {lags[-1] * 1000:.0f} ms"
    )


async def until_processed(worker: WorkerProcess, at_least: int, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while (await worker.health())["processed"]["events"] < at_least:
        assert time.monotonic() < deadline, "the processor did not get through the history"
        await asyncio.sleep(0.2)


async def runs_of(bootstrap: str, tenant_id: str, arrivals: dict[str, float]) -> None:
    """Note when each run record of ``tenant_id`` is read, by its event's id, until cancelled."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(RUNS, p) for p in consumer.partitions_for_topic(RUNS) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        needle = tenant_id.encode()
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.monotonic()
                for record in records:
                    if record.value is not None and needle in record.value:
                        run = orjson.loads(record.value)
                        arrivals.setdefault(run["event"]["event_id"], now)
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", f"{W}/x/backtest"), ("GET", f"{B}/x"), ("DELETE", f"{B}/x")],
)
async def test_every_backtest_endpoint_needs_the_bearer_token(
    api: Api, method: str, path: str
) -> None:
    status, body = await Api(api.base_url, token=None).call(method, path, {})
    assert status == 401 and "missing bearer token" in body["error"]
    status, body = await api.call(method, path, {}, token="wrong")
    assert status == 401 and body["error"] == "invalid bearer token"
