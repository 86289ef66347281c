"""Reading a batched path's input: ``getmany`` as aiokafka gives it, except for a partition whose
records cannot be decoded (a compression codec missing here, a corrupt batch), which is held
alone.

``getmany`` raises for the whole call without naming the partition, and the partitions it drained
before the bad one have moved past records it never returned. So every partition is read again
from where this worker is, a while of fetches one partition at a time finds the bad one, and that
one is paused at its position, logged and shown on /health, never committed past; the others go
on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalOperation,
    KafkaError,
    UnsupportedCodecError,
)
from aiokafka.structs import ConsumerRecord

log = logging.getLogger("processor.batches")

BATCH = 2000
"""At most this many messages a fetch, handled and committed together: large enough to spread
a commit's round trip under load. ``getmany`` returns whatever has arrived, a single message
on a quiet partition; what keeps a quiet worker prompt is how long its fetches may wait at the
broker (``COEFLOW_FETCH_WAIT``, ``BatchProcessor.make_clients``)."""
ISOLATE_FOR = 10.0
"""Seconds of fetching one partition at a time after a fetch could not be decoded, so that the
error names its partition (it shows again within a fetch's round trip)."""

Fetched = dict[TopicPartition, list[ConsumerRecord]]


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


class BatchReader:
    """The next batches of one consumer, with the partitions it holds (``held``)."""

    def __init__(self, name: str, consumer: AIOKafkaConsumer) -> None:
        self.name, self.consumer = name, consumer
        self.held: dict[TopicPartition, HeldPartition] = {}
        """Partitions paused because their records cannot be decoded (until a rebalance or a
        restart reads them again)."""
        self._read: dict[TopicPartition, int] = {}
        """The offset after the last record ``getmany`` returned, by partition, since assigned:
        where to read again when a fetch could not be decoded."""
        self._isolate_until = 0.0

    def read_again(self, tp: TopicPartition, offset: int) -> None:
        """Pause ``tp`` and read it again from ``offset`` once resumed (its store is not ready)."""
        self.consumer.seek(tp, offset)
        self.consumer.pause(tp)
        self._read[tp] = offset

    def forget(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.held.pop(tp, None)
            self._read.pop(tp, None)

    async def fetch(self) -> Fetched:
        """The next records, as ``getmany`` returns them, but for a partition whose records
        cannot be decoded: that one is held (``_hold``) and the others go on."""
        consumer = self.consumer
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

    async def _fetch_each(self, consumer: AIOKafkaConsumer) -> Fetched:
        """What each partition has fetched, asked one by one, so that an error names its own
        partition (and loses nothing of the others); a short wait when there is nothing."""
        batches: Fetched = {}
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
    ) -> Fetched:
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
