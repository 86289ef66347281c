"""Durable event-time timers in a worker: armed by record changes, fired once when due.

The record-change processor writes timers to ``workflow.timers`` (compacted, keyed by timer key; a
null cancels). Every worker replicates the topic (``TimerReplica``) into a map and a heap by due
time, so a tick looks only at what is due: its cost follows the due timers, never the armed
ones. A timer belongs to the worker holding partition ``crc32(timer key) % partitions`` of
``workflow.timer-fires``; each second the owner publishes its due timers to
``workflow.timer-fires`` and cancels them. After an assignment a worker fences the timer log
before it fires, so it never fires what the previous owner already cancelled. A timer that
came due while no worker ran fires after the restart, still stamped with its due time. One
that fires twice (a crash between firing and cancelling) carries the same ``fire_id``, so its
runs have the same ids.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Any

import faust
from faust.types import AppT
from mode import Service

from coeflow.settings import Settings
from processor.agents import register_runs_agent
from processor.core.pipeline import Outbound, Outcome, Position, process_timer
from processor.delivery import deliver, producer_send
from processor.ownership import KeyedWork, register_owned_work
from processor.replica import ModelReplica
from processor.runtime import Runtime
from topics import codec
from topics.catalog import TIMER_FIRES, TIMERS
from topics.timers import Timer


class TimerReplica(ModelReplica[Timer]):
    """Every armed timer, and a heap of (due time, key) to find the due ones."""

    topic = TIMERS
    model = Timer

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.armed: dict[str, Timer] = {}
        self._heap: list[tuple[datetime, str]] = []

    def on_null(self, key: bytes | None) -> None:
        if key is not None:  # a cancelled timer (or a fence, which is no timer)
            self.armed.pop(key.decode("utf-8", "replace"), None)

    def on_value(self, key: bytes | None, timer: Timer) -> None:
        self.armed[timer.key] = timer
        heapq.heappush(self._heap, (timer.due_at, timer.key))

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

    @property
    def queued(self) -> int:
        """Entries in the heap, stale ones included (a tick drops those it meets)."""
        return len(self._heap)


class TimerService(KeyedWork):
    def __init__(self, app: AppT, runtime: Runtime, **kwargs: Any) -> None:
        self.timers = TimerReplica(runtime.settings, loop=kwargs.get("loop"))
        super().__init__(app, runtime, self.timers, **kwargs)
        self._send = producer_send(app)

    @Service.timer(1.0)
    async def _fire(self) -> None:
        if not self.acting:
            return
        now = self.runtime.clock()
        due = self.timers.due(now)
        mine = [t for t in due if self.owns(t.key)]
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
    register_owned_work(app, TimerService(app, runtime, loop=app.loop))

    def fire(
        key: bytes | None, value: bytes | None, at: Position, runtime: Runtime, now: datetime
    ) -> Outcome:
        return process_timer(key, value, at, runtime.catalog.index, runtime.settings, now)

    register_runs_agent(app, runtime, TIMER_FIRES, "timer-fires", fire)
