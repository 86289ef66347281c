"""The run tracker's batch step and clean-up over a store in memory; the tracker runs against
the real broker in tests/integration (test_executors, test_restart)."""

from __future__ import annotations

from datetime import timedelta

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from coeflow.settings import Settings
from processor.core.catalog import WorkflowCatalog
from processor.core.progress import RunProgress
from processor.replica import DefinitionsReplica
from processor.run_tracker import STALE_AFTER, SWEEP_EVERY, RunTracker
from processor.runtime import Runtime
from tests.factories import NOW
from tests.processor.core.test_progress import issued_run, outcome
from topics import codec
from topics.catalog import ACTION_OUTCOMES, RUNS
from topics.outcomes import ActionOutcome
from topics.runs import RunRecord

PARTITION = 5


def tracker(settings: Settings) -> RunTracker:
    catalog = WorkflowCatalog()
    runtime = Runtime(settings, catalog, DefinitionsReplica(settings, catalog), lambda: NOW)
    tracker = RunTracker(runtime)
    tracker.store.open(PARTITION)
    return tracker


def consumed(*items: RunRecord | ActionOutcome) -> dict[str, list[ConsumerRecord]]:
    """``items`` as the consumer hands them over, by topic."""
    by_topic: dict[str, list[ConsumerRecord]] = {RUNS: [], ACTION_OUTCOMES: []}
    for item in items:
        topic = RUNS if isinstance(item, RunRecord) else ACTION_OUTCOMES
        value = codec.dumps(item)
        records = by_topic[topic]
        records.append(
            ConsumerRecord(
                topic, PARTITION, len(records), 0, 0, item.run_id.encode(), value, None, 5, 1, ()
            )
        )
    return by_topic


def step(tracker: RunTracker, *items: RunRecord | ActionOutcome) -> list[tuple[str, bytes | None]]:
    """What the tracker sends for ``items``: (topic, value) in order."""
    sent = []
    for topic, records in consumed(*items).items():
        if records:
            for _, messages in tracker.process(TopicPartition(topic, PARTITION), records, NOW):
                sent += [(m.topic, m.value) for m in messages]
    return sent


def test_a_run_is_kept_until_its_last_outcome_then_published_and_forgotten(
    settings: Settings,
) -> None:
    runs = tracker(settings)
    changelog = runs.store.topic
    run = issued_run("send_email", "create_task")

    sent = step(runs, run, outcome(0, "succeeded"))
    assert [topic for topic, _ in sent] == [changelog, changelog]
    kept = runs.store.partition(PARTITION).get(b"run-1")
    assert kept is not None and codec.decode(kept, RunProgress).run == run

    sent = step(runs, outcome(1, "failed", error="HTTP 400"))
    assert [topic for topic, value in sent] == [changelog, RUNS]
    assert sent[0][1] is None, "the run's progress is deleted from the changelog"
    completed = codec.decode(sent[1][1] or b"", RunRecord)
    assert completed.status == "partially_failed" and completed.actions[1].error == "HTTP 400"
    assert runs.store.partition(PARTITION).get(b"run-1") is None
    assert runs.runtime.stats.runs == {"partially_failed": 1}

    assert step(runs, completed) == [], "its own output is read back and left alone"


def test_a_run_read_first_is_kept_as_read_and_one_without_actions_is_not_kept(
    settings: Settings,
) -> None:
    runs = tracker(settings)
    run = issued_run("send_email")
    value = codec.dumps(run)[:-1] + b',"from_a_newer_release":1}'  # a model would drop it
    record = ConsumerRecord(RUNS, PARTITION, 0, 0, 0, b"run-1", value, None, 5, 1, ())
    runs.process(TopicPartition(RUNS, PARTITION), [record], NOW)
    kept = runs.store.partition(PARTITION).get(b"run-1")
    assert kept is not None and value in kept, "the run's bytes, not decoded and encoded again"
    assert codec.decode(kept, RunProgress).run == run
    not_met = run.model_copy(update={"run_id": "run-2", "status": "conditions_not_met"})
    assert step(runs, not_met) == []
    assert runs.store.partition(PARTITION).get(b"run-2") is None


JUNK = (
    b'{"run_id":"run-1","tenant_id":"t","workflow_id":"w","record":{"type":"lead","id":"L-1"},'
    b'"status":"actions_issued","decided_at":"2026-01-01T00:00:00Z","actions":[{"step":"x"}]}'
)
"""Looks like a run waiting for outcomes (what is read of a run first, its indexed fields, is
valid), but is not a valid run."""


def keep_junk(runs: RunTracker) -> None:
    record = ConsumerRecord(RUNS, PARTITION, 0, 0, 0, b"run-1", JUNK, None, 5, 1, ())
    runs.process(TopicPartition(RUNS, PARTITION), [record], NOW)
    assert runs.store.partition(PARTITION).get(b"run-1") is not None, "kept as read"


def test_an_invalid_run_kept_unread_is_dropped_when_its_outcome_comes(settings: Settings) -> None:
    runs = tracker(settings)
    keep_junk(runs)

    sent = step(runs, outcome(0, "succeeded"))  # decodes the run: the worker carries on
    kept = runs.store.partition(PARTITION).get(b"run-1")
    assert [topic for topic, _ in sent] == [runs.store.topic] and kept is not None
    assert codec.decode(kept, RunProgress).run is None, "the outcome starts afresh"


def test_a_run_record_whose_indexed_fields_do_not_decode_is_not_kept(settings: Settings) -> None:
    runs = tracker(settings)
    value = b'{"run_id":"run-1","status":"actions_issued","actions":[{"step":"x"}]}'
    record = ConsumerRecord(RUNS, PARTITION, 0, 0, 0, b"run-1", value, None, 5, 1, ())
    assert runs.process(TopicPartition(RUNS, PARTITION), [record], NOW) == []
    assert runs.store.partition(PARTITION).get(b"run-1") is None


def test_an_invalid_run_kept_unread_goes_at_the_next_sweep(settings: Settings) -> None:
    runs = tracker(settings)
    keep_junk(runs)
    [forgotten] = runs.housekeeping(NOW + SWEEP_EVERY)
    assert (forgotten.key, forgotten.value) == (b"run-1", None)


def test_progress_no_run_completes_is_dropped_once_stale(settings: Settings) -> None:
    runs = tracker(settings)
    step(runs, outcome(0, "succeeded"))  # a run whose record never comes

    first = NOW + STALE_AFTER - timedelta(seconds=1)
    assert runs.housekeeping(first) == [], "not stale yet"
    assert runs.housekeeping(first + timedelta(seconds=2)) == [], "swept too recently"
    [forgotten] = runs.housekeeping(first + SWEEP_EVERY)
    assert (forgotten.topic, forgotten.key, forgotten.value) == (
        runs.store.topic,
        b"run-1",
        None,
    )
    assert runs.store.partition(PARTITION).get(b"run-1") is None
