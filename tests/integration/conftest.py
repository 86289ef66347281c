from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from coeflow.broker import EmbeddedBroker, free_port
from coeflow.processes import WorkerProcess
from coeflow.settings import Settings
from tests.integration.harness import Api, Peers
from tests.peers import Canary, HttpPeer, SmtpPeer
from topics.admin import ensure_topics


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One broker for the session: COEFLOW_KAFKA_BOOTSTRAP if set, else an embedded Tansu."""
    configured = os.environ.get("COEFLOW_KAFKA_BOOTSTRAP")
    if configured:
        asyncio.run(ensure_topics(Settings(kafka_bootstrap=configured)))
        yield configured
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_path=log) as broker:
        asyncio.run(ensure_topics(Settings(kafka_bootstrap=broker.bootstrap)))
        yield broker.bootstrap


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="session")
def peers() -> Iterator[Peers]:
    """The executors' peers for the session: SMTP, an HTTP receiver, a canary on 127.0.0.2."""
    with SmtpPeer() as smtp, HttpPeer(hang_seconds=20) as http, Canary("127.0.0.2") as canary:
        yield Peers(smtp, http, canary)


@pytest.fixture(scope="session")
def shared_worker(bootstrap: str, workdir: Path, peers: Peers) -> Iterator[WorkerProcess]:
    """One worker that most integration tests share (each test uses its own tenant): the whole
    product, with the executors pointed at the session's peers and the CRM simulator on."""
    worker = WorkerProcess(bootstrap, "coeflow-it-shared", workdir, **peers.env()).start()
    try:
        asyncio.run(worker.wait_ready())
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def api(shared_worker: WorkerProcess) -> Api:
    return Api(shared_worker.url)
