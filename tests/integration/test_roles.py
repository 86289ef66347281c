"""The processor and api roles in workers of their own: one decides the runs, the other shows
them (and completes them, with its run tracker), in one app id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import (
    Api,
    Peers,
    actions_read,
    decided,
    lead_created,
    own_broker,
    publish,
    read_until,
    seed_workflow,
)
from topics.catalog import RECORD_CHANGES, RUNS, action_topic

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"


async def test_a_processor_alone_decides_and_an_api_worker_alone_serves_the_runs(
    workdir: Path, peers: Peers
) -> None:
    with own_broker(workdir) as broker:
        app_id = "coeflow-it-roles"
        processor = WorkerProcess(broker.bootstrap, app_id, workdir, COEFLOW_ROLES="processor")
        api_worker = WorkerProcess(broker.bootstrap, app_id, workdir, COEFLOW_ROLES="api")
        effects = WorkerProcess(  # the actions, so that runs complete (their own app id)
            broker.bootstrap,
            "coeflow-it-roles-executors",
            workdir,
            **peers.env(COEFLOW_ROLES="executors,crm-simulator"),
        )
        started = [processor.start(), api_worker.start(), effects.start()]
        try:
            for worker in started:
                await worker.wait_ready()
            api = Api(api_worker.url)

            # The processor answers /health and nothing else, in JSON.
            health = await processor.health()
            assert health["roles"] == ["processor"] and health["record_change_partitions"]
            async with aiohttp.ClientSession() as http:
                for path in (W, "/", "/workflows", "/hooks/wf-x"):
                    async with http.get(f"{processor.url}{path}") as response:
                        assert response.status == 404, path
                        assert response.content_type == "application/json"
                        assert "api role" in (await response.json())["error"]
            api_health = await api_worker.health()
            assert api_health["roles"] == ["api"] and api_health["ready"]
            assert "record_change_partitions" not in api_health and "processed" not in api_health

            # A workflow written through the api worker reaches the processor.
            acme = "acme"
            created = await api.create(seed_workflow(acme))

            async def loaded() -> bool:
                return bool((await processor.health())["active_workflows"] == 1)

            for _ in range(100):
                if await loaded():
                    break
                await asyncio.sleep(0.2)
            assert await loaded(), "the processor never loaded the workflow the api worker wrote"

            event = lead_created(acme, 1, score=90)
            await publish(broker.bootstrap, RECORD_CHANGES, [(b"L-1", event)])
            outputs = [RUNS, action_topic("send_email"), action_topic("create_task")]
            records = await read_until(
                broker.bootstrap,
                outputs,
                lambda rs: any(r.topic == RUNS for r in rs) and actions_read(rs),
                keep=decided,
            )
            [run] = [r.value for r in records if r.topic == RUNS]
            assert run["status"] == "actions_issued" and run["event_id"] == event["event_id"]
            assert {r.topic for r in records} == set(outputs), "the run and both commands"
            processed = (await processor.health())["processed"]
            assert processed["events"] >= 1 and processed["runs"]["actions_issued"] >= 1

            # The api worker shows the run, completed by its run tracker once both actions are
            # done (the processor runs no tracker).
            listing = await api.poll(
                f"{W}/{created['id']}/runs",
                lambda body: [r["status"] for r in body["runs"]] == ["succeeded"],
                within=40,
            )
            assert listing["runs"][0]["run_id"] == run["run_id"]
            detail = await api.poll(  # the outcomes, from the api worker's outcome replica
                f"/api/v1/runs/{run['run_id']}",
                lambda body: all(step["attempts"] for step in body["steps"]),
            )
            assert detail["run"]["event"]["event_id"] == event["event_id"]
            assert [s["status"] for s in detail["steps"]] == ["succeeded", "succeeded"]
        finally:
            for worker in started:
                worker.stop()
