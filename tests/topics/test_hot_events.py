"""The hot decoder accepts and refuses exactly what ``ChangeEvent`` does, with equal values.

``fast_change`` may leave an event to the careful way (``None``), but never accepts one that
pydantic refuses nor reads one differently; ``decode_change``, which joins both ways, accepts
exactly what orjson and ``ChangeEvent`` accept. Hypothesis writes the events: every field
missing, mistyped, empty or too long, times in every spelling pydantic or msgspec might take,
numbers of every size, nesting past the limit, extra fields.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coeflow.errors import InvalidEvent
from processor.core.compiler import compile_workflow
from processor.core.decide import run_workflow
from processor.core.pipeline import decode_change
from tests.factories import NOW, make_event, make_workflow
from tests.processor.core.test_pipeline_properties import events, json_values, moments
from topics import codec
from topics.events import ChangeEvent
from topics.hot_events import HotChangeEvent, fast_change
from topics.types import MAX_NESTING, within_nesting

MAX_BYTES = 1_000_000


def careful(value: bytes) -> ChangeEvent | None:
    """What pydantic makes of ``value``, the way the schema reads it (``None``: refused)."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict) and not all(
        within_nesting(document.get(name)) for name in ("before", "after")
    ):
        return None
    try:
        return ChangeEvent.model_validate(document)
    except ValidationError:
        return None


def assert_equal(hot: Any, model: ChangeEvent) -> None:
    for name in ChangeEvent.model_fields:
        if name in ("occurred_at", "causation"):
            continue
        assert getattr(hot, name) == getattr(model, name), name
    assert hot.occurred_at == model.occurred_at
    assert hot.occurred_at.utcoffset() == model.occurred_at.utcoffset()
    assert hot.occurred_at.isoformat() == model.occurred_at.isoformat()
    assert codec.dumps([hot.occurred_at]) == codec.dumps([model.occurred_at])
    if model.causation is None:
        assert hot.causation is None
    else:
        assert (hot.causation.run_id, hot.causation.workflow_id, hot.causation.depth) == (
            model.causation.run_id,
            model.causation.workflow_id,
            model.causation.depth,
        )
    assert (hot.depth, hot.record, hot.record_ref) == (model.depth, model.record, model.record_ref)


def check(value: bytes) -> None:
    model = careful(value)
    hot = fast_change(value)
    if hot is not None:
        assert model is not None, "the hot decoder accepted what ChangeEvent refuses"
        assert_equal(hot, model)
    try:
        decoded = decode_change(value, MAX_BYTES)
    except InvalidEvent as exc:
        assert model is None, f"refused what ChangeEvent accepts: {exc}"
        assert str(exc), "a refusal says why"
    else:
        assert model is not None, "accepted what ChangeEvent refuses"
        assert_equal(decoded, model)


fractions = st.integers(min_value=0, max_value=999_999_999).map(lambda n: f".{n}")
spelled_times = st.one_of(
    moments,
    st.builds(
        lambda at, fraction, sep, zone: at.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + zone,
        st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(3010, 1, 1)),
        st.one_of(st.just(""), fractions),
        st.sampled_from(["T", "t", " ", "_"]),
        st.sampled_from(["Z", "z", "+00:00", "-00:00", "+0100", "+01", "-23:59", "+24:00", ""]),
    ),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2026-11-25T09:00Z", "2026-11-25T09:00:00,5Z", "2026-11-25", "1700000000"]),
    st.text(max_size=30),
)


texts = st.one_of(
    st.text(min_size=1, max_size=20),
    st.just(""),
    st.text(min_size=255, max_size=258),
    st.integers(),
    st.none(),
)
mutated = events.flatmap(
    lambda document: st.fixed_dictionaries(
        {},
        optional={
            "event_id": texts,
            "tenant_id": texts,
            "record_type": texts,
            "record_id": texts,
            "operation": st.sampled_from(["created", "updated", "deleted", "Created", ""]),
            "occurred_at": spelled_times,
            "before": st.none() | json_values,
            "after": st.none() | json_values,
            "actor_id": texts,
            "causation": st.none()
            | json_values
            | st.fixed_dictionaries(
                {"run_id": texts, "workflow_id": texts},
                optional={
                    "depth": st.integers(min_value=-2, max_value=2**70)
                    | st.floats(allow_nan=False, allow_infinity=False)
                    | st.sampled_from(["5", True, 1_000_001]),
                    "extra": json_values,
                },
            ),
            "extra": json_values,
        },
    ).map(lambda changes: {**document, **changes})
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated)
def test_the_hot_decoder_reads_exactly_what_change_event_reads(document: dict[str, Any]) -> None:
    check(json.dumps(document, allow_nan=False).encode())


