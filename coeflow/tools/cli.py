"""``coeflow``: the Faust app's own command line, plus ``dev`` and ``broker``.

- ``coeflow worker [--processes N]``: Faust's worker, against ``COEFLOW_KAFKA_BOOTSTRAP``
  (N of them in one consumer group: ``coeflow/tools/processes.py``).
- ``coeflow dev [--demo]``: broker (embedded unless configured), topics, worker and admin API
  in one process; prints a line with ``ready`` once events can flow.
- ``coeflow broker``: the embedded broker alone.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import logging
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from faust.cli import AppCommand, option
from faust.cli.worker import worker
from mode import Service, ServiceT
from mode import Worker as ModeWorker
from pydantic import SecretStr

from coeflow.collector import tune_for_a_worker
from coeflow.errors import BrokerError
from coeflow.settings import Settings
from coeflow.tools.broker import EmbeddedBroker, can_listen
from coeflow.tools.demo import DemoPublisher
from coeflow.tools.dev_peers import SINK_PORT, DevPeers, DevPort, PortTaken, sink_url
from coeflow.tools.output import survive_closed_pipes
from coeflow.tools.processes import PROCESSES_OPTION, processes_asked, run_processes
from processor.app import Worker, create_app, parts_of, runtime_of
from processor.parts import Parts
from processor.runtime import Runtime
from processor.topic_creation import ensure_topics
from topics.catalog import ACTIONS_PREFIX, TopicSpec

log = logging.getLogger("coeflow")

_EMBEDDED_SESSION_TIMEOUT = 2.0
PROGRESS_EVERY = 10.0


def dev_settings(settings: Settings, *, demo: bool = False) -> Settings:
    """``coeflow dev`` defaults: a fast group join on the embedded broker, an admin token, a
    webhook signing secret, a log line per run (at most 20 a second), the local outbox and sink (see
    ``coeflow/tools/dev_peers.py``) for email and SMS, and with ``demo`` the CRM simulator; anything
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
        changes |= {
            "smtp_host": "127.0.0.1",
            "smtp_port": settings.dev_smtp_port,
            "smtp_tls": "none",
        }
    if settings.sms_api_url is None:
        changes |= {
            "sms_api_url": sink_url("/sms", settings.dev_sink_port),
            "sms_from": settings.sms_from or "+15550000000",
        }
    if demo and "outbound_allowlist" not in explicit:
        # The demo's Slack workflow posts to the local sink. Only with --demo: the allowlist
        # opens every port of 127.0.0.1, the admin API's among them, to Call Webhook.
        changes["outbound_allowlist"] = ("127.0.0.1",)
    return settings.model_copy(update=changes)


DEV_SECRETS = ("admin_token", "webhook_signing_secret")
"""The secrets ``dev_settings`` makes when they are unset."""


def made_by_dev(configured: Settings, effective: Settings) -> dict[str, str]:
    """The secrets ``dev_settings`` made for this run, by field name: the only ones `coeflow dev`
    prints, since nobody could know them otherwise. One set in the environment is never
    printed (nor logged)."""
    made = {}
    for name in DEV_SECRETS:
        value = getattr(effective, name)
        if getattr(configured, name) is None and value is not None:
            made[name] = value.get_secret_value()
    return made


def admin_api_line(url: str, made: Mapping[str, str]) -> str:
    """What `coeflow dev` says about the admin API: the operator token only if it made it."""
    token = made.get("admin_token")
    if token is None:
        who = "operator token: the one in COEFLOW_ADMIN_TOKEN"
    else:
        who = f"operator token for this run: Authorization: Bearer {token}"
    return f"✓ admin API on {url}/api/v1/workflows ({who}; OpenAPI at /api/v1/openapi.json)"


def web_app_line(url: str, made: Mapping[str, str]) -> str:
    """What `coeflow dev` says about the web app: its address, and the token to sign in with
    (shown only if it made it)."""
    token = made.get("admin_token")
    who = (
        "the token in COEFLOW_ADMIN_TOKEN"
        if token is None
        else f"this run's operator token {token}"
    )
    return f"✓ web app on {url}/ (sign in with {who}, or a tenant's token)"


