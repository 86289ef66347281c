"""Work that exactly one worker does at a time, by key: schedules and timers.

A key belongs to the worker holding partition ``crc32(key) % partitions`` of
``crm.record-changes``: the consumer group already gives each partition to one member, and
Faust's rebalances are eager (every member gives up its partitions before any gets new ones).
The state of such work lives in a log that every worker replicates; after each assignment a
worker fences that log before it acts, so it continues exactly where the previous owner
stopped.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Set
from typing import Any

import faust
from faust.types import TP, AppT
from mode import Service

from processor.replica import TopicReplica
from processor.runtime import Runtime
from topics.catalog import RECORD_CHANGES

FENCE_KEY = b"coeflow-fence"
_FENCE_WITHIN = 30.0


def owner_partition(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


class OwnedWork(Service):
    """Base of a service that acts for the keys this worker owns, once its log is caught up."""

    def __init__(self, app: AppT, runtime: Runtime, state_log: TopicReplica, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app, self.runtime, self.state_log = app, runtime, state_log
        self.owned: frozenset[int] = frozenset()
        self.synced = asyncio.Event()
        self._generation = 0

    def on_init_dependencies(self) -> list[Service]:
        return [self.state_log]

    def owns(self, key: str) -> bool:
        return owner_partition(key, self.runtime.settings.partitions) in self.owned

    @property
    def acting(self) -> bool:
        """Whether to act now: the log is fenced, definitions are loaded, keys are owned."""
        return self.synced.is_set() and self.runtime.replica.ready.is_set() and bool(self.owned)

    def on_assigned(self, assigned: Set[TP]) -> None:
        self.owned = frozenset(tp.partition for tp in assigned if tp.topic == RECORD_CHANGES)
        self._generation += 1
        self.synced.clear()
        self.add_future(self._sync(self._generation))

    def on_revoked(self) -> None:
        self.owned = frozenset()
        self.synced.clear()

    async def _sync(self, generation: int) -> None:
        while not await self.state_log.fence(self._send_fence, _FENCE_WITHIN):
            if self.should_stop:
                return
        if generation == self._generation:
            self.synced.set()

    async def _send_fence(self, topic: str, partition: int) -> int:
        stored = await self.app.producer.send(topic, FENCE_KEY, None, partition, None, None)
        return int((await stored).offset)


def register_owned_work(app: faust.App, work: OwnedWork) -> None:
    app.add_dependency(work)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # the stub wants *args
    async def on_assigned(sender: AppT, assigned: Set[TP], **_: Any) -> None:
        work.on_assigned(assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: AppT, revoked: Set[TP], **_: Any) -> None:
        work.on_revoked()
