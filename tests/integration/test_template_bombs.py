"""Template bombs at a real worker: refused at save when they are written into the workflow,
and, when a record's values make a valid template explode, a dry run by a read token that
answers a failed run within a second, with the worker's memory as it was."""

from __future__ import annotations

import time
from typing import Any

import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import Api, lead_created, tenant

pytestmark = pytest.mark.integration

BOMBS_FROM_DATA = {
    "{{ record.pad|center(record.width) }}": {"pad": "a", "width": 999_999_999},
    "{{ record.spec|format(1) }}": {"spec": "%999999999d"},
    "{{ record.spec % record.x }}": {"spec": "%.999999999f", "x": 1.0},
    "{{ record.big ~ record.big ~ record.big ~ record.big ~ record.big }}": {"big": "x" * 90_000},
    "{{ record.pad * record.width }}": {"pad": "ab", "width": 999_999_999},
    # 72 factors of 2**62 (in groups: nesting is limited to 32): 4,464 bits
    "{{ " + " * ".join(["(" + " * ".join(["record.n"] * 8) + ")"] * 9) + " }}": {"n": 2**62},
}


def workflow(acme: str, n: int, body: str) -> dict[str, Any]:
    return {
        "id": f"wf-bomb-{n}-{acme}",
        "tenant_id": acme,
        "name": f"Bomb {n}",
        "trigger": {"type": "record_created", "record_type": "lead"},
        "actions": [{"type": "add_note", "body": body}],
    }


async def test_template_bombs_are_refused_or_fail_fast_without_taking_memory(
    api: Api, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    for n, literal in enumerate(
        [
            "{{ '%999999999d'|format(1) }}",
            "{{ '%.999999999f'|format(1.0) }}",
            "{{ 'a'|center(999999999) }}",
        ]
    ):
        status, body = await api.call("POST", "/api/v1/workflows", workflow(acme, 100 + n, literal))
        assert status == 422 and "above the limit" in body["problems"][0]["msg"], body

    reader = await api.as_tenant(acme, "read")
    writer = await api.as_tenant(acme, "write")
    rss_before = shared_worker.rss_bytes()
    slowest = 0.0
    for n, (body, fields) in enumerate(BOMBS_FROM_DATA.items()):
        await writer.create(workflow(acme, n, body))
        event = lead_created(acme, n)
        event["after"] |= fields
        started = time.monotonic()
        status, decision = await reader.call(
            "POST", f"/api/v1/workflows/wf-bomb-{n}-{acme}/test", event
        )
        took = time.monotonic() - started
        slowest = max(slowest, took)
        assert status == 200, decision
        assert decision["outcome"] == "failed" and "limit" in decision["error"], (body, decision)
        assert took < 1.0, f"{body} took {took:.2f}s"
    grown = shared_worker.rss_bytes() - rss_before
    mb = grown / 2**20
    print(f"\nslowest bomb answered in {slowest * 1000:.0f} ms; worker RSS grew {mb:.1f} MB")
    assert grown < 50 * 2**20, f"the worker grew by {grown / 2**20:.0f} MB"
    status, health = await api.call("GET", "/health")
    assert status == 200 and health["ready"]
