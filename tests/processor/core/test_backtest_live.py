"""The backtest's fold against the live core over random histories: what ``process_change``,
a timer service on an event-time clock and ``process_timer`` would have run, counted as the run
history counts them (one run per run id), is what the fold counts for each version, and the
events whose two runs differ (paired by event or firing id) are the fold's changed list.

The live side here is the pipeline's own pure functions: each change at its ``occurred_at``
(the processor's clock), the timers it writes kept as ``workflow.timers`` keeps them, and each
armed timer fired once the clock reaches its due time (or at once, armed past due), as the
timer service's tick does, then cancelled if it is still the one armed.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from coeflow.settings import Settings
from processor.core.backtest import ReplaySpec, _Outcome, differences, replay
from processor.core.compiler import CompiledWorkflow, compile_workflow
from processor.core.index import WorkflowIndex
from processor.core.pipeline import decode_change, process_change, process_timer
from tests.factories import make_workflow
from topics import codec
from topics.backtests import Difference
from topics.catalog import TIMERS
from topics.events import ChangeEvent
from topics.records import RecordState
from topics.runs import SourcePosition
from topics.timers import Timer

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 8, tzinfo=UTC)
SETTINGS = Settings(_env_file=None)

History = list[tuple[bytes, ChangeEvent]]


def position(offset: int) -> SourcePosition:
    return SourcePosition(topic="crm.record-changes", partition=0, offset=offset)


def live(history: History, compiled: CompiledWorkflow) -> dict[str, dict[str, Any]]:
    """The runs first decided inside the window, by their event's (or firing's) id."""
    index = WorkflowIndex()
    index.put(compiled)
    states: dict[str, RecordState] = {}
    armed: dict[str, Timer] = {}
    due: list[tuple[datetime, datetime, str]] = []  # (fires at, due at, key)
    runs: dict[str, tuple[bool, dict[str, Any]]] = {}  # run id -> (inside the window, record)

    def keep(documents: list[dict[str, Any]], at: datetime) -> None:
        for document in documents:
            runs.setdefault(document["run_id"], (SINCE <= at <= UNTIL, document))

    def tick(now: datetime, offset: int) -> None:
        while due and due[0][0] <= now:
            fires, due_at, key = heapq.heappop(due)
            timer = armed.get(key)
            if timer is None or timer.due_at != due_at:
                continue
            out = process_timer(
                key.encode(), codec.dumps(timer), position(offset), index, SETTINGS, fires
            )
            keep([run.document for run in out.runs], fires)
            if armed.get(key) == timer:
                del armed[key]

    for offset, (value, event) in enumerate(history):
        now = event.occurred_at
        tick(now, offset)
        out = process_change(
            event.record_id.encode(), value, position(offset), index, SETTINGS, now, states.get
        )
        assert out.dead_letter is None
        if out.state is not None:
            if out.state.state is None:
                states.pop(out.state.key, None)
            else:
                states[out.state.key] = out.state.state
        for message in out.messages:
            if message.topic != TIMERS:
                continue
            assert message.key is not None
            key = message.key.decode()
            if message.value is None:
                armed.pop(key, None)
            else:
                timer = Timer.model_validate(orjson.loads(message.value))
                armed[key] = timer
                heapq.heappush(due, (max(timer.due_at, now), timer.due_at, key))
        keep([run.document for run in out.runs], now)
    tick(UNTIL, len(history))
    return {d["event_id"]: d for first_inside, d in runs.values() if first_inside}


def counted(runs: dict[str, dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Runs by status and actions by type."""
    return (
        dict(Counter(d["status"] for d in runs.values())),
        dict(Counter(a["type"] for d in runs.values() for a in d["actions"])),
    )


def changed(
    candidate: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]]
) -> dict[str, list[Difference]]:
    """The events whose runs differ, and how."""
    found = {}
    for event_id in candidate.keys() | baseline.keys():
        ours, theirs = candidate.get(event_id), baseline.get(event_id)
        how = differences(
            None if ours is None else _Outcome.of(ours),
            None if theirs is None else _Outcome.of(theirs),
        )
        if how:
            found[event_id] = how
    return found


