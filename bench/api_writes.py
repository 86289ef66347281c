"""How long an admin API write takes to answer: workflows created one after another against one
worker, as a user's script or ``coeflow workflows apply`` would.

A write answers once this worker's replicas hold it (read-your-writes), so its time is the
send's acknowledgement plus the replica's read back; a fixed wait anywhere on that path (a
fetch held by the broker, a producer's linger, a poll interval) shows as a floor under every
create. Run it with ``python -m bench.api_writes [--creates 40]``: an embedded broker (or
``COEFLOW_KAFKA_BOOTSTRAP``), one worker started as the integration tests start theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson

from coeflow.settings import Settings
from coeflow.tools.broker import EmbeddedBroker, free_port
from coeflow.tools.demo import WELCOME_WORKFLOW
from coeflow.tools.processes import TOKEN, WorkerProcess
from processor.topic_creation import ensure_topics


def workflow(tenant: str, n: int) -> dict[str, object]:
    return {**WELCOME_WORKFLOW, "id": f"wf-{tenant}-{n}", "tenant_id": tenant, "version": 1}


async def creates(url: str, count: int) -> list[float]:
    """Milliseconds each of ``count`` creates took, one after another."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    took = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for n in range(count):
            began = time.perf_counter()
            body = orjson.dumps(workflow(tenant, n))
            async with http.post(f"{url}/api/v1/workflows", data=body) as response:
                await response.read()
                if response.status != 201:
                    raise RuntimeError(f"create {n}: {response.status} {await response.text()}")
            took.append((time.perf_counter() - began) * 1000)
    return took


async def measure(bootstrap: str, workdir: Path, count: int) -> list[float]:
    await ensure_topics(Settings(kafka_bootstrap=bootstrap))
    worker = WorkerProcess(bootstrap, f"bench-writes-{uuid.uuid4().hex[:6]}", workdir)
    worker.extra_env["COEFLOW_ROLES"] = "processor"
    worker.start()
    try:
        await worker.wait_ready(within=120)
        await creates(worker.url, 3)  # the first writes warm the producer's connections up
        return await creates(worker.url, count)
    finally:
        worker.stop()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_writes", description=__doc__)
    parser.add_argument("--creates", type=int, default=40)
    parser.add_argument("--output", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    workdir = args.output / "work"
    settings = Settings()
    if settings.kafka_bootstrap is not None:
        took = asyncio.run(measure(settings.bootstrap, workdir, args.creates))
    else:
        with EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log") as broker:
            took = asyncio.run(measure(broker.bootstrap, workdir, args.creates))
    print(
        f"{len(took)} creates in a row: median {statistics.median(took):.1f} ms, "
        f"min {min(took):.1f} ms, max {max(took):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
