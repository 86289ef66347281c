"""Admin writes sent together to one worker: writes of one subject take turns (one create of an
id, consecutive versions with none lost, one revocation), whatever else runs beside them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.harness import Api, read_until, seed_workflow, tenant
from topics.catalog import AUDIT

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"
AT_ONCE = 12


async def test_creates_of_one_id_sent_together_make_it_once(api: Api) -> None:
    acme = tenant()
    workflow_id = f"wf-race-{acme}"
    answers = await asyncio.gather(
        *(
            api.call("POST", W, seed_workflow(acme, id=workflow_id, name=f"Create {n}"))
            for n in range(AT_ONCE)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * (AT_ONCE - 1), answers
    made = next(body for status, body in answers if status == 201)
    assert made["version"] == 1
    assert all("exists already" in body["error"] for status, body in answers if status == 409)
    status, versions = await api.call("GET", f"{W}/{workflow_id}/versions")
    assert status == 200 and [v["version"] for v in versions["versions"]] == [1]
    assert versions["versions"][0]["name"] == made["name"]


async def test_the_id_namespace_is_global_when_tenants_create_one_id_together(api: Api) -> None:
    tenants = [tenant() for _ in range(4)]
    clients = [await api.as_tenant(t, scope="write") for t in tenants]
    workflow_id = f"wf-shared-{tenants[0]}"
    answers = await asyncio.gather(
        *(
            client.call("POST", W, seed_workflow(t, id=workflow_id))
            for client, t in zip(clients, tenants, strict=True)
        )
    )
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409], answers
    owner = next(body["tenant_id"] for status, body in answers if status == 201)
    status, found = await api.call("GET", f"{W}/{workflow_id}")
    assert status == 200 and found["tenant_id"] == owner and found["version"] == 1


async def test_updates_of_one_workflow_sent_together_make_consecutive_versions(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    created = await api.create(seed_workflow(acme, status="draft"))
    path = f"{W}/{created['id']}"
    body = {k: v for k, v in created.items() if k not in ("version", "updated_at")}
    answers = await asyncio.gather(
        *(api.call("PUT", path, {**body, "name": f"Edit {n}"}) for n in range(AT_ONCE))
    )
    assert [status for status, _ in answers] == [200] * AT_ONCE, answers
    by_version = {answer["version"]: answer["name"] for _, answer in answers}
    assert sorted(by_version) == list(range(2, AT_ONCE + 2))  # none taken twice, none skipped
    assert sorted(by_version.values()) == sorted(f"Edit {n}" for n in range(AT_ONCE))

    status, versions = await api.call("GET", f"{path}/versions")
    assert status == 200
    saved = {v["version"]: v["name"] for v in versions["versions"]}
    assert saved == {1: created["name"], **by_version}  # every edit kept as its own version
    status, current = await api.call("GET", path)
    assert current["version"] == AT_ONCE + 1 and current["name"] == by_version[AT_ONCE + 1]

    # Each audit event continues from the one before it: the changes took turns.
    events = await read_until(
        bootstrap,
        [AUDIT],
        lambda rs: len(rs) >= AT_ONCE + 1,
        keep=lambda r: r.key == acme.encode() and r.value["subject_id"] == created["id"],
    )
    assert _steps(events) == [(None, 1), *((v, v + 1) for v in range(1, AT_ONCE + 1))]
    assert all(e.value["before"]["name"] == saved[e.value["before"]["version"]] for e in events[1:])


async def test_guarded_updates_sent_together_let_one_through(api: Api) -> None:
    created = await api.create(seed_workflow(tenant()))
    path = f"{W}/{created['id']}"
    answers = await asyncio.gather(
        *(
            api.call("PUT", path, {**created, "version": 1, "name": f"Edit {n}"})
            for n in range(AT_ONCE)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * (AT_ONCE - 1), answers
    assert all("at version 2, not 1" in b["error"] for s, b in answers if s == 409)


async def test_mixed_changes_of_one_workflow_with_other_workflows_beside_them(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    hook = await api.create(
        {
            "tenant_id": acme,
            "name": "Orders",
            "trigger": {"type": "webhook_received"},
            "actions": [{"type": "add_note", "body": "order"}],
        }
    )
    path = f"{W}/{hook['id']}"
    writes: list[Any] = []
    for n in range(4):
        writes += [
            api.call("POST", f"{path}/activate"),
            api.call("POST", f"{path}/webhook-secret", {"grace_seconds": 600}),
            api.call("POST", f"{path}/deactivate"),
            api.call("POST", W, seed_workflow(acme, id=f"wf-beside-{acme}-{n}")),
        ]
    answers = await asyncio.gather(*writes)
    assert all(status in (200, 201) for status, _ in answers), answers
    status, versions = await api.call("GET", f"{path}/versions")
    numbers = [v["version"] for v in versions["versions"]]
    assert numbers == list(range(len(numbers), 0, -1))  # consecutive, newest first
    made = [body["inbound_secret"] for _, body in answers[1::4]]
    assert len(set(made)) == 4  # each rotation made its own secret
    status, current = await api.call("GET", path)
    assert status == 200 and current["version"] == numbers[0]
    assert len(current["inbound_secrets"]) >= 2  # rotated: the new one and the older still live
    status, listing = await api.call("GET", f"{W}?tenant_id={acme}")
    assert status == 200 and len(listing["workflows"]) == 5
    # Every change (at least the four rotations) went on from the version before it.
    events = await read_until(
        bootstrap,
        [AUDIT],
        lambda rs: len(rs) >= numbers[0],
        keep=lambda r: r.key == acme.encode() and r.value["subject_id"] == hook["id"],
    )
    assert _steps(events) == [(None, 1), *((v, v + 1) for v in range(1, numbers[0]))]
    assert [e.value["action"] for e in events].count("workflow.secret_rotated") == 4


async def test_revocations_of_one_token_sent_together_revoke_it_once(api: Api) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme)
    doomed = await api.as_tenant(acme, scope="read")
    answers = await asyncio.gather(
        *(admin.call("DELETE", f"/api/v1/tokens/{doomed.token_id}") for _ in range(AT_ONCE))
    )
    assert [status for status, _ in answers] == [200] * AT_ONCE, answers
    # One wrote the revocation; the others read it back and answered it as it was written.
    assert len({body["revoked_at"] for _, body in answers}) == 1
    status, body = await doomed.call("GET", W)
    assert status == 401 and body["error"] == "this token was revoked"


def _steps(events: list[Any]) -> list[tuple[int | None, int]]:
    """Each audit event's (version before, version after)."""
    return [
        (e.value["before"] and e.value["before"]["version"], e.value["after"]["version"])
        for e in events
    ]
