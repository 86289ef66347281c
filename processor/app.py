"""The Faust app: configuration for our broker reality, and the parts that run in a worker."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.app.base import BootStrategy
from faust.types import AppT

from coeflow import logsafe
from coeflow.clock import Clock, utc_now
from coeflow.settings import Settings
from processor import (
    crm_simulator,
    executor_agents,
    inbound_webhooks,
    scheduler,
    timer_service,
)
from processor.api import server
from processor.api.middleware import HANDLER_OPTIONS, json_errors, json_errors_without_api
from processor.changes import ChangeProcessor
from processor.core.catalog import WorkflowCatalog
from processor.executor_agents import ExecutorRole
from processor.parts import Parts
from processor.projections import AdminViews
from processor.replica import DefinitionsReplica, OutcomeReplica
from processor.run_tracker import RunTracker
from processor.runtime import Runtime
from processor.stats import Stats
from processor.topic_creation import ensure_topics
from processor.web import server as web_app

_LOGGING = {
    # Merged into the worker's logging setup: the handler passes everything, the root logger
    # keeps the level of `-l/--loglevel` (warn by default) for Faust, aiokafka and mode, and
    # our own loggers speak at INFO: they say little, and it is what an operator needs.
    "merge": True,
    # Every record is cleaned before it is formatted (coeflow/logsafe.py): no tokens, and no
    # raw control characters from requests, in messages or tracebacks.
    "filters": {"safe": {"()": "coeflow.logsafe.SafeLogFilter"}},
    "handlers": {
        "default": {
            "class": "colorlog.StreamHandler",
            "formatter": "colored",
            "level": "NOTSET",
            "filters": ["safe"],
        }
    },
    "loggers": {
        "coeflow": {"level": "INFO"},
        "processor": {"level": "INFO"},
        "executors": {"level": "INFO"},
        "topics": {"level": "INFO"},
    },
}


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner, which would reset the log handler to the
    worker's level and hide our INFO lines (``ready``, the lines of runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


class App(faust.App):
    """A Faust app that carries its runtime and parts, for the commands Faust hands only the
    app."""

    runtime: Runtime
    parts: Parts

    async def on_first_start(self) -> None:
        if self.runtime.settings.create_topics:
            await ensure_topics(self.runtime.settings)
        await super().on_first_start()


def runtime_of(app: AppT) -> Runtime:
    return cast(App, app).runtime


def parts_of(app: AppT) -> Parts:
    return cast(App, app).parts


def create_app(settings: Settings, *, clock: Clock = utc_now) -> App:
    app = App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        datadir=str(settings.data_dir),
        autodiscover=False,
        # Consumer group: the embedded broker answers JoinGroup after half the session timeout.
        broker_session_timeout=settings.group_session_timeout,
        broker_heartbeat_interval=settings.group_session_timeout / 4,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        # Tansu reports wrong end offsets, which trips Faust's recovery check for late joiners.
        recovery_consistency_check=False,
        producer_acks=-1,
        # Outputs are not awaited one by one (see processor/delivery.py), so batching them for
        # a few milliseconds costs little latency and saves a request per message.
        producer_linger=0.005,
        producer_compression_type=settings.compression_type,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        logging_config=_LOGGING,
        web_application_options={
            "middlewares": [json_errors if "api" in settings.roles else json_errors_without_api],
            "handler_args": HANDLER_OPTIONS,
        },
        Worker=Worker,
    )
    if settings.admin_token is not None:
        logsafe.hide(settings.admin_token.get_secret_value())
    catalog = WorkflowCatalog()
    replica = DefinitionsReplica(settings, catalog, loop=app.loop)
    runtime = Runtime(settings, catalog, replica, clock, stats=Stats(log_runs=settings.log_runs))
    app.runtime = runtime
    app.parts = parts = Parts()
    roles = settings.roles
    # One reader of the outcome log. Fenced only where the executors' ledger must be complete
    # before they act: the run history alone serves what it has read so far.
    outcomes = OutcomeReplica(
        settings, fenced="executors" in roles, decodes=runtime.decodes, loop=app.loop
    )
    if "executors" in roles:  # its state log: the role runs it
        parts.executors = ExecutorRole(app, settings, clock, outcomes, loop=app.loop)
        executor_agents.register(app, parts.executors)
    server.register_health(app, runtime, parts)
    if "processor" in roles or "api" in roles:  # both match or show the workflows
        app.add_dependency(replica)
    if "processor" in roles:  # everything that decides runs
        parts.changes = ChangeProcessor(runtime, loop=app.loop)
        app.add_dependency(parts.changes)
        inbound_webhooks.register_agent(app, runtime)
        scheduler.register(app, runtime)
        timer_service.register(app, runtime)
    if "api" in roles:  # what shows runs and takes writes: none of it decides a run
        runtime.admin = AdminViews.create(settings, clock, outcomes, runtime.decodes, loop=app.loop)
        if parts.executors is None:
            app.add_dependency(outcomes)
        for service in runtime.admin.services:
            app.add_dependency(service)
        app.add_dependency(RunTracker(runtime, loop=app.loop))
        inbound_webhooks.register_endpoint(app, runtime)
        server.register(app)
        web_app.register(app)
    else:
        server.register_without_api(app)
    if "crm-simulator" in roles:
        crm_simulator.register(app, runtime)
    if len(app.agents) == 0:
        # No Faust agent (the api role alone): no member of the app's consumer group
        # ``COEFLOW_APP_ID`` either, so such a worker may share the processors' app id.
        app.boot_strategy = BootStrategy(app, enable_kafka_consumer=False)
    return app
