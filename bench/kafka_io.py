"""What the bench's phases share with each other: publishing events, fences, where a consumer
group starts, counting run records as they come, and the progress lines."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata

from coeflow.settings import Settings
from processor.changes import ChangeProcessor
from processor.key_partitions import murmur2
from processor.replica import write_fences
from processor.run_tracker import RunTracker
from topics.catalog import RUNS

Offsets = dict[TopicPartition, int]


class Progress:
    """Progress on stderr (one line rewritten on a terminal, a line every few seconds
    elsewhere); results on stdout."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\033[K{text}")
        elif time.monotonic() - self._last >= 5:
            sys.stderr.write(f"{text}\n")
        else:
            return
        self._last = time.monotonic()
        sys.stderr.flush()

    def done(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(text, flush=True)


progress = Progress()


async def publish(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes | None]], label: str
) -> Offsets:
    """Send ``messages``; the first offset each partition got."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, acks=-1
    )
    await producer.start()
    first: Offsets = {}
    try:
        pending: list[asyncio.Future[RecordMetadata]] = []
        for sent, (key, value) in enumerate(messages, 1):
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= 5_000:
                _note_first(first, await asyncio.gather(*pending))
                pending.clear()
                progress.show(f"  {label}: {sent:,} published")
        _note_first(first, await asyncio.gather(*pending))
    finally:
        await producer.stop()
    return first


async def append_or_send(
    producer: AIOKafkaProducer,
    batch: Any,
    message: tuple[bytes | None, bytes | None],
    where: tuple[str, int],
    pending: list[asyncio.Future[RecordMetadata]],
) -> Any:
    """Append ``message`` (key, value) to ``batch``; if it is full, send it to ``where``
    (topic, partition), its future into ``pending``, and start the next with the message.
    The batch to append to next; ``ValueError`` for a message no batch holds."""
    key, value = message
    if batch.append(key=key, value=value, timestamp=None) is not None:
        return batch
    topic, partition = where
    pending.append(await producer.send_batch(batch, topic, partition=partition))
    batch = producer.create_batch()
    if batch.append(key=key, value=value, timestamp=None) is None:
        raise ValueError(f"a message of {len(value or b''):,} bytes fits no batch")
    return batch


async def publish_batches(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]
) -> None:
    """Send ``messages`` as whole record batches, each to the partition its key's murmur2
    picks (as ``publish``'s producer would): a backlog offered at once, at a small part of
    ``publish``'s CPU, to a worker that is already reading."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1 << 20, acks=-1)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in messages:
            chosen = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            by_partition.setdefault(chosen, []).append((key, value))
        pending: list[asyncio.Future[RecordMetadata]] = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for item in items:
                batch = await append_or_send(producer, batch, item, (topic, partition), pending)
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _note_first(first: Offsets, sent: Sequence[RecordMetadata]) -> None:
    for meta in sent:
        tp = TopicPartition(meta.topic, meta.partition)
        if tp not in first or meta.offset < first[tp]:
            first[tp] = meta.offset


async def fences(bootstrap: str, topics: Iterable[str]) -> Offsets:
    """Where a reader of ``topics`` starts to see only what is written from now on: just past
    a fence appended to every partition (exact on any broker, unlike end offsets)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    await producer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(await producer.partitions_for(topic))
        ]
        stored = await write_fences(producer, partitions)
    finally:
        await producer.stop()
    return {tp: offset + 1 for tp, offset in stored.items()}


def read_from(consumer: AIOKafkaConsumer, start: Offsets) -> None:
    """Have ``consumer`` read exactly the partitions of ``start``, each from its offset."""
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)


async def position_group(bootstrap: str, group: str, start: Offsets) -> None:
    """Commit ``start`` for ``group`` before any member joins, so it begins exactly there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(start))
        await consumer.commit(dict(start))
    finally:
        await consumer.stop()


async def position_worker(bootstrap: str, app_id: str, changes: Offsets) -> None:
    """Start app ``app_id``'s record-change processors at ``changes``, and its run tracker
    where its inputs end now: the runs of earlier phases are not this phase's work."""
    await position_group(bootstrap, f"{app_id}-{ChangeProcessor.name}", changes)
    tracked = await fences(bootstrap, RunTracker.topics)
    await position_group(bootstrap, f"{app_id}-{RunTracker.name}", tracked)


def prompt_consumer(bootstrap: str) -> AIOKafkaConsumer:
    """A reader outside any group that fetches as the workers do (``COEFLOW_FETCH_WAIT``)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=int(Settings().fetch_wait * 1000),
    )


_DECIDED = b'"completed_at":null'
"""In a decided run record as the processor encodes it; a completed one has the time."""


class RunCounter:
    """Reads ``workflow.runs`` (and the action topics) from ``start`` in the background."""

    def __init__(self, bootstrap: str, start: Offsets) -> None:
        self.bootstrap, self.start_at = bootstrap, start
        self.runs = 0
        self.decided_only = False
        """Count only decided run records, not those the run tracker writes again once a
        run's actions are done (a worker with the api role)."""
        self.first_at: float | None = None
        """When the first run record was read (``time.monotonic()``)."""
        self.occurred: dict[str, datetime] = {}
        """When the event of each kept run was sent (its ``occurred_at``), by run id."""
        self.run_arrivals: dict[str, float] = {}
        """When each kept run's record was read (``time.time()``), by run id."""
        self.command_arrivals: dict[str, float] = {}
        self.keep_occurred: Callable[[dict[str, Any]], bool] = lambda run: False
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = self._consumer = prompt_consumer(self.bootstrap)
        await consumer.start()
        read_from(consumer, self.start_at)
        self._task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for tp, messages in batches.items():
                messages = [m for m in messages if m.value is not None]  # fences
                if tp.topic == RUNS:
                    for message in messages:
                        if self.decided_only and _DECIDED not in message.value:
                            continue
                        self.runs += 1
                        if self.first_at is None:
                            self.first_at = time.monotonic()
                        run = orjson.loads(message.value)
                        if self.keep_occurred(run):
                            self.occurred[run["run_id"]] = datetime.fromisoformat(
                                run["occurred_at"]
                            )
                            self.run_arrivals.setdefault(run["run_id"], now)
                else:
                    for message in messages:
                        run_id = orjson.loads(message.value)["run_id"]
                        self.command_arrivals.setdefault(run_id, now)

    async def until(self, count: int, label: str, within: float = 900.0) -> float:
        deadline = time.monotonic() + within
        while self.runs < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: only {self.runs:,} of {count:,} run records")
            progress.show(f"  {label}: {self.runs:,}/{count:,} run records")
            await asyncio.sleep(0.1)
        return time.monotonic()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
