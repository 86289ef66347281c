"""The contract's message shapes and the one codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tests.factories import SEED_WORKFLOW, Factory
from topics import codec
from topics.events import ChangeEvent
from topics.types import parse_duration
from topics.workflows import NotOf, Workflow

CONTRACT_EVENT = {
    "event_id": "evt-0001",
    "tenant_id": "acme",
    "record_type": "lead",
    "record_id": "L-1",
    "operation": "created",
    "occurred_at": "2026-11-25T19:00:00Z",
    "before": None,
    "after": {"name": "Ada", "email": "ada@example.com", "score": 72, "owner_id": "u-7"},
    "actor_id": "u-7",
    "causation": None,
}


def test_the_contract_example_event_is_valid() -> None:
    event = ChangeEvent.model_validate(CONTRACT_EVENT)
    assert event.occurred_at == datetime(2026, 11, 25, 19, tzinfo=UTC)
    assert event.depth == 0 and event.record == CONTRACT_EVENT["after"]


def test_the_contract_example_workflow_is_valid_and_round_trips() -> None:
    workflow = Workflow.model_validate(SEED_WORKFLOW)
    assert codec.decode(codec.dumps(workflow), Workflow) == workflow


def test_not_conditions_keep_their_alias_on_the_wire() -> None:
    workflow = Workflow.model_validate(
        {**SEED_WORKFLOW, "conditions": {"not": {"field": "a", "op": "is_empty"}}}
    )
    assert isinstance(workflow.conditions, NotOf)
    assert b'"conditions":{"not":{"field":"a"' in codec.dumps(workflow)


@pytest.mark.parametrize(
    "missing", ["event_id", "tenant_id", "record_type", "record_id", "operation", "occurred_at"]
)
def test_required_event_fields(missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        ChangeEvent.model_validate({k: v for k, v in CONTRACT_EVENT.items() if k != missing})


def test_snapshots_must_fit_the_operation() -> None:
    with pytest.raises(ValidationError, match="'updated' event needs both"):
        ChangeEvent.model_validate({**CONTRACT_EVENT, "operation": "updated"})
    with pytest.raises(ValidationError, match="'deleted' event needs the 'before'"):
        ChangeEvent.model_validate({**CONTRACT_EVENT, "operation": "deleted", "after": None})


def test_an_empty_tenant_is_refused() -> None:
    with pytest.raises(ValidationError, match="tenant_id"):
        ChangeEvent.model_validate({**CONTRACT_EVENT, "tenant_id": ""})


def test_the_codec_writes_utc_times_with_z(event_factory: Factory) -> None:
    assert b'"occurred_at":"2026-11-25T19:00:00Z"' in codec.dumps(event_factory())


@pytest.mark.parametrize(
    "value",
    [
        {"run_id": "r-1", "at": datetime(2026, 11, 25, 19, tzinfo=UTC), "n": [1, 2.5, None]},
        {"params": {1: "a key that is a number", "b": True}},  # the fallback's option
        {"event": ChangeEvent.model_validate(CONTRACT_EVENT)},  # the fallback's hook
    ],
    ids=["plain data", "a key that is not text", "a model inside"],
)
def test_the_outgoing_encoder_writes_what_dumps_writes(value: dict[str, object]) -> None:
    assert codec.dumps_outgoing(value) == codec.dumps(value)


def test_workflows_refuse_unknown_top_level_fields_and_blank_names() -> None:
    with pytest.raises(ValidationError, match="trigerr"):
        Workflow.model_validate({**SEED_WORKFLOW, "trigerr": {}})
    with pytest.raises(ValidationError, match="name"):
        Workflow.model_validate({**SEED_WORKFLOW, "name": "   "})
    with pytest.raises(ValidationError, match="actions"):
        Workflow.model_validate({**SEED_WORKFLOW, "actions": []})
    with pytest.raises(ValidationError, match="status"):
        Workflow.model_validate({**SEED_WORKFLOW, "status": "paused"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(days=7)),
        ("1d12h", timedelta(hours=36)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "d", "2 days", "-1d", "1.5h"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="write a number and a unit"):
        parse_duration(text)
