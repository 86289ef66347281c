"""The batched path of high-volume inputs: batches from aiokafka, the pure core, batched sends,
a commit.

Record changes (and the run records and outcomes the run tracker folds) are most of the
traffic, so they do not go through Faust agents: Faust's consumer hands messages over one at
a time (several tasks per message) and its producer wraps each send, which held a worker to
about 2,000 events a second where a plain aiokafka pipe moves 30,000
(docs/performance.md). Here one consumer in its own group (``<app id>-<name>``) fetches up to
``BATCH`` messages at once; a subclass turns each into outputs, the changes of its
``ChangelogStore`` among them; all outputs of the batch are sent without waiting one by one;
once the broker holds every one of them, the batch's offsets are committed. Nothing is
committed that was not processed and stored (at-least-once, with deterministic ids); an
output the broker refuses for good turns its input into a dead letter.

Waiting for a batch's acknowledgements and commit overlaps the next batch's processing (one
batch in flight): waiting in turn left the worker idle for about a tenth of its time. Batches
still settle in order: a batch's offsets are committed only after every earlier batch's.

A rebalance, and a stop, wait for the batches in hand to be sent and committed before the
partitions go; a partition that arrives is processed only once its store is restored. With
several input topics, partition *n* of each goes to the same worker (range assignment over
topics of one partition count) and shares store *n*.

A fetch whose records cannot be decoded (a compression codec missing here, a corrupt batch)
holds only its partition: ``getmany`` raises for the whole call without naming the partition,
and the partitions it drained before the bad one have moved past records it never returned. So
every partition is read again from where this worker is, a while of fetches one partition at a
time finds the bad one, and that one is paused at its position, logged and shown on /health,
never committed past; the others go on (``_fetch``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalOperation,
    KafkaError,
    UnsupportedCodecError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from mode import Service

from processor.core.pipeline import Outbound, Outcome
from processor.delivery import Fallback, dead_letter_fallback, deliver
from processor.runtime import Runtime
from processor.stores import ChangelogStore

log = logging.getLogger(__name__)

BATCH = 2000
"""Messages fetched and committed together: large enough to spread a commit's round trip."""
ISOLATE_FOR = 10.0
"""Seconds of fetching one partition at a time after a fetch could not be decoded, so that the
error names its partition (it shows again within a fetch's round trip)."""
_PARTITIONER = DefaultPartitioner()

OutputsByInput = list[tuple[ConsumerRecord | None, list[Outbound]]]
"""A batch's outputs, each list with the input it came from (``None``: housekeeping)."""
_Fetched = dict[TopicPartition, list[ConsumerRecord]]
_HandedOver = tuple[list[tuple[set[int], asyncio.Future[Any]]], set[int]]
"""Record batches handed to the producer, each with the inputs whose outputs it holds, and
the inputs that could not be handed over."""


@dataclass(frozen=True)
class HeldPartition:
    """A partition paused at ``offset``, the first record it could not decode."""

    topic: str
    partition: int
    offset: int
    error: str


def _undecodable(exc: Exception) -> bool:
    """Whether ``getmany`` raised ``exc`` while reading a fetch's records: a codec aiokafka
    cannot decode, a corrupt batch, or a decompressor's own error. aiokafka's other errors (the
    group, authorisation, a stopped consumer) stay fatal, as they were."""
    if isinstance(exc, UnsupportedCodecError | CorruptRecordException):
        return True
    return not isinstance(exc, KafkaError | ConsumerStoppedError | IllegalOperation)


def _reason(exc: Exception) -> str:
    text, kind = str(exc), type(exc).__name__
    return text if text.startswith(kind) else f"{kind}: {text}"  # aiokafka's name themselves


