"""Durable event-time timers in a worker: armed by record changes, fired once when due.

The record-change agent writes timers to ``workflow.timers`` (compacted, keyed by timer key; a
null cancels). Every worker replicates the topic (``TimerReplica``) into a map and a heap by due
time, so a tick looks only at what is due: its cost follows the due timers, never the armed
ones. A timer belongs to the worker holding partition ``crc32(timer key) % partitions`` of
``crm.record-changes``; each second the owner publishes its due timers to
``workflow.timer-fires`` and cancels them. After an assignment a worker fences the timer log
before it fires, so it never fires what the previous owner already cancelled. A timer that
came due while no worker ran fires after the restart, still stamped with its due time. One
that fires twice (a crash between firing and cancelling) carries the same ``fire_id``, so its
runs have the same ids.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Set
from datetime import datetime
from typing import Any

import faust
from faust.types import TP, AppT
from mode import Service
from pydantic import ValidationError

from coeflow.settings import Settings
from processor.agents import register_runs_agent
from processor.core.pipeline import Outbound, Outcome, Position, process_timer
from processor.delivery import deliver, producer_send
from processor.replica import TopicReplica
from processor.runtime import Runtime
from processor.scheduler import owner_partition
from topics import codec
from topics.catalog import RECORD_CHANGES, TIMER_FIRES, TIMERS
from topics.timers import Timer

log = logging.getLogger(__name__)

_FENCE_KEY = b"coeflow-fence"
_FENCE_WITHIN = 30.0


class TimerReplica(TopicReplica):
    """Every armed timer, and a heap of (due time, key) to find the due ones."""

    topic = TIMERS

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.armed: dict[str, Timer] = {}
        self._heap: list[tuple[datetime, str]] = []

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or key == _FENCE_KEY:
            return
        name = key.decode("utf-8", "replace")
        if value is None:
            self.armed.pop(name, None)
            return
        try:
            timer = codec.decode(value, Timer)
        except (ValueError, ValidationError) as exc:
            log.warning("skipping an undecodable timer %r: %s", name, exc)
            return
        self.armed[name] = timer
        heapq.heappush(self._heap, (timer.due_at, name))

    def due(self, now: datetime) -> list[Timer]:
        """Armed timers due at ``now``, taken off the heap (stale entries are dropped)."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            due_at, name = heapq.heappop(self._heap)
            timer = self.armed.get(name)
            if timer is not None and timer.due_at == due_at:
                found.append(timer)
        return found

    def put_back(self, timers: list[Timer]) -> None:
        for timer in timers:
            heapq.heappush(self._heap, (timer.due_at, timer.key))

    def describe(self) -> str:
        return f"{len(self.armed)} armed timers"


class TimerService(Service):
    def __init__(self, app: AppT, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app, self.runtime = app, runtime
        self.timers = TimerReplica(runtime.settings, loop=self.loop)
        self.owned: frozenset[int] = frozenset()
        self.synced = asyncio.Event()
        self._generation = 0
        self._send = producer_send(app)

    def on_init_dependencies(self) -> list[Service]:
        return [self.timers]

    def on_assigned(self, assigned: Set[TP]) -> None:
        self.owned = frozenset(tp.partition for tp in assigned if tp.topic == RECORD_CHANGES)
        self._generation += 1
        self.synced.clear()
        self.add_future(self._sync(self._generation))

    def on_revoked(self) -> None:
        self.owned = frozenset()
        self.synced.clear()

    async def _sync(self, generation: int) -> None:
        while not await self.timers.fence(self._send_fence, _FENCE_WITHIN):
            if self.should_stop:
                return
        if generation == self._generation:
            self.synced.set()

    async def _send_fence(self, topic: str, partition: int) -> int:
        stored = await self.app.producer.send(topic, _FENCE_KEY, None, partition, None, None)
        return int((await stored).offset)

    @Service.timer(1.0)
    async def _fire(self) -> None:
        if not (self.synced.is_set() and self.runtime.replica.ready.is_set() and self.owned):
            return
        now = self.runtime.clock()
        partitions = self.runtime.settings.partitions
        due = self.timers.due(now)
        mine = [t for t in due if owner_partition(t.key, partitions) in self.owned]
        self.timers.put_back([t for t in due if t not in mine])
        for timer in mine:
            fired = timer.model_copy(update={"fired_at": now})
            await deliver(
                self._send,
                [Outbound(TIMER_FIRES, timer.record_id.encode(), codec.dumps(fired))],
            )
            # Cancel it only if it is still this timer: the record may have re-armed it since.
            if self.timers.armed.get(timer.key) == timer:
                await deliver(self._send, [Outbound(TIMERS, timer.key.encode(), None)])
                self.timers.armed.pop(timer.key, None)


def register(app: faust.App, runtime: Runtime) -> None:
    service = TimerService(app, runtime, loop=app.loop)
    app.add_dependency(service)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # the stub wants *args
    async def on_assigned(sender: AppT, assigned: Set[TP], **_: Any) -> None:
        service.on_assigned(assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: AppT, revoked: Set[TP], **_: Any) -> None:
        service.on_revoked()

    def fire(
        key: bytes | None, value: bytes | None, at: Position, runtime: Runtime, now: datetime
    ) -> Outcome:
        return process_timer(key, value, at, runtime.catalog.index, runtime.settings, now)

    register_runs_agent(app, runtime, TIMER_FIRES, "timer-fires", fire)
