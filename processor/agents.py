"""The record-change agent: decode, call the core, send, and only then acknowledge.

Left to itself, Faust acknowledges an event when the agent moves past it, also when
processing raised or the agent was cancelled mid-event (a graceful stop), and commits what
was acknowledged. So the agent iterates a ``noack`` stream and acknowledges each event itself,
once the broker has stored all of the event's outputs; bad input never raises (the core
turns it into a dead letter). Nothing is committed that was not processed and delivered:
at-least-once, with deterministic ids that make repeats recognisable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

import faust
from aiokafka.errors import KafkaError
from faust.streams import Stream

from processor.app import Runtime
from processor.core.decide import Run
from processor.core.pipeline import Outbound, Outcome, dead_letter, process_change
from topics.catalog import RECORD_CHANGES
from topics.runs import SourcePosition

log = logging.getLogger(__name__)
run_log = logging.getLogger("coeflow.runs")

_RETRY_FIRST, _RETRY_MAX = 0.2, 5.0


def register(app: faust.App, runtime: Runtime) -> None:
    changes = app.topic(
        RECORD_CHANGES,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(changes, name="record-changes")
    async def process_record_changes(stream: faust.StreamT[bytes]) -> None:
        await runtime.replica.ready.wait()  # never match against half-loaded definitions
        # StreamT's type omits noack(), which every Stream has.
        manual_acks = cast(Stream[bytes], stream).noack()
        async for event in manual_acks.events():
            message = event.message
            source = SourcePosition(
                topic=message.topic, partition=message.partition, offset=message.offset
            )
            outcome = process_change(
                message.key,
                message.value,
                source,
                runtime.catalog.index,
                runtime.settings,
                runtime.clock(),
            )
            _report(outcome, source)
            await deliver(
                app,
                outcome.messages,
                fallback=partial(
                    dead_letter,
                    message.key,
                    message.value,
                    source,
                    settings=runtime.settings,
                    now=runtime.clock(),
                ),
            )
            event.ack()
            if runtime.settings.log_runs:
                for run in outcome.runs:
                    run_log.info(describe_run(run))


def _report(outcome: Outcome, source: SourcePosition) -> None:
    if outcome.error is not None:
        log.error(
            "dead-lettered %s:%d@%d",
            source.topic,
            source.partition,
            source.offset,
            exc_info=outcome.error,
        )
    elif outcome.dead_letter is not None:
        log.warning(
            "dead-lettered %s:%d@%d: %s",
            source.topic,
            source.partition,
            source.offset,
            outcome.dead_letter.error,
        )


async def deliver(
    app: faust.App,
    messages: Sequence[Outbound],
    fallback: Callable[[str], Outcome] | None = None,
) -> None:
    """Send ``messages`` and wait until the broker has them all, retrying while it cannot.

    A permanent refusal (say, a message too large for the broker) sends a dead letter from
    ``fallback`` instead, so the event is accounted for rather than retried forever. Outputs
    the broker already stored stay stored: without transactions they cannot be taken back.
    """
    delay = _RETRY_FIRST
    while True:
        try:
            futures = [
                await app.producer.send(m.topic, m.key, m.value, None, None, None) for m in messages
            ]
            await asyncio.gather(*futures)
            return
        except KafkaError as exc:
            if not exc.retriable and fallback is not None:
                log.error("the broker refused this event's outputs (%s); dead-lettering it", exc)
                messages = fallback(
                    f"outputs refused by the broker: {type(exc).__name__}: {exc}"
                ).messages
                fallback = None
                continue
            log.warning(
                "delivery failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)


def describe_run(run: Run) -> str:
    """One readable line per run, for the terminal of ``coeflow dev``."""
    r = run.record
    head = (
        f"run {r.workflow_id} v{r.workflow_version} on {r.record.type} {r.record.id} "
        f"({r.trigger}): {r.status}"
    )
    if r.status == "actions_issued":
        return f"{head} → {', '.join(a.type for a in r.actions)}"
    if r.status == "conditions_not_met":
        failed = [
            f"{c.field} {c.op} {c.expected!r} (was {c.actual!r})"
            for c in r.conditions
            if not c.passed
        ]
        return f"{head}: {'; '.join(failed)}"
    return f"{head}: {r.error}"