class BatchProcessor(Service):
    name: ClassVar[str]
    """The consumer group's suffix and the clients' name: ``<app id>-<name>``."""
    topics: ClassVar[tuple[str, ...]]

    def __init__(self, runtime: Runtime, store: ChangelogStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.settings = settings = runtime.settings
        self.group = f"{settings.app_id}-{self.name}"
        self.store = store
        self.partitions: list[int] = []
        """The partitions of the input topics this worker processes now."""
        self._batch = asyncio.Lock()
        self._in_flight: asyncio.Future[None] | None = None
        """The last batch handed to the producer: its acknowledgements, then its commit."""
        self._partitions: dict[str, list[int]] = {}
        """Partitions by topic, for keyed outputs (topics do not change partition counts)."""
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.held: dict[TopicPartition, HeldPartition] = {}
        """Partitions paused because their records cannot be decoded (until a rebalance or a
        restart reads them again)."""
        self._read: dict[TopicPartition, int] = {}
        """The offset after the last record ``getmany`` returned, by partition, since assigned:
        where to read again when a fetch could not be decoded."""
        self._isolate_until = 0.0

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

    async def on_start(self) -> None:
        settings = self.settings  # aiokafka's clients must be made on the running loop
        client_id = self.group
        self._producer = producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            acks="all",
            linger_ms=0,  # batches are built here, full: sent as soon as each is handed over
            max_batch_size=1 << 20,
        )
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.group_session_timeout * 1000),
            heartbeat_interval_ms=int(settings.group_session_timeout * 250),
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=32 << 20,
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await producer.start()
        await consumer.start()

    async def on_stop(self) -> None:
        async with self._batch:  # the batch in hand is sent and committed: a leave repeats none
            await self._settle()
            if self._consumer is not None:
                await self._consumer.stop()  # leaves the group: the partitions move on at once
            if self._producer is not None:
                await self._producer.stop()

    @Service.task
    async def _process(self) -> None:
        await self.wait_until_startable()
        consumer = self._consumer
        assert consumer is not None
        consumer.subscribe(list(self.topics), listener=_Rebalance(self))
        while not self.should_stop:
            batches = await self._fetch(consumer)
            async with self._batch:
                if self.should_stop:
                    return  # stopping: the clients are closed, its next holder reads these
                if batches:
                    await self._handle(batches)
                else:
                    await self._settle()  # nothing new: finish what is in flight
                chores = self.housekeeping(self.runtime.clock())
                if chores:
                    await self._send([(None, chores)], self.runtime.clock())

    async def _fetch(self, consumer: AIOKafkaConsumer) -> _Fetched:
        """The next records, as ``getmany`` returns them, but for a partition whose records
        cannot be decoded: that one is held (``_hold``) and the others go on."""
        if time.monotonic() < self._isolate_until:
            batches = await self._fetch_each(consumer)
        else:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            except Exception as exc:
                if not _undecodable(exc):
                    raise
                # Raised for the whole fetch, naming no partition; the partitions drained before
                # the bad one moved past records that were never returned: read them again.
                log.warning(
                    "%s: a fetch could not be decoded (%s); reading one partition at a time "
                    "to find which",
                    self.name,
                    _reason(exc),
                )
                await self._rewind(consumer)
                self._isolate_until = time.monotonic() + ISOLATE_FOR
                return {}
        for tp, records in batches.items():
            self._read[tp] = records[-1].offset + 1
        return batches

    async def _fetch_each(self, consumer: AIOKafkaConsumer) -> _Fetched:
        """What each partition has fetched, asked one by one, so that an error names its own
        partition (and loses nothing of the others); a short wait when there is nothing."""
        batches: _Fetched = {}
        readable = sorted(consumer.assignment() - consumer.paused())
        share = max(1, BATCH // max(1, len(readable)))
        for tp in readable:
            try:
                fetched = await consumer.getmany(tp, timeout_ms=0, max_records=share)
            except Exception as exc:
                if not _undecodable(exc):
                    raise
                fetched = await self._up_to_undecodable(consumer, tp, share)
            batches.update(fetched)
        if not batches:
            await asyncio.sleep(0.05)
        return batches

    async def _up_to_undecodable(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, most: int
    ) -> _Fetched:
        """The records of ``tp`` before the first that cannot be decoded, read one at a time
        (a fetch that raises returns none of its records and leaves the position where it
        started), and ``tp`` held at that first one; at most ``most`` records per call."""
        records: list[ConsumerRecord] = []
        while len(records) < most:
            try:
                fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
            except Exception as exc:
                if not _undecodable(exc):
                    raise
                await self._hold(consumer, tp, exc)
                break
            if not fetched:
                break  # the error did not come back
            records += fetched[tp]
        return {tp: records} if records else {}

    async def _rewind(self, consumer: AIOKafkaConsumer) -> None:
        """Move every partition back to the offset after the last record returned (the
        committed one for a partition that returned none)."""
        for tp in sorted(consumer.assignment()):
            offset = self._read.get(tp)
            if offset is None:
                offset = await consumer.committed(tp)
            if tp not in consumer.assignment():
                continue  # revoked meanwhile
            if offset is None:
                await consumer.seek_to_beginning(tp)  # no commit yet: as auto_offset_reset
            else:
                consumer.seek(tp, offset)

    async def _hold(self, consumer: AIOKafkaConsumer, tp: TopicPartition, exc: Exception) -> None:
        """Pause ``tp`` where it is, at the record it could not decode."""
        offset = await consumer.position(tp)
        if tp not in consumer.assignment():
            return  # revoked meanwhile: its next holder meets the error
        consumer.pause(tp)
        held = HeldPartition(tp.topic, tp.partition, offset, _reason(exc))
        self.held[tp] = held
        log.error(
            "%s: cannot decode %s partition %d at offset %d (%s): the partition is held "
            "there, nothing from that offset on processed or committed; the others go on (a "
            "rebalance or a restart reads it again)",
            self.name,
            tp.topic,
            tp.partition,
            offset,
            held.error,
        )

    async def _settle(self) -> None:
        """Wait until the batch in flight is acknowledged and committed (or dead-lettered)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    async def _handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        now = self.runtime.clock()
        produced: OutputsByInput = []
        done: dict[TopicPartition, int] = {}
        assert self._consumer is not None
        for tp, records in batches.items():
            if tp.partition not in self.partitions:
                if tp in self._consumer.assignment():
                    # Fetched while its store is still being restored (aiokafka fetches as soon
                    # as it is assigned): read it again once it is ready.
                    self._consumer.seek(tp, records[0].offset)
                    self._consumer.pause(tp)
                    self._read[tp] = records[0].offset
                continue  # else revoked since it was fetched: its next holder reads it
            produced += self.process(tp, records, now)
            done[tp] = records[-1].offset + 1
        dispatched = await self._dispatch(produced)
        await self._settle()  # the previous batch is committed before this one
        self._in_flight = asyncio.ensure_future(self._finish(produced, dispatched, done, now))

    async def _send(self, produced: OutputsByInput, now: datetime) -> None:
        """Send outputs that no input is committed for, and wait until they are held."""
        await self._settle()
        await self._finish(produced, await self._dispatch(produced), {}, now)

    async def _finish(
        self,
        produced: OutputsByInput,
        dispatched: _HandedOver,
        done: dict[TopicPartition, int],
        now: datetime,
    ) -> None:
        """Wait until the broker holds every output of ``produced``, an input whose outputs
        failed sent again alone (retried, or dead-lettered if refused); then commit ``done``."""
        sent, failed = dispatched
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        for (members, _), result in zip(sent, results, strict=True):
            if isinstance(result, Exception):
                failed |= members
        for n in sorted(failed):
            record, messages = produced[n]
            fallback = (
                self._letter_keeping_store_changes(messages, record, now)
                if record is not None
                else None
            )
            await deliver(self._send_one, messages, fallback)
        if not done:
            return
        assert self._consumer is not None
        try:
            await self._consumer.commit(done)
        except CommitFailedError as exc:  # the group moved on: the next holder repeats these
            log.warning("%s: commit refused after a rebalance (%s)", self.name, exc)

    async def _dispatch(self, produced: OutputsByInput) -> _HandedOver:
        """Hand every output to the producer: the futures of its record batches, each with
        the inputs whose outputs it holds, and the inputs that could not be handed over.

        Outputs go as record batches built here, one or more per partition, rather than one
        ``send`` each: a send costs a coroutine, a future and the accumulator's bookkeeping
        per message, which was a sixth of the worker's time (docs/performance.md)."""
        producer = self._producer
        assert producer is not None
        by_partition: dict[tuple[str, int], list[tuple[int, Outbound]]] = {}
        failed: set[int] = set()
        for n, (_, messages) in enumerate(produced):
            for message in messages:
                partition = message.partition  # most outputs (store changes) have theirs
                if partition is None:
                    try:
                        partition = await self._partition(message)
                    except KafkaError:
                        failed.add(n)
                        continue
                by_partition.setdefault((message.topic, partition), []).append((n, message))
        sent: list[tuple[set[int], asyncio.Future[Any]]] = []
        for (topic, partition), items in by_partition.items():
            batch, members = producer.create_batch(), set[int]()
            for n, message in items:
                if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                    if members:  # full: send it, start the next
                        sent.append((members, await self._send_batch(batch, topic, partition)))
                        batch, members = producer.create_batch(), set[int]()
                    if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                        failed.add(n)  # larger than a batch may be: sent alone below
                        continue
                members.add(n)
            if members:
                sent.append((members, await self._send_batch(batch, topic, partition)))
        return sent, failed

    def _letter_keeping_store_changes(
        self, messages: list[Outbound], record: ConsumerRecord, now: datetime
    ) -> Fallback:
        """An input's dead letter that still carries its store's changes: they are kept."""
        letter = dead_letter_fallback(record, self.settings, now)
        changes = [m for m in messages if m.topic == self.store.topic]

        def fallback(reason: str) -> Outcome:
            outcome = letter(reason)
            outcome.messages.extend(changes)
            return outcome

        return fallback

    async def _partition(self, message: Outbound) -> int:
        """The partition ``producer.send`` would choose for a keyed message (the same
        partitioner, so records meet their outcomes: both are keyed by run id)."""
        partitions = self._partitions.get(message.topic)
        if partitions is None:
            assert self._producer is not None
            partitions = sorted(await self._producer.partitions_for(message.topic))
            self._partitions[message.topic] = partitions
        return int(_PARTITIONER(message.key, partitions, partitions))

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, topic, partition=partition
        )
        return future

    async def _send_one(self, message: Outbound) -> asyncio.Future[Any]:
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send(
            message.topic, message.value, key=message.key, partition=message.partition
        )
        return future


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, processor: BatchProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        processor = self.processor
        async with processor._batch:  # the batch in hand is sent and committed first
            await processor._settle()
            gone = {tp.partition for tp in revoked}
            for tp in revoked:
                processor.held.pop(tp, None)
                processor._read.pop(tp, None)
            processor.partitions = [p for p in processor.partitions if p not in gone]
            processor.store.drop(sorted(gone))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        processor = self.processor
        fresh = sorted(
            {tp.partition for tp in assigned if tp.partition not in processor.partitions}
        )
        assert processor._producer is not None and processor._consumer is not None
        try:
            await processor.store.restore(fresh, processor._producer)
        except Exception as exc:  # aiokafka would log it and leave the partitions idle
            await processor.crash(exc)
            raise
        processor.partitions = sorted({*processor.partitions, *fresh})
        processor._consumer.resume(*assigned)
        log.info("%s: processing partitions %s", processor.name, processor.partitions)
