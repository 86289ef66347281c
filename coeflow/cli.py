"""``coeflow``: the Faust app's own command line, plus ``dev`` and ``broker``.

- ``coeflow worker``: Faust's worker, against ``COEFLOW_KAFKA_BOOTSTRAP``.
- ``coeflow dev [--demo]``: broker (embedded unless configured), topics, worker and admin API
  in one process; prints a line with ``ready`` once events can flow.
- ``coeflow broker``: the embedded broker alone.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import secrets
import sys
from typing import Any

from faust.cli import AppCommand, option
from faust.cli.worker import worker
from mode import Service, ServiceT
from pydantic import SecretStr

from coeflow.broker import EmbeddedBroker
from coeflow.demo import DemoPublisher
from coeflow.dev_peers import OUTBOX_PORT, DevPeers, sink_url
from coeflow.errors import BrokerError
from coeflow.settings import EMBEDDED_BOOTSTRAP, Settings
from processor.app import create_app, runtime_of
from processor.runtime import Runtime
from topics.admin import ensure_topics
from topics.catalog import ACTIONS_PREFIX, TopicSpec

log = logging.getLogger("coeflow")

_EMBEDDED_SESSION_TIMEOUT = 2.0
PROGRESS_EVERY = 10.0


def dev_settings(settings: Settings, *, demo: bool = False) -> Settings:
    """``coeflow dev`` defaults: a fast group join on the embedded broker, an admin token, a
    webhook signing secret, one log line per run, the local outbox and sink (see
    ``coeflow/dev_peers.py``) for email and SMS, and with ``demo`` the CRM simulator; anything
    set explicitly in the environment wins."""
    explicit = settings.model_fields_set
    changes: dict[str, Any] = {}
    if settings.kafka_bootstrap is None and "group_session_timeout" not in explicit:
        changes["group_session_timeout"] = _EMBEDDED_SESSION_TIMEOUT
    if settings.admin_token is None:
        changes["admin_token"] = SecretStr(secrets.token_urlsafe(24))
    if settings.webhook_signing_secret is None:
        changes["webhook_signing_secret"] = SecretStr(secrets.token_urlsafe(24))
    if "log_runs" not in explicit:
        changes["log_runs"] = True
    if demo and "roles" not in explicit:
        changes["roles"] = settings.roles | {"crm-simulator"}
    if settings.smtp_host is None:
        changes |= {"smtp_host": "127.0.0.1", "smtp_port": OUTBOX_PORT, "smtp_tls": "none"}
    if settings.sms_api_url is None:
        changes |= {
            "sms_api_url": sink_url("/sms"),
            "sms_from": settings.sms_from or "+15550000000",
        }
    if "outbound_allowlist" not in explicit:
        changes["outbound_allowlist"] = ("127.0.0.1",)  # the demo's Slack posts to the sink
    return settings.model_copy(update=changes)


def uses_dev_peers(settings: Settings) -> bool:
    """Whether ``dev`` pointed email or SMS at its own outbox and sink."""
    outbox = settings.smtp_host == "127.0.0.1" and settings.smtp_port == OUTBOX_PORT
    return outbox or settings.sms_api_url == sink_url("/sms")


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic collector's thresholds in a worker (Python's are 700, 10, 10). Deciding a change
allocates dozens of short-lived containers, and with the defaults a young collection ran every
few changes: 12-18 % of the core's time, measured (docs/performance.md). Fewer, larger young
collections free the same cycles a little later."""


def main() -> None:
    if sys.argv[1:2] == ["bench"]:
        from coeflow import bench  # matplotlib and the workload: only for this command

        raise SystemExit(bench.main(sys.argv[2:]))
    settings = Settings()
    if sys.argv[1:2] == ["workflows"]:
        from coeflow import workflow_files

        raise SystemExit(workflow_files.main(sys.argv[2:], settings))
    if sys.argv[1:2] == ["dev"]:
        settings = dev_settings(settings, demo="--demo" in sys.argv[2:])
    gc.set_threshold(*GC_THRESHOLDS)
    create_app(settings, clock=settings.clock()).main()


