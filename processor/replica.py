"""Every worker's own full copy of a topic: ``workflow.definitions``, ``workflow.action-outcomes``.

Each worker reads *all* partitions of the topic with a consumer outside any group, from the
beginning, for as long as it runs: the way Kafka Streams materialises a GlobalKTable. So no
rebalance, partition assignment or second worker can leave a worker with part of the state,
and a restart rebuilds the same state from the topic. Faust's GlobalTable was measured to
leave two workers with half each on the embedded broker.

``fence`` answers "have I read everything written so far?" on any broker: it appends a null
value to every partition and waits until the reader has passed each one (the embedded
broker's end offsets are not exact enough for that: it reports the first offset of the last
batch, so a replica trusting them could start with the tail of that batch missing). A replica
fences itself at start and is ``ready`` once past its fences.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from mode import Service
from pydantic import BaseModel, ValidationError

from coeflow.redact import without_values
from coeflow.settings import Settings
from processor.core.catalog import WorkflowCatalog
from processor.shared_decoding import SharedDecodes, decode_outcome
from topics import codec
from topics.catalog import ACTION_OUTCOMES, DEFINITIONS, FENCE_KEY
from topics.outcomes import ActionOutcome

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

_YIELD_EVERY = 100

SendFence = Callable[[str, int], Awaitable[int]]
"""Append a null value to (topic, partition); returns its offset once stored."""


async def write_fences(
    producer: AIOKafkaProducer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Append a fence to each of ``partitions``; where each was stored, once all are."""
    sent = [
        await producer.send(tp.topic, None, key=FENCE_KEY, partition=tp.partition)
        for tp in partitions
    ]
    stored = await asyncio.gather(*sent)
    return {tp: meta.offset for tp, meta in zip(partitions, stored, strict=True)}


class TopicReplica(Service):
    """Reads every partition of ``topic`` into ``apply``; ``ready`` once caught up at start."""

    topic: str
    fenced = True
    """Whether ``ready`` waits for fences written at start. A replica that serves whatever it
    has read so far (the run history) writes none and is ready at once."""
    read_back = False
    """Whether a write waits until this replica has read it (the API's read-your-writes): its
    fetches then wait at the broker at most ``COEFLOW_FETCH_WAIT``, not the client's half
    second, most of which the embedded broker lets pass before it answers. Only these: each
    idle fetch that ends is another request to the broker."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.ready = asyncio.Event()
        self.partitions: list[int] = []
        self._applied: dict[int, int] = {}
        self._progress = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            client_id=f"{self.settings.app_id}-replica-{self.topic}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=int(self.settings.fetch_wait * 1000) if self.read_back else 500,
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
        # The state is complete once we have applied our own fences.
        end = await self._start_fences(partitions) if self.fenced else {}
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                for n, record in enumerate(records, 1):
                    self.apply_record(record)
                    if n % _YIELD_EVERY == 0:  # compiling is CPU work: let the API and agent in
                        await asyncio.sleep(0)
                self._applied[tp.partition] = records[-1].offset
            if batches:
                async with self._progress:
                    self._progress.notify_all()
            if not self.ready.is_set() and all(
                self._applied.get(tp.partition, -1) >= offset for tp, offset in end.items()
            ):
                if self.fenced:
                    log.info("%s loaded: %s", self.topic, self.describe())
                    # What was loaded lives as long as the worker: keep the cyclic garbage
                    # collector from walking it again on every full collection (with 100,000
                    # compiled workflows that slowed each event down).
                    gc.freeze()
                self.ready.set()

    async def _start_fences(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, acks=-1)
        await producer.start()
        try:
            return await write_fences(producer, partitions)
        finally:
            await producer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while not self.should_stop:
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                self.partitions = sorted(partitions)
                return [TopicPartition(self.topic, p) for p in self.partitions]
            await consumer.topics()  # refreshes the metadata
            await self.sleep(0.5)
        return []

    def apply_record(self, record: ConsumerRecord) -> None:
        """Apply one record; a replica that shares its decoding needs where it was read."""
        self.apply(record.key, record.value)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """What the replica holds, for the log line once it is loaded (fenced replicas)."""
        raise NotImplementedError

    async def fence(self, send: SendFence, within: float) -> bool:
        """Wait until everything written to the topic before this call has been applied."""
        await self.ready.wait()
        fences = [(p, await send(self.topic, p)) for p in self.partitions]
        for partition, offset in fences:
            if not await self.wait_applied(partition, offset, within):
                return False
        return True

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


class ModelReplica(TopicReplica, Generic[M]):
    """A replica of a topic whose values are one model. A null value (a fence, a tombstone)
    goes to ``on_null``; a value that does not decode is skipped with a warning (the agent
    reading the topic dead-letters it, where there is one)."""

    model: type[M]

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            self.on_null(key)
            return
        try:
            item = codec.decode(value, self.model)
        except (ValueError, ValidationError) as exc:
            log.warning(
                "%s: skipping an undecodable value (key %r): %s",
                self.topic,
                key,
                without_values(str(exc)),
            )
            return
        self.on_value(key, item)

    def on_null(self, key: bytes | None) -> None:
        """A fence, or where the topic is compacted a tombstone; nothing by default."""

    def on_value(self, key: bytes | None, item: M) -> None:
        raise NotImplementedError


class DefinitionsReplica(TopicReplica):
    """Every workflow definition, compiled into the catalog the agent matches against."""

    topic = DEFINITIONS
    read_back = True

    def __init__(self, settings: Settings, catalog: WorkflowCatalog, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.catalog = catalog

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        self.catalog.apply(key, value)

    def describe(self) -> str:
        return f"{len(self.catalog)} workflows, {len(self.catalog.index)} active"


class OutcomeReplica(ModelReplica[ActionOutcome]):
    """Every action's outcomes, read once per worker and decoded once, folded into each part
    that keeps them (the executors' ledger, the run history: ``folds``). The run tracker, which
    reads the outcomes of its partitions in its own group, shares the decoding (``decodes``)."""

    topic = ACTION_OUTCOMES
    model = ActionOutcome
    reader = "outcome-replica"

    def __init__(
        self,
        settings: Settings,
        *,
        fenced: bool = True,
        decodes: SharedDecodes | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, **kwargs)
        self.fenced = fenced
        self.folds: list[Callable[[ActionOutcome], object]] = []
        self.applied = 0
        self.shared = decodes.join(self.reader, self.topic) if decodes is not None else None

    def apply_record(self, record: ConsumerRecord) -> None:
        if self.shared is None or record.value is None:
            self.apply(record.key, record.value)
            return
        item = self.shared.decoded(record.partition, record.offset, record.value, decode_outcome)
        if item is not None:
            self.on_value(record.key, item)

    def on_value(self, key: bytes | None, item: ActionOutcome) -> None:
        self.applied += 1
        for fold in self.folds:
            fold(item)

    def describe(self) -> str:
        return f"{self.applied} outcomes"
