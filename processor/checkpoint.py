"""A batched path's commits: one batch in flight, settled in order.

Waiting for a batch's acknowledgements and commit overlaps the next batch's processing: waiting
in turn left the worker idle for a share of its time (docs/performance.md). A batch's
offsets are committed only once the broker holds all its outputs, and only after every earlier
batch's: nothing is committed that was not processed and stored. A commit the group refuses
(it moved on in a rebalance) is left to the partitions' next holder, which repeats those
inputs (at-least-once, with deterministic ids).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError

log = logging.getLogger("processor.batches")


class Checkpoint:
    def __init__(self, name: str, consumer: AIOKafkaConsumer) -> None:
        self.name, self.consumer = name, consumer
        self._in_flight: asyncio.Future[None] | None = None
        """The last batch handed over: its acknowledgements, then its commit."""

    async def settle(self) -> None:
        """Wait until the batch in flight is acknowledged and committed (or dead-lettered)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    async def follow(self, batch: Awaitable[None]) -> None:
        """Settle the batch in flight, then let ``batch`` (a batch's acknowledgements and
        commit) be the one in flight."""
        await self.settle()
        self._in_flight = asyncio.ensure_future(batch)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:  # the group moved on: the next holder repeats these
            log.warning("%s: commit refused after a rebalance (%s)", self.name, exc)
