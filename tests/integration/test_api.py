"""The admin API against a running worker: auth, CRUD, versions, validation, dry runs."""

from __future__ import annotations

import pytest

from tests.integration.harness import (
    Api,
    decided,
    lead_created,
    publish,
    read_until,
    seed_workflow,
    tenant,
)
from topics.catalog import RECORD_CHANGES, RUNS

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", W),
        ("POST", W),
        ("GET", f"{W}/x"),
        ("PUT", f"{W}/x"),
        ("DELETE", f"{W}/x"),
        ("POST", f"{W}/x/activate"),
        ("POST", f"{W}/x/deactivate"),
        ("POST", f"{W}/x/test"),
        ("POST", f"{W}/x/webhook-secret"),
        ("GET", f"{W}/x/versions"),
        ("GET", f"{W}/x/runs"),
        ("GET", "/api/v1/runs/x"),
        ("GET", "/api/v1/records/lead/x/decisions"),
        ("GET", "/api/v1/catalog"),
        ("GET", "/api/v1/runs"),
        ("GET", "/api/v1/run-counts"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/dead-letters"),
        ("GET", f"{W}/x/versions/1"),
        ("GET", f"{W}/x/diff"),
        ("POST", f"{W}/x/versions/1/restore"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/x"),
    ],
)
async def test_every_endpoint_needs_the_bearer_token(api: Api, method: str, path: str) -> None:
    missing = Api(api.base_url, token=None)
    status, body = await missing.call(method, path, {})
    assert status == 401 and "missing bearer token" in body["error"]
    status, body = await api.call(method, path, {}, token="wrong")
    assert status == 401 and body["error"] == "invalid bearer token"


async def test_health_and_the_openapi_document_are_public(api: Api) -> None:
    status, body = await Api(api.base_url, token=None).call("GET", "/health")
    assert status == 200 and body["ready"] is True
    status, body = await Api(api.base_url, token=None).call("GET", "/api/v1/openapi.json")
    assert status == 200 and body["openapi"] == "3.1.0" and "/api/v1/tokens" in body["paths"]


async def test_create_read_list_update_delete(api: Api) -> None:
    acme = tenant()
    draft = {k: v for k, v in seed_workflow(acme).items() if k not in ("id", "status")}
    created = await api.create(draft)
    assert created["status"] == "draft" and created["version"] == 1
    assert created["id"].startswith("wf-") and created["updated_at"]
    path = f"{W}/{created['id']}"

    assert await api.call("GET", path) == (200, created)
    status, listing = await api.call("GET", f"{W}?tenant_id={acme}")
    assert status == 200 and [w["id"] for w in listing["workflows"]] == [created["id"]]

    changed = {**draft, "name": "Renamed"}
    status, updated = await api.call("PUT", path, changed)
    assert status == 200 and updated["version"] == 2 and updated["name"] == "Renamed"
    assert updated["status"] == "draft"

    status, active = await api.call("POST", f"{path}/activate")
    assert status == 200 and active["status"] == "active" and active["version"] == 3
    assert await api.call("POST", f"{path}/activate") == (200, active)  # no change, no version
    status, listing = await api.call("GET", f"{W}?tenant_id={acme}&status=active")
    assert [w["version"] for w in listing["workflows"]] == [3]
    status, inactive = await api.call("POST", f"{path}/deactivate")
    assert inactive["status"] == "inactive" and inactive["version"] == 4

    assert (await api.call("DELETE", path))[0] == 200
    assert (await api.call("GET", path))[0] == 404
    assert (await api.call("DELETE", path))[0] == 404


async def test_a_stale_version_is_a_conflict(api: Api) -> None:
    created = await api.create(seed_workflow(tenant()))
    path = f"{W}/{created['id']}"
    status, _ = await api.call("PUT", path, {**created, "version": 1, "name": "First"})
    assert status == 200
    status, body = await api.call("PUT", path, {**created, "version": 1, "name": "Second"})
    assert status == 409 and "at version 2, not 1" in body["error"]


