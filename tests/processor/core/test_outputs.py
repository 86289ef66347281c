"""What the hot path builds without validation validates against its topic's model.

Run records, their conditions and issued actions, action commands and their causation are plain
data on the hot path (``processor/core/decide.py``); dead letters, timers and record states are
what ``process_change`` emits besides. Hypothesis writes the events (strategies of
``test_pipeline_properties``); each output is validated strictly (no coercion) as its model,
and a run's validated record is what its message says.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.pipeline import Outcome, process_change
from tests.factories import LEAD, NOW, source
from tests.processor.core.test_pipeline_properties import INDEX, SETTINGS, events, moments
from topics import codec
from topics.catalog import DEAD_LETTER, RUNS, TIMERS
from topics.commands import ActionCommand
from topics.dead_letter import DeadLetter
from topics.records import RECORD_STATE, RecordState
from topics.runs import RunRecord
from topics.timers import Timer

leads = st.builds(
    lambda operation, before, after, at, depth: {
        "event_id": f"e-{at}",
        "tenant_id": "acme",
        "record_type": "lead",
        "record_id": "R-1",
        "operation": operation,
        "occurred_at": at,
        "before": {**LEAD, **before},
        "after": {**LEAD, **after},
        "causation": {"run_id": "r", "workflow_id": "w", "depth": depth},
    },
    st.sampled_from(["created", "updated"]),
    st.fixed_dictionaries({}, optional={"score": st.integers(0, 100), "name": st.text()}),
    st.fixed_dictionaries({}, optional={"score": st.integers(0, 100), "country": st.text()}),
    moments,
    st.integers(min_value=0, max_value=20),
)
"""Leads the seed workflow's actions render for: runs that issue commands."""

seen: set[str] = set()
"""Which output kinds the generated events made: the test below fails if one never appears."""


def check_strictly(outcome: Outcome, value: bytes) -> None:
    for message in outcome.messages:
        raw = message.value
        if message.topic == RUNS:
            assert raw is not None
            record = RunRecord.model_validate_json(raw, strict=True)
            seen.add(f"run:{record.status}")
            if record.conditions:
                seen.add("conditions")
            assert record.event is not None
            # read through the codec, as every reader of the topic does: an integer beyond 64
            # bits in the event's bytes (embedded as read) is a double for both sides
            embedded = codec.decode(raw, RunRecord).event
            assert embedded is not None
            assert embedded.model_dump() == codec.decode(value, type(embedded)).model_dump()
        elif message.topic == DEAD_LETTER:
            DeadLetter.model_validate_json(raw or b"", strict=True)
            seen.add("dead letter")
        elif message.topic == TIMERS:
            if raw is not None:
                Timer.model_validate_json(raw, strict=True)
                seen.add("timer")
        else:
            assert raw is not None
            command = ActionCommand.model_validate_json(raw, strict=True)
            assert message.key == command.action_id.encode()
            seen.add("command")
    for run in outcome.runs:
        [encoded] = [m.value for m in outcome.messages if m.key == run.run_id.encode()]
        as_read = codec.decode(encoded or b"", RunRecord)  # as the topic's readers read it
        assert codec.loads(codec.dumps(run.record)) == codec.loads(codec.dumps(as_read))
        sent = [
            ActionCommand.model_validate_json(m.value or b"")
            for m in outcome.messages
            if m.topic not in (RUNS, DEAD_LETTER, TIMERS)
            and m.key in {c["action_id"].encode() for c in run.command_documents}
        ]
        assert codec.loads(codec.dumps(run.commands)) == codec.loads(codec.dumps(sent))
    if outcome.state is not None and outcome.state.state is not None:
        state = outcome.state.state
        RECORD_STATE.validate_json(codec.dumps(state), strict=True)
        seen.add("record state")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events | leads, min_size=1, max_size=4))
def test_every_output_validates_as_its_topics_model(documents: list[dict[str, Any]]) -> None:
    states: dict[str, RecordState | None] = {}
    for offset, document in enumerate(documents):
        value = json.dumps(document, allow_nan=False).encode()
        outcome = process_change(
            b"R", value, source(offset), INDEX, SETTINGS, NOW, lambda key: states.get(key)
        )
        check_strictly(outcome, value)
        if outcome.state is not None:
            states[outcome.state.key] = outcome.state.state


def test_the_generated_events_made_every_output_kind() -> None:
    """The property above must not pass vacuously (run again here if it has not run yet)."""
    wanted = {"run:actions_issued", "conditions", "command", "timer", "record state"}
    if not wanted <= seen:
        test_every_output_validates_as_its_topics_model()
    assert wanted <= seen, wanted - seen