def signing_line(made: Mapping[str, str]) -> str | None:
    """What `coeflow dev` says about webhook signatures: the secret only if it made it."""
    secret = made.get("webhook_signing_secret")
    if secret is None:
        return None
    return (
        f"✓ Call Webhook deliveries are signed with a secret made for this run: {secret} "
        "(COEFLOW_WEBHOOK_SIGNING_SECRET keeps one)"
    )


def dev_peer_ports(
    settings: Settings, *, demo: bool = False
) -> tuple[DevPort | None, DevPort | None]:
    """The local outbox and sink ``coeflow dev`` runs (``None``: not that one): the outbox when
    email goes to 127.0.0.1 on ``COEFLOW_DEV_SMTP_PORT``, the sink when SMS go to it or, with
    ``demo``, for the example Slack workflow's posts (to ``SINK_PORT``)."""
    if "executors" not in settings.roles:
        return None, None
    outbox = sink = None
    if settings.smtp_host == "127.0.0.1" and settings.smtp_port == settings.dev_smtp_port:
        outbox = DevPort(
            "the local SMTP outbox", "127.0.0.1", settings.dev_smtp_port, "COEFLOW_DEV_SMTP_PORT"
        )
    if _sms_to_sink(settings) or (demo and settings.dev_sink_port == SINK_PORT):
        sink = DevPort(
            "the local HTTP sink", "127.0.0.1", settings.dev_sink_port, "COEFLOW_DEV_SINK_PORT"
        )
    return outbox, sink


def dev_ports(
    settings: Settings, web: tuple[str, int] | None, peers: tuple[DevPort | None, DevPort | None]
) -> list[DevPort]:
    """Every port `coeflow dev` will listen on: the embedded broker's (unless Kafka is
    configured), the admin API's (``web``: its address and port, unless it is off), the
    outbox's and the sink's (``peers``)."""
    ports = []
    if settings.kafka_bootstrap is None:
        address = f"127.0.0.1:{settings.dev_broker_port}"
        ports.append(
            DevPort(
                "the embedded broker",
                "127.0.0.1",
                settings.dev_broker_port,
                "COEFLOW_DEV_BROKER_PORT",
                hint=f" (or COEFLOW_KAFKA_BOOTSTRAP={address} if a Kafka broker runs there)",
            )
        )
    if web is not None:
        what = "the admin API" if "api" in settings.roles else "the worker's /health"
        ports.append(DevPort(what, web[0], web[1], "COEFLOW_WEB_PORT"))
    return ports + [port for port in peers if port is not None]


def taken_ports(ports: list[DevPort]) -> list[DevPort]:
    return [port for port in ports if not can_listen(port.host, port.port)]


def peers_lines(settings: Settings, *, demo: bool = False) -> list[str]:
    """What `coeflow dev` says about its outbox and sink (``dev_peer_ports``)."""
    outbox, sink = dev_peer_ports(settings, demo=demo)
    parts, lines = [], []
    if outbox is not None:
        parts.append(f"email goes to a local outbox ({outbox.host}:{outbox.port})")
    if sink is not None:
        what = ["SMS"] if _sms_to_sink(settings) else []
        if demo and sink.port == SINK_PORT:
            what.append("the demo's Slack posts")
        verb = " go" if outbox is None else ""
        parts.append(f"{' and '.join(what)}{verb} to a local sink ({sink_url('/', sink.port)})")
    if parts:
        logs = "both log what they receive" if len(parts) == 2 else "it logs what it receives"
        lines.append(f"✓ {', '.join(parts)}; {logs}")
    if demo and "executors" in settings.roles and settings.dev_sink_port != SINK_PORT:
        lines.append(
            f"! the demo's Slack workflow posts to {sink_url('/', SINK_PORT)}, not to the sink "
            f"on port {settings.dev_sink_port}: those posts fail unless something there takes them"
        )
    return lines


def _sms_to_sink(settings: Settings) -> bool:
    return (settings.sms_api_url or "").startswith(sink_url("/", settings.dev_sink_port))


