"""Per-tenant tokens against a running worker: tenants kept apart (404 on every endpoint),
scopes, revocation, and the audit topic holding every change."""

from __future__ import annotations

import pytest

from tests.integration.harness import (
    Api,
    lead_created,
    publish,
    read_until,
    seed_workflow,
    tenant,
)
from topics.catalog import AUDIT, RECORD_CHANGES

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"


def without_tenant(workflow: dict) -> dict:
    return {k: v for k, v in workflow.items() if k != "tenant_id"}


async def test_another_tenants_workflows_runs_and_tokens_are_not_found(
    api: Api, bootstrap: str
) -> None:
    acme, globex = tenant(), tenant()
    owner, stranger = await api.as_tenant(acme), await api.as_tenant(globex)
    created = await owner.create(without_tenant(seed_workflow(acme)))
    assert created["tenant_id"] == acme  # from the token
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1, score=10))])
    runs = await owner.poll(f"{W}/{created['id']}/runs", lambda body: body["runs"])
    run_id = runs["runs"][0]["run_id"]

    one = f"{W}/{created['id']}"
    for method, path, body in [
        ("GET", one, None),
        ("PUT", one, without_tenant(seed_workflow(acme))),
        ("DELETE", one, None),
        ("POST", f"{one}/activate", None),
        ("POST", f"{one}/deactivate", None),
        ("POST", f"{one}/webhook-secret", None),
        ("POST", f"{one}/test", lead_created(acme, 2)),
        ("GET", f"{one}/versions", None),
        ("GET", f"{one}/runs", None),
        ("GET", f"/api/v1/runs/{run_id}", None),
        ("GET", f"/api/v1/records/lead/L-1/decisions?tenant_id={acme}", None),
        ("GET", f"{W}?tenant_id={acme}", None),
        ("GET", f"/api/v1/tokens?tenant_id={acme}", None),
        ("DELETE", f"/api/v1/tokens/{owner.token_id}", None),
    ]:
        status, answer = await stranger.call(method, path, body)
        assert status == 404, (method, path, answer)
        if method == "GET":  # the owner reads what the stranger could not
            assert (await owner.call(method, path, body))[0] == 200, (method, path)

    status, listing = await stranger.call("GET", W)
    assert status == 200 and listing["workflows"] == []
    status, answer = await stranger.call("POST", W, seed_workflow(acme, id="wf-planted"))
    assert status == 422 and answer["problems"][0]["loc"] == "tenant_id"
    status, answer = await stranger.call(
        "POST", "/api/v1/tokens", {"tenant_id": acme, "scope": "admin", "name": "x"}
    )
    assert status == 422 and answer["problems"][0]["loc"] == "tenant_id"
    status, mine = await owner.call("GET", one)
    assert status == 200 and mine["version"] == 1  # nothing the stranger sent changed it


async def test_a_read_token_cannot_write_and_a_write_token_cannot_manage_tokens(
    api: Api,
) -> None:
    acme = tenant()
    reader, writer = await api.as_tenant(acme, "read"), await api.as_tenant(acme, "write")
    created = await writer.create(without_tenant(seed_workflow(acme, status="draft")))
    one = f"{W}/{created['id']}"
    assert (await reader.call("GET", one))[0] == 200
    assert (await reader.call("POST", f"{one}/test", lead_created(acme, 1)))[0] == 200
    for method, path in [
        ("POST", W),
        ("PUT", one),
        ("DELETE", one),
        ("POST", f"{one}/activate"),
        ("POST", f"{one}/deactivate"),
        ("GET", "/api/v1/tokens"),
    ]:
        status, answer = await reader.call(method, path, without_tenant(seed_workflow(acme)))
        assert status == 403, (method, path)
        assert "scope is 'read'" in answer["error"]
    status, answer = await writer.call("POST", "/api/v1/tokens", {"scope": "read", "name": "x"})
    assert status == 403 and "needs 'admin'" in answer["error"]
    assert (await writer.call("POST", f"{one}/activate"))[0] == 200


async def test_a_revoked_token_is_refused_and_tokens_are_listed_without_secrets(
    api: Api,
) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme)
    doomed = await admin.as_tenant(acme, "read")  # a tenant's admin makes its own tokens
    assert (await doomed.call("GET", W))[0] == 200
    status, revoked = await admin.call("DELETE", f"/api/v1/tokens/{doomed.token_id}")
    assert status == 200 and revoked["revoked_at"]
    status, answer = await doomed.call("GET", W)
    assert status == 401 and answer["error"] == "this token was revoked"
    assert (await admin.call("DELETE", f"/api/v1/tokens/{doomed.token_id}"))[0] == 200
    status, listing = await admin.call("GET", "/api/v1/tokens")
    assert status == 200
    assert {t["token_id"]: t["revoked_at"] is not None for t in listing["tokens"]} == {
        admin.token_id: False,
        doomed.token_id: True,
    }
    assert "secret_sha256" not in str(listing) and doomed.token not in str(listing)


async def test_every_change_is_an_audit_event(api: Api, bootstrap: str) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme)
    created = await admin.create(without_tenant(seed_workflow(acme, status="draft")))
    one = f"{W}/{created['id']}"
    changed = without_tenant(seed_workflow(acme, name="Renamed", status="draft"))
    assert (await admin.call("PUT", one, changed))[0] == 200
    assert (await admin.call("POST", f"{one}/activate"))[0] == 200
    assert (await admin.call("POST", f"{one}/deactivate"))[0] == 200
    assert (await admin.call("DELETE", one))[0] == 200
    reader = await admin.as_tenant(acme, "read")
    assert (await admin.call("DELETE", f"/api/v1/tokens/{reader.token_id}"))[0] == 200
    hook = await admin.create(
        {
            "name": "Orders",
            "trigger": {"type": "webhook_received"},
            "actions": [{"type": "add_note", "body": "order"}],
        }
    )
    status, rotated = await admin.call("POST", f"{W}/{hook['id']}/webhook-secret")
    assert status == 200
    secrets = [hook["inbound_secret"], rotated["inbound_secret"]]
    assert len(rotated["inbound_secrets"]) == 2 and None not in secrets

    expected = [
        "token.created",  # the operator made the admin token
        "workflow.created",
        "workflow.updated",
        "workflow.activated",
        "workflow.deactivated",
        "workflow.deleted",
        "token.created",
        "token.revoked",
        "workflow.created",
        "workflow.secret_rotated",
    ]
    events = await read_until(
        bootstrap,
        [AUDIT],
        lambda rs: len(rs) >= len(expected),
        keep=lambda r: r.key == acme.encode(),
    )
    assert [e.value["action"] for e in events] == expected
    assert events[0].value["actor"]["kind"] == "operator"
    assert {e.value["actor"]["token_id"] for e in events[1:]} == {admin.token_id}
    assert events[1].value["after"]["tenant_id"] == acme
    updated = events[2].value
    assert (updated["before"]["name"], updated["after"]["name"]) == (created["name"], "Renamed")
    assert (updated["before"]["version"], updated["after"]["version"]) == (1, 2)
    assert events[5].value["after"] is None and events[5].value["before"]["version"] == 4
    assert events[7].value["after"]["revoked_at"] and not events[7].value["before"]["revoked_at"]
    assert events[9].value["after"]["version"] == 2
    assert len(events[9].value["after"]["inbound_secrets"]) == len(secrets) == 2
    written = str([e.value for e in events])
    assert "secret_sha256" not in written
    assert not any(secret in written for secret in secrets)
