"""The processor end to end: events in through the broker, commands and run records out."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.integration.harness import (
    Api,
    Record,
    actions_read,
    decided,
    lead_created,
    publish,
    read_until,
    seed_workflow,
    tenant,
)
from topics.catalog import DEAD_LETTER, RECORD_CHANGES, RUNS, action_topic

pytestmark = pytest.mark.integration

OUTPUTS = [RUNS, action_topic("send_email"), action_topic("create_task")]


def of_tenant(tenant_id: str):
    """The processor's outputs for ``tenant_id`` (not the runs the tracker completes later)."""
    return lambda r: (
        isinstance(r.value, dict) and r.value.get("tenant_id") == tenant_id and decided(r)
    )


def runs(records: list[Record]) -> list[dict[str, Any]]:
    return [r.value for r in records if r.topic == RUNS]


def has_run(records: list[Record], event: dict[str, Any]) -> bool:
    return any(r["event_id"] == event["event_id"] for r in runs(records))


async def test_the_seed_workflow_end_to_end(api: Api, bootstrap: str) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    event = lead_created(acme, 1)
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", event)])

    records = await read_until(bootstrap, OUTPUTS, lambda rs: len(rs) >= 3, keep=of_tenant(acme))
    by_topic = {r.topic: r for r in records}
    email = by_topic[action_topic("send_email")].value
    task = by_topic[action_topic("create_task")].value
    run = by_topic[RUNS].value
    assert email["params"] == {
        "to": "lead1@example.com",
        "subject": "Welcome — Thanks for your interest",
        "body": "Hi Lead 1,\n\nthanks for your interest in Coeffection. "
        "Your account manager will be in touch soon.",
        "cc": [],
    }
    assert task["params"] == {
        "title": "Follow-up call",
        "assignee": "u-7",
        "priority": "normal",
        "due_at": "2026-11-27T19:00:00Z",
    }
    assert email["causation"] == {
        "run_id": run["run_id"],
        "workflow_id": run["workflow_id"],
        "depth": 1,
    }
    assert run["status"] == "actions_issued" and run["event_id"] == event["event_id"]
    assert run["conditions"] == [
        {"field": "score", "op": "gte", "expected": 50, "actual": 72, "passed": True}
    ]
    assert [a["action_id"] for a in run["actions"]] == [email["action_id"], task["action_id"]]
    assert run["source"]["topic"] == RECORD_CHANGES
    assert by_topic[RUNS].key == run["run_id"].encode()
    assert by_topic[action_topic("send_email")].key == email["action_id"].encode()


