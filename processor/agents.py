"""The agents that run workflows: decode, call the core, send; acknowledge once delivered.

Left to itself, Faust acknowledges an event when the agent moves past it, also when
processing raised or the agent was cancelled mid-event (a graceful stop), and commits what
was acknowledged. So the agent iterates a ``noack`` stream and leaves acknowledging to
``Deliveries``, which does it once the broker has stored all of the event's outputs; bad input
never raises (the core turns it into a dead letter). Nothing is committed that was not
processed and delivered: at-least-once, with deterministic ids that make repeats recognisable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import faust
from faust.streams import Stream

from coeflow.redact import shown, without_values
from processor.core.pipeline import (
    OneWorkflowTrigger,
    Outcome,
    Position,
    source_of,
)
from processor.delivery import Deliveries, letter_instead, producer_send
from processor.raw import raw_topic
from processor.replica import FENCE_KEY
from processor.runtime import Runtime
from topics.runs import RunRecord, SourcePosition

log = logging.getLogger(__name__)
run_log = logging.getLogger("coeflow.runs")


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
            account(runtime, outcome, message)
            if not outcome.messages:  # most events: nothing matched, nothing to send
                event.ack()
                continue
            await deliveries.submit(
                outcome.messages,
                on_stored=event.ack,
                fallback=letter_instead(message, runtime.settings, now),
            )

    app.agent(raw_topic(app, topic), name=name)(run)


def account(runtime: Runtime, outcome: Outcome, at: Position) -> None:
    """Count what one message did, and say what an operator needs to hear of it."""
    stats = runtime.stats
    stats.events += 1
    if not outcome.runs and outcome.dead_letter is None:
        return
    _report(outcome, source_of(at))
    stats.dead_letters += outcome.dead_letter is not None
    stats.runs.update(run.record.status for run in outcome.runs)
    if runtime.settings.log_runs:
        for done in outcome.runs:
            run_log.info(describe_run(done.record))


def one_workflow(trigger: OneWorkflowTrigger[Any]) -> Process:
    """``Process`` for messages that each name the one workflow they run."""

    def process(
        key: bytes | None, value: bytes | None, at: Position, runtime: Runtime, now: datetime
    ) -> Outcome:
        return trigger.process(key, value, at, runtime.catalog.compiled, runtime.settings, now)

    return process


def _report(outcome: Outcome, source: SourcePosition) -> None:
    where = f"{source.topic}:{source.partition}@{source.offset}"
    if outcome.error is not None:
        log.error("dead-lettered %s", where, exc_info=outcome.error)
    elif outcome.dead_letter is not None:
        log.warning("dead-lettered %s: %s", where, without_values(outcome.dead_letter.error))
    for run in outcome.runs:
        if run.crash is not None:
            log.error(
                "run %s of workflow %s failed unexpectedly (%s)",
                run.record.run_id,
                run.record.workflow_id,
                where,
                exc_info=run.crash,
            )


def describe_run(r: RunRecord) -> str:
    """One readable line per run, for the terminal of ``coeflow dev``: what happened and why,
    with no value from the record (``coeflow.redact``); the run record has them all."""
    head = (
        f"run {r.workflow_id} v{r.workflow_version} on {r.record.type} {r.record.id} "
        f"({r.trigger}): {r.status}"
    )
    if r.status == "actions_issued":
        return f"{head} → {', '.join(a.type for a in r.actions)}"
    if r.completed_at is not None:
        return f"{head}: " + ", ".join(
            f"{a.type} ✓"
            if a.status == "succeeded"
            else f"{a.type} ✗ {without_values(a.error or '')}"
            for a in r.actions
        )
    if r.status == "conditions_not_met":
        failed = [
            f"{c.field} {c.op} {c.expected!r} (was {shown(c.actual)})"
            for c in r.conditions
            if not c.passed
        ]
        return f"{head}: {'; '.join(failed)}"
    return f"{head}: {without_values(r.error or '')}"
