"""The run history, "why not?", versions and dry runs against a running worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coeflow.tools.processes import WorkerProcess
from processor.core.ids import run_id
from tests.integration.harness import (
    Api,
    lead_created,
    own_broker,
    publish,
    seed_workflow,
    tenant,
)
from topics.catalog import RECORD_CHANGES

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"


async def test_runs_of_the_seed_workflow_show_each_steps_outcome(api: Api, bootstrap: str) -> None:
    acme = tenant()
    created = await api.create(seed_workflow(acme))
    event = lead_created(acme, 1, score=90)
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", event)])
    listing = await api.poll(
        f"{W}/{created['id']}/runs",
        lambda body: [r["status"] for r in body["runs"]] == ["succeeded"],
    )
    run = listing["runs"][0]
    assert run["event_id"] == event["event_id"] and run["workflow_version"] == 1
    # Runs and outcomes are two topics read by two replicas: the completed run can be read
    # a moment before the outcomes it completed on.
    detail = await api.poll(
        f"/api/v1/runs/{run['run_id']}",
        lambda body: all(step["attempts"] for step in body["steps"]),
    )
    assert detail["run"]["event"]["after"]["score"] == 90
    assert detail["run"]["conditions"] == [
        {"field": "score", "op": "gte", "expected": 50, "actual": 90, "passed": True}
    ]
    email, task = detail["steps"]
    assert (email["type"], email["status"]) == ("send_email", "succeeded")
    assert email["params"]["to"] == "lead1@example.com"
    assert [(a["attempt"], a["status"]) for a in email["attempts"]] == [(1, "succeeded")]
    assert (task["type"], task["status"], task["params"]["title"]) == (
        "create_task",
        "succeeded",
        "Follow-up call",
    )
    assert (await api.call("GET", "/api/v1/runs/no-such-run"))[0] == 404


async def test_a_run_stopped_by_its_conditions_says_which_and_why(api: Api, bootstrap: str) -> None:
    acme = tenant()
    created = await api.create(seed_workflow(acme))
    hot = await api.create(  # its trigger implies the record type: it watches leads too
        seed_workflow(
            acme,
            id=f"wf-hot-{acme}",
            trigger={"type": "lead_score_threshold", "threshold": 90},
            conditions=None,
        )
    )
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1, score=40))])
    listing = await api.poll(f"{W}/{created['id']}/runs", lambda body: body["runs"])
    assert listing["runs"][0]["status"] == "conditions_not_met"
    assert listing["runs"][0]["conditions"] == [
        {"field": "score", "op": "gte", "expected": 50, "actual": 40, "passed": False}
    ]
    status, why = await api.call("GET", f"/api/v1/records/lead/L-1/decisions?tenant_id={acme}")
    assert status == 200
    (event,) = why["events"]
    assert event["operation"] == "created"
    assert [(r["workflow_id"], r["status"]) for r in event["runs"]] == [
        (created["id"], "conditions_not_met")
    ]
    assert event["runs"][0]["stopped_by"][0]["actual"] == 40

    status, why = await api.call("GET", f"/api/v1/records/lead/L-404/decisions?tenant_id={acme}")
    assert status == 200 and why["events"] == []
    assert why["summary"].startswith("no workflow's trigger matched any event of lead 'L-404'")
    watching = sorted(w["workflow_id"] for w in why["active_workflows"])
    assert watching == sorted([created["id"], hot["id"]])
    assert "2 active workflows watch lead records" in why["summary"], why["summary"]
    status, answer = await api.call("GET", "/api/v1/records/lead/L-1/decisions")
    assert status == 422 and answer["problems"][0]["loc"] == "tenant_id"


async def test_an_edit_mid_stream_leaves_earlier_runs_on_their_version(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    created = await api.create(seed_workflow(acme))
    runs = f"{W}/{created['id']}/runs"
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1, score=90))])
    await api.poll(runs, lambda body: len(body["runs"]) == 1)
    edited = seed_workflow(acme, actions=[{**created["actions"][0], "subject": "Edited"}])
    status, saved = await api.call("PUT", f"{W}/{created['id']}", edited)
    assert status == 200 and saved["version"] == 2
    await publish(bootstrap, RECORD_CHANGES, [(b"L-2", lead_created(acme, 2, score=90))])
    listing = await api.poll(
        runs,
        lambda body: (
            {r["status"] for r in body["runs"]} == {"succeeded"} and len(body["runs"]) == 2
        ),
    )
    newest, oldest = listing["runs"]
    assert (newest["workflow_version"], oldest["workflow_version"]) == (2, 1)
    subjects = [
        (await api.call("GET", f"/api/v1/runs/{r['run_id']}"))[1]["steps"][0]["params"]["subject"]
        for r in (newest, oldest)
    ]
    assert subjects == ["Edited", created["actions"][0]["subject"]]
    status, versions = await api.call("GET", f"{W}/{created['id']}/versions")
    assert status == 200
    assert [(v["version"], v["actions"][0]["subject"]) for v in versions["versions"]] == [
        (2, "Edited"),
        (1, created["actions"][0]["subject"]),
    ]


async def test_a_deleted_id_created_again_goes_on_from_its_last_version(api: Api) -> None:
    acme = tenant()
    created = await api.create(seed_workflow(acme, status="draft"))
    await api.activate(created["id"])
    assert (await api.call("DELETE", f"{W}/{created['id']}"))[0] == 200
    again = await api.create(seed_workflow(acme, status="draft"))
    assert again["version"] == 3
    status, versions = await api.call("GET", f"{W}/{created['id']}/versions")
    assert status == 200 and [v["version"] for v in versions["versions"]] == [3, 2, 1]


async def test_history_pages_and_keeps_only_the_newest_runs(workdir: Path) -> None:
    with own_broker(workdir) as broker:
        worker = WorkerProcess(
            broker.bootstrap,
            "coeflow-it-history",
            workdir,
            COEFLOW_ROLES="processor,api",
            COEFLOW_RUN_HISTORY_PER_WORKFLOW="3",
        )
        await worker.start().wait_ready()
        try:
            api = Api(worker.url)
            created = await api.create(seed_workflow("acme"))
            events = [lead_created("acme", n, score=10) for n in range(5)]
            for event in events:  # one by one: each run decided after the one before
                await publish(broker.bootstrap, RECORD_CHANGES, [(b"L", event)])
                await asyncio.sleep(0.3)
            expected = [run_id(created["id"], 1, e["event_id"]) for e in reversed(events)]
            runs = f"{W}/{created['id']}/runs"
            await api.poll(
                runs, lambda body: body["runs"] and body["runs"][0]["run_id"] == expected[0]
            )

            status, first = await api.call("GET", f"{runs}?limit=2")
            assert status == 200 and [r["run_id"] for r in first["runs"]] == expected[:2]
            status, second = await api.call("GET", f"{runs}?limit=2&cursor={first['next_cursor']}")
            assert [r["run_id"] for r in second["runs"]] == expected[2:3]
            assert second["next_cursor"] is None  # the two oldest left the history
            assert (await api.call("GET", f"/api/v1/runs/{expected[4]}"))[0] == 404
            status, filtered = await api.call("GET", f"{runs}?status=succeeded")
            assert status == 200 and filtered["runs"] == []
            status, answer = await api.call("GET", f"{runs}?limit=0&status=nope")
            assert status == 422
            assert {p["loc"] for p in answer["problems"]} == {"limit", "status"}
        finally:
            worker.stop()