async def test_a_failing_condition_gives_a_conditions_not_met_run_and_no_command(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    low, sentinel = lead_created(acme, 1, score=20), lead_created(acme, 2)
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", low), (b"L-1", sentinel)])

    # Same key, same partition: once the sentinel's run is out, the first event is done too.
    records = await read_until(
        bootstrap,
        OUTPUTS,
        lambda rs: has_run(rs, sentinel) and actions_read(rs),
        keep=of_tenant(acme),
    )
    [not_met] = [r for r in runs(records) if r["event_id"] == low["event_id"]]
    assert not_met["status"] == "conditions_not_met" and not_met["actions"] == []
    assert not_met["conditions"][0]["actual"] == 20 and not not_met["conditions"][0]["passed"]
    commands = [r.value for r in records if r.topic != RUNS]
    assert {c["run_id"] for c in commands} == {
        r["run_id"] for r in runs(records) if r["event_id"] == sentinel["event_id"]
    }


async def test_a_poison_batch_dead_letters_each_bad_message_once_and_processes_the_rest(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    bad_key = f"{acme}-poison".encode()
    good = [lead_created(acme, n) for n in range(6)]
    bad: list[bytes | None] = [
        b"{this is not json",
        b"\xff\xfe\xfa not utf-8",
        b'{"event_id": "x", "tenant_id": "' + acme.encode() + b'"}',
        b'["an", "array"]',
        None,  # a tombstone
        b"{" + b'"pad": "' + b"x" * 10_000_000 + b'"}',  # 10 MB, over the 1 MiB limit
    ]
    mixed: list[tuple[bytes | None, Any]] = []
    for n, event in enumerate(good):
        mixed.append((bad_key, event))
        if n < len(bad):
            mixed.append((bad_key, bad[n]))
    await publish(bootstrap, RECORD_CHANGES, mixed)

    letters = await read_until(
        bootstrap, [DEAD_LETTER], lambda rs: len(rs) >= len(bad), keep=lambda r: r.key == bad_key
    )
    processed = await read_until(
        bootstrap, [RUNS], lambda rs: len(rs) >= len(good), keep=of_tenant(acme)
    )
    assert len({(r.partition, r.value["source"]["offset"]) for r in letters}) == len(bad)
    reasons = sorted(r.value["error"].split(":")[0] for r in letters)
    assert reasons == sorted(
        [
            "not valid UTF-8 JSON",
            "not valid UTF-8 JSON",
            "not a valid ChangeEvent",
            "not a valid ChangeEvent",
            "tombstone (null value)",
            "value of 10000011 bytes exceeds the limit of 1048576 bytes (COEFLOW_MAX_EVENT_BYTES)",
        ]
    )
    assert {r["event_id"] for r in runs(processed)} == {e["event_id"] for e in good}
    status, health = await api.call("GET", "/health")
    assert status == 200 and health["processed"]["dead_letters"] >= len(bad)
    assert health["processed"]["events"] >= len(bad) + len(good)
    assert health["processed"]["runs"]["actions_issued"] >= len(good)
    invalid_json = next(
        r.value for r in letters if r.value["value_base64"] == "e3RoaXMgaXMgbm90IGpzb24="
    )
    assert invalid_json["source"]["topic"] == RECORD_CHANGES and not invalid_json["value_truncated"]


async def test_a_definition_update_takes_effect_without_a_restart(api: Api, bootstrap: str) -> None:
    acme = tenant()
    workflow = await api.create(seed_workflow(acme))
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1))])
    await read_until(bootstrap, OUTPUTS, lambda rs: len(runs(rs)) >= 1, keep=of_tenant(acme))

    changed = {
        **seed_workflow(acme),
        "actions": [
            {"type": "send_email", "to": "{{record.email}}", "subject": "Welcome, v2", "body": "v2"}
        ],
    }
    status, updated = await api.call("PUT", f"/api/v1/workflows/{workflow['id']}", changed)
    assert status == 200 and updated["version"] == 2
    await publish(bootstrap, RECORD_CHANGES, [(b"L-2", lead_created(acme, 2))])

    records = await read_until(
        bootstrap,
        OUTPUTS,
        lambda rs: any(r["workflow_version"] == 2 for r in runs(rs)) and actions_read(rs),
        keep=of_tenant(acme),
    )
    emails = {
        r.value["workflow_version"]: r.value
        for r in records
        if r.topic == action_topic("send_email")
    }
    assert emails[1]["params"]["subject"] == "Welcome — Thanks for your interest"
    assert emails[2]["params"]["subject"] == "Welcome, v2"
    assert not any(
        r.topic == action_topic("create_task") and r.value["workflow_version"] == 2 for r in records
    )


async def test_loop_protection_blocks_changes_deeper_than_the_limit(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))

    def caused(n: int, depth: int) -> dict[str, Any]:
        return lead_created(acme, n, causation={"run_id": "r", "workflow_id": "w", "depth": depth})

    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", caused(1, 8)), (b"L-2", caused(2, 9))])

    records = await read_until(bootstrap, [RUNS], lambda rs: len(rs) >= 2, keep=of_tenant(acme))
    status = {r.value["event_id"]: r.value["status"] for r in records}
    assert status == {f"{acme}-evt-1": "actions_issued", f"{acme}-evt-2": "loop_blocked"}


async def test_a_tenants_workflow_never_sees_another_tenants_events(
    api: Api, bootstrap: str
) -> None:
    acme, globex = tenant(), tenant()
    await api.create(seed_workflow(acme))
    intruder = lead_created(globex, 1)
    sentinel = lead_created(acme, 2)
    # Same key and content as acme's records, other tenant: must not reach acme's workflow.
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", intruder), (b"L-1", sentinel)])

    records = await read_until(
        bootstrap,
        OUTPUTS,
        lambda rs: has_run(rs, sentinel) and actions_read(rs),
        keep=lambda r: (
            isinstance(r.value, dict) and r.value.get("tenant_id") in (acme, globex) and decided(r)
        ),
    )
    assert Counter(r.value["tenant_id"] for r in records) == Counter({acme: 3})
    assert all(
        r.value.get("event_id", sentinel["event_id"]) == sentinel["event_id"]
        for r in records
        if r.topic == RUNS
    )
