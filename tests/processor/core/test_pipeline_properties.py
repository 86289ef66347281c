"""Property tests: no content of a message or a workflow makes the core raise.

Hypothesis writes the events, timers and workflow documents nobody listed: times from year 1
to 9999 with any offset, numbers of every size, nested values, durations, crons and
thresholds at and past their limits. Whatever it writes, the core answers with outputs that
encode and validate against their topic's model, or a dead letter with a reason; a ``failed``
run marked as a crash (an exception no check foresaw) fails the test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coeflow.errors import InvalidWorkflow
from coeflow.settings import Settings
from processor.core.compiler import compile_workflow, validate_workflow
from processor.core.index import WorkflowIndex
from processor.core.pipeline import Outcome, process_change, process_timer
from processor.core.records import StateChange
from tests.factories import NOW, make_workflow, source
from topics import codec
from topics.catalog import DEAD_LETTER, RUNS, TIMERS
from topics.commands import ActionCommand
from topics.dead_letter import DeadLetter
from topics.records import RecordState
from topics.runs import RunRecord
from topics.timers import Timer

SETTINGS = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1")  # type: ignore[call-arg]
RECORD_TYPES = ("lead", "invoice", "deal", "task", "case", "contract")


def _workflows() -> WorkflowIndex:
    """Active workflows of every kind that a record change reaches, with durations, templates
    and conditions at their limits."""
    index = WorkflowIndex()
    templated_task = {
        "type": "create_task",
        "title": "Call {{record.name}} about {{record.stage}}",
        "assignee": "{{record.owner_id}}",
        "due_in": "3650d",
    }
    note = {"type": "add_note", "body": "{{ record.amount }} {{ record.due_date|default('') }}"}
    specs: list[dict[str, Any]] = [
        {"trigger": {"type": "record_created", "record_type": "lead"}},
        {
            "trigger": {"type": "lead_score_threshold", "threshold": 50},
            "conditions": {"not": {"field": "country", "op": "in", "value": ["ZZ"]}},
        },
        {"trigger": {"type": "invoice_overdue"}, "actions": [note]},
        {
            "trigger": {"type": "record_stalled", "record_type": "deal", "for": "3650d"},
            "actions": [templated_task],
        },
        {
            "trigger": {
                "type": "record_stalled",
                "record_type": "lead",
                "field": "score",
                "for": "1s",
            },
            "actions": [note],
        },
        {
            "trigger": {"type": "field_value_changed", "record_type": "deal", "field": "stage"},
            "conditions": {
                "any": [
                    {"field": "amount", "op": "gte", "value": 1000},
                    {"field": "stage", "op": "changed_to", "value": "won"},
                    {"field": "owner.name", "op": "contains", "value": "a"},
                ]
            },
            "actions": [templated_task, note],
        },
        {"trigger": {"type": "task_completed"}, "actions": [note]},
        {"trigger": {"type": "contract_signed"}, "actions": [note]},
        {"trigger": {"type": "record_updated", "record_type": "case"}, "actions": [note]},
    ]
    for n, spec in enumerate(specs):
        index.put(compile_workflow(make_workflow(id=f"wf-{n}", **{"conditions": None, **spec})))
    return index


INDEX = _workflows()

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offsets,
)
dates = st.dates().map(lambda day: day.isoformat())
field_values = {
    "due_date": dates | moments | json_values,
    "status": st.sampled_from(["open", "paid", "void", "completed", "signed"]) | json_values,
    "stage": st.sampled_from(["new", "won", "lost"]) | json_values,
    "score": st.integers(min_value=-100, max_value=200) | json_values,
    "amount": json_values,
    "escalated": st.booleans() | json_values,
    "owner": json_values,
    "name": st.text(max_size=30),
}
snapshots = st.fixed_dictionaries({}, optional=field_values) | st.dictionaries(
    st.text(max_size=8), json_values, max_size=6
)
events = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=20),
        "tenant_id": st.just("acme"),
        "record_type": st.sampled_from(RECORD_TYPES),
        "record_id": st.sampled_from(["R-1", "R-2"]),
        "operation": st.sampled_from(["created", "updated", "deleted"]),
        "occurred_at": moments,
        "before": st.none() | snapshots,
        "after": st.none() | snapshots,
    },
    optional={
        "causation": st.fixed_dictionaries(
            {
                "run_id": st.text(min_size=1, max_size=5),
                "workflow_id": st.text(min_size=1, max_size=5),
                "depth": st.integers(min_value=-1, max_value=2**70),
            }
        )
    },
)


def as_json(value: Any) -> bytes:
    """JSON as any producer may write it: integers of any size (orjson stops at 64 bits)."""
    return json.dumps(value, allow_nan=False).encode()


def check_outputs(outcome: Outcome) -> None:
    """Every output validates against its topic's model; no run hides a crash."""
    for message in outcome.messages:
        if message.topic == RUNS:
            codec.decode(message.value or b"", RunRecord)
        elif message.topic == DEAD_LETTER:
            letter = codec.decode(message.value or b"", DeadLetter)
            assert not letter.error.startswith("processing failed"), letter.error
            assert not letter.error.startswith("arming its timers failed"), letter.error
        elif message.topic == TIMERS:
            if message.value is not None:
                codec.decode(message.value, Timer)
        else:
            codec.decode(message.value or b"", ActionCommand)
    for run in outcome.runs:
        assert run.crash is None, run.record.error


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=4))
def test_no_change_event_makes_the_core_raise(documents: list[dict[str, Any]]) -> None:
    states: dict[str, RecordState | None] = {}
    for offset, document in enumerate(documents):
        value = as_json(document)
        outcome = process_change(
            b"R", value, source(offset), INDEX, SETTINGS, NOW, lambda key: states.get(key)
        )
        check_outputs(outcome)
        change: StateChange | None = outcome.state
        if change is not None:
            states[change.key] = change.state


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda value: as_json(value)))
def test_no_bytes_make_the_core_raise(value: bytes) -> None:
    check_outputs(process_change(b"k", value, source(), INDEX, SETTINGS, NOW, lambda key: None))


