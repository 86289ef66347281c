"""The agent's delivery step: retry while the broker cannot store, dead-letter what it refuses.

These use a stand-in producer; the agent itself runs against the real broker in
tests/integration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from processor.agents import deliver, describe_run
from processor.core.compiler import compile_workflow
from processor.core.decide import run_workflow
from processor.core.pipeline import Outbound, Outcome
from tests.conftest import NOW
from tests.factories import make_event, make_workflow


class FlakyProducer:
    """Fails the first ``failures`` deliveries with ``error``, then stores everything."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error
        self.stored: list[tuple[str, Any]] = []

    async def send(self, topic: str, key: Any, value: Any, *rest: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            future.set_exception(self.error)
        else:
            self.stored.append((topic, key))
            future.set_result(None)
        return future


class App:
    def __init__(self, producer: FlakyProducer) -> None:
        self.producer = producer


MESSAGES = [Outbound("workflow.runs", b"r1", b"{}"), Outbound("workflow.actions.x", b"a1", b"{}")]


async def test_transient_failures_are_retried_until_stored(monkeypatch) -> None:
    monkeypatch.setattr("processor.agents._RETRY_FIRST", 0.001)
    producer = FlakyProducer(2, KafkaTimeoutError())
    await deliver(App(producer), MESSAGES)  # type: ignore[arg-type]
    assert ("workflow.runs", b"r1") in producer.stored
    assert ("workflow.actions.x", b"a1") in producer.stored


async def test_a_permanent_refusal_is_replaced_by_a_dead_letter() -> None:
    producer = FlakyProducer(1, MessageSizeTooLargeError())
    reasons: list[str] = []

    def fallback(reason: str) -> Outcome:
        reasons.append(reason)
        return Outcome(messages=[Outbound("workflow.dead-letter", b"k", b"{}")])

    await deliver(App(producer), MESSAGES, fallback=fallback)  # type: ignore[arg-type]
    assert producer.stored[-1] == ("workflow.dead-letter", b"k")
    assert ("workflow.runs", b"r1") not in producer.stored  # the refused output is not retried
    assert "MessageSizeTooLargeError" in reasons[0]


def test_run_lines_are_readable() -> None:
    compiled = compile_workflow(make_workflow())
    issued = run_workflow(compiled, make_event(record_id="L-9"), max_depth=8, source=None, now=NOW)
    assert describe_run(issued) == (
        "run wf-welcome v1 on lead L-9 (record_created): actions_issued → send_email, create_task"
    )
    not_met = run_workflow(
        compiled, make_event(record_id="L-9", after={"score": 3}), max_depth=8, source=None, now=NOW
    )
    assert describe_run(not_met).endswith("conditions_not_met: score gte 50 (was 3)")
