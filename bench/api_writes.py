"""How long an admin API write takes to answer: workflows created one after another against one
worker, as a user's script or ``coeflow workflows apply`` would.

A write answers once this worker's replicas hold it (read-your-writes), so its time is the
send's acknowledgement plus the replica's read back; a fixed wait anywhere on that path (a
fetch held by the broker, a producer's linger, a poll interval) shows as a floor under every
create. Then ``coeflow workflows apply`` of a file of ``--apply`` workflows, timed end to end.
Run it with ``python -m bench.api_writes [--creates 40] [--apply 1000]``: an embedded broker
(or ``COEFLOW_KAFKA_BOOTSTRAP``), one worker started as the integration tests start theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
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


def applied(url: str, count: int, workdir: Path) -> float:
    """Seconds ``coeflow workflows apply`` took to create ``count`` workflows from a file."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    path = workdir / f"apply-{tenant}.json"
    path.write_bytes(orjson.dumps({"workflows": [workflow(tenant, n) for n in range(count)]}))
    env = {**os.environ, "COEFLOW_API_URL": url, "COEFLOW_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "coeflow", "workflows", "apply", "-f", str(path)]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - began
    if done.returncode != 0 or f"created {count}," not in done.stdout:
        raise RuntimeError(f"apply failed: {done.stderr[-2000:]}")
    return took


async def measure(
    bootstrap: str, workdir: Path, count: int, apply: int
) -> tuple[list[float], float | None]:
    await ensure_topics(Settings(kafka_bootstrap=bootstrap))
    worker = WorkerProcess(bootstrap, f"bench-writes-{uuid.uuid4().hex[:6]}", workdir)
    worker.extra_env["COEFLOW_ROLES"] = "processor,api"
    worker.start()
    try:
        await worker.wait_ready(within=120)
        await creates(worker.url, 3)  # the first writes warm the producer's connections up
        took = await creates(worker.url, count)
        loop = asyncio.get_running_loop()
        seconds = (
            await loop.run_in_executor(None, applied, worker.url, apply, workdir) if apply else None
        )
        return took, seconds
    finally:
        worker.stop()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_writes", description=__doc__)
    parser.add_argument("--creates", type=int, default=40)
    parser.add_argument("--apply", type=int, default=0, help="workflows in the applied file")
    parser.add_argument("--output", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    workdir = args.output / "work"
    settings = Settings()
    if settings.kafka_bootstrap is not None:
        took, seconds = asyncio.run(measure(settings.bootstrap, workdir, args.creates, args.apply))
    else:
        with EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log") as broker:
            took, seconds = asyncio.run(
                measure(broker.bootstrap, workdir, args.creates, args.apply)
            )
    print(
        f"{len(took)} creates in a row: median {statistics.median(took):.1f} ms, "
        f"min {min(took):.1f} ms, max {max(took):.1f} ms"
    )
    if seconds is not None:
        print(f"coeflow workflows apply of {args.apply} workflows: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
