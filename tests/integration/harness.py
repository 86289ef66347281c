"""Real processes against a real broker: workers, a producer, topic readers, an API client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from coeflow.tools.broker import EmbeddedBroker, free_port
from coeflow.tools.processes import TOKEN
from tests.peers import Canary, HttpPeer, SmtpPeer
from topics import codec
from topics.catalog import ACTIONS_PREFIX, RUNS

SIGNING_SECRET = "whsec-integration"

ISSUED_TOKENS: set[str] = set()
"""Every token the tests were given (``Api.as_tenant``): the log scan looks for them."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    """The decoded JSON value (``None`` for a tombstone, the bytes if they are not JSON)."""


@dataclass(frozen=True)
class Peers:
    smtp: SmtpPeer
    http: HttpPeer
    canary: Canary

    def env(self, **overrides: str) -> dict[str, str]:
        """A worker's settings for reaching these peers, with quick retries."""
        return {
            "COEFLOW_ROLES": "processor,api,executors,crm-simulator",
            "COEFLOW_SMTP_HOST": "127.0.0.1",
            "COEFLOW_SMTP_PORT": str(self.smtp.port),
            "COEFLOW_SMTP_TLS": "none",
            "COEFLOW_SMS_API_URL": self.http.url("/ok/sms"),
            "COEFLOW_SMS_FROM": "+15550001111",
            "COEFLOW_SMS_ACCOUNT": "AC-it",
            "COEFLOW_SMS_AUTH_TOKEN": "sms-token",
            "COEFLOW_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "COEFLOW_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET,
            "COEFLOW_ACTION_TIMEOUT": "2",
            "COEFLOW_ACTION_BACKOFF": "0.2",
            "COEFLOW_ACTION_BACKOFF_MAX": "1",
            "COEFLOW_ACTION_MAX_ATTEMPTS": "4",
            **overrides,
        }


class Api:
    """The admin API of one worker."""

    def __init__(self, base_url: str, token: str | None = TOKEN) -> None:
        self.base_url, self.token = base_url, token
        self.token_id: str | None = None
        """Set for a tenant's token made by ``as_tenant``."""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        token = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (codec.dumps(body) if body is not None else None)
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base_url + path, data=data, headers=headers) as response,
        ):
            text = await response.read()
            return response.status, codec.loads(text) if text else None

    async def create(self, workflow: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.call("POST", "/api/v1/workflows", workflow)
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def activate(self, workflow_id: str) -> dict[str, Any]:
        status, body = await self.call("POST", f"/api/v1/workflows/{workflow_id}/activate")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def as_tenant(self, tenant_id: str, scope: str = "admin") -> Api:
        """A client holding a new token of ``tenant_id`` with ``scope`` (made by this one)."""
        status, body = await self.call(
            "POST", "/api/v1/tokens", {"tenant_id": tenant_id, "scope": scope, "name": scope}
        )
        assert status == 201, body
        client = Api(self.base_url, token=body["token"])
        client.token_id = body["token_id"]
        ISSUED_TOKENS.add(body["token"])
        return client

    async def poll(
        self, path: str, check: Callable[[Any], bool], within: float = 20.0
    ) -> dict[str, Any]:
        """GET ``path`` until it answers 200 with a body ``check`` accepts; that body."""
        deadline = time.monotonic() + within
        while True:
            status, body = await self.call("GET", path)
            if status == 200 and check(body):
                return body  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"GET {path} not as expected within {within}s: {body}")
            await asyncio.sleep(0.2)


async def publish(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, Any]]) -> None:
    """Send (key, value) pairs; a value that is not bytes is encoded as JSON, None stays null."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        futures = []
        for key, value in messages:
            raw = value if value is None or isinstance(value, bytes) else codec.dumps(value)
            futures.append(await producer.send(topic, key=key, value=raw))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topics: Iterable[str],
    done: Callable[[list[Record]], bool],
    *,
    keep: Callable[[Record], bool] = lambda r: True,
    within: float = 30.0,
) -> list[Record]:
    """Read ``topics`` from the beginning, keeping what ``keep`` accepts, until ``done``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    kept: list[Record] = []
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + within
        while True:
            for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                for m in messages:
                    value = _decoded(m.value)
                    record = Record(tp.topic, tp.partition, m.offset, m.key, value)
                    if keep(record):
                        kept.append(record)
            if done(kept):
                return kept
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"gave up after {within}s with {len(kept)} records: "
                    f"{[r.value for r in kept][:5]}"
                )
    finally:
        await consumer.stop()


