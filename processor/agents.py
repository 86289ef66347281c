"""The agents that run workflows: decode, call the core, send; acknowledge once delivered.

Left to itself, Faust acknowledges an event when the agent moves past it, also when
processing raised or the agent was cancelled mid-event (a graceful stop), and commits what
was acknowledged. So the agent iterates a ``noack`` stream and leaves acknowledging to
``Deliveries``, which does it once the broker has stored all of the event's outputs; bad input
never raises (the core turns it into a dead letter). Nothing is committed that was not
processed and delivered: at-least-once, with deterministic ids that make repeats recognisable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import faust
from faust.streams import Stream

from processor.byte_topics import byte_topic
from processor.core.pipeline import (
    NamedWorkflowRunner,
    Outcome,
    Position,
)
from processor.delivery import Deliveries, dead_letter_fallback, producer_send
from processor.runtime import Runtime
from topics.catalog import FENCE_KEY

Process = Callable[[bytes | None, bytes | None, Position, Runtime, datetime], Outcome]
"""Raw key and value, where they were read, the worker's runtime, now → the outputs."""


def register_runs_agent(
    app: faust.App,
    runtime: Runtime,
    topic: str,
    name: str,
    process: Process,
    *,
    fenced: bool = False,
) -> None:
    """An agent on ``topic`` whose messages run workflows: inbound deliveries, schedule ticks
    and fired timers (record changes take the batched path of ``processor/changes.py``, with
    the same discipline). On a ``fenced`` topic (a replica fences it) fences are skipped."""

    async def run(stream: faust.StreamT[bytes]) -> None:
        await runtime.replica.ready.wait()  # never match against half-loaded definitions
        deliveries = Deliveries(producer_send(app))
        # StreamT's type omits noack(), which every Stream has.
        manual_acks = cast(Stream[bytes], stream).noack()
        async for event in manual_acks.events():
            message = event.message
            if fenced and message.value is None and message.key == FENCE_KEY:
                event.ack()
                continue
            now = runtime.clock()
            outcome = process(message.key, message.value, message, runtime, now)
            runtime.stats.count(outcome, message)
            if not outcome.messages:  # most events: nothing matched, nothing to send
                event.ack()
                continue
            await deliveries.submit(
                outcome.messages,
                on_stored=event.ack,
                fallback=dead_letter_fallback(message, runtime.settings, now),
            )

    app.agent(byte_topic(app, topic), name=name)(run)


def one_workflow(trigger: NamedWorkflowRunner[Any]) -> Process:
    """``Process`` for messages that each name the one workflow they run."""

    def process(
        key: bytes | None, value: bytes | None, at: Position, runtime: Runtime, now: datetime
    ) -> Outcome:
        return trigger.process(key, value, at, runtime.catalog.compiled, runtime.settings, now)

    return process
