"""The run tracker: publishes each run again once all of its actions have a final outcome.

It reads ``workflow.runs`` and ``workflow.action-outcomes`` (both keyed by run id, so a run's
record and outcomes share a partition number) and keeps each unfinished run's progress in a
Faust table, backed by a changelog topic, so a restarted or rebalanced worker picks it up.
Progress that never completes (outcomes of a run whose record was lost, say) is dropped after
``STALE_AFTER``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

import faust
from faust.streams import Stream
from pydantic import ValidationError

from processor.agents import describe_run, run_log
from processor.core.pipeline import Outbound
from processor.core.progress import RunProgress, track
from processor.delivery import Deliveries, letter_instead, producer_send
from processor.raw import raw_topic
from processor.runtime import Runtime
from topics import codec
from topics.catalog import ACTION_OUTCOMES, RUNS
from topics.outcomes import ActionOutcome
from topics.runs import RunRecord

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(days=1)
_ISSUED = b'"actions_issued"'
"""Every run record that issued actions holds this (our codec writes compact JSON); a record
without it has nothing for the tracker. Holding it is not enough: ``track`` checks the status."""


def register(app: faust.App, runtime: Runtime) -> None:
    progress_table = app.Table(
        "run-progress",
        key_type=bytes,  # bytes: Faust stores keys and values as they are
        value_type=bytes,
        partitions=runtime.settings.partitions,
        # Written by key also from the clean-up timer; run ids hash to the same partition as
        # the records and outcomes they come from.
        use_partitioner=True,
    )
    sources = raw_topic(app, RUNS, ACTION_OUTCOMES)

    @app.agent(sources, name="run-tracker")
    async def track_runs(stream: faust.StreamT[bytes]) -> None:
        deliveries = Deliveries(producer_send(app))
        async for event in cast(Stream[bytes], stream).noack().events():
            message = event.message
            item = _decode(message.topic, message.value)
            if item is None or message.key is None:
                event.ack()
                continue
            before = _load(progress_table.get(message.key))
            progress, completed = track(before, item, runtime.clock())
            if progress is not None:
                progress_table[message.key] = codec.dumps(progress)
            elif before is not None:
                del progress_table[message.key]
            if completed is None:
                event.ack()
                continue
            runtime.stats.runs[completed.status] += 1
            if runtime.settings.log_runs:
                run_log.info(describe_run(completed))
            outbound = Outbound(RUNS, message.key, codec.dumps(completed))
            fallback = letter_instead(message, runtime.settings, runtime.clock())
            await deliveries.submit([outbound], on_stored=event.ack, fallback=fallback)

    @app.timer(3600.0)
    async def forget_stale_progress() -> None:
        cutoff = runtime.clock() - STALE_AFTER
        stale = [
            key
            for key, value in progress_table.items()
            if (p := _load(value)) is not None and p.updated_at < cutoff
        ]
        for key in stale:
            del progress_table[key]
        if stale:
            log.warning("dropped %d runs whose outcomes never completed", len(stale))


def _decode(topic: str, value: bytes | None) -> RunRecord | ActionOutcome | None:
    if value is None:  # a fence in the outcome log
        return None
    if topic == RUNS and _ISSUED not in value:
        return None  # most runs issue nothing to wait for: skip them without decoding
    model: type[RunRecord] | type[ActionOutcome] = RunRecord if topic == RUNS else ActionOutcome
    try:
        return codec.decode(value, model)
    except (ValueError, ValidationError) as exc:
        log.warning("run tracker: skipping an undecodable message on %s: %s", topic, exc)
        return None


def _load(value: Any) -> RunProgress | None:
    return codec.decode(value, RunProgress) if value is not None else None