async def test_ids_are_unique_and_tenants_fixed(api: Api) -> None:
    created = await api.create(seed_workflow(tenant()))
    status, body = await api.call("POST", W, seed_workflow(created["tenant_id"]))
    assert status == 409 and "exists already" in body["error"]
    status, body = await api.call("PUT", f"{W}/{created['id']}", {**created, "tenant_id": "other"})
    assert status == 422 and body["problems"][0]["loc"] == "tenant_id"
    status, body = await api.call("PUT", f"{W}/{created['id']}", {**created, "id": "other"})
    assert status == 422 and body["problems"][0]["loc"] == "id"


async def test_invalid_workflows_get_422_with_every_reason(api: Api) -> None:
    workflow = seed_workflow(
        tenant(),
        conditions={"all": [{"field": "score", "op": "bigger", "value": 1}]},
        actions=[{"type": "send_email", "to": "x", "subject": "s"}],
    )
    status, body = await api.call("POST", W, workflow)
    assert status == 422 and body["error"] == "invalid workflow"
    assert {p["loc"] for p in body["problems"]} == {
        "conditions.all.0.op",
        "actions.0.to",
        "actions.0.body",
    }
    assert "valid operators: eq, ne" in str(body)
    status, body = await api.call("POST", W, {"name": "no tenant"})
    assert status == 422 and {"tenant_id", "trigger", "actions"} <= {
        p["loc"] for p in body["problems"]
    }


async def test_bad_bodies_get_400(api: Api) -> None:
    status, body = await api.call("POST", W, raw=b"{nope")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = await api.call("POST", W, raw=b"[1]")
    assert status == 400 and "JSON object" in body["error"]


async def test_a_body_over_the_size_limit_gets_413(api: Api) -> None:
    status, body = await api.call("POST", W, raw=b'{"name": "' + b"x" * 2_000_000 + b'"}')
    assert status == 413 and "Maximum request body size" in body["error"]


async def test_unknown_ids_are_404(api: Api) -> None:
    for method, path in [
        ("GET", f"{W}/nope"),
        ("PUT", f"{W}/nope"),
        ("POST", f"{W}/nope/activate"),
        ("POST", f"{W}/nope/test"),
    ]:
        status, body = await api.call(method, path, seed_workflow("x"))
        assert status == 404 and "nope" in body["error"], (method, path)


async def test_a_dry_run_shows_the_decision_and_emits_nothing(api: Api, bootstrap: str) -> None:
    acme = tenant()
    created = await api.create({**seed_workflow(acme), "status": "draft"})
    event = lead_created(acme, 1, score=40)
    status, decision = await api.call("POST", f"{W}/{created['id']}/test", event)
    assert status == 200 and decision["emitted"] is False
    assert decision["trigger"] == {
        "type": "record_created",
        "matched": True,
        "reason": "the lead was created",
        "values": {"operation": "created"},
    }
    assert decision["outcome"] == "conditions_not_met"
    assert decision["condition_tree"]["passed"] is False
    assert decision["conditions"][0]["actual"] == 40 and decision["commands"] == []

    status, decision = await api.call(
        "POST", f"{W}/{created['id']}/test", lead_created(acme, 2, score=90)
    )
    assert decision["outcome"] == "actions_issued"
    assert [c["params"].get("to") for c in decision["commands"]] == ["lead2@example.com", None]

    status, body = await api.call("POST", f"{W}/{created['id']}/test", {"event_id": "x"})
    assert status == 422 and "not a valid ChangeEvent" in body["error"]

    # Nothing went out: activate and send a sentinel; only the sentinel's run appears.
    await api.activate(created["id"])
    sentinel = lead_created(acme, 3)
    await publish(bootstrap, RECORD_CHANGES, [(b"L-3", sentinel)])
    records = await read_until(
        bootstrap,
        [RUNS],
        lambda rs: len(rs) >= 1,
        keep=lambda r: r.value.get("tenant_id") == acme and decided(r),
    )
    assert [r.value["event_id"] for r in records] == [sentinel["event_id"]]