@settings(max_examples=300, deadline=None)
@given(events)
def test_valid_events_are_read_by_the_hot_decoder_alike(document: dict[str, Any]) -> None:
    check(json.dumps(document, allow_nan=False).encode())


def test_the_usual_event_takes_the_hot_way() -> None:
    value = codec.dumps(
        {
            "event_id": "e-1",
            "tenant_id": "acme",
            "record_type": "lead",
            "record_id": "L-1",
            "operation": "updated",
            "occurred_at": datetime.fromisoformat("2026-11-25T09:00:00.5+02:00"),
            "before": {"score": 1, "owner": {"name": "Ada"}},
            "after": {"score": 2.5, "owner": {"name": "Ada"}, "tags": ["a"]},
            "actor_id": None,
            "causation": {"run_id": "r", "workflow_id": "w", "depth": 3},
        }
    )
    hot = fast_change(value)
    assert isinstance(hot, HotChangeEvent)
    check(value)


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2026-11-25T09:00:00Z","after":{"n":NaN}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2026-11-25T09:00:00Z","after":{"n":1e400}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2026-11-25T09:00:00Z","after":{"n":123456789012345678901234}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2026-11-25T09:00:00Z","after":{"n":-9223372036854775809}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2026-11-25T09:00:00.1234567Z","after":{}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"3000-01-01T00:00:00Z","after":{}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"1970-01-01T00:30:00+01:00","after":{}}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2999-12-31T23:59:59Z","after":{}, "tenant_id":"u"}',
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"updated","occurred_at":"2026-11-25T09:00:00Z","after":{}}',
        b"[]",
        b"null",
        b'"\\ud800"',
    ],
)
def test_the_edges_of_the_schema_are_read_alike(value: bytes) -> None:
    check(value)


@pytest.mark.parametrize("levels", [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1])
def test_nesting_at_its_limit_is_read_alike(levels: int) -> None:
    deep: Any = 1
    for _ in range(levels):
        deep = [deep]
    document = {
        "event_id": "e",
        "tenant_id": "t",
        "record_type": "lead",
        "record_id": "L",
        "operation": "created",
        "occurred_at": "2026-11-25T09:00:00Z",
        "after": {"deep": deep},
    }
    check(orjson.dumps(document))


def test_a_big_integer_is_read_as_orjson_reads_it() -> None:
    value = (
        b'{"event_id":"e","tenant_id":"t","record_type":"lead","record_id":"L","operation":'
        b'"created","occurred_at":"2026-11-25T09:00:00Z","after":{"n":123456789012345678901234}}'
    )
    assert fast_change(value) is None
    assert decode_change(value, MAX_BYTES).after == {"n": 1.2345678901234568e23}


def test_an_event_over_the_size_cap_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidEvent, match="exceeds the limit of 10 bytes"):
        decode_change(b'{"event_id": "e"}', 10)


def test_the_hot_event_has_every_field_and_property_of_a_change_event() -> None:
    assert set(HotChangeEvent.__struct_fields__) == set(ChangeEvent.model_fields)
    for name in ("depth", "record", "record_ref"):
        assert isinstance(getattr(HotChangeEvent, name), property)


def test_a_run_decided_for_a_hot_event_embeds_it_as_plain_data() -> None:
    """What decides without the event's bytes (a dry run) may be handed a hot event."""
    value = codec.dumps(make_event())
    hot = fast_change(value)
    assert hot is not None
    run = run_workflow(
        compile_workflow(make_workflow()), cast(ChangeEvent, hot), max_depth=5, source=None, now=NOW
    )
    assert run.record.event == ChangeEvent.model_validate_json(value)
    assert codec.loads(codec.dumps(run.document))["event"]["event_id"] == hot.event_id
