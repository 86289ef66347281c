"""The batched path (processor/batches.py) over a fake consumer and producer: a fetch whose
records cannot be decoded holds its own partition only. The real fetcher's side of it runs
against the broker in tests/integration/test_codecs.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, UnsupportedCodecError
from aiokafka.structs import ConsumerRecord

from coeflow.settings import Settings
from processor.batch_reading import BatchReader
from processor.batches import BatchProcessor, HeldPartition, OutputsByInput
from processor.core.catalog import WorkflowCatalog
from processor.core.pipeline import Outbound
from processor.replica import DefinitionsReplica
from processor.runtime import Runtime
from processor.stores import ChangelogStore
from tests.factories import NOW

IN, OUT = "in", "out"
SNAPPY = "Libraries for snappy compression codec not found"


def tp(partition: int) -> TopicPartition:
    return TopicPartition(IN, partition)


class FakeConsumer:
    """aiokafka's consumer as far as the batched path uses it, fetching as aiokafka's fetcher
    does (consumer/fetcher.py, ``fetched_records``): a ``getmany`` drains the partitions in
    turn, each from its position; one whose fetch holds an undecodable record raises for the
    whole call, after the partitions drained before it have moved their positions past the
    records the call never returns, and leaves its own position where the fetch started. The
    next call refetches it: one that does not wait gets nothing of it, one that waits (or the
    call after) raises again."""

    def __init__(self, logs: dict[TopicPartition, int], undecodable: dict[TopicPartition, int]):
        self.logs = dict(logs)
        """Records per partition, in fetch order (offsets 0 to n - 1)."""
        self.undecodable = undecodable
        """From which offset on each such partition's records cannot be decoded."""
        self.positions = dict.fromkeys(logs, 0)
        self.committed_offsets: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._refetching: set[TopicPartition] = set()
        self.raised = 0
        self.error: Exception = UnsupportedCodecError(SNAPPY)
        self.transient = False
        """Raise once per partition, then decode (a corrupt response, say)."""

    def append(self, partition: TopicPartition, count: int) -> None:
        self.logs[partition] += count

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for partition in partitions:
            self.positions[partition] = 0

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.committed_offsets.get(partition)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed_offsets.update(offsets)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        await asyncio.sleep(0.001 if timeout_ms else 0)
        left = max_records or 1 << 30
        drained: dict[TopicPartition, list[ConsumerRecord]] = {}
        for partition in self.logs:
            if (partitions and partition not in partitions) or partition in self._paused:
                continue
            start = self.positions[partition]
            end = min(self.logs[partition], start + left)
            bad = self.undecodable.get(partition)
            if bad is not None and start <= bad < end:
                if partition in self._refetching:
                    self._refetching.discard(partition)
                    if not timeout_ms:
                        continue  # a call that waits gets the refetched records, and raises
                self._refetching.add(partition)
                self.raised += 1
                if self.transient:
                    del self.undecodable[partition]
                raise self.error  # what was drained before is lost: positions moved
            if start >= end:
                continue
            drained[partition] = [record(partition, n) for n in range(start, end)]
            self.positions[partition] = end
            left -= end - start
            if not left:
                break
        return drained

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def record(partition: TopicPartition, offset: int) -> ConsumerRecord:
    key = f"{partition.partition}-{offset}".encode()
    return ConsumerRecord(
        partition.topic, partition.partition, offset, 0, 0, key, key, None, 3, 3, ()
    )


class FakeBatch:
    def __init__(self) -> None:
        self.items: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> object:
        self.items.append((key, value))
        return object()


