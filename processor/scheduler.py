"""Scheduled workflows in a worker: one tick per schedule, from one worker, even after downtime.

A schedule belongs to the worker that holds partition ``crc32(workflow id) % partitions`` of
``crm.record-changes`` in the consumer group, so exactly one worker owns it at a time. Every
second the owner publishes each due tick to ``workflow.schedule-ticks``; the agent on that
topic runs the workflow. The tick log is also the memory: every worker replicates it
(``TickReplica``) and knows each schedule's last tick, and after an assignment a worker fences
the log before it ticks, so it continues exactly where the previous owner stopped. A schedule
whose ticks were missed while no worker ran ticks once, late, and its run record says so.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Set
from datetime import datetime
from typing import Any, cast

import faust
from faust.types import TP, AppT
from mode import Service
from pydantic import ValidationError

from coeflow.settings import Settings
from processor.agents import one_workflow, register_runs_agent
from processor.core.pipeline import RUN_BY_TICK
from processor.core.schedule import due_tick
from processor.core.triggers import ScheduledParams
from processor.replica import TopicReplica
from processor.runtime import Runtime
from topics import codec
from topics.catalog import RECORD_CHANGES, SCHEDULE_TICKS
from topics.schedule import ScheduledTick

log = logging.getLogger(__name__)

_FENCE_KEY = b"coeflow-fence"
_FENCE_WITHIN = 30.0


def owner_partition(workflow_id: str, partitions: int) -> int:
    return zlib.crc32(workflow_id.encode()) % partitions


class TickReplica(TopicReplica):
    """The last tick of every schedule."""

    topic = SCHEDULE_TICKS

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.last: dict[str, datetime] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        try:
            tick = codec.decode(value, ScheduledTick)
        except (ValueError, ValidationError):
            return  # the agent dead-letters it
        self.record(tick.workflow_id, tick.scheduled_for)

    def record(self, workflow_id: str, scheduled_for: datetime) -> None:
        previous = self.last.get(workflow_id)
        if previous is None or scheduled_for > previous:
            self.last[workflow_id] = scheduled_for

    def describe(self) -> str:
        return f"{len(self.last)} schedules"


class Scheduler(Service):
    def __init__(self, app: AppT, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app, self.runtime = app, runtime
        self.ticks = TickReplica(runtime.settings, loop=self.loop)
        self.owned: frozenset[int] = frozenset()
        self.synced = asyncio.Event()
        self._generation = 0

    def on_init_dependencies(self) -> list[Service]:
        return [self.ticks]

    def on_assigned(self, assigned: Set[TP]) -> None:
        self.owned = frozenset(tp.partition for tp in assigned if tp.topic == RECORD_CHANGES)
        self._generation += 1
        self.synced.clear()
        self.add_future(self._sync(self._generation))

    def on_revoked(self) -> None:
        self.owned = frozenset()
        self.synced.clear()

    async def _sync(self, generation: int) -> None:
        while not await self.ticks.fence(self._send_fence, _FENCE_WITHIN):
            if self.should_stop:
                return
        if generation == self._generation:
            self.synced.set()

    async def _send_fence(self, topic: str, partition: int) -> int:
        stored = await self.app.producer.send(topic, _FENCE_KEY, None, partition, None, None)
        return int((await stored).offset)

    @Service.timer(1.0)
    async def _tick(self) -> None:
        runtime = self.runtime
        if not (self.synced.is_set() and runtime.replica.ready.is_set() and self.owned):
            return
        now = runtime.clock()
        partitions = runtime.settings.partitions
        for compiled in list(runtime.catalog.scheduled.values()):
            workflow = compiled.workflow
            if owner_partition(workflow.id, partitions) not in self.owned:
                continue
            params = cast(ScheduledParams, compiled.trigger)
            after = self.ticks.last.get(workflow.id) or workflow.updated_at or now
            due = due_tick(params.cron, params.zone, after, now)
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
    scheduler = Scheduler(app, runtime, loop=app.loop)
    app.add_dependency(scheduler)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # the stub wants *args
    async def on_assigned(sender: AppT, assigned: Set[TP], **_: Any) -> None:
        scheduler.on_assigned(assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: AppT, revoked: Set[TP], **_: Any) -> None:
        scheduler.on_revoked()

    register_runs_agent(app, runtime, SCHEDULE_TICKS, "schedule-ticks", one_workflow(RUN_BY_TICK))
