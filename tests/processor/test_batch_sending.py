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
        self.asked = 0

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked += 1
        return set(range(PARTITIONS[topic]))

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        self.sent.append((topic, partition, [k for k, _ in batch.items]))
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
