from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from coeflow.settings import Settings
from processor.batch_sending import RecordBatchSender
from processor.core.pipeline import Outbound
from tests.processor.test_batches import FakeBatch

PARTITIONS = {"workflow.runs": 8, "workflow.actions.add_note": 3}


class Producer:
    """Records where each record batch goes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, list[bytes | None]]] = []
        self.values: list[bytes | None] = []
        """Every value sent, in the order of the batches sent and their contents."""
        self.asked = 0

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked += 1
        return set(range(PARTITIONS[topic]))

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        self.sent.append((topic, partition, [k for k, _ in batch.items]))
        self.values += [v for _, v in batch.items]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_keyed_outputs_go_where_the_default_partitioner_puts_their_keys() -> None:
    producer = Producer()
    sender = RecordBatchSender(producer, Settings(_env_file=None), "store")  # type: ignore[arg-type]
    keys = [f"run-{n:04d}-{'x' * (n % 7)}".encode() for n in range(60)]
    outputs = [(None, [Outbound(topic, key, b"{}") for topic in PARTITIONS]) for key in keys]
    sent, failed = await sender.hand_over(outputs)  # type: ignore[arg-type]
    assert not failed and len(sent) == len(producer.sent)
    expected = {
        (topic, key): DefaultPartitioner()(key, list(range(count)), list(range(count)))
        for topic, count in PARTITIONS.items()
        for key in keys
    }
    placed = {(topic, key): p for topic, p, batch in producer.sent for key in batch}
    assert placed == expected
    assert producer.asked == len(PARTITIONS)  # each topic's partitions asked once


async def test_an_empty_key_is_hashed_and_outputs_keep_their_order_in_a_partition() -> None:
    """A timer armed and then cancelled in one batch must reach its partition in that order;
    an empty key is a key (hashed), not the absence of one (spread at random)."""
    producer = Producer()
    sender = RecordBatchSender(producer, Settings(_env_file=None), "store")  # type: ignore[arg-type]
    keys = [b"", *(f"t-{n % 5}".encode() if n % 4 else b"" for n in range(40)), b""]
    outputs = [(None, [Outbound("workflow.runs", key, b"%d" % n)]) for n, key in enumerate(keys)]
    await sender.hand_over(outputs)  # type: ignore[arg-type]
    partitioner = DefaultPartitioner()
    for topic, partition, batch in producer.sent:
        assert topic == "workflow.runs"
        assert all(partitioner(k, list(range(8)), list(range(8))) == partition for k in batch)
    sent = [int(v) for v in producer.values if v is not None]  # the outputs' places
    start = 0
    for _, _, batch in producer.sent:  # within each batch, in the order handed over
        places = sent[start : start + len(batch)]
        assert places == sorted(places)
        start += len(batch)
    for key in set(keys):  # each key's outputs in the order they were handed over
        assert [n for n in sent if keys[n] == key] == [n for n, k in enumerate(keys) if k == key]
    assert sorted(sent) == list(range(len(keys)))
    empty = partitioner(b"", list(range(8)), list(range(8)))
    assert [p for _, p, batch in producer.sent if b"" in batch] == [empty]