def _decoded(raw: bytes | None) -> Any:
    """A message's JSON value; ``None`` for a tombstone; the bytes themselves when they are not
    JSON (tests publish poison to the topics that other tests read)."""
    if raw is None:
        return None
    try:
        return codec.loads(raw)
    except ValueError:
        return raw


def actions_read(records: list[Record]) -> bool:
    """Every action that the run records among ``records`` issued has been read as well.

    Commands travel on other topics than their run record, so a reader can meet a run before
    its commands: wait for this before asserting on commands."""
    issued = {
        a["action_id"]
        for r in records
        if r.topic == RUNS
        for a in (r.value or {}).get("actions", ())
    }
    return issued <= {r.value["action_id"] for r in records if r.topic.startswith(ACTIONS_PREFIX)}


def decided(record: Record) -> bool:
    """Not a run as the run tracker completed it: the processor's decisions, and everything
    that is not a run record. Runs appear twice once their actions are done."""
    return record.topic != RUNS or record.value.get("completed_at") is None


def tenant() -> str:
    """A fresh tenant per test: tests share topics and workers, never each other's data."""
    return f"t-{uuid.uuid4().hex[:10]}"


def seed_workflow(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    from tests.factories import SEED_WORKFLOW

    return {
        **SEED_WORKFLOW,
        "id": f"wf-welcome-{tenant_id}",
        "tenant_id": tenant_id,
        "status": "active",
        **overrides,
    }


EMAIL_ONLY = [
    {"type": "send_email", "to": "{{record.email}}", "subject": "Hi", "body": "Hi {{record.name}}"}
]
"""Actions that change no CRM record: a workflow with only these starts no follow-on change."""


def email_workflow(tenant_id: str, at_least: int, **overrides: Any) -> dict[str, Any]:
    """A lead workflow of ``tenant_id`` that only emails the leads scoring ``at_least`` or more."""
    return seed_workflow(
        tenant_id,
        conditions={"all": [{"field": "score", "op": "gte", "value": at_least}]},
        actions=EMAIL_ONLY,
        **overrides,
    )


def coeflow_workflows(
    api: Api, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``coeflow workflows ARGS`` against ``api``'s worker with its token, as a user runs it."""
    env = {**os.environ, "COEFLOW_API_URL": api.base_url, "COEFLOW_API_TOKEN": api.token or ""}
    return subprocess.run(
        [sys.executable, "-m", "coeflow", "workflows", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lead_created(tenant_id: str, n: int, *, score: int = 72, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{tenant_id}-evt-{n}",
        "tenant_id": tenant_id,
        "record_type": "lead",
        "record_id": f"L-{n}",
        "operation": "created",
        "occurred_at": "2026-11-25T19:00:00Z",
        "before": None,
        "after": {
            "name": f"Lead {n}",
            "email": f"lead{n}@example.com",
            "score": score,
            "owner_id": "u-7",
        },
        "actor_id": "u-7",
        "causation": None,
        **fields,
    }


async def until(check: Callable[[], Any], within: float = 20.0) -> Any:
    """Poll ``check`` until it returns something true, and return that."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within}s")


def own_broker(workdir: Path) -> EmbeddedBroker:
    """A broker for one test (``with own_broker(...) as broker``): for workers whose group or
    effects must not meet the session's other workers."""
    return EmbeddedBroker(port=free_port(), log_path=workdir / f"tansu-{uuid.uuid4().hex[:6]}.log")


def fast_clock(start: str, speed: float = 60.0) -> dict[str, str]:
    """Settings that give workers one shared clock, showing ``start`` now and running ``speed``
    times as fast (60: a minute per second)."""
    return {
        "COEFLOW_CLOCK_START": start,
        "COEFLOW_CLOCK_ANCHOR": str(time.time()),
        "COEFLOW_CLOCK_SPEED": str(speed),
    }


def real_seconds_until(moment: str, env: dict[str, str]) -> float:
    """Real seconds until the workers' clock (``fast_clock``) shows ``moment``."""
    ahead = datetime.fromisoformat(moment) - datetime.fromisoformat(env["COEFLOW_CLOCK_START"])
    at = float(env["COEFLOW_CLOCK_ANCHOR"]) + ahead.total_seconds() / float(
        env["COEFLOW_CLOCK_SPEED"]
    )
    return max(at - time.time(), 0.0)


def clock_now(env: dict[str, str]) -> datetime:
    """What the workers' clock (``fast_clock``) shows now."""
    elapsed = (time.time() - float(env["COEFLOW_CLOCK_ANCHOR"])) * float(env["COEFLOW_CLOCK_SPEED"])
    return datetime.fromisoformat(env["COEFLOW_CLOCK_START"]) + timedelta(seconds=elapsed)