timers = st.fixed_dictionaries(
    {
        "key": st.text(max_size=10),
        "kind": st.sampled_from(["invoice_overdue", "record_stalled", "other"]),
        "tenant_id": st.just("acme"),
        "record_type": st.sampled_from(RECORD_TYPES),
        "record_id": st.text(min_size=1, max_size=5),
        "due_at": moments,
        "fire_id": st.text(max_size=10),
        "record": st.dictionaries(st.text(max_size=8), json_values, max_size=5),
        "workflow_id": st.none() | st.sampled_from(["wf-3", "wf-4", "wf-9"]),
    }
)


@settings(max_examples=200, deadline=None)
@given(timers)
def test_no_fired_timer_makes_the_core_raise(document: dict[str, Any]) -> None:
    value = as_json(document)
    check_outputs(process_timer(b"k", value, source(), INDEX, SETTINGS, NOW))


durations = st.one_of(
    st.integers(min_value=0, max_value=10**15).map(lambda n: f"{n}s"),
    st.integers(min_value=0, max_value=10**9).map(lambda n: f"{n}d"),
    st.text(alphabet="0123456789smhdw ", max_size=70),
)
crons = st.one_of(
    st.sampled_from(["* * * * *", "0 0 31 2 *", "0 9 * * 1-5", "61 * * * *", "*/0 * * * *"]),
    st.text(alphabet="0123456789*/-, ", max_size=30),
)
triggers = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("record_stalled"), "record_type": st.just("deal"), "for": durations}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("scheduled"),
            "cron": crons,
            "timezone": st.sampled_from(["UTC", "Mars/Base"]),
        }
    ),
    st.fixed_dictionaries({"type": st.just("lead_score_threshold"), "threshold": json_values}),
    st.fixed_dictionaries({"type": st.text(max_size=12)}, optional={"record_type": json_values}),
)
conditions = st.recursive(
    st.fixed_dictionaries(
        {"field": st.text(max_size=10), "op": st.sampled_from(["eq", "in", "gte", "nope"])},
        optional={"value": json_values},
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"all": st.lists(inner, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(inner, max_size=3)}),
        st.fixed_dictionaries({"not": inner}),
    ),
    max_leaves=10,
)
actions = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("create_task"), "title": st.text(max_size=20), "due_in": durations}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("call_webhook"),
            "url": st.sampled_from(["https://a.example/h", "http://169.254.169.254/", "ftp://x"]),
            "headers": st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=2),
            "body": json_values,
        }
    ),
    st.fixed_dictionaries({"type": st.text(max_size=12)}, optional={"x": json_values}),
)
workflow_documents = st.fixed_dictionaries(
    {"id": st.just("wf-p"), "tenant_id": st.just("acme")},
    optional={
        "name": st.text(max_size=10),
        "trigger": triggers | json_values,
        "conditions": conditions | json_values,
        "actions": st.lists(actions | json_values, max_size=3) | json_values,
        "status": st.sampled_from(["draft", "active", "paused"]),
    },
)


@settings(max_examples=300, deadline=None)
@given(workflow_documents)
def test_saving_any_document_answers_a_workflow_or_its_problems(document: dict[str, Any]) -> None:
    try:
        compiled = validate_workflow(document, None)
    except InvalidWorkflow as exc:
        assert exc.problems, "a refusal names what is wrong"
        return
    codec.dumps(compiled.workflow)  # what saving writes encodes
    assert compiled.workflow.updated_at is None or compiled.workflow.updated_at.tzinfo is not None


def test_the_limits_the_properties_rely_on_hold_at_their_edges() -> None:
    """The edges the strategies above reach only by chance, checked every time."""
    last = datetime(2999, 12, 31, 23, 59, tzinfo=UTC).isoformat()
    for due_date in ("9999-12-31", "0001-01-01", last):
        event = {
            "event_id": "e",
            "tenant_id": "acme",
            "record_type": "invoice",
            "record_id": "I-1",
            "operation": "created",
            "occurred_at": last,
            "after": {"status": "open", "due_date": due_date},
        }
        outcome = process_change(
            b"I", orjson.dumps(event), source(), INDEX, SETTINGS, NOW, lambda key: None
        )
        check_outputs(outcome)
        assert outcome.dead_letter is None
