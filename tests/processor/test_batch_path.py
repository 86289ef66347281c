"""The batched path's parts over a fake consumer and producer: sends that fail, a record too
large for a batch, a commit refused after a rebalance, a revocation and a stop with a batch in
hand. The broker's side runs in tests/integration."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from coeflow.settings import Settings
from processor.batches import OutputsByInput
from processor.core.catalog import WorkflowCatalog
from processor.core.pipeline import Outbound
from processor.replica import DefinitionsReplica
from processor.runtime import Runtime
from tests.factories import NOW
from tests.processor.test_batches import OUT, Echo, FakeBatch, FakeConsumer, tp, until
from topics import codec
from topics.catalog import DEAD_LETTER
from topics.dead_letter import DeadLetter

STORE = "echo-changelog"


class Producer:
    """A producer whose record batches stay unacknowledged until the test says, or fail as it
    says; ``send`` (one message) likewise."""

    def __init__(self, max_value_bytes: int = 1 << 20) -> None:
        self.max_value_bytes = max_value_bytes
        self.batches: list[tuple[list[tuple[bytes | None, bytes | None]], asyncio.Future[Any]]] = []
        self.alone: list[Outbound] = []
        self.hold = False
        """Leave batches unacknowledged (``acknowledge`` settles them)."""
        self.batch_error: Exception | None = None
        self.alone_errors: list[Exception] = []
        """Raised by the next sends of one message, in turn."""
        self.events: list[str] = []

    def create_batch(self) -> Any:
        producer = self

        class Batch(FakeBatch):
            def append(self, *, key: Any, value: Any, timestamp: Any) -> object | None:
                if value is not None and len(value) > producer.max_value_bytes:
                    return None
                return super().append(key=key, value=value, timestamp=timestamp)

        return Batch()

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batches.append((batch.items, future))
        if self.batch_error is not None:
            future.set_exception(self.batch_error)
        elif not self.hold:
            future.set_result(None)
        return future

    def acknowledge(self) -> None:
        for _, future in self.batches:
            if not future.done():
                future.set_result(None)

    async def send(self, topic: str, value: Any, *, key: Any = None, partition: Any = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.alone_errors:
            future.set_exception(self.alone_errors.pop(0))
        else:
            self.alone.append(Outbound(topic, key, value, partition))
            future.set_result(None)
        return future

    def values(self) -> list[bytes]:
        return [
            v or b""
            for items, f in self.batches
            if f.done() and not f.exception()
            for _, v in items
        ]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.events.append("producer stopped")


class Recording(FakeConsumer):
    def __init__(self, *args: Any, events: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events = events
        self.refuse_commits = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse_commits:
            self.refuse_commits -= 1
            raise CommitFailedError("the group rebalanced")
        self.events.append(f"commit {sorted((t.partition, o) for t, o in offsets.items())}")
        await super().commit(offsets)

    async def stop(self) -> None:
        self.events.append("consumer stopped")


class WithStore(Echo):
    """Echo that also writes a store change per input, as the record-change processor does."""

    def process(
        self, tp: TopicPartition, records: list[ConsumerRecord], now: Any
    ) -> OutputsByInput:
        return [
            (r, [Outbound(OUT, r.key, r.value, tp.partition), Outbound(STORE, r.key, b"state", 0)])
            for r in records
        ]


async def started(
    settings: Settings, consumer: FakeConsumer, producer: Producer, kind: type[Echo] = Echo
) -> Echo:
    catalog = WorkflowCatalog()
    runtime = Runtime(settings, catalog, DefinitionsReplica(settings, catalog), lambda: NOW)
    processor = kind(runtime, consumer)
    processor.fake_producer = producer  # type: ignore[assignment]
    await processor.start()
    return processor


@pytest.fixture
def events() -> list[str]:
    return []


async def test_a_batch_the_broker_fails_is_sent_again_alone_and_then_committed(
    settings: Settings, events: list[str]
) -> None:
    consumer = Recording({tp(0): 5}, {}, events=events)
    producer = Producer()
    producer.batch_error = KafkaTimeoutError()
    processor = await started(settings, consumer, producer)
    try:
        await until(lambda: consumer.committed_offsets.get(tp(0)) == 5)
        assert sorted(m.key for m in producer.alone) == sorted(f"0-{n}".encode() for n in range(5))
        assert events == ["commit [(0, 5)]"], "committed once, after the broker held them all"
    finally:
        await processor.stop()


async def test_an_input_refused_for_good_is_a_dead_letter_that_keeps_its_store_change(
    settings: Settings, events: list[str]
) -> None:
    consumer = Recording({tp(0): 1}, {}, events=events)
    producer = Producer()
    producer.batch_error = MessageSizeTooLargeError()
    producer.alone_errors = [MessageSizeTooLargeError()]  # the first send alone: refused
    processor = await started(settings, consumer, producer, WithStore)
    try:
        await until(lambda: consumer.committed_offsets.get(tp(0)) == 1)
        topics = [m.topic for m in producer.alone]
        # The first try alone stored the store change before the refusal (without transactions
        # it stays); then the letter, which keeps the store change too. The output never.
        assert topics == [STORE, DEAD_LETTER, STORE], topics
        letter = codec.decode(producer.alone[1].value or b"", DeadLetter)
        assert "outputs refused by the broker: MessageSizeTooLargeError" in letter.error
        assert letter.source.offset == 0
    finally:
        await processor.stop()


async def test_a_record_larger_than_a_batch_goes_alone_and_the_rest_in_batches(
    settings: Settings, events: list[str]
) -> None:
    consumer = Recording({tp(0): 12}, {}, events=events)
    producer = Producer(max_value_bytes=3)  # the values are the keys: 0-10 and 0-11 too large
    processor = await started(settings, consumer, producer)
    try:
        await until(lambda: consumer.committed_offsets.get(tp(0)) == 12)
        assert sorted(m.value for m in producer.alone) == [b"0-10", b"0-11"]
        assert sorted(producer.values()) == sorted(f"0-{n}".encode() for n in range(10))
    finally:
        await processor.stop()


async def test_a_commit_refused_after_a_rebalance_is_logged_and_the_path_goes_on(
    settings: Settings, events: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="processor.batches")
    consumer = Recording({tp(0): 3}, {}, events=events)
    consumer.refuse_commits = 1
    processor = await started(settings, consumer, Producer())
    try:
        await until(lambda: any("commit refused" in r.getMessage() for r in caplog.records))
        consumer.append(tp(0), 2)
        await until(lambda: consumer.committed_offsets.get(tp(0)) == 5)
        assert not processor.crashed
    finally:
        await processor.stop()


async def test_a_revocation_waits_for_the_batch_in_hand_to_be_stored_and_committed(
    settings: Settings, events: list[str]
) -> None:
    consumer = Recording({tp(0): 3, tp(1): 3}, {}, events=events)
    producer = Producer()
    producer.hold = True
    processor = await started(settings, consumer, producer)
    try:
        await until(lambda: len(producer.batches) >= 2)  # handed over, not acknowledged
        revoking = asyncio.ensure_future(processor.release({tp(1)}))
        await asyncio.sleep(0.05)
        assert not revoking.done(), "a revocation waits for the batch in hand"
        assert events == []
        producer.acknowledge()
        await revoking
        assert events == ["commit [(0, 3), (1, 3)]"]
        assert processor.partitions == [0]
    finally:
        producer.hold = False
        await processor.stop()


async def test_a_stop_with_a_batch_in_hand_commits_it_before_leaving_the_group(
    settings: Settings, events: list[str]
) -> None:
    consumer = Recording({tp(0): 3}, {}, events=events)
    producer = Producer()
    producer.hold = True
    producer.events = events
    processor = await started(settings, consumer, producer)
    await until(lambda: producer.batches)
    stopping = asyncio.ensure_future(processor.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done() and events == []
    producer.acknowledge()
    await stopping
    assert events == ["commit [(0, 3)]", "consumer stopped", "producer stopped"]
