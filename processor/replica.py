"""Every worker's own full copy of ``workflow.definitions``.

Each worker reads *all* partitions of the topic with a consumer outside any group, from the
beginning, for as long as it runs: the way Kafka Streams materialises a GlobalKTable. So no
rebalance, partition assignment or second worker can leave a worker with part of the
definitions, and a restart rebuilds the same state from the (compacted) topic. Faust's
GlobalTable was measured to leave two workers with half each on the embedded broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from coeflow.settings import Settings
from processor.core.catalog import WorkflowCatalog
from topics.catalog import DEFINITIONS

log = logging.getLogger(__name__)

_YIELD_EVERY = 100


class DefinitionsReplica(Service):
    def __init__(self, settings: Settings, catalog: WorkflowCatalog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.catalog = catalog
        self.ready = asyncio.Event()
        self._applied: dict[int, int] = {}
        self._progress = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            client_id=f"{self.settings.app_id}-definitions",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _replicate(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        partitions = await self._partitions(consumer)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # The broker's idea of the end when we started: the state is complete once we pass it.
        end = await consumer.end_offsets(partitions)
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                for n, record in enumerate(records, 1):
                    self.catalog.apply(record.key, record.value)
                    if n % _YIELD_EVERY == 0:  # compiling is CPU work: let the API and agent in
                        await asyncio.sleep(0)
                self._applied[tp.partition] = records[-1].offset
            if batches:
                async with self._progress:
                    self._progress.notify_all()
            if not self.ready.is_set() and await _caught_up(consumer, end):
                log.info(
                    "definitions loaded: %d workflows, %d active",
                    len(self.catalog),
                    len(self.catalog.index),
                )
                self.ready.set()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while not self.should_stop:
            partitions = consumer.partitions_for_topic(DEFINITIONS)
            if partitions:
                return [TopicPartition(DEFINITIONS, p) for p in sorted(partitions)]
            await consumer.topics()  # refreshes the metadata
            await self.sleep(0.5)
        return []

    async def wait_applied(self, partition: int, offset: int, within: float) -> bool:
        """Wait until the record at ``partition``/``offset`` is in the catalog: what the API
        waits for after a write, so that reads on this worker see it (read-your-writes)."""
        async with self._progress:
            try:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._applied.get(partition, -1) >= offset),
                    within,
                )
            except TimeoutError:
                return False
        return True


async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True
