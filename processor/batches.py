"""The batched path of high-volume inputs: batches from aiokafka, the pure core, batched sends,
a commit.

Record changes (and the run records and outcomes the run tracker folds) are most of the
traffic, so they do not go through Faust agents: Faust's consumer hands messages over one at a
time (several tasks per message) and its producer wraps each send (docs/performance.md). Here
one consumer in its own group (``<app id>-<name>``) fetches batches; a subclass turns each
input into outputs, the changes of its ``ChangelogStore`` among them; the outputs go as record
batches; once the broker holds every one of them, the batch's offsets are committed. Nothing is
committed that was not processed and stored (at-least-once, with deterministic ids).

The loop here joins three parts, each with one job: ``BatchReader`` (fetching, and holding a
partition whose records cannot be decoded), ``RecordBatchSender`` (outputs to record batches,
and sending again what failed) and ``Checkpoint`` (one batch in flight, committed in order).

A rebalance, and a stop, wait for the batch in hand to be sent and committed before the
partitions go; a partition that arrives is processed only once its store is restored. With
several input topics, partition *n* of each goes to the same worker (range assignment over
topics of one partition count) and shares store *n*.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import ConsumerRecord
from mode import Service

from processor.batch_reading import BatchReader, Fetched, HeldPartition
from processor.batch_sending import HandedOver, OutputsByInput, RecordBatchSender
from processor.checkpoint import Checkpoint
from processor.core.pipeline import Outbound
from processor.runtime import Runtime
from processor.stores import ChangelogStore

log = logging.getLogger(__name__)

__all__ = ["MAX_BATCH_BYTES", "BatchProcessor", "HeldPartition", "OutputsByInput"]

MAX_BATCH_BYTES = (1 << 20) - (16 << 10)
"""The record batches' size before compression (what aiokafka measures), 16 KiB under the
1 MiB Kafka takes by default (``message.max.bytes``): aiokafka's C builder compresses even
what does not shrink, and snappy grows a megabyte it cannot compress by a few hundred bytes
(a refused batch is sent again a message at a time, slowly)."""


class BatchProcessor(Service):
    name: ClassVar[str]
    """The consumer group's suffix and the clients' name: ``<app id>-<name>``."""
    topics: ClassVar[tuple[str, ...]]

    def __init__(self, runtime: Runtime, store: ChangelogStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.settings = runtime.settings
        self.group = f"{self.settings.app_id}-{self.name}"
        self.store = store
        self.partitions: list[int] = []
        """The partitions of the input topics this worker processes now."""
        self._batch = asyncio.Lock()
        """Held while a batch is handled, and by a rebalance or a stop: never both at once."""
        self._parts: tuple[AIOKafkaConsumer, BatchReader, RecordBatchSender, Checkpoint] | None
        self._parts = None
        self._producer: AIOKafkaProducer | None = None

    def process(
        self, tp: TopicPartition, records: list[ConsumerRecord], now: datetime
    ) -> OutputsByInput:
        """The outputs of ``records`` of ``tp``, whose store is ready."""
        raise NotImplementedError

    def housekeeping(self, now: datetime) -> list[Outbound]:
        """Outputs not caused by an input, checked between batches (say, forgetting stale
        entries); sent and stored like a batch's."""
        return []

    async def wait_until_startable(self) -> None:
        """Returns once inputs may be processed (say, once definitions are loaded)."""

    @property
    def held(self) -> dict[TopicPartition, HeldPartition]:
        """Partitions paused because their records cannot be decoded."""
        return self._parts[1].held if self._parts is not None else {}

    def make_clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        """The consumer and producer (made on the running loop, as aiokafka requires)."""
        settings, client_id = self.settings, self.group
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            acks="all",
            linger_ms=0,  # batches are built here, full: sent as soon as each is handed over
            max_batch_size=MAX_BATCH_BYTES,
            compression_type=settings.compression_type,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.group_session_timeout * 1000),
            heartbeat_interval_ms=int(settings.group_session_timeout * 250),
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=32 << 20,
            fetch_max_wait_ms=int(settings.fetch_wait * 1000),  # what is there, not a full batch
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        return consumer, producer

    async def on_start(self) -> None:
        consumer, producer = self.make_clients()
        self._producer = producer  # stopped by on_stop, also if the consumer fails to start
        await producer.start()
        await consumer.start()
        self._parts = (
            consumer,
            BatchReader(self.name, consumer),
            RecordBatchSender(producer, self.settings, self.store.topic),
            Checkpoint(self.name, consumer),
        )

    async def on_stop(self) -> None:
        async with self._batch:  # the batch in hand is sent and committed: a leave repeats none
            if self._parts is not None:
                consumer, _, _, checkpoint = self._parts
                await checkpoint.settle()
                await consumer.stop()  # leaves the group: the partitions move on at once
            if self._producer is not None:
                await self._producer.stop()

    @Service.task
    async def _process(self) -> None:
        await self.wait_until_startable()
        assert self._parts is not None
        consumer, reader, _, checkpoint = self._parts
        consumer.subscribe(list(self.topics), listener=_Rebalance(self))
        while not self.should_stop:
            batches = await reader.fetch()
            async with self._batch:
                if self.should_stop:
                    return  # stopping: the clients are closed, its next holder reads these
                if batches:
                    await self._handle(batches)
                else:
                    await checkpoint.settle()  # nothing new: finish what is in flight
                self.runtime.stats.run_lines.tick()  # the count of runs shown no line
                chores = self.housekeeping(self.runtime.clock())
                if chores:
                    await self._send([(None, chores)], self.runtime.clock())

    async def _handle(self, batches: Fetched) -> None:
        assert self._parts is not None
        consumer, reader, sender, checkpoint = self._parts
        now = self.runtime.clock()
        outputs: OutputsByInput = []
        done: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            if tp.partition not in self.partitions:
                if tp in consumer.assignment():
                    # Fetched while its store is still being restored (aiokafka fetches as soon
                    # as it is assigned): read it again once it is ready.
                    reader.read_again(tp, records[0].offset)
                continue  # else revoked since it was fetched: its next holder reads it
            outputs += self.process(tp, records, now)
            done[tp] = records[-1].offset + 1
        handed = await sender.hand_over(outputs)
        await checkpoint.follow(self._finish(outputs, handed, done, now))

    async def _send(self, outputs: OutputsByInput, now: datetime) -> None:
        """Send outputs that no input is committed for, and wait until they are held."""
        assert self._parts is not None
        _, _, sender, checkpoint = self._parts
        await checkpoint.settle()
        await self._finish(outputs, await sender.hand_over(outputs), {}, now)

    async def _finish(
        self,
        outputs: OutputsByInput,
        handed: HandedOver,
        done: dict[TopicPartition, int],
        now: datetime,
    ) -> None:
        assert self._parts is not None
        _, _, sender, checkpoint = self._parts
        await sender.stored(outputs, handed, now)
        if done:
            await checkpoint.commit(done)

    async def release(self, revoked: set[TopicPartition]) -> None:
        """Give up ``revoked`` once the batch in hand is sent and committed."""
        async with self._batch:
            if self._parts is None:
                return
            _, reader, _, checkpoint = self._parts
            await checkpoint.settle()
            reader.forget(revoked)
            gone = {tp.partition for tp in revoked}
            self.partitions = [p for p in self.partitions if p not in gone]
            self.store.drop(sorted(gone))

    async def take(self, assigned: set[TopicPartition]) -> None:
        """Process ``assigned`` once the stores of the partitions new here are restored."""
        assert self._parts is not None and self._producer is not None
        consumer = self._parts[0]
        fresh = sorted({tp.partition for tp in assigned if tp.partition not in self.partitions})
        try:
            await self.store.restore(fresh, self._producer)
        except Exception as exc:  # aiokafka would log it and leave the partitions idle
            await self.crash(exc)
            raise
        self.partitions = sorted({*self.partitions, *fresh})
        consumer.resume(*assigned)
        log.info("%s: processing partitions %s", self.name, self.partitions)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, processor: BatchProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.processor.release(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.processor.take(assigned)