def main() -> None:
    survive_closed_pipes()  # `coeflow dev | tee log`: Ctrl-C ends tee, and must still end us
    if sys.argv[1:2] == ["bench"]:
        raise SystemExit(run_bench(sys.argv[2:]))
    settings = Settings()
    if sys.argv[1:2] == ["workflows"]:
        from coeflow.tools import workflow_files

        raise SystemExit(workflow_files.main(sys.argv[2:], settings))
    if sys.argv[1:2] == ["worker"]:
        rest = sys.argv[2:]
        count = processes_asked(rest, settings)
        if count > 1:
            raise SystemExit(run_processes(count, rest, settings))
        sys.argv[2:] = rest
    if sys.argv[1:2] == ["dev"]:
        settings = dev_settings(settings, demo="--demo" in sys.argv[2:])
    tune_for_a_worker()
    create_app(settings, clock=settings.clock()).main()


def run_bench(argv: list[str]) -> int:
    """``coeflow bench``: the benchmark of the checkout this command runs from (``bench/``
    beside the packages; it is not installed with the product). Matplotlib and the workload
    are imported only for this command."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "bench" / "run.py").exists():
        sys.stderr.write(
            "coeflow bench runs from a checkout of the project (make bench); this "
            "installation has no bench/\n"
        )
        return 2
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from bench import run

    return run.main(argv)


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
        web_bind = kwargs.get("web_bind") or settings.web_bind
        web_port = kwargs.get("web_port") or settings.web_port
        web = (web_bind, web_port) if kwargs.get("with_web", True) else None
        outbox, sink = dev_peer_ports(settings, demo=demo)
        self._ports = dev_ports(settings, web, (outbox, sink))
        taken = taken_ports(self._ports)
        if taken:  # before any line says that part works
            for port in taken:
                self.say(port.taken())
            raise SystemExit(1)
        try:
            topics = self._prepare_broker(loop, settings)
        except BrokerError as exc:
            self.say(f"✗ {exc}")
            raise SystemExit(1) from None
        names = [t.name for t in topics if not t.name.startswith(ACTIONS_PREFIX)]
        self.say(f"✓ {len(topics)} topics: {', '.join(names)}, {ACTIONS_PREFIX}<type>")
        made = made_by_dev(Settings(), settings)  # the environment, as main() read it
        if web is not None and "api" in settings.roles:
            self.say(web_app_line(f"http://{web_bind}:{web_port}", made))
            self.say(admin_api_line(f"http://{web_bind}:{web_port}", made))
        elif web is not None:
            self.say(
                f"✓ /health on http://{web_bind}:{web_port}/health (no api role: no admin API)"
            )
        if "executors" in settings.roles and (line := signing_line(made)) is not None:
            self.say(line)
        if outbox is not None or sink is not None:
            self.app.add_dependency(DevPeers(outbox=outbox, sink=sink, loop=loop))
        for line in peers_lines(settings, demo=demo):
            self.say(line)
        if demo:
            self.app.add_dependency(DemoPublisher(settings, runtime.replica, loop=loop))
        self.app.add_dependency(DevReporter(self.app, runtime, parts_of(self.app), loop=loop))
        return super().as_service(loop, *args, **kwargs)

    @property
    def _Worker(self) -> type[Worker]:
        return DevWorker

    def on_worker_created(self, worker: ModeWorker) -> None:
        cast(DevWorker, worker).dev_ports = self._ports
        super().on_worker_created(worker)

    def _prepare_broker(
        self, loop: asyncio.AbstractEventLoop, settings: Settings
    ) -> list[TopicSpec]:
        if settings.kafka_bootstrap is None:
            broker = EmbeddedBroker(
                port=settings.dev_broker_port, log_path=settings.data_dir / "broker.log"
            ).start()
            atexit.register(broker.stop)
            self.say(f"✓ embedded Kafka-API broker (Tansu) on {broker.bootstrap}, in memory")
        else:
            self.say(f"✓ using Kafka at {settings.bootstrap}")
        return loop.run_until_complete(ensure_topics(settings))


class DevWorker(Worker):
    """The worker of `coeflow dev`: a port taken after ``dev`` checked it (by something quicker
    than us) is the same one line and exit status 1, not a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dev_ports: list[DevPort] = []
        self._failed = False

    async def start(self) -> None:
        try:
            await super().start()
        except PortTaken as exc:
            self._fail(str(exc))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            named = [p for p in self.dev_ports if f"{p.port})" in str(exc)]
            self._fail(named[0].taken() if named else f"✗ {exc}")

    def _fail(self, line: str) -> None:
        self.say(line)
        self._failed = True

    def stop_and_shutdown(self) -> None:
        super().stop_and_shutdown()
        if self._failed:
            raise SystemExit(1)


