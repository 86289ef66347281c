"""Scheduled workflows in a worker: one tick per schedule, from one worker, even after downtime.

A schedule belongs to the worker that holds partition ``crc32(workflow id) % partitions`` of
``workflow.timer-fires`` in the Faust consumer group, so exactly one worker owns it at a time. Every
second the owner publishes each due tick to ``workflow.schedule-ticks``; the agent on that
topic runs the workflow. The tick log is also the memory: every worker replicates it
(``TickReplica``) and knows each schedule's last tick, and after an assignment a worker fences
the log before it ticks, so it continues exactly where the previous owner stopped. A schedule
whose ticks were missed while no worker ran ticks once, late, and its run record says so.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

import faust
from faust.types import AppT
from mode import Service

from coeflow.settings import Settings
from processor.agents import one_workflow, register_runs_agent
from processor.core.pipeline import RUN_BY_TICK
from processor.core.schedule import due_tick
from processor.core.triggers import ScheduledParams
from processor.ownership import KeyedWork, register_owned_work
from processor.replica import ModelReplica
from processor.runtime import Runtime
from topics import codec
from topics.catalog import SCHEDULE_TICKS
from topics.schedule import ScheduledTick

log = logging.getLogger(__name__)


class TickReplica(ModelReplica[ScheduledTick]):
    """The last tick of every schedule."""

    topic = SCHEDULE_TICKS
    model = ScheduledTick

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.last: dict[str, datetime] = {}

    def on_value(self, key: bytes | None, tick: ScheduledTick) -> None:
        self.record(tick.workflow_id, tick.scheduled_for)

    def record(self, workflow_id: str, scheduled_for: datetime) -> None:
        previous = self.last.get(workflow_id)
        if previous is None or scheduled_for > previous:
            self.last[workflow_id] = scheduled_for

    def describe(self) -> str:
        return f"{len(self.last)} schedules"


class Scheduler(KeyedWork):
    def __init__(self, app: AppT, runtime: Runtime, **kwargs: Any) -> None:
        self.ticks = TickReplica(runtime.settings, loop=kwargs.get("loop"))
        super().__init__(app, runtime, self.ticks, **kwargs)
        self._failing: set[str] = set()
        """Workflows whose schedule raised (logged once each)."""

    @Service.timer(1.0)
    async def _tick(self) -> None:
        if not self.acting:
            return
        now = self.runtime.clock()
        for compiled in list(self.runtime.catalog.scheduled.values()):
            workflow = compiled.workflow
            if not self.owns(workflow.id):
                continue
            params = cast(ScheduledParams, compiled.trigger)
            after = self.ticks.last.get(workflow.id) or workflow.updated_at or now
            try:
                due = due_tick(params.cron, params.zone, after, now)
            except Exception:  # saving refuses what never fires; a bug must stop one schedule only
                if workflow.id not in self._failing:
                    log.exception("schedule of workflow %s cannot be computed", workflow.id)
                    self._failing.add(workflow.id)
                continue
            if due is None:
                continue
            tick = ScheduledTick(
                workflow_id=workflow.id,
                tenant_id=workflow.tenant_id,
                scheduled_for=due.scheduled_for,
                emitted_at=now,
                skipped=due.skipped,
            )
            await self.app.producer.send_and_wait(
                SCHEDULE_TICKS, workflow.id.encode(), codec.dumps(tick), None, None, None
            )
            self.ticks.record(workflow.id, due.scheduled_for)


def register(app: faust.App, runtime: Runtime) -> None:
    register_owned_work(app, Scheduler(app, runtime, loop=app.loop))
    register_runs_agent(
        app, runtime, SCHEDULE_TICKS, "schedule-ticks", one_workflow(RUN_BY_TICK), fenced=True
    )
