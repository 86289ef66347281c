"""Delivery: an event is acknowledged only once the broker holds all its outputs.

A stand-in producer whose futures the test resolves by hand; the real producer and broker
are exercised by tests/integration.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from processor.core.pipeline import Outbound, Outcome
from processor.delivery import Deliveries, deliver

ONE = [Outbound("workflow.runs", b"r1", b"{}")]
TWO = [Outbound("workflow.runs", b"r1", b"{}"), Outbound("workflow.actions.x", b"a1", b"{}")]


class Producer:
    """Hands out futures the test settles; can fail the next sends."""

    def __init__(self) -> None:
        self.futures: list[tuple[Outbound, asyncio.Future[Any]]] = []
        self.fail_next: list[Exception] = []
        self.refused: dict[bytes | None, Exception] = {}

    async def send(self, message: Outbound) -> asyncio.Future[Any]:
        if message.key in self.refused:
            raise self.refused[message.key]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            future.set_exception(self.fail_next.pop(0))
        self.futures.append((message, future))
        return future

    def store_all(self) -> None:
        for _, future in self.futures:
            if not future.done():
                future.set_result(None)

    @property
    def stored(self) -> list[bytes | None]:
        return [m.key for m, f in self.futures if f.done() and not f.exception()]


def never(reason: str) -> Outcome:
    raise AssertionError(f"no dead letter expected: {reason}")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch) -> None:
    monkeypatch.setattr("processor.delivery._RETRY_FIRST", 0.001)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_event_is_acknowledged_only_after_all_its_outputs_are_stored() -> None:
    producer, acked = Producer(), []
    deliveries = Deliveries(producer.send)
    await deliveries.submit(TWO, lambda: acked.append("e1"), never)
    await settle()
    assert acked == [] and deliveries.in_flight == 1
    producer.futures[0][1].set_result(None)
    await settle()
    assert acked == []
    producer.store_all()
    await settle()
    assert acked == ["e1"] and deliveries.in_flight == 0


async def test_an_event_without_outputs_is_acknowledged_at_once() -> None:
    acked: list[str] = []
    await Deliveries(Producer().send).submit([], lambda: acked.append("e1"), never)
    assert acked == ["e1"]


async def test_failed_outputs_are_sent_again_before_the_event_is_acknowledged() -> None:
    producer, acked = Producer(), []
    producer.fail_next = [KafkaTimeoutError()]
    deliveries = Deliveries(producer.send)
    await deliveries.submit(ONE, lambda: acked.append("e1"), never)
    await settle()
    assert acked == []  # the first attempt failed: not acknowledged
    for _ in range(100):
        if len(producer.futures) == 2:
            break
        await asyncio.sleep(0.001)
    producer.store_all()
    for _ in range(100):
        if acked:
            break
        await asyncio.sleep(0.001)
    assert acked == ["e1"] and producer.stored == [b"r1"]


async def test_too_many_events_in_flight_hold_the_next_one_back() -> None:
    producer, acked = Producer(), []
    deliveries = Deliveries(producer.send, max_in_flight=2)
    await deliveries.submit(ONE, lambda: acked.append("e1"), never)
    await deliveries.submit(ONE, lambda: acked.append("e2"), never)
    third = asyncio.ensure_future(deliveries.submit(ONE, lambda: acked.append("e3"), never))
    await settle()
    assert not third.done() and len(producer.futures) == 2
    producer.store_all()
    await settle()
    assert third.done() and acked == ["e1", "e2"]
    producer.store_all()
    await settle()
    assert acked == ["e1", "e2", "e3"]


async def test_transient_failures_are_retried_until_stored() -> None:
    producer = Producer()
    producer.fail_next = [KafkaTimeoutError(), KafkaTimeoutError()]

    async def send(message: Outbound) -> asyncio.Future[Any]:
        future = await producer.send(message)
        if not future.done():
            future.set_result(None)
        return future

    await deliver(send, TWO)
    assert producer.stored[-2:] == [b"r1", b"a1"]


async def test_a_permanent_refusal_is_replaced_by_a_dead_letter() -> None:
    producer, reasons = Producer(), []
    producer.refused = {b"r1": MessageSizeTooLargeError()}

    def fallback(reason: str) -> Outcome:
        reasons.append(reason)
        return Outcome(messages=[Outbound("workflow.dead-letter", b"k", b"{}")])

    async def send(message: Outbound) -> asyncio.Future[Any]:
        future = await producer.send(message)
        future.set_result(None)
        return future

    acked: list[str] = []
    await Deliveries(send).submit(ONE, lambda: acked.append("e1"), fallback)
    for _ in range(100):
        if acked:
            break
        await asyncio.sleep(0.001)
    assert acked == ["e1"] and producer.stored == [b"k"]
    assert "MessageSizeTooLargeError" in reasons[0]
