"""``coeflow worker --processes 2``: two processes of one worker share the partitions out as
two workers would, and every event still gets its run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from coeflow.tools.processes import WorkerProcess
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

EVENTS = 60


async def test_two_processes_share_the_partitions_and_every_event_gets_its_run(
    bootstrap: str, workdir: Path
) -> None:
    worker = WorkerProcess(
        bootstrap,
        f"coeflow-it-processes-{uuid.uuid4().hex[:6]}",
        workdir,
        processes=2,
        COEFLOW_ROLES="processor,api",
    )
    await worker.start().wait_ready(within=120)
    try:
        held = [
            (await worker.health(n))["record_change_partitions"] for n in range(worker.processes)
        ]
        assert all(held), held
        assert not set(held[0]) & set(held[1])
        assert sorted([*held[0], *held[1]]) == list(range(8))  # COEFLOW_PARTITIONS
        first, second = worker.urls
        acme = tenant()
        created = await Api(first).create(seed_workflow(acme))
        # The other process reads the definition from the topic: once it has, events go.
        await Api(second).poll(f"/api/v1/workflows/{created['id']}", lambda body: True)

        events = [lead_created(acme, n) for n in range(EVENTS)]
        await publish(
            bootstrap, RECORD_CHANGES, [(f"L-{n}".encode(), e) for n, e in enumerate(events)]
        )
        mine = lambda r: (  # noqa: E731
            isinstance(r.value, dict) and r.value.get("tenant_id") == acme and decided(r)
        )
        runs = await read_until(
            bootstrap,
            [RUNS],
            lambda rs: len({r.value["event_id"] for r in rs}) >= EVENTS,
            keep=mine,
            within=60,
        )
        assert {r.value["event_id"] for r in runs} == {e["event_id"] for e in events}
    finally:
        worker.stop()
    assert worker.process is not None and worker.process.returncode == 0
