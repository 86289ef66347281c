"""Events no CRM should send, through the broker: far-future dates with an active
invoice-overdue and stalled-deal workflow, numbers JSON cannot carry on, nesting past the limit.
Each becomes a dead letter with a reason or is handled as documented, the good events behind
them all run, and the worker stays alive."""

from __future__ import annotations

from typing import Any

import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import Api, lead_created, publish, read_until, seed_workflow, tenant
from topics.catalog import DEAD_LETTER, RECORD_CHANGES, RUNS, TIMERS

pytestmark = pytest.mark.integration


def change(tenant_id: str, n: int, record_type: str, after: Any, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{tenant_id}-hostile-{n}",
        "tenant_id": tenant_id,
        "record_type": record_type,
        "record_id": f"{record_type}-{n}",
        "operation": "created",
        "occurred_at": "2026-11-25T19:00:00Z",
        "before": None,
        "after": after,
        **fields,
    }


async def test_far_future_dates_and_strange_numbers_stop_nothing(
    api: Api, bootstrap: str, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    note = {"type": "add_note", "body": "{{record.name}}: {{record.due_date}}"}
    await api.create(
        {
            "id": f"wf-overdue-{acme}",
            "tenant_id": acme,
            "name": "Invoice overdue → note",
            "status": "active",
            "trigger": {"type": "invoice_overdue"},
            "actions": [note],
        }
    )
    await api.create(
        {
            "id": f"wf-stalled-{acme}",
            "tenant_id": acme,
            "name": "Deal stalled for ten years → note",
            "status": "active",
            "trigger": {"type": "record_stalled", "record_type": "deal", "for": "3650d"},
            "actions": [note],
        }
    )
    status, refused = await api.call(
        "POST",
        "/api/v1/workflows",
        {
            "tenant_id": acme,
            "name": "Deal stalled forever",
            "trigger": {"type": "record_stalled", "record_type": "deal", "for": "999999999d"},
            "actions": [note],
        },
    )
    assert status == 422 and "ten years" in refused["problems"][0]["msg"], refused

    key = f"{acme}-hostile".encode()
    far_invoice = change(
        acme, 1, "invoice", {"name": "I", "status": "open", "due_date": "9999-12-31"}
    )
    late_deal = change(
        acme, 2, "deal", {"name": "D", "stage": "new"}, occurred_at="2999-12-31T23:00:00Z"
    )
    last_year = change(
        acme, 3, "deal", {"name": "D", "stage": "new"}, occurred_at="9999-12-31T23:00:00Z"
    )
    big_number = lead_created(acme, 4, score=72)
    hostile: list[bytes] = [
        _json(far_invoice),
        _json(late_deal),
        _json(last_year),
        _json(big_number).replace(b'"score":72', b'"score":123456789012345678901234567890'),
        _json(lead_created(acme, 5)).replace(b'"score":72', b'"score":NaN'),
        _json(lead_created(acme, 6)).replace(b'"score":72', b'"score":1e400'),
        _json(lead_created(acme, 7)).replace(b'"score":72', b'"score":' + b"[" * 300 + b"]" * 300),
        _json(
            change(acme, 8, "invoice", {"name": "I", "status": "open", "due_date": "2026-12-01"})
        ),
    ]
    good = [lead_created(acme, n) for n in range(10, 20)]
    await publish(
        bootstrap, RECORD_CHANGES, [*((key, h) for h in hostile), *((key, g) for g in good)]
    )

    mine = {*(f"{acme}-evt-{n}" for n in range(10, 20)), f"{acme}-evt-4"}
    runs = await read_until(
        bootstrap,
        [RUNS],
        lambda rs: {r.value["event_id"] for r in rs} >= mine,
        keep=lambda r: r.value is not None and r.value.get("tenant_id") == acme,
    )
    letters = await read_until(
        bootstrap, [DEAD_LETTER], lambda rs: len(rs) >= 4, keep=lambda r: r.key == key
    )
    reasons = sorted(r.value["error"] for r in letters)
    assert len(reasons) == 4, reasons
    assert sum("not valid UTF-8 JSON" in r for r in reasons) == 2, reasons  # NaN, 1e400
    assert any("nests objects and arrays more than 64" in r for r in reasons), reasons
    assert any("occurred_at: Input should be less than 3000-01-01" in r for r in reasons), reasons
    assert not any("failed:" in r for r in reasons), "no letter of a crash"

    statuses = {
        r.value["event_id"]: r.value["status"] for r in runs if r.value["completed_at"] is None
    }
    assert all(statuses[e] == "actions_issued" for e in mine), statuses
    timers = await read_until(  # the sentinel invoice, due in 2026, arms the one timer
        bootstrap,
        [TIMERS],
        lambda rs: any(b"invoice-8" in (r.key or b"") for r in rs),
        keep=lambda r: acme.encode() in (r.key or b""),
    )
    assert [r.key for r in timers] == [f"{acme}/invoice/invoice-8/invoice_overdue".encode()], (
        "a due date in year 9999 and a stall due past 2999 arm nothing"
    )
    assert shared_worker.process is not None and shared_worker.process.poll() is None
    status, health = await api.call("GET", "/health")
    assert status == 200 and health["ready"]


def _json(document: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(document)
