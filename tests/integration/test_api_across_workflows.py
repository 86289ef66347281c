"""The admin API's views across workflows against a running worker: the catalog, the runs of
all of a tenant's workflows, the audit log, the dead letters; each tenant sees its own only,
and hostile query parameters are a 422 with the reason."""

from __future__ import annotations

import base64

import pytest

from tests.integration.harness import Api, lead_created, publish, seed_workflow, tenant
from topics.catalog import RECORD_CHANGES

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"


async def test_the_catalog_names_every_trigger_operator_and_action(api: Api) -> None:
    reader = await api.as_tenant(tenant(), scope="read")
    status, body = await reader.call("GET", "/api/v1/catalog")
    assert status == 200
    kinds = {t["type"]: t for t in body["triggers"]}
    assert {"scheduled", "webhook_received", "invoice_overdue", "record_stalled"} <= set(kinds)
    assert kinds["lead_score_threshold"]["parameters"]["required"] == ["threshold"]
    ops = {o["op"]: o for o in body["operators"]}
    assert ops["starts_with"]["fits"] == ["string"] and ops["in"]["value_kind"] == "list"
    email = next(a for a in body["actions"] if a["type"] == "send_email")
    assert {"to", "subject", "body"} <= set(email["parameters"]["properties"])
    assert (await Api(api.base_url, token=None).call("GET", "/api/v1/catalog"))[0] == 401