class DevReporter(Service):
    """What `coeflow dev` tells its terminal: one ``ready`` line once definitions are loaded and
    partitions assigned, then a progress line every ``PROGRESS_EVERY`` seconds with new events."""

    def __init__(self, app: Any, runtime: Runtime, parts: Parts, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app, self.runtime, self.parts = app, runtime, parts

    @Service.task
    async def _report(self) -> None:
        await self.runtime.replica.ready.wait()
        changes = self.parts.changes
        while not self.should_stop and not (changes is None or changes.partitions):
            await self.sleep(0.2)
        settings = self.runtime.settings
        if changes is None:  # no processor role: this worker matches nothing
            log.info(
                "ready: %d workflows loaded; no processor role here, so record changes are "
                "matched by other workers (Ctrl-C stops)",
                len(self.runtime.catalog),
            )
        else:
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
                log.info(  # what went to workflow.dead-letter is said where it is counted
                    "progress: %d events (%d dead-lettered); runs: %s%s",
                    seen,
                    stats.dead_letters,
                    runs or "none",
                    self._actions(),
                )

    def _actions(self) -> str:
        executors = self.parts.executors
        if executors is None:
            return ""
        done = executors.runner.stats
        return (
            f"; actions: {done.succeeded} succeeded, {done.retried} retried, "
            f"{done.failed} failed (dead-lettered), {done.skipped_repeats} repeats skipped"
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


OUR_COMMANDS = {
    "dev": "All on this machine: embedded broker, worker, web app and API (--demo: examples).",
    "worker": "A worker against COEFLOW_KAFKA_BOOTSTRAP: what a deployment runs.",
    "workflows": "Workflows as files: `coeflow workflows export` and `apply -f FILE` "
    "(--dry-run, --backtest 7d).",
    "broker": "The embedded Kafka-API broker alone (Tansu, in memory), until Ctrl-C.",
    "bench": "The benchmark: plain pipes against the processor; figures, JSON and a chart.",
}
"""Our commands, listed first by ``coeflow --help``, each with a line that is true."""

_WEB_OPTIONS = {
    "web_port": "Port of the admin API (default: COEFLOW_WEB_PORT, 6066).",
    "web_bind": "Address the admin API binds to (default: COEFLOW_WEB_BIND, 127.0.0.1).",
    "web_host": "Host name in the worker's own URL (default: the address it binds to).",
}


def describe_commands() -> None:
    """Faust's command line, told about our commands: ours first with their own lines, then
    Faust's; the admin API's options with the defaults this product really has. ``workflows``
    and ``bench`` are dispatched by ``main`` before Faust; they are listed here so that
    ``--help`` shows them."""
    import click
    from faust.cli.base import cli

    cli.help = (
        "Coeffection Workflows: the CRM's workflow automation engine.\n\n"
        "`coeflow dev` runs it all on this machine; `coeflow COMMAND --help` says more. "
        "The commands after ours are Faust's own."
    )
    for name in ("workflows", "bench"):
        if name not in cli.commands:
            cli.add_command(click.Command(name, add_help_option=False, help=OUR_COMMANDS[name]))
    for name, line in OUR_COMMANDS.items():
        cli.commands[name].short_help = line
        for param in cli.commands[name].params:
            if isinstance(param, click.Option) and param.name in _WEB_OPTIONS:
                param.help = _WEB_OPTIONS[param.name]
    cli.commands["worker"].params.append(
        click.Option(
            [PROCESSES_OPTION],
            type=int,
            expose_value=False,  # taken by main before Faust parses the rest
            help="Worker processes on this machine, in one consumer group (default: "
            "COEFLOW_PROCESSES, 1); process n serves the admin API on COEFLOW_WEB_PORT + n.",
        )
    )
    theirs = sorted(set(cli.commands) - set(OUR_COMMANDS))
    cli.list_commands = lambda ctx: [*OUR_COMMANDS, *theirs]  # type: ignore[method-assign]


describe_commands()