def history(rng: random.Random, record_type: str) -> History:
    """A few records, each changed a few times around the window; a change now and then
    delivered twice, as a producer that retries writes it."""
    documents: list[dict[str, Any]] = []
    for record in range(rng.randint(1, 6)):
        at = SINCE + timedelta(days=rng.uniform(-4, 6))
        current: dict[str, Any] | None = None
        for n in range(rng.randint(1, 6)):
            operation = (
                "created"
                if current is None
                else rng.choice(["updated", "updated", "updated", "deleted", "created"])
            )
            after: dict[str, Any] | None
            if record_type == "invoice":
                day = SINCE + timedelta(days=rng.uniform(-6, 9))
                after = {
                    "number": f"INV-{record}",
                    "status": rng.choice(["sent", "sent", "paid", "void", "draft"]),
                    "due_date": day.date().isoformat() if rng.random() < 0.8 else None,
                    "amount": rng.randint(1, 5),
                }
            else:
                after = {
                    "name": f"D-{record}",
                    "stage": rng.choice(["proposal", "negotiation", "won"]),
                    "amount": rng.randint(1, 5),
                }
                if rng.random() < 0.1:
                    del after["stage"]
            if operation == "deleted":
                after = None
            document = {
                "event_id": f"evt-{record}-{n}",
                "tenant_id": "acme",
                "record_type": record_type,
                "record_id": f"R-{record}",
                "operation": operation,
                "occurred_at": at.isoformat(),
                "before": current if operation != "created" else None,
                "after": after,
            }
            documents.append(document)
            if rng.random() < 0.1:
                documents.append(document)
            current = after
            at += timedelta(hours=rng.uniform(0, 60))
    documents.sort(key=lambda d: d["occurred_at"])  # stable: each record's order kept
    return [(v, decode_change(v, SETTINGS.max_event_bytes)) for v in map(orjson.dumps, documents)]


TRIGGERS: dict[str, Any] = {
    "invoice_overdue": lambda duration: {"type": "invoice_overdue", "record_type": "invoice"},
    "record_stalled": lambda duration: {
        "type": "record_stalled",
        "record_type": "deal",
        "field": "stage",
        "for": duration,
    },
    "pipeline_stage_changed": lambda duration: {
        "type": "pipeline_stage_changed",
        "record_type": "deal",
        "to": "won",
    },
}


def workflow(kind: str, version: int, duration: str, amount: int) -> CompiledWorkflow:
    return compile_workflow(
        make_workflow(
            id=f"wf-{kind}",
            version=version,
            trigger=TRIGGERS[kind](duration),
            conditions={"all": [{"field": "amount", "op": "gte", "value": amount}]},
            actions=[{"type": "add_note", "body": "{{record.amount}}"}],
        )
    )


@pytest.mark.parametrize("kind", sorted(TRIGGERS))
def test_each_version_runs_in_the_fold_what_it_would_have_run_live(kind: str) -> None:
    for seed in range(150):
        rng = random.Random(seed)
        events = history(rng, "invoice" if kind == "invoice_overdue" else "deal")
        candidate, baseline = workflow(kind, 2, "2d", 2), workflow(kind, 1, "3d", 3)
        spec = ReplaySpec(
            candidate=candidate,
            candidate_version=2,
            baseline=baseline,
            baseline_version=1,
            since=SINCE,
            until=UNTIL,
            max_events=1_000_000,
            max_changed=1_000,
            max_records=100_000,
            max_depth=SETTINGS.max_causation_depth,
        )
        result = replay([event for _, event in events], spec)
        ours, theirs = live(events, candidate), live(events, baseline)
        folded = (
            (result.candidate.runs, result.candidate.actions),
            (result.baseline.runs, result.baseline.actions),
        )
        assert folded == (counted(ours), counted(theirs)), f"seed {seed}"
        expected = changed(ours, theirs)
        assert {c.event_id: c.differences for c in result.changed} == expected, f"seed {seed}"
        assert result.changed_count == len(expected)