async def test_runs_across_a_tenants_workflows_with_filters_and_paging(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    owner, stranger = await api.as_tenant(acme), await api.as_tenant(tenant())
    welcome = await owner.create(seed_workflow(acme, id=f"wf-a-{acme}"))
    second = await owner.create(seed_workflow(acme, id=f"wf-b-{acme}", name="Second"))
    await publish(
        bootstrap,
        RECORD_CHANGES,
        [
            (b"L-1", lead_created(acme, 1, score=90)),
            (b"L-2", lead_created(acme, 2, score=10)),
        ],
    )
    everything = await owner.poll("/api/v1/runs", lambda body: len(body["runs"]) == 4)
    assert {r["workflow_id"] for r in everything["runs"]} == {welcome["id"], second["id"]}
    decided = [r["decided_at"] for r in everything["runs"]]
    assert decided == sorted(decided, reverse=True)

    status, stopped = await owner.call("GET", "/api/v1/runs?status=conditions_not_met")
    assert status == 200 and {r["record"]["id"] for r in stopped["runs"]} == {"L-2"}
    assert len(stopped["runs"]) == 2
    status, one = await owner.call("GET", "/api/v1/runs?record_type=lead&record_id=L-1")
    assert {r["record"]["id"] for r in one["runs"]} == {"L-1"} and len(one["runs"]) == 2
    # A record type alone: the runs of every record of it (the builder's recent records).
    status, leads = await owner.call("GET", "/api/v1/runs?record_type=lead")
    assert status == 200 and len(leads["runs"]) == 4
    status, deals = await owner.call("GET", "/api/v1/runs?record_type=deal")
    assert status == 200 and deals["runs"] == []
    status, of_second = await owner.call("GET", f"/api/v1/runs?workflow_id={second['id']}")
    assert {r["workflow_id"] for r in of_second["runs"]} == {second["id"]}
    status, of_one = await owner.call("GET", f"{W}/{second['id']}/runs?record_id=L-2")
    assert status == 200 and [(r["workflow_id"], r["record"]["id"]) for r in of_one["runs"]] == [
        (second["id"], "L-2")
    ]

    seen, cursor = [], ""
    while True:
        status, page = await owner.call("GET", f"/api/v1/runs?limit=1{cursor}")
        assert status == 200 and len(page["runs"]) <= 1
        seen += [r["run_id"] for r in page["runs"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [r["run_id"] for r in everything["runs"]]

    status, later = await owner.call("GET", "/api/v1/runs?since=2999-01-01T00:00:00Z")
    assert status == 200 and later["runs"] == []

    status, counts = await owner.call("GET", "/api/v1/run-counts?since=2000-01-01T00:00:00Z")
    assert status == 200
    assert [
        (c["workflow_id"], c["runs"], c["by_status"].get("conditions_not_met"))
        for c in counts["workflows"]
    ] == [
        (welcome["id"], 2, 1),
        (second["id"], 2, 1),
    ]
    newest = {r["workflow_id"]: r for r in reversed(everything["runs"])}  # the last wins
    assert counts["workflows"][0]["last_run_id"] == newest[welcome["id"]]["run_id"]
    status, none = await stranger.call("GET", "/api/v1/run-counts?since=2000-01-01T00:00:00Z")
    assert status == 200 and none["workflows"] == []
    assert (await owner.call("GET", "/api/v1/run-counts"))[0] == 422  # since is required

    # Another tenant's token sees none of them, even naming the tenant or the workflow.
    assert (await stranger.call("GET", "/api/v1/runs"))[1]["runs"] == []
    status, _ = await stranger.call("GET", f"/api/v1/runs?tenant_id={acme}")
    assert status == 404
    status, body = await stranger.call("GET", f"/api/v1/runs?workflow_id={welcome['id']}")
    assert status == 200 and body["runs"] == []
    # The operator names the tenant.
    status, body = await api.call("GET", f"/api/v1/runs?tenant_id={acme}")
    assert status == 200 and len(body["runs"]) == 4


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=x",
        "status=bogus",
        "since=yesterday",
        "since=2026-01-01T00:00:00",  # no time zone
        "cursor=%00%ff",
        f"record_id={'x' * 257}",
        "unknown=1",
    ],
)
async def test_hostile_run_queries_are_422_with_the_reason(api: Api, query: str) -> None:
    status, body = await api.call("GET", f"/api/v1/runs?{query}")
    assert status == 422, body
    assert body["problems"] and all(p["msg"] for p in body["problems"])


async def test_the_audit_log_says_who_changed_what_when(api: Api) -> None:
    acme = tenant()
    owner, stranger = await api.as_tenant(acme), await api.as_tenant(tenant())
    created = await owner.create(seed_workflow(acme, status="draft"))
    await owner.activate(created["id"])
    status, body = await owner.call(
        "GET", f"/api/v1/audit?subject_type=workflow&subject_id={created['id']}"
    )
    assert status == 200
    events = body["events"]
    assert [(e["action"], e["version"]) for e in events] == [
        ("workflow.activated", 2),
        ("workflow.created", 1),
    ]
    assert {e["actor"]["token_id"] for e in events} == {owner.token_id}
    assert events[0]["before"]["status"] == "draft" and events[0]["after"]["status"] == "active"

    status, tenant_log = await owner.call("GET", "/api/v1/audit?limit=1")
    assert status == 200 and len(tenant_log["events"]) == 1 and tenant_log["next_cursor"]
    status, rest = await owner.call("GET", f"/api/v1/audit?cursor={tenant_log['next_cursor']}")
    assert status == 200
    ids = [e["audit_id"] for e in tenant_log["events"] + rest["events"]]
    assert len(ids) == len(set(ids)) and {e["audit_id"] for e in events} <= set(ids)
    assert any(e["action"] == "token.created" for e in rest["events"])  # the owner's token

    status, body = await stranger.call("GET", f"/api/v1/audit?subject_id={created['id']}")
    assert status == 200 and body["events"] == []
    assert (await stranger.call("GET", f"/api/v1/audit?tenant_id={acme}"))[0] == 404
    assert (await owner.call("GET", "/api/v1/audit?cursor=nope"))[0] == 422
    assert (await owner.call("GET", "/api/v1/audit?action=workflow.exploded"))[0] == 422


async def test_dead_letters_are_the_operators(api: Api, bootstrap: str) -> None:
    key = base64.b64encode(tenant().encode()).decode()
    await publish(bootstrap, RECORD_CHANGES, [(base64.b64decode(key), b"{not json")])
    found = await api.poll(
        f"/api/v1/dead-letters?topic={RECORD_CHANGES}",
        lambda body: any(letter["key_base64"] == key for letter in body["dead_letters"]),
    )
    letter = next(d for d in found["dead_letters"] if d["key_base64"] == key)
    assert "not valid UTF-8 JSON" in letter["error"]
    assert letter["source"]["topic"] == RECORD_CHANGES and letter["value_size"] == 9

    admin_of_a_tenant = await api.as_tenant(tenant(), scope="admin")
    status, body = await admin_of_a_tenant.call("GET", "/api/v1/dead-letters")
    assert status == 403 and "operator" in body["error"]
    reader = await api.as_tenant(tenant(), scope="read")
    assert (await reader.call("GET", "/api/v1/dead-letters"))[0] == 403
    assert (await api.call("GET", "/api/v1/dead-letters?limit=1000"))[0] == 422


async def test_explanations_read_right_in_the_dry_run_the_run_and_the_why_not(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    owner = await api.as_tenant(acme)
    guarded = await owner.create(
        seed_workflow(
            acme,
            id=f"wf-guard-{acme}",
            conditions={"not": {"field": "country", "op": "in", "value": ["ZZ"]}},
        )
    )
    hot = await owner.create(
        seed_workflow(
            acme,
            id=f"wf-hot-{acme}",
            name="Hot lead",
            trigger={"type": "lead_score_threshold", "threshold": 80},
            conditions=None,
        )
    )
    lead = lead_created(acme, 1, score=72)
    lead["after"]["country"] = "DE"
    status, dry = await owner.call("POST", f"{W}/{guarded['id']}/test", lead)
    assert status == 200 and dry["outcome"] == "actions_issued"
    tree = dry["condition_tree"]
    assert tree["kind"] == "not" and tree["passed"] is True
    assert (
        tree["children"][0]["passed"] is False and tree["children"][0]["result"]["actual"] == "DE"
    )
    assert dry["trigger"]["reason"] == "the lead was created"

    status, cold = await owner.call("POST", f"{W}/{hot['id']}/test", lead)
    assert status == 200 and cold["trigger"]["matched"] is False
    assert cold["trigger"]["reason"] == "score 72 is below the threshold 80"
    assert cold["trigger"]["values"] == {"threshold": 80.0, "before": None, "after": 72}

    blocked = lead_created(acme, 2, score=72)
    blocked["after"]["country"] = "ZZ"
    await publish(bootstrap, RECORD_CHANGES, [(b"L-2", blocked)])
    runs = await owner.poll("/api/v1/runs?record_id=L-2", lambda body: body["runs"])
    (run,) = runs["runs"]
    assert run["status"] == "conditions_not_met"
    status, detail = await owner.call("GET", f"/api/v1/runs/{run['run_id']}")
    assert status == 200 and detail["condition_tree"]["kind"] == "not"
    assert detail["condition_tree"]["passed"] is False

    status, why = await owner.call("GET", "/api/v1/records/lead/L-2/decisions")
    assert status == 200
    assert "2 active workflows watch lead records" in why["summary"]
    assert {w["workflow_id"] for w in why["active_workflows"]} == {guarded["id"], hot["id"]}
    (event,) = why["events"]
    (decision,) = event["runs"]
    assert [(c["field"], c["passed"]) for c in decision["stopped_by"]] == [("country", True)]
    (other,) = event["not_triggered"]
    assert other["workflow_id"] == hot["id"] and "below the threshold 80" in other["reason"]


async def test_a_version_a_diff_between_any_two_and_restore_as_draft(api: Api) -> None:
    acme = tenant()
    owner, stranger = await api.as_tenant(acme), await api.as_tenant(tenant())
    created = await owner.create(seed_workflow(acme))
    path = f"{W}/{created['id']}"
    changed = {**created, "name": "Renamed", "version": 1}
    changed["actions"] = created["actions"][:1]
    status, v2 = await owner.call("PUT", path, changed)
    assert status == 200 and v2["version"] == 2

    status, first = await owner.call("GET", f"{path}/versions/1")
    assert status == 200 and first["name"] == created["name"] and first["version"] == 1
    status, body = await owner.call("GET", f"{path}/diff?from_version=1")
    assert status == 200 and (body["from_version"], body["to_version"]) == (1, 2)
    paths = {c["path"]: c for c in body["changes"]}
    assert paths["name"]["before"] == created["name"] and paths["name"]["after"] == "Renamed"
    assert paths["actions.1"]["kind"] == "removed" and not body["truncated"]
    assert "version" not in paths and "updated_at" not in paths

    status, restored = await owner.call("POST", f"{path}/versions/1/restore")
    assert status == 200 and restored["version"] == 3 and restored["status"] == "draft"
    assert restored["name"] == created["name"] and restored["actions"] == created["actions"]
    status, same = await owner.call("GET", f"{path}/diff?from_version=1&to_version=3")
    assert [c["path"] for c in same["changes"]] == ["status"]  # active then, a draft now
    audit = await owner.poll(
        f"/api/v1/audit?subject_id={created['id']}", lambda body: len(body["events"]) == 3
    )
    assert [e["version"] for e in audit["events"]] == [3, 2, 1]

    for method, where in [
        ("GET", f"{path}/versions/1"),
        ("GET", f"{path}/diff?from_version=1"),
        ("POST", f"{path}/versions/1/restore"),
    ]:
        status, _ = await stranger.call(method, where)
        assert status == 404, (method, where)
    reader = await api.as_tenant(acme, scope="read")
    assert (await reader.call("POST", f"{path}/versions/1/restore"))[0] == 403
    for bad in ["9", "0", "x", "١", "1" * 30]:
        status, body = await owner.call("GET", f"{path}/versions/{bad}")
        assert status == 404 and "has no version" in body["error"], bad
    for query in ["", "from_version=0", "from_version=x", "from_version=1&to_version=-1"]:
        assert (await owner.call("GET", f"{path}/diff?{query}"))[0] == 422, query
    assert (await owner.call("GET", f"{path}/diff?from_version=7"))[0] == 404
