"""From raw message bytes to output messages; every kind of bad input becomes a dead letter."""

from __future__ import annotations

import base64

import orjson
import pytest

from coeflow.settings import Settings
from processor.core import decide as decide_module
from processor.core.compiler import compile_workflow
from processor.core.index import WorkflowIndex
from processor.core.pipeline import process_change
from tests.factories import NOW, Factory, make_event, make_workflow, no_state, source
from topics import codec
from topics.catalog import DEAD_LETTER, FENCE_KEY, RUNS
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


def test_an_event_nothing_watches_is_not_looked_up_nor_kept(
    index, settings, event_factory: Factory
) -> None:
    def no_lookup(key: str) -> None:
        raise AssertionError(f"record state looked up for {key}")

    for record_type in ("lead", "invoice"):  # watched by a workflow of another kind, or none
        event = event_factory(record_type=record_type, operation="updated", before={"x": 1})
        value = codec.dumps(event)
        outcome = process_change(b"L-1", value, source(7), index, settings, NOW, no_lookup)
        assert outcome.state is None and outcome.messages == [] and outcome.runs == []


def test_a_watched_record_type_keeps_state_naming_its_watchers(
    index, settings, event_factory: Factory
) -> None:
    stalled = {"type": "record_stalled", "record_type": "lead", "field": "score", "for": "1d"}
    index.put(compile_workflow(make_workflow(id="wf-stall", version=4, trigger=stalled)))
    outcome = process(codec.dumps(event_factory()), index, settings)
    assert outcome.state is not None and outcome.state.state is not None
    assert outcome.state.state["watch"] == "wf-stall@4"


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


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        (b'{"score": NaN}', "not valid UTF-8 JSON"),
        (b'{"score": Infinity}', "not valid UTF-8 JSON"),
        (b'{"score": 1e400}', "not valid UTF-8 JSON"),
        (
            b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}",
            "after: nests objects and arrays more than 64",
        ),
    ],
)
def test_what_json_cannot_carry_on_is_dead_lettered(index, settings, after, reason) -> None:
    document = codec.dumps({**make_event().model_dump(mode="json"), "after": None})
    value = document.replace(b'"after":null', b'"after":' + after)
    letter = process(value, index, settings).dead_letter
    assert letter is not None and reason in letter.error


def test_an_integer_beyond_64_bits_is_read_as_a_number_and_runs(index, settings) -> None:
    document = codec.dumps(make_event().model_dump(mode="json"))
    value = document.replace(b'"score":72', b'"score":123456789012345678901234567890')
    outcome = process(value, index, settings)
    assert outcome.dead_letter is None
    assert [run.record.status for run in outcome.runs] == ["actions_issued"]


def test_one_workflow_failing_unexpectedly_takes_no_other_workflows_run(
    settings, monkeypatch, event_factory: Factory
) -> None:
    index = WorkflowIndex()
    index.put(compile_workflow(make_workflow(id="wf-a")))
    index.put(compile_workflow(make_workflow(id="wf-b")))
    real = decide_module.build_commands

    def explode_for_a(compiled, *args, **kwargs):
        if compiled.id == "wf-a":
            raise OverflowError("date value out of range")
        return real(compiled, *args, **kwargs)

    monkeypatch.setattr("processor.core.decide.build_commands", explode_for_a)
    outcome = process(codec.dumps(event_factory()), index, settings)
    by_workflow = {run.record.workflow_id: run for run in outcome.runs}
    assert by_workflow["wf-b"].record.status == "actions_issued"
    failed = by_workflow["wf-a"]
    assert failed.record.status == "failed" and failed.commands == ()
    assert "OverflowError: date value out of range" in (failed.record.error or "")
    assert isinstance(failed.crash, OverflowError)
    assert outcome.dead_letter is None
    assert [m.topic for m in outcome.messages].count(RUNS) == 2


def test_timers_that_fail_leave_the_runs_and_say_so_in_a_letter(
    index, settings, monkeypatch, event_factory: Factory
) -> None:
    def explode(*args, **kwargs):
        raise OverflowError("date value out of range")

    stalled = {"type": "record_stalled", "record_type": "lead", "field": "score", "for": "1d"}
    index.put(compile_workflow(make_workflow(id="wf-stall", trigger=stalled)))  # state: timers
    monkeypatch.setattr("processor.core.pipeline.stall_change", explode)
    outcome = process(codec.dumps(event_factory()), index, settings)
    assert [run.record.status for run in outcome.runs] == ["actions_issued"]
    assert outcome.dead_letter is not None
    assert "arming its timers failed: OverflowError" in outcome.dead_letter.error
    assert [m.topic for m in outcome.messages].count(DEAD_LETTER) == 1


def test_what_the_core_builds_is_encoded_without_the_fallback_to_what_dumps_writes(
    index, settings, monkeypatch, event_factory: Factory
) -> None:
    """The hot path's encoding (no non-text keys, no models' hook) takes everything the core
    builds, a run record embedding its event's bytes and its commands, and writes the bytes
    of the careful ``dumps``."""
    careful = codec.dumps

    def no_fallback(value):
        raise AssertionError("the hot path fell back to codec.dumps")

    monkeypatch.setattr("topics.codec.dumps", no_fallback)
    value = careful(event_factory())
    outcome = process(value, index, settings)
    [run] = outcome.runs
    assert run.status == "actions_issued" and run.command_documents
    documents = [*run.command_documents, {**run.document, "event": codec.loads(value)}]
    assert [m.value for m in outcome.messages] == [careful(d) for d in documents]


def test_a_run_that_cannot_be_encoded_becomes_a_failed_run(
    index, settings, monkeypatch, event_factory: Factory
) -> None:
    real = codec.dumps_outgoing

    def refuse_commands(value):
        if isinstance(value, dict) and value.get("action_id"):  # a command's document
            raise TypeError("Integer exceeds 64-bit range")
        return real(value)

    monkeypatch.setattr("processor.core.pipeline.codec.dumps_outgoing", refuse_commands)
    outcome = process(real(event_factory()), index, settings)
    [run] = outcome.runs
    assert run.record.status == "failed" and run.commands == ()
    assert "could not be encoded (TypeError" in (run.record.error or "")
    assert [m.topic for m in outcome.messages] == [RUNS]


def test_a_fence_is_skipped_and_a_tombstone_of_another_key_is_a_dead_letter(
    index, settings
) -> None:
    fenced = process_change(FENCE_KEY, None, source(3), index, settings, NOW, no_state)
    assert fenced.messages == [] and fenced.dead_letter is None
    other = process_change(b"L-1", None, source(4), index, settings, NOW, no_state)
    assert other.dead_letter is not None and "tombstone" in other.dead_letter.error