class dev(worker):
    """Run everything on this machine: broker, topics, worker, admin API (and a demo)."""

    options = [  # noqa: RUF012 — Faust reads the options from this class attribute
        *worker.options,
        option(
            "--demo",
            is_flag=True,
            default=False,
            help="Load the example workflows and publish a stream of demo CRM events.",
        ),
    ]

    def as_service(
        self, loop: asyncio.AbstractEventLoop, *args: Any, demo: bool = False, **kwargs: Any
    ) -> ServiceT:
        runtime = runtime_of(self.app)
        settings = runtime.settings
        try:
            topics = self._prepare_broker(loop, settings)
        except BrokerError as exc:
            self.say(f"✗ {exc}")
            raise SystemExit(1) from None
        names = [t.name for t in topics if not t.name.startswith(ACTIONS_PREFIX)]
        self.say(f"✓ {len(topics)} topics: {', '.join(names)}, {ACTIONS_PREFIX}<type>")
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        self.say(
            f"✓ admin API on http://{settings.web_bind}:{settings.web_port}/api/v1/workflows "
            f"(operator token: Authorization: Bearer {token}; "
            f"OpenAPI at /api/v1/openapi.json)"
        )
        if "executors" in settings.roles and uses_dev_peers(settings):
            self.app.add_dependency(DevPeers(loop=loop))
            self.say(
                f"✓ email goes to a local outbox (127.0.0.1:{OUTBOX_PORT}), SMS and the demo's "
                f"Slack posts to a local sink ({sink_url('/')}); both log what they receive"
            )
        if demo:
            self.app.add_dependency(DemoPublisher(settings, runtime.replica, loop=loop))
        self.app.add_dependency(DevReporter(self.app, runtime, loop=loop))
        return super().as_service(loop, *args, **kwargs)

    def _prepare_broker(
        self, loop: asyncio.AbstractEventLoop, settings: Settings
    ) -> list[TopicSpec]:
        if settings.kafka_bootstrap is None:
            broker = EmbeddedBroker(
                port=int(EMBEDDED_BOOTSTRAP.rsplit(":", 1)[1]),
                log_path=settings.data_dir / "broker.log",
            ).start()
            atexit.register(broker.stop)
            self.say(f"✓ embedded Kafka-API broker (Tansu) on {broker.bootstrap}, in memory")
        else:
            self.say(f"✓ using Kafka at {settings.bootstrap}")
        return loop.run_until_complete(ensure_topics(settings))


class DevReporter(Service):
    """What `coeflow dev` tells its terminal: one ``ready`` line once definitions are loaded and
    partitions assigned, then a progress line every ``PROGRESS_EVERY`` seconds with new events."""

    def __init__(self, app: Any, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app, self.runtime = app, runtime

    @Service.task
    async def _report(self) -> None:
        await self.runtime.replica.ready.wait()
        changes = self.runtime.changes
        while not self.should_stop and not (changes is None or changes.partitions):
            await self.sleep(0.2)
        settings = self.runtime.settings
        log.info(
            "ready: %d workflows loaded; publish ChangeEvents to crm.record-changes at %s "
            "(Ctrl-C stops)",
            len(self.runtime.catalog),
            settings.bootstrap,
        )
        stats, seen = self.runtime.stats, self.runtime.stats.events
        while not self.should_stop:
            await self.sleep(PROGRESS_EVERY)
            if stats.events != seen:
                seen = stats.events
                runs = ", ".join(f"{n} {status}" for status, n in sorted(stats.runs.items()))
                log.info(
                    "progress: %d events, %d dead letters; runs: %s%s",
                    seen,
                    stats.dead_letters,
                    runs or "none",
                    self._actions(),
                )

    def _actions(self) -> str:
        executors = self.runtime.executors
        if executors is None:
            return ""
        done = executors.runner.stats
        return (
            f"; actions: {done.succeeded} succeeded, {done.retried} retried, "
            f"{done.failed} failed, {done.skipped_repeats} repeats skipped"
        )


class broker(AppCommand):
    """Run the embedded Kafka-API broker (Tansu, in memory) until Ctrl-C."""

    options = [  # noqa: RUF012 — Faust reads the options from this class attribute
        option("--host", default="127.0.0.1", help="Address to listen on."),
        option("--port", default=9092, type=int, help="Port to listen on."),
    ]

    async def run(self, host: str, port: int) -> None:
        with EmbeddedBroker(host=host, port=port) as running:
            await ensure_topics(
                runtime_of(self.app).settings.model_copy(
                    update={"kafka_bootstrap": running.bootstrap}
                )
            )
            self.say(f"embedded Kafka-API broker listening on {running.bootstrap} (Ctrl-C stops)")
            await asyncio.Event().wait()
