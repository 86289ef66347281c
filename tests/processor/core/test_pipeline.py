"""From raw message bytes to output messages; every kind of bad input becomes a dead letter."""

from __future__ import annotations

import base64

import orjson
import pytest

from coeflow.settings import Settings
from processor.core.compiler import compile_workflow
from processor.core.index import WorkflowIndex
from processor.core.pipeline import process_change
from tests.factories import NOW, Factory, make_event, make_workflow, no_state, source
from topics import codec
from topics.catalog import DEAD_LETTER, RUNS
from topics.dead_letter import DeadLetter
from topics.runs import RunRecord


@pytest.fixture
def index() -> WorkflowIndex:
    index = WorkflowIndex()
    index.put(compile_workflow(make_workflow()))
    return index


def process(value: bytes | None, index: WorkflowIndex, settings: Settings, key: bytes = b"L-1"):
    return process_change(key, value, source(7), index, settings, NOW, no_state)


def test_a_matching_event_produces_commands_then_the_run(
    index, settings, event_factory: Factory
) -> None:
    outcome = process(codec.dumps(event_factory()), index, settings)
    assert [m.topic for m in outcome.messages] == [
        "workflow.actions.send_email",
        "workflow.actions.create_task",
        RUNS,
    ]
    run = codec.decode(outcome.messages[-1].value, RunRecord)
    assert outcome.messages[-1].key == run.run_id.encode()
    assert [m.key.decode() for m in outcome.messages[:2]] == [a.action_id for a in run.actions]
    assert outcome.dead_letter is None


def test_an_unrelated_event_produces_nothing(index, settings, event_factory: Factory) -> None:
    outcome = process(codec.dumps(event_factory(record_type="invoice")), index, settings)
    assert outcome.messages == [] and outcome.dead_letter is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8 JSON"),
        (b"[1, 2]", "not a valid ChangeEvent"),
        (b'"just a string"', "not a valid ChangeEvent"),
        (b'{"event_id": "e1"}', "tenant_id: Field required"),
        (
            orjson.dumps({**make_event().model_dump(mode="json"), "operation": "merged"}),
            "operation: Input should be",
        ),
        (
            orjson.dumps({**make_event().model_dump(mode="json"), "occurred_at": "yesterday"}),
            "occurred_at",
        ),
        (
            orjson.dumps(
                {**make_event().model_dump(mode="json"), "occurred_at": "2026-11-25T19:00:00"}
            ),
            "timezone",
        ),
        (
            orjson.dumps({**make_event().model_dump(mode="json"), "after": None}),
            "'created' event needs the 'after' snapshot",
        ),
    ],
)
def test_bad_input_becomes_one_dead_letter_with_a_reason(index, settings, value, reason) -> None:
    outcome = process(value, index, settings)
    [message] = outcome.messages
    assert message.topic == DEAD_LETTER and message.key == b"L-1"
    letter = codec.decode(message.value, DeadLetter)
    assert reason in letter.error
    assert letter.source.topic == "crm.record-changes" and letter.source.offset == 7
    assert letter.original_value() == value
    assert letter.key_base64 == base64.b64encode(b"L-1").decode()


def test_an_oversized_value_is_dead_lettered_and_cut(index) -> None:
    settings = Settings(max_event_bytes=2048, dead_letter_max_bytes=1024)
    value = b"x" * 5000
    letter = process(value, index, settings).dead_letter
    assert letter is not None and "exceeds the limit of 2048 bytes" in letter.error
    assert letter.value_size == 5000 and letter.value_truncated
    assert letter.original_value() == value[:1024]


def test_a_failure_while_deciding_is_dead_lettered_not_raised(
    index, settings, monkeypatch, event_factory: Factory
) -> None:
    def explode(*args, **kwargs):
        raise ZeroDivisionError("a condition blew up")

    monkeypatch.setattr("processor.core.pipeline.decide", explode)
    outcome = process(codec.dumps(event_factory()), index, settings)
    assert outcome.dead_letter is not None
    assert "processing failed: ZeroDivisionError: a condition blew up" in outcome.dead_letter.error
    assert isinstance(outcome.error, ZeroDivisionError)


def test_a_null_key_is_kept_null(index, settings) -> None:
    outcome = process_change(None, b"nope", source(), index, settings, NOW, no_state)
    assert outcome.messages[0].key is None
    assert outcome.dead_letter is not None and outcome.dead_letter.key_base64 is None
