"""Two workers in one consumer group: each holds every definition, and changes reach both.

Faust's GlobalTable was seen on this broker to leave each of two workers with only its own
partitions' keys; our replica reads every partition outside the group, so this must hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import (
    Api,
    lead_created,
    publish,
    read_until,
    seed_workflow,
    tenant,
)
from topics.catalog import RECORD_CHANGES, RUNS

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(bootstrap: str, workdir: Path) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    first = WorkerProcess(
        bootstrap, "coeflow-it-pair", workdir, COEFLOW_ROLES="processor,api"
    ).start()
    second = WorkerProcess(
        bootstrap, "coeflow-it-pair", workdir, COEFLOW_ROLES="processor,api"
    ).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


async def both_ready(first: WorkerProcess, second: WorkerProcess) -> None:
    """Ready, and the group has settled: each holds a share of the partitions, none twice."""
    await asyncio.gather(first.wait_ready(), second.wait_ready())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a, b = await first.health(), await second.health()
        mine, theirs = set(a["record_change_partitions"]), set(b["record_change_partitions"])
        if mine and theirs and not (mine & theirs) and len(mine | theirs) == 8:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the group did not settle: {a} {b}")


async def wait_for_workflow(api: Api, workflow_id: str, version: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, body = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
        if status == 200 and body["version"] == version:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} v{version} never reached {api.base_url}")


async def test_every_worker_holds_every_definition_and_sees_every_change(
    pair: tuple[WorkerProcess, WorkerProcess], bootstrap: str
) -> None:
    first, second = pair
    await both_ready(first, second)
    api_a, api_b = Api(first.url), Api(second.url)
    acme = tenant()
    ids = []
    for n in range(24):  # keys hash across all partitions of workflow.definitions
        api = api_a if n % 2 else api_b
        created = await api.create({**seed_workflow(acme), "id": f"wf-{acme}-{n}"})
        ids.append(created["id"])

    for api in (api_a, api_b):
        for workflow_id in ids:
            await wait_for_workflow(api, workflow_id, 1)
        status, listing = await api.call("GET", f"/api/v1/workflows?tenant_id={acme}")
        assert listing["count"] == len(ids), api.base_url

    # A change made through one worker is live on the other within seconds.
    status, _ = await api_b.call("POST", f"/api/v1/workflows/{ids[0]}/deactivate")
    assert status == 200
    await wait_for_workflow(api_a, ids[0], 2, within=5)

    # Both workers process their share of the events, with every definition.
    events = [lead_created(acme, n) for n in range(40)]
    await publish(bootstrap, RECORD_CHANGES, [(f"L-{n}".encode(), e) for n, e in enumerate(events)])
    expected = len(events) * (len(ids) - 1)
    records = await read_until(
        bootstrap,
        [RUNS],
        lambda rs: len({r.value["run_id"] for r in rs}) >= expected,
        keep=lambda r: r.value.get("tenant_id") == acme,
    )
    assert {r.value["workflow_id"] for r in records} == set(ids[1:])
    assert len({r.partition for r in records}) > 1


async def test_definitions_survive_a_worker_restart(
    pair: tuple[WorkerProcess, WorkerProcess],
) -> None:
    first, second = pair
    await both_ready(first, second)
    acme = tenant()
    created = await Api(first.url).create(seed_workflow(acme))
    second.stop()
    second.start()
    await second.wait_ready()
    status, body = await Api(second.url).call("GET", f"/api/v1/workflows/{created['id']}")
    assert status == 200 and body == created
