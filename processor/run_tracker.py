"""The run tracker: publishes each run again once all of its actions have a final outcome.

It reads ``workflow.runs`` and ``workflow.action-outcomes`` on the batched path
(``processor/batches.py``, group ``<app id>-run-tracker``). Both are keyed by run id, so a
run's record and its outcomes share a partition number, and the worker holding partition *n*
of one holds it of the other. Each unfinished run's progress is kept in a store with its own
changelog, ``<app id>-run-progress-changelog``, so a restarted or rebalanced worker picks it
up. Progress that never completes (outcomes of a run whose record was lost, say) is dropped
after ``STALE_AFTER``, checked every ``SWEEP_EVERY``.

A run usually comes before its outcomes: its progress is then kept with the run's bytes as
they were read, and the run is decoded only when an outcome arrives (a run decoded, its
progress built and encoded cost about as much as deciding it).

The worker's replicas read the same two topics (all partitions, outside any group: the run
history, the outcome replica), so what both read is decoded once (``Runtime.decodes``,
``processor/shared_decoding.py``): an outcome, and the status of a run that issued actions,
are taken as the replica decoded them if it came first, and left for it if the tracker did.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from processor.batches import BatchProcessor, OutputsByInput
from processor.core.pipeline import Outbound
from processor.core.progress import RunProgress, track
from processor.runtime import Runtime
from processor.shared_decoding import decode_outcome, index_run
from processor.stats import describe_run, run_log
from processor.stores import ChangelogStore
from topics import codec
from topics.catalog import ACTION_OUTCOMES, RUNS, run_progress_changelog
from topics.outcomes import ActionOutcome
from topics.runs import RunRecord

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(days=1)
SWEEP_EVERY = timedelta(hours=1)
_ISSUED = b'"actions_issued"'
"""Every run record that issued actions holds this (our codec writes compact JSON); a record
without it has nothing for the tracker. Holding it is not enough: ``track`` checks the status."""
_NO_ACTIONS = b'"actions":[]'
"""A run record without actions holds this; one with actions holds it only inside its event."""


class RunTracker(BatchProcessor):
    name = "run-tracker"
    topics = (RUNS, ACTION_OUTCOMES)

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        store = ChangelogStore(
            runtime.settings, run_progress_changelog(runtime.settings.app_id), "run-progress"
        )
        super().__init__(runtime, store, **kwargs)
        self._swept = runtime.clock()
        self.shared = {
            RUNS: runtime.decodes.join(self.name, RUNS, self._wants_run),
            ACTION_OUTCOMES: runtime.decodes.join(self.name, ACTION_OUTCOMES, self._holds),
        }

    def _holds(self, partition: int, value: bytes) -> bool:
        return partition in self.partitions

    def _wants_run(self, partition: int, value: bytes) -> bool:
        return partition in self.partitions and _ISSUED in value

    def process(
        self, tp: TopicPartition, records: list[ConsumerRecord], now: datetime
    ) -> OutputsByInput:
        store, produced = self.store.partition(tp.partition), OutputsByInput()
        for record in records:
            if record.key is None:
                continue
            stored = store.get(record.key)
            if tp.topic == RUNS and stored is None:
                first = self._first_progress(record, now)
                if first is not None:
                    produced.append((record, [self.store.put(tp.partition, record.key, first)]))
                continue  # a run that waits for nothing, or not a run
            item = self._decode(tp.topic, record)
            if item is None:
                continue
            before = _load(stored)
            progress, completed = track(before, item, now)
            messages: list[Outbound] = []
            if progress is not None:
                messages.append(self.store.put(tp.partition, record.key, codec.dumps(progress)))
            elif before is not None:
                messages.append(self.store.put(tp.partition, record.key, None))
            if completed is not None:
                self.runtime.stats.runs[completed.status] += 1
                if self.settings.log_runs and self.runtime.stats.run_lines.take(completed.status):
                    run_log.info(describe_run(completed))
                messages.append(Outbound(RUNS, record.key, codec.dumps(completed)))
            if messages:
                produced.append((record, messages))
        if records:
            self.shared[tp.topic].passed(tp.partition, records[-1].offset + 1)
        return produced

    async def release(self, revoked: set[TopicPartition]) -> None:
        await super().release(revoked)
        gone = {tp.partition for tp in revoked}
        for reader in self.shared.values():
            reader.forget(gone)

    def _decode(self, topic: str, record: ConsumerRecord) -> RunRecord | ActionOutcome | None:
        value = record.value
        if value is None:  # a fence in the outcome log
            return None
        if topic == ACTION_OUTCOMES:  # decoded once for this worker (the outcome replica's too)
            return self.shared[topic].decoded(
                record.partition, record.offset, value, decode_outcome
            )
        if _ISSUED not in value:
            return None  # most runs issue nothing to wait for: skip them without decoding
        try:  # a run read after its outcomes: the whole record (what the replica reads is less)
            return codec.decode(value, RunRecord)
        except (ValueError, ValidationError) as exc:
            log.warning("run tracker: skipping an undecodable run record: %s", exc)
            return None

    def _first_progress(self, record: ConsumerRecord, now: datetime) -> bytes | None:
        """The progress of a run read before any of its outcomes, holding the run's bytes
        unchanged; ``None`` when the run does not wait for outcomes, or is not a run. The
        run's status is what the run history reads of it too (``decodes``: read once)."""
        value = record.value
        if value is None or _ISSUED not in value:
            return None
        run = self.shared[RUNS].decoded(record.partition, record.offset, value, index_run)
        if run is None or run.status != "actions_issued":
            return None
        if _NO_ACTIONS in value and not _issues_actions(value):
            return None
        return codec.dumps({"run": orjson.Fragment(value), "steps": {}, "updated_at": now})

    def housekeeping(self, now: datetime) -> list[Outbound]:
        """Forget the progress of runs not heard of for ``STALE_AFTER`` (and of any run kept
        unread that turns out not to be valid)."""
        if now - self._swept < SWEEP_EVERY:
            return []
        self._swept, cutoff = now, now - STALE_AFTER
        stale = [
            (partition, key)
            for partition in self.store.partitions
            for key, value in self.store.partition(partition).items()
            if (progress := _load(value)) is None or progress.updated_at < cutoff
        ]
        forgotten = [self.store.put(partition, key, None) for partition, key in stale]
        if forgotten:
            log.warning("dropped %d runs whose outcomes never completed", len(forgotten))
        return forgotten


def _issues_actions(value: bytes) -> bool:
    """Whether the run record ``value`` lists actions, read whole: ``_NO_ACTIONS`` was found in
    it, but an event's field may hold those bytes too."""
    try:
        run = codec.loads(value)
    except ValueError:
        return False
    return isinstance(run, dict) and bool(run.get("actions"))


def _load(value: bytes | None) -> RunProgress | None:
    """Stored progress; ``None`` if there is none, or if the run it kept unread turns out not
    to be a valid run (it was stored as read): its outcomes then start afresh."""
    if value is None:
        return None
    try:
        return codec.decode(value, RunProgress)
    except (ValueError, ValidationError) as exc:
        log.warning("run tracker: dropping the progress of an undecodable run: %s", exc)
        return None
