"""Work that exactly one worker does at a time, by key: schedules and timers.

A key belongs to the worker holding partition ``crc32(key) % partitions`` of
``workflow.timer-fires`` in the Faust consumer group: the group already gives each partition
to one member, and Faust's rebalances are eager (every member gives up its partitions before
any gets new ones).
The state of such work lives in a log that every worker replicates; after each assignment a
worker fences that log before it acts, so it continues exactly where the previous owner
stopped. The executors use the same base for the partitions of the action topics.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Iterable, Set
from typing import Any

import faust
from faust.types import TP, AppT
from mode import Service

from processor.replica import TopicReplica
from processor.runtime import Runtime
from topics.catalog import FENCE_KEY, TIMER_FIRES

log = logging.getLogger(__name__)

_FENCE_WITHIN = 30.0


def owner_partition(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


TopicPartitionName = tuple[str, int]
"""(topic, partition): what the consumer group gave this worker."""


class OwnedWork(Service):
    """Base of a service that acts for the partitions of ``topics`` its worker holds, once it
    has read its state log up to the assignment. Subclasses hear of partitions that moved away
    (``on_released``) and of the log being caught up (``on_synced``)."""

    def __init__(
        self, app: AppT, state_log: TopicReplica, topics: Iterable[str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.app, self.state_log, self.topics = app, state_log, frozenset(topics)
        self.held: frozenset[TopicPartitionName] = frozenset()
        self.synced = asyncio.Event()
        self._generation = 0

    def on_init_dependencies(self) -> list[Service]:
        return [self.state_log]

    def on_released(self, lost: frozenset[TopicPartitionName]) -> None:
        """Partitions this worker no longer holds."""

    def on_synced(self) -> None:
        """The state log is read up to the latest assignment."""

    def on_assigned(self, assigned: Set[TP]) -> None:
        held = frozenset((tp.topic, tp.partition) for tp in assigned if tp.topic in self.topics)
        lost, self.held = self.held - held, held
        if lost:
            self.on_released(lost)
        self._generation += 1
        self.synced.clear()
        self.add_future(self._sync(self._generation))

    def on_revoked(self) -> None:
        lost, self.held = self.held, frozenset()
        self.synced.clear()
        if lost:
            self.on_released(lost)

    async def _sync(self, generation: int) -> None:
        while not await self.state_log.fence(self._send_fence, _FENCE_WITHIN):
            if self.should_stop:
                return
            log.warning(
                "%s did not catch up within %ss; retrying", self.state_log.topic, _FENCE_WITHIN
            )
        if generation == self._generation:  # else a newer assignment is syncing
            self.on_synced()
            self.synced.set()

    async def _send_fence(self, topic: str, partition: int) -> int:
        stored = await self.app.producer.send(topic, FENCE_KEY, None, partition, None, None)
        return int((await stored).offset)


class KeyedWork(OwnedWork):
    """Work split by key: a key belongs to the holder of its partition of workflow.timer-fires."""

    def __init__(self, app: AppT, runtime: Runtime, state_log: TopicReplica, **kwargs: Any) -> None:
        super().__init__(app, state_log, {TIMER_FIRES}, **kwargs)
        self.runtime = runtime

    def owns(self, key: str) -> bool:
        partition = owner_partition(key, self.runtime.settings.partitions)
        return (TIMER_FIRES, partition) in self.held

    @property
    def acting(self) -> bool:
        """Whether to act now: the log is fenced, definitions are loaded, keys are owned."""
        return self.synced.is_set() and self.runtime.replica.ready.is_set() and bool(self.held)


def register_owned_work(app: faust.App, work: OwnedWork) -> None:
    app.add_dependency(work)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # the stub wants *args
    async def on_assigned(sender: AppT, assigned: Set[TP], **_: Any) -> None:
        work.on_assigned(assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: AppT, revoked: Set[TP], **_: Any) -> None:
        work.on_revoked()
