"""Two readers of one topic in a worker decode each message once between them: in either
order, only what the other will read and want, bounded; and the run tracker with the replicas
of runs and outcomes, fed the same messages, sends what it sends alone."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from coeflow.settings import Settings
from processor.core.catalog import WorkflowCatalog
from processor.core.history import RunHistory
from processor.projections import RunReplica
from processor.replica import DefinitionsReplica, OutcomeReplica
from processor.run_tracker import RunTracker
from processor.runtime import Runtime
from processor.shared_decoding import SharedDecodes, decode_outcome
from tests.factories import NOW
from tests.processor.core.test_progress import issued_run, outcome
from topics import codec
from topics.catalog import ACTION_OUTCOMES, RUNS
from topics.outcomes import ActionOutcome
from topics.runs import RunRecord

T = "a-topic"


def counting(decode: Callable[[bytes], object | None]) -> tuple[list[bytes], Callable[..., object]]:
    calls: list[bytes] = []

    def counted(value: bytes) -> object | None:
        calls.append(value)
        return decode(value)

    return calls, counted


def _parse(value: bytes) -> object | None:
    return codec.loads(value) if value != b"junk" else None


def test_whichever_reader_comes_first_decodes_and_the_other_takes_it() -> None:
    shared = SharedDecodes()
    replica, tracker = shared.join("replica", T), shared.join("tracker", T)
    calls, decode = counting(_parse)

    first = replica.decoded(0, 0, b'{"n":0}', decode)
    assert tracker.decoded(0, 0, b'{"n":0}', decode) is first
    second = tracker.decoded(0, 1, b'{"n":1}', decode)
    assert replica.decoded(0, 1, b'{"n":1}', decode) is second
    assert calls == [b'{"n":0}', b'{"n":1}'] and (shared.decodes, shared.taken) == (2, 2)
    assert len(shared) == 0, "nothing is kept once taken"


def test_nothing_is_left_for_a_reader_that_does_not_want_it_or_is_past_it() -> None:
    shared = SharedDecodes()
    replica = shared.join("replica", T)
    tracker = shared.join("tracker", T, lambda partition, value: partition == 1 and b"!" in value)
    shared.join("reader-of-another-topic", "other")
    replica.decoded(0, 0, b'"!"', _parse)  # not the tracker's partition
    replica.decoded(1, 0, b'"-"', _parse)  # skipped by its byte test
    assert len(shared) == 0
    tracker.passed(1, 5)
    replica.decoded(1, 4, b'"!"', _parse)  # the tracker is past it
    assert len(shared) == 0
    replica.decoded(1, 5, b'"!"', _parse)
    assert len(tracker.left) == 1 and len(shared) == 1


def test_an_undecodable_message_is_tried_once() -> None:
    shared = SharedDecodes()
    replica, tracker = shared.join("replica", T), shared.join("tracker", T)
    calls, decode = counting(_parse)
    assert replica.decoded(0, 0, b"junk", decode) is None
    assert tracker.decoded(0, 0, b"junk", decode) is None
    assert calls == [b"junk"]


def test_what_is_left_is_bounded_and_forgotten_with_the_partition() -> None:
    shared = SharedDecodes(limit=3)
    replica, tracker = shared.join("replica", T), shared.join("tracker", T)
    for offset in range(5):
        replica.decoded(0, offset, b"1", _parse)
    replica.decoded(1, 0, b"1", _parse)
    assert len(shared) == 3
    calls, decode = counting(_parse)
    tracker.decoded(0, 2, b"1", decode)  # the oldest went
    tracker.decoded(0, 3, b"1", decode)
    assert len(calls) == 1 and len(shared) == 2
    tracker.forget({0})
    assert list(tracker.left) == [(1, 0)] and 0 not in tracker.next


@given(
    values=st.lists(st.integers(0, 99), max_size=30),
    order=st.lists(st.booleans(), max_size=60),
    limit=st.integers(1, 40),
)
def test_each_reader_gets_every_message_decoded_in_any_interleaving(
    values: list[int], order: list[bool], limit: int
) -> None:
    shared = SharedDecodes(limit=limit)
    readers = {"a": shared.join("a", T), "b": shared.join("b", T)}
    messages = [codec.dumps({"n": v, "at": i}) for i, v in enumerate(values)]
    read: dict[str, list[object]] = {"a": [], "b": []}
    turns = [*order, *([True] * len(messages)), *([False] * len(messages))]
    for a_turn in turns:
        name = "a" if a_turn else "b"
        offset = len(read[name])
        if offset < len(messages):
            read[name].append(readers[name].decoded(0, offset, messages[offset], _parse))
    expected = [codec.loads(m) for m in messages]
    assert read == {"a": expected, "b": expected}
    assert len(messages) <= shared.decodes <= 2 * len(messages)
    if limit >= len(messages):
        assert shared.decodes == len(messages), "each message decoded once"
    assert all(len(reader.left) <= limit for reader in readers.values())


PARTITION = 3


def worker(settings: Settings) -> tuple[RunTracker, OutcomeReplica, RunReplica, RunHistory]:
    """The tracker and the two replicas of one worker, as the app wires them."""
    catalog = WorkflowCatalog()
    runtime = Runtime(settings, catalog, DefinitionsReplica(settings, catalog), lambda: NOW)
    tracker = RunTracker(runtime)
    tracker.store.open(PARTITION)
    tracker.partitions = [PARTITION]
    outcomes = OutcomeReplica(settings, decodes=runtime.decodes)
    history = RunHistory(per_workflow=10, max_age=NOW - NOW.replace(year=2000), max_runs=10)
    outcomes.folds.append(history.add_outcome)
    runs = RunReplica(settings, history, runtime.decodes)
    return tracker, outcomes, runs, history


def records(topic: str, *items: RunRecord | ActionOutcome) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(
            topic, PARTITION, n, 0, 0, item.run_id.encode(), codec.dumps(item), None, 5, 1, ()
        )
        for n, item in enumerate(items)
    ]


def test_the_tracker_and_the_replicas_decode_each_run_and_outcome_once(
    settings: Settings,
) -> None:
    tracker, outcome_replica, run_replica, history = worker(settings)
    decodes = tracker.runtime.decodes
    run = issued_run("send_email", "create_task")
    not_met = run.model_copy(update={"run_id": "run-2", "status": "conditions_not_met"})
    [issued_record, not_met_record] = records(RUNS, run, not_met)
    first, second = records(ACTION_OUTCOMES, outcome(0, "succeeded"), outcome(1, "succeeded"))

    for record in (issued_record, not_met_record):  # the replica reads the runs first
        run_replica.apply_record(record)
    sent = tracker.process(TopicPartition(RUNS, PARTITION), [issued_record, not_met_record], NOW)
    assert len(sent) == 1, "the issued run's progress is kept"
    # the tracker reads the outcomes first
    sent = tracker.process(TopicPartition(ACTION_OUTCOMES, PARTITION), [first, second], NOW)
    for record in (first, second):
        outcome_replica.apply_record(record)

    assert (decodes.decodes, decodes.taken) == (4, 3), "two runs and two outcomes, once each"
    [completed] = [m for _, messages in sent for m in messages if m.topic == RUNS]
    assert codec.decode(completed.value or b"", RunRecord).status == "succeeded"
    found = history.get("run-1")
    assert found is not None and [len(a) for a in found[1].values()] == [1, 1]
    assert history.get("run-2") is not None
    assert len(decodes) == 0


def test_outcomes_of_partitions_the_tracker_does_not_hold_are_not_left_for_it(
    settings: Settings,
) -> None:
    tracker, outcome_replica, _, _ = worker(settings)
    tracker.partitions = []
    for record in records(ACTION_OUTCOMES, outcome(0, "succeeded")):
        outcome_replica.apply_record(record)
    assert len(tracker.runtime.decodes) == 0 and outcome_replica.applied == 1


def test_decode_outcome_refuses_what_is_not_an_outcome() -> None:
    assert decode_outcome(b'{"run_id": 1}') is None
    assert isinstance(decode_outcome(codec.dumps(outcome(0, "failed"))), ActionOutcome)
