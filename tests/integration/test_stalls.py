"""Stalled records through the broker, on a clock that runs a minute per second, with the
record state in RocksDB: a stalled deal fires once, not again when another field changes (also
after a restart, which must restore when its stage last changed), and again once it has moved
and stalled anew; a deal lost before it stalls gets a run that says why nothing was done."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import (
    Api,
    Record,
    clock_now,
    fast_clock,
    own_broker,
    publish,
    read_until,
    real_seconds_until,
)
from topics.catalog import RECORD_CHANGES, RUNS

pytestmark = pytest.mark.integration

START = "2026-11-25T09:00:00+00:00"
STALL = timedelta(minutes=3)
DEAL = {"name": "Acme renewal", "stage": "proposal", "status": "open", "amount": 100}


def deal(n: int, operation: str, at: datetime, after: Any, before: Any = None) -> dict[str, Any]:
    return {
        "event_id": f"deal-{n}-{operation}-{at.timestamp()}",
        "tenant_id": "acme",
        "record_type": "deal",
        "record_id": f"D-{n}",
        "operation": operation,
        "occurred_at": at.isoformat(),
        "before": before,
        "after": after,
    }


def stall_runs(records: list[Record], record_id: str) -> list[dict[str, Any]]:
    runs = {
        r.value["run_id"]: r.value
        for r in records
        if r.value
        and r.value.get("trigger") == "record_stalled"
        and r.value["record"]["id"] == record_id
    }
    return sorted(runs.values(), key=lambda run: run["occurred_at"])


async def test_a_stalled_deal_fires_once_per_episode_across_a_restart(workdir: Path) -> None:
    with own_broker(workdir) as broker:
        env = {"COEFLOW_ROLES": "processor,api", "COEFLOW_STORE": "rocksdb://", **fast_clock(START)}
        worker = WorkerProcess(broker.bootstrap, "coeflow-it-stalls", workdir, **env)
        await worker.start().wait_ready()
        try:
            await Api(worker.url).create(
                {
                    "id": "wf-stalled",
                    "tenant_id": "acme",
                    "name": "Deal stalled → note",
                    "status": "active",
                    "trigger": {"type": "record_stalled", "record_type": "deal", "for": "3m"},
                    "conditions": {"all": [{"field": "status", "op": "eq", "value": "open"}]},
                    "actions": [{"type": "add_note", "body": "{{record.name}} has stalled"}],
                }
            )
            began = clock_now(env)
            lost = {**DEAL, "status": "lost"}
            await publish(
                broker.bootstrap,
                RECORD_CHANGES,
                [
                    (b"D-1", deal(1, "created", began, DEAL)),
                    (b"D-2", deal(2, "created", began, DEAL)),
                    (b"D-2", deal(2, "updated", began + timedelta(minutes=1), lost, DEAL)),
                ],
            )
            await read_until(
                broker.bootstrap,
                [RUNS],
                lambda rs: stall_runs(rs, "D-1") and stall_runs(rs, "D-2"),
                within=30,
            )
            # A restart, then a change of another field: the episode is not over, and the
            # restored record state knows when the stage last changed.
            worker.stop()
            await worker.start().wait_ready()
            richer = {**DEAL, "amount": 150}
            await publish(
                broker.bootstrap,
                RECORD_CHANGES,
                [(b"D-1", deal(1, "updated", clock_now(env), richer, DEAL))],
            )
            await asyncio.sleep(real_seconds_until((clock_now(env) + STALL * 1.5).isoformat(), env))
            moved_at = clock_now(env)
            moved = {**richer, "stage": "negotiation"}
            await publish(
                broker.bootstrap,
                RECORD_CHANGES,
                [(b"D-1", deal(1, "updated", moved_at, moved, richer))],
            )
            records = await read_until(
                broker.bootstrap, [RUNS], lambda rs: len(stall_runs(rs, "D-1")) >= 2, within=30
            )
            await asyncio.sleep(2)  # time for anything that would fire twice
            records = await read_until(
                broker.bootstrap, [RUNS], lambda rs: len(rs) >= len(records), within=10
            )
        finally:
            worker.stop()

    first, second = stall_runs(records, "D-1")  # two episodes, not three
    assert first["occurred_at"] == _stamp(began + STALL), "fired at its due time"
    assert first["status"] == "actions_issued"
    assert second["occurred_at"] == _stamp(moved_at + STALL), "the new stage stalled anew"
    [why_not] = stall_runs(records, "D-2")
    assert why_not["status"] == "conditions_not_met"
    assert why_not["conditions"][0]["actual"] == "lost"
    print(f"\nstall runs: D-1 at {first['occurred_at']} and {second['occurred_at']}, D-2 not met")


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