class FakeProducer:
    """Acknowledges every batch at once, and keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future[Any]:
        self.sent += [value or b"" for _, value in batch.items]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class Echo(BatchProcessor):
    """Sends each input's value on, to the input's partition of ``out``."""

    name = "echo"
    topics = (IN,)

    def __init__(self, runtime: Runtime, consumer: FakeConsumer) -> None:
        super().__init__(runtime, ChangelogStore(runtime.settings, "echo-changelog", "echo"))
        self.fake_consumer, self.fake_producer = consumer, FakeProducer()
        self.partitions = sorted(p.partition for p in consumer.logs)

    def make_clients(self) -> Any:  # the fakes instead of aiokafka's clients
        return self.fake_consumer, self.fake_producer

    def process(
        self, tp: TopicPartition, records: list[ConsumerRecord], now: datetime
    ) -> OutputsByInput:
        return [(r, [Outbound(OUT, r.key, r.value, tp.partition)]) for r in records]


def echo(settings: Settings, consumer: FakeConsumer) -> Echo:
    catalog = WorkflowCatalog()
    runtime = Runtime(settings, catalog, DefinitionsReplica(settings, catalog), lambda: NOW)
    return Echo(runtime, consumer)


def keys(partition: TopicPartition, offsets: Iterable[int]) -> list[bytes]:
    return [f"{partition.partition}-{n}".encode() for n in offsets]


async def until(check: Callable[[], Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def running(settings: Settings):  # type: ignore[no-untyped-def]
    """Start an ``Echo`` over a fake consumer (``running(consumer)``); stopped after the test."""
    started: list[Echo] = []

    async def start(consumer: FakeConsumer) -> Echo:
        processor = echo(settings, consumer)
        await processor.start()
        started.append(processor)
        return processor

    yield start
    for processor in started:
        await processor.stop()


async def test_an_undecodable_fetch_holds_its_partition_at_the_bad_offset_and_the_rest_flows(
    running: Callable[[FakeConsumer], Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Partition 0 drains before the bad one (its records are lost by the raising call), 2 after.
    good_before, bad, good_after = tp(0), tp(1), tp(2)
    consumer = FakeConsumer({good_before: 40, bad: 30, good_after: 40}, {bad: 12})
    caplog.set_level(logging.WARNING, logger="processor.batches")
    processor: Echo = await running(consumer)
    sent = processor.fake_producer.sent

    await until(lambda: bad in processor.held and len(sent) >= 40 + 12 + 40)
    await asyncio.sleep(0.1)
    assert sorted(sent) == sorted(
        keys(good_before, range(40)) + keys(bad, range(12)) + keys(good_after, range(40))
    ), "every decodable record once, the bad partition's up to the undecodable one"
    assert processor.held == {bad: HeldPartition(IN, 1, 12, f"UnsupportedCodecError: {SNAPPY}")}
    assert bad in consumer.paused() and consumer.positions[bad] == 12
    assert consumer.committed_offsets == {good_before: 40, bad: 12, good_after: 40}
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"cannot decode {IN} partition 1 at offset 12 (UnsupportedCodecError: {SNAPPY})" in (
        error.getMessage()
    )

    # The worker goes on: new records of the other partitions are processed, the held one stays.
    consumer.append(good_before, 5)
    consumer.append(bad, 5)
    await until(lambda: len(sent) >= 40 + 12 + 40 + 5)
    await asyncio.sleep(0.1)
    assert sent[-5:] == keys(good_before, range(40, 45))
    assert consumer.committed_offsets[bad] == 12
    assert not processor.crashed and processor.held.keys() == {bad}


async def test_a_transient_error_holds_nothing_and_loses_nothing(
    running: Callable[[FakeConsumer], Any],
) -> None:
    """A batch that fails once (a corrupt response, say) and decodes when fetched again."""
    consumer = FakeConsumer({tp(0): 20, tp(1): 20}, {tp(1): 3})
    consumer.transient = True
    processor: Echo = await running(consumer)
    await until(lambda: len(processor.fake_producer.sent) >= 40)
    await asyncio.sleep(0.1)
    assert sorted(processor.fake_producer.sent) == sorted(
        keys(tp(0), range(20)) + keys(tp(1), range(20))
    )
    assert consumer.raised == 1 and processor.held == {} and consumer.paused() == set()


async def test_a_partition_that_never_returned_a_record_is_read_again_from_its_commit(
    running: Callable[[FakeConsumer], Any],
) -> None:
    """Its first fetch is lost with the raising call: it starts again at its committed offset."""
    first, bad = tp(0), tp(1)
    consumer = FakeConsumer({first: 30, bad: 10}, {bad: 0})
    consumer.committed_offsets[first] = 10
    consumer.positions[first] = 10
    processor: Echo = await running(consumer)
    await until(lambda: bad in processor.held and len(processor.fake_producer.sent) >= 20)
    await asyncio.sleep(0.1)
    assert sorted(processor.fake_producer.sent) == sorted(keys(first, range(10, 30)))
    assert processor.held[bad].offset == 0


async def test_other_kafka_errors_still_stop_the_worker(settings: Settings) -> None:
    """Not a decoding error (the connection, the group): raised as before, nothing held."""
    consumer = FakeConsumer({tp(0): 5}, {tp(0): 0})
    consumer.error = KafkaConnectionError("broker gone")
    reader = BatchReader("echo", consumer)  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await reader.fetch()
    assert reader.held == {}
