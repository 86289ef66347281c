from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from coeflow.settings import Settings
from coeflow.tools.broker import EmbeddedBroker, free_port
from coeflow.tools.processes import TOKEN, WorkerProcess
from processor.topic_creation import ensure_topics
from tests.integration.harness import ISSUED_TOKENS, SIGNING_SECRET, Api, Peers
from tests.peers import Canary, HttpPeer, SmtpPeer


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
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where every worker of the session writes its log; once they have all stopped, the logs
    are read for what must never be in them (``leaks``)."""
    path = tmp_path_factory.mktemp("workers")
    yield path
    found = [f"{log.name}: {leak}" for log in sorted(path.rglob("*.log")) for leak in leaks(log)]
    if found:
        pytest.fail("worker logs carry secrets or personal data:\n" + "\n".join(found[:20]))


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+\d{7,15}\b")
_SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{16,}")


def leaks(log: Path) -> list[str]:
    """Tokens the tests used, inbound webhook secrets, whole email addresses and phone numbers
    in a worker's log (``coeflow.redact`` cuts addresses to ``ad***@example.com``)."""
    if log.name.startswith("tansu"):
        return []
    text = log.read_text(errors="replace")
    secrets = {TOKEN, SIGNING_SECRET, "sms-token", *ISSUED_TOKENS}
    found = [f"token {s[:4]}…" for s in secrets if s in text]
    for pattern in (_EMAIL, _PHONE, _SECRET):
        found += sorted({m.group(0) for m in pattern.finditer(text)})
    return found


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
