"""Sending a batch's outputs: record batches built here, per partition, handed to the producer
without waiting one by one; what the broker refuses is sent again alone.

A ``send`` per output costs a coroutine, a future and the accumulator's bookkeeping per
message, a large share of the worker's time (docs/performance.md); so outputs go as record
batches, one or more per partition. An output larger than a batch may be goes alone. An input
whose outputs failed is sent again alone, retried while the broker cannot take it; refused for
good, its input becomes a dead letter that still carries its store's changes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from coeflow.settings import Settings
from processor.core.pipeline import Outbound, Outcome
from processor.delivery import Fallback, dead_letter_fallback, deliver
from processor.key_partitions import murmur2_many

_PARTITIONER = DefaultPartitioner()

OutputsByInput = list[tuple[ConsumerRecord | None, list[Outbound]]]
"""A batch's outputs, each list with the input it came from (``None``: housekeeping)."""
HandedOver = tuple[list[tuple[set[int], asyncio.Future[Any]]], set[int]]
"""Record batches handed to the producer, each with the inputs (their places in the
``OutputsByInput``) whose outputs it holds, and the inputs that could not be handed over."""


class RecordBatchSender:
    def __init__(self, producer: AIOKafkaProducer, settings: Settings, store_topic: str) -> None:
        self.producer, self.settings, self.store_topic = producer, settings, store_topic
        self._partitions: dict[str, list[int]] = {}
        """Partitions by topic, for keyed outputs (topics do not change partition counts)."""

    async def hand_over(self, outputs: OutputsByInput) -> HandedOver:
        """Hand every output to the producer: the futures of its record batches, each with the
        inputs whose outputs it holds, and the inputs that could not be handed over."""
        producer = self.producer
        by_partition: dict[tuple[str, int], list[tuple[int, Outbound]]] = {}
        failed: set[int] = set()
        keyed: list[tuple[int, Outbound, bytes, list[int]]] = []
        """Outputs whose partition their key picks, hashed below, all keys at once. They follow
        the outputs placed without a hash in a partition's batch: a topic's outputs are keyed or
        placed, but for dead letters, of which some have no key and whose order is no one's."""
        for n, (_, messages) in enumerate(outputs):
            for message in messages:
                partition = message.partition  # record states have their change's
                if partition is None:
                    partitions = self._partitions.get(message.topic)
                    if partitions is None:
                        try:
                            partitions = await self._partitions_of(message.topic)
                        except KafkaError:
                            failed.add(n)
                            continue
                    key = message.key
                    if key is not None:
                        keyed.append((n, message, key, partitions))
                        continue
                    partition = int(_PARTITIONER(None, partitions, partitions))
                by_partition.setdefault((message.topic, partition), []).append((n, message))
        # murmur2 of every key in one call: keys of one length (run ids, the keys of nearly
        # every output) are hashed together; keyed outputs keep their order among themselves
        hashes = murmur2_many([key for _, _, key, _ in keyed])
        for (n, message, _, partitions), hashed in zip(keyed, hashes, strict=True):
            partition = partitions[(hashed & 0x7FFFFFFF) % len(partitions)]
            by_partition.setdefault((message.topic, partition), []).append((n, message))
        sent: list[tuple[set[int], asyncio.Future[Any]]] = []
        for (topic, partition), items in by_partition.items():
            batch, members = producer.create_batch(), set[int]()
            for n, message in items:
                if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                    if not members:  # an empty batch refused it: larger than a batch may be
                        failed.add(n)  # sent alone below
                        continue
                    # full: send it, start the next
                    sent.append((members, await self._send_batch(batch, topic, partition)))
                    batch, members = producer.create_batch(), set[int]()
                    if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                        failed.add(n)
                        continue
                members.add(n)
            if members:
                sent.append((members, await self._send_batch(batch, topic, partition)))
        return sent, failed

    async def stored(self, outputs: OutputsByInput, handed: HandedOver, now: datetime) -> None:
        """Return once the broker holds every output of ``outputs``: an input whose outputs
        failed is sent again alone (retried, or dead-lettered if refused for good)."""
        sent, failed = handed
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        for (members, _), result in zip(sent, results, strict=True):
            if isinstance(result, Exception):
                failed |= members
        for n in sorted(failed):
            record, messages = outputs[n]
            fallback = (
                self._letter_keeping_store_changes(messages, record, now)
                if record is not None
                else None
            )
            await deliver(self.send_one, messages, fallback)

    async def send_one(self, message: Outbound) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self.producer.send(
            message.topic, message.value, key=message.key, partition=message.partition
        )
        return future

    def _letter_keeping_store_changes(
        self, messages: list[Outbound], record: ConsumerRecord, now: datetime
    ) -> Fallback:
        """An input's dead letter that still carries its store's changes: they are kept."""
        letter = dead_letter_fallback(record, self.settings, now)
        changes = [m for m in messages if m.topic == self.store_topic]

        def fallback(reason: str) -> Outcome:
            outcome = letter(reason)
            outcome.messages.extend(changes)
            return outcome

        return fallback

    async def _partitions_of(self, topic: str) -> list[int]:
        """``topic``'s partitions, sorted, as the default partitioner numbers them: a keyed
        output goes where ``producer.send`` would put it (``processor/key_partitions.py``), so
        run records meet their outcomes, both keyed by run id."""
        partitions = sorted(await self.producer.partitions_for(topic))
        self._partitions[topic] = partitions
        return partitions

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self.producer.send_batch(
            batch, topic, partition=partition
        )
        return future
