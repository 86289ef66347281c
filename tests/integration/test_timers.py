"""Invoice overdue through the broker, on a clock that runs a minute per second: an overdue
invoice fires once, a paid one never, a moved due date fires at the new date only, and a worker
killed around a due time gives one run after it comes back."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import (
    Api,
    Record,
    fast_clock,
    own_broker,
    publish,
    read_until,
    real_seconds_until,
)
from topics.catalog import RECORD_CHANGES, RUNS

pytestmark = pytest.mark.integration

START = "2026-11-25T09:00:00+00:00"


def invoice(n: int, operation: str, after: dict[str, Any], before: Any = None) -> dict[str, Any]:
    return {
        "event_id": f"inv-{n}-{operation}-{uuid.uuid4().hex[:6]}",
        "tenant_id": "acme",
        "record_type": "invoice",
        "record_id": f"I-{n}",
        "operation": operation,
        "occurred_at": START,
        "before": before,
        "after": after,
    }


def run_ids_by_invoice(records: list[Record]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.value and r.value.get("trigger") == "invoice_overdue":
            found[r.value["record"]["id"]].add(r.value["run_id"])
    return found


async def test_overdue_invoices_fire_once_paid_ones_never_and_a_kill_loses_nothing(
    workdir: Path,
) -> None:
    with own_broker(workdir) as broker:
        env = {"COEFLOW_ROLES": "processor,api", **fast_clock(START)}
        worker = WorkerProcess(broker.bootstrap, "coeflow-it-timers", workdir, **env)
        await worker.start().wait_ready()
        try:
            await Api(worker.url).create(
                {
                    "id": "wf-overdue",
                    "tenant_id": "acme",
                    "name": "Invoice overdue → note",
                    "status": "active",
                    "trigger": {"type": "invoice_overdue"},
                    "actions": [{"type": "add_note", "body": "{{record.number}} is overdue"}],
                }
            )
            due_soon = {"number": "A", "status": "open", "due_date": "2026-11-25T09:03:00Z"}
            paid = {"number": "B", "status": "open", "due_date": "2026-11-25T09:03:00Z"}
            moved = {"number": "C", "status": "open", "due_date": "2026-11-25T09:02:00Z"}
            at_kill = {"number": "D", "status": "open", "due_date": "2026-11-25T09:10:00Z"}
            await publish(
                broker.bootstrap,
                RECORD_CHANGES,
                [
                    (b"I-1", invoice(1, "created", due_soon)),
                    (b"I-2", invoice(2, "created", paid)),
                    (b"I-2", invoice(2, "updated", {**paid, "status": "paid"}, paid)),
                    (b"I-3", invoice(3, "created", moved)),
                    (
                        b"I-3",
                        invoice(3, "updated", {**moved, "due_date": "2026-11-25T09:06:00Z"}, moved),
                    ),
                    (b"I-4", invoice(4, "created", at_kill)),
                ],
            )
            await read_until(
                broker.bootstrap, [RUNS], lambda rs: set(run_ids_by_invoice(rs)) >= {"I-1", "I-3"}
            )
            # Kill the worker about when I-4 falls due (09:10 on its clock), then restart it.
            await asyncio.sleep(real_seconds_until("2026-11-25T09:09:30+00:00", env))
            worker.kill()
            await asyncio.sleep(2)
            await worker.start().wait_ready()
            records = await read_until(
                broker.bootstrap, [RUNS], lambda rs: "I-4" in run_ids_by_invoice(rs), within=60
            )
            await asyncio.sleep(3)  # time for anything that would fire twice or late
            records = await read_until(
                broker.bootstrap, [RUNS], lambda rs: len(rs) >= len(records), within=10
            )
        finally:
            worker.stop()

    ids = run_ids_by_invoice(records)
    assert set(ids) == {"I-1", "I-3", "I-4"}, "a paid invoice fired, or a due one did not"
    assert all(len(run_ids) == 1 for run_ids in ids.values()), "an invoice fired twice"
    runs = [r.value for r in records if r.value and r.value.get("trigger") == "invoice_overdue"]
    when = {r["record"]["id"]: r["occurred_at"] for r in runs}
    assert when == {
        "I-1": "2026-11-25T09:03:00Z",
        "I-3": "2026-11-25T09:06:00Z",
        "I-4": "2026-11-25T09:10:00Z",
    }, "a run is stamped with its due time, the moved one with the new date"
    print(f"\n{len(runs)} overdue run records for 3 invoices, {len(ids)} run ids")
