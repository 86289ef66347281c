"""The record-change trigger kinds, each with its exact semantics."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coeflow.errors import InvalidWorkflow
from processor.core.paths import lookup
from processor.core.triggers import (
    KINDS_BY_OPERATION,
    REGISTRY,
    FieldChangeParams,
    explain_trigger,
    resolve_trigger,
)
from tests.factories import make_event
from topics.events import ChangeEvent
from topics.workflows import TriggerSpec


def fires(trigger: dict[str, Any], event: ChangeEvent) -> bool:
    kind, params = resolve_trigger(TriggerSpec.model_validate(trigger))
    return (
        event.operation in kind.operations
        and params.record_type == event.record_type
        and kind.matches(params, event)
    )


def updated(
    before: dict[str, Any], after: dict[str, Any], record_type: str = "deal"
) -> ChangeEvent:
    return make_event(operation="updated", before=before, after=after, record_type=record_type)


def created(after: dict[str, Any], record_type: str = "deal") -> ChangeEvent:
    return make_event(operation="created", after=after, record_type=record_type)


JSON_VALUES = st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([1.0, "1", "a"])
"""Values a field holds, among them the pairs only ``same`` tells apart (``True`` and ``1``)."""

RECORD_CHANGE_KINDS = {
    "record_created",
    "record_updated",
    "field_value_changed",
    "status_changed",
    "pipeline_stage_changed",
    "task_completed",
    "case_escalated",
    "contract_signed",
    "lead_score_threshold",
}


def test_every_record_change_kind_and_the_external_kinds_are_registered() -> None:
    assert set(REGISTRY) == RECORD_CHANGE_KINDS | {
        "webhook_received",
        "scheduled",
        "invoice_overdue",
        "record_stalled",
    }


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"cron": "61 * * * *"}, r"not a valid cron expression: each of its five fields"),
        ({"cron": "* * * *"}, "not a 5-field cron expression"),
        ({"cron": "0 9 * * 1-5", "timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({}, "cron"),
    ],
)
def test_a_schedule_needs_a_valid_cron_and_zone(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidWorkflow, match=problem):
        resolve_trigger(TriggerSpec(type="scheduled", **params))


def test_a_schedule_never_fires_on_a_record_change() -> None:
    kind, params = resolve_trigger(
        TriggerSpec(type="scheduled", cron="0 9 * * 1-5", timezone="Europe/Berlin")
    )
    assert params.record_type == "schedule" and kind.operations == frozenset()


def test_webhook_received_never_fires_on_a_record_change() -> None:
    kind, params = resolve_trigger(TriggerSpec(type="webhook_received"))
    assert params.record_type == "webhook" and kind.operations == frozenset()
    assert all("webhook_received" not in kinds for kinds in KINDS_BY_OPERATION.values())
    with pytest.raises(InvalidWorkflow, match="record_type"):
        resolve_trigger(TriggerSpec(type="webhook_received", record_type="lead"))


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"record_type": "deal"}, "trigger.for"),
        ({"record_type": "deal", "for": "a week"}, "not a duration"),
        ({"record_type": "deal", "for": "0d"}, "no time at all"),
        ({"record_type": "deal", "for": "7d", "field": "owner.name"}, "not a top-level field"),
        ({"for": "7d"}, "trigger.record_type"),
    ],
)
def test_a_stall_needs_a_record_type_a_duration_and_a_top_level_field(
    params: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidWorkflow, match=problem):
        resolve_trigger(TriggerSpec(type="record_stalled", **params))


def test_a_stall_watches_the_stage_by_default_and_never_fires_on_a_record_change() -> None:
    kind, params = resolve_trigger(
        TriggerSpec(type="record_stalled", record_type="deal", **{"for": "7d"})
    )
    assert kind.operations == frozenset()
    assert params.model_dump(by_alias=True)["field"] == "stage"
    ten_seconds = resolve_trigger(
        TriggerSpec(type="record_stalled", record_type="deal", field="status", **{"for": "10s"})
    )[1]
    assert ten_seconds.model_dump(by_alias=True) == {
        "type": "record_stalled",
        "record_type": "deal",
        "field": "status",
        "for": "10s",
    }


def test_no_kind_fires_on_delete() -> None:
    assert KINDS_BY_OPERATION["deleted"] == ()


class TestRecordCreatedAndUpdated:
    def test_created_fires_for_its_record_type_only(self) -> None:
        trigger = {"type": "record_created", "record_type": "lead"}
        assert fires(trigger, make_event())
        assert not fires(trigger, make_event(record_type="deal"))
        assert not fires(trigger, updated({"a": 1}, {"a": 2}, record_type="lead"))

    def test_updated_needs_a_field_that_differs(self) -> None:
        trigger = {"type": "record_updated", "record_type": "deal"}
        assert fires(trigger, updated({"a": 1}, {"a": 2}))
        assert fires(trigger, updated({"a": 1}, {"a": 1, "b": 2}))
        assert not fires(trigger, updated({"a": 1}, {"a": 1}))
        assert not fires(trigger, created({"a": 1}))


class TestFieldValueChanged:
    trigger: ClassVar = {"type": "field_value_changed", "record_type": "deal", "field": "amount"}

    def test_fires_when_the_field_differs(self) -> None:
        assert fires(self.trigger, updated({"amount": 1}, {"amount": 2}))
        assert fires(self.trigger, updated({}, {"amount": 2}))
        assert fires(self.trigger, updated({"amount": 2}, {}))

    def test_does_not_fire_when_only_other_fields_change(self) -> None:
        assert not fires(self.trigger, updated({"amount": 1, "x": 1}, {"amount": 1, "x": 2}))

    def test_from_and_to_narrow_the_change(self) -> None:
        trigger = {**self.trigger, "from": 1, "to": 2}
        assert fires(trigger, updated({"amount": 1}, {"amount": 2}))
        assert not fires(trigger, updated({"amount": 0}, {"amount": 2}))
        assert not fires(trigger, updated({"amount": 1}, {"amount": 3}))

    def test_to_null_is_a_real_value(self) -> None:
        trigger = {**self.trigger, "to": None}
        assert fires(trigger, updated({"amount": 1}, {"amount": None}))
        assert not fires(trigger, updated({"amount": 1}, {"amount": 2}))

    def test_a_boolean_is_not_a_number(self) -> None:
        assert fires(self.trigger, updated({"amount": True}, {"amount": 1}))
        assert fires(self.trigger, updated({"amount": 0}, {"amount": False}))
        assert not fires(self.trigger, updated({"amount": 1}, {"amount": 1.0}))

    @given(
        st.dictionaries(st.sampled_from(["amount", "x"]), JSON_VALUES, max_size=2),
        st.dictionaries(st.sampled_from(["amount", "x"]), JSON_VALUES, max_size=2),
    )
    def test_a_top_level_field_is_read_as_any_path_is(
        self, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        _, params = resolve_trigger(TriggerSpec.model_validate(self.trigger))
        assert isinstance(params, FieldChangeParams)
        read_as_a_path = params.wants(lookup(before, ("amount",)), lookup(after, ("amount",)))
        assert fires(self.trigger, updated(before, after)) is read_as_a_path

    def test_nested_fields(self) -> None:
        trigger = {**self.trigger, "field": "owner.id"}
        assert fires(trigger, updated({"owner": {"id": "u-1"}}, {"owner": {"id": "u-2"}}))

    def test_needs_a_field(self) -> None:
        with pytest.raises(InvalidWorkflow, match=r"trigger\.field"):
            resolve_trigger(TriggerSpec(type="field_value_changed", record_type="deal"))


class TestStatusAndStage:
    @pytest.mark.parametrize(
        ("kind", "field"), [("status_changed", "status"), ("pipeline_stage_changed", "stage")]
    )
    def test_watch_their_own_field(self, kind: str, field: str) -> None:
        trigger = {"type": kind, "record_type": "deal", "from": "open", "to": "won"}
        assert fires(trigger, updated({field: "open"}, {field: "won"}))
        assert not fires(trigger, updated({field: "open"}, {field: "lost"}))
        assert not fires(
            trigger, updated({field: "open", "other": "open"}, {field: "open", "other": "won"})
        )
        assert fires({"type": kind, "record_type": "deal"}, updated({field: "a"}, {field: "b"}))

    def test_the_field_cannot_be_redirected(self) -> None:
        with pytest.raises(InvalidWorkflow, match=r"trigger\.field"):
            resolve_trigger(
                TriggerSpec.model_validate(
                    {"type": "status_changed", "record_type": "deal", "field": "stage"}
                )
            )


class TestFixedRecordKinds:
    def test_task_completed_when_status_becomes_completed(self) -> None:
        trigger = {"type": "task_completed"}
        assert fires(trigger, updated({"status": "open"}, {"status": "completed"}, "task"))
        assert not fires(
            trigger, updated({"status": "completed"}, {"status": "completed", "x": 1}, "task")
        )
        assert not fires(trigger, updated({"status": "open"}, {"status": "completed"}, "deal"))

    def test_case_escalated_when_escalated_becomes_true(self) -> None:
        trigger = {"type": "case_escalated"}
        assert fires(trigger, updated({"escalated": False}, {"escalated": True}, "case"))
        assert fires(trigger, updated({}, {"escalated": True}, "case"))
        assert not fires(trigger, updated({"escalated": True}, {"escalated": True, "x": 1}, "case"))
        assert not fires(trigger, updated({"escalated": False}, {"escalated": 1}, "case"))

    def test_contract_signed_also_when_created_signed(self) -> None:
        trigger = {"type": "contract_signed"}
        assert fires(trigger, updated({"status": "sent"}, {"status": "signed"}, "contract"))
        assert fires(trigger, created({"status": "signed"}, "contract"))
        assert not fires(trigger, created({"status": "draft"}, "contract"))
        assert not fires(
            trigger, updated({"status": "signed"}, {"status": "signed", "x": 1}, "contract")
        )

    def test_record_type_is_fixed_by_the_kind(self) -> None:
        with pytest.raises(InvalidWorkflow, match="task"):
            resolve_trigger(
                TriggerSpec.model_validate({"type": "task_completed", "record_type": "deal"})
            )


class TestLeadScoreThreshold:
    trigger: ClassVar = {"type": "lead_score_threshold", "threshold": 50}

    def lead(self, before: Any, after: Any) -> ChangeEvent:
        return updated(before, after, record_type="lead")

    def test_fires_when_crossing_upward(self) -> None:
        assert fires(self.trigger, self.lead({"score": 49}, {"score": 50}))
        assert fires(self.trigger, self.lead({"score": 10}, {"score": 90}))

    def test_from_absent_or_null_counts_as_below(self) -> None:
        assert fires(self.trigger, self.lead({}, {"score": 60}))
        assert fires(self.trigger, self.lead({"score": None}, {"score": 60}))

    def test_does_not_fire_when_already_above_or_going_down(self) -> None:
        assert not fires(self.trigger, self.lead({"score": 50}, {"score": 70}))
        assert not fires(self.trigger, self.lead({"score": 70}, {"score": 40}))
        assert not fires(self.trigger, self.lead({"score": 10}, {"score": 49}))

    def test_a_create_at_or_above_counts(self) -> None:
        assert fires(self.trigger, created({"score": 50}, "lead"))
        assert not fires(self.trigger, created({"score": 49}, "lead"))

    def test_non_numbers_never_cross(self) -> None:
        assert not fires(self.trigger, self.lead({"score": 10}, {"score": "90"}))
        assert not fires(self.trigger, self.lead({"score": 10}, {"score": True}))

    def test_needs_a_numeric_threshold(self) -> None:
        with pytest.raises(InvalidWorkflow, match="threshold"):
            resolve_trigger(TriggerSpec(type="lead_score_threshold"))


def test_unknown_trigger_type_lists_valid_ones() -> None:
    with pytest.raises(InvalidWorkflow) as raised:
        resolve_trigger(TriggerSpec(type="lead_born", record_type="lead"))
    assert "trigger.type" in str(raised.value) and "record_created" in str(raised.value)


def test_invoice_overdue_is_for_invoices_and_never_fires_on_a_change() -> None:
    kind, params = resolve_trigger(TriggerSpec(type="invoice_overdue"))
    assert params.record_type == "invoice" and kind.operations == frozenset()
    with pytest.raises(InvalidWorkflow, match="record_type"):
        resolve_trigger(TriggerSpec(type="invoice_overdue", record_type="deal"))


# Explanations: why a trigger fired or did not, one per kind, with the values it compared.


def why(trigger: dict[str, Any], event: ChangeEvent) -> tuple[bool, str, dict[str, Any]]:
    kind, params = resolve_trigger(TriggerSpec.model_validate(trigger))
    explained = explain_trigger(kind, params, "acme", event)
    assert explained.matched is fires(trigger, event)  # the verdict is the processor's
    return explained.matched, explained.reason, dict(explained.values)


def test_a_score_threshold_says_the_threshold_and_the_scores() -> None:
    trigger = {"type": "lead_score_threshold", "threshold": 80}
    lead = "lead"
    assert why(trigger, updated({"score": 40}, {"score": 60}, lead)) == (
        False,
        "score 60 is below the threshold 80",
        {"threshold": 80.0, "before": 40, "after": 60},
    )
    matched, reason, values = why(trigger, updated({"score": 85}, {"score": 90}, lead))
    assert not matched and "was 85 before the change, at least 80 already" in reason
    assert values == {"threshold": 80.0, "before": 85, "after": 90}
    assert why(trigger, updated({"score": 40}, {"score": 80}, lead))[:2] == (
        True,
        "score went from 40 to 80, reaching 80",
    )
    assert why(trigger, updated({}, {"score": "high"}, lead))[1] == (
        "score is 'high' after the change, not a number"
    )
    assert why(trigger, created({"score": 95}, lead))[1] == (
        "the lead was created with score 95, at least 80"
    )


def test_a_stage_change_says_the_from_and_to_wanted_and_the_actual_values() -> None:
    trigger = {"type": "pipeline_stage_changed", "record_type": "deal", "from": "a", "to": "won"}
    assert why(trigger, updated({"stage": "b"}, {"stage": "won"})) == (
        False,
        "stage changed from 'b' to 'won'; the trigger wants a change from 'a' to 'won'",
        {"field": "stage", "before": "b", "after": "won", "from": "a", "to": "won"},
    )
    assert why(trigger, updated({"stage": "a"}, {"stage": "won"}))[:2] == (
        True,
        "stage changed from 'a' to 'won'",
    )
    assert (
        why(trigger, updated({"stage": "a"}, {"stage": "a"}))[1]
        == "stage did not change (it is 'a')"
    )
    loose = {"type": "field_value_changed", "record_type": "deal", "field": "amount"}
    assert why(loose, updated({}, {"amount": 5}))[1] == "amount changed from missing to 5"


def test_kinds_that_watch_a_value_say_what_they_wait_for() -> None:
    task = {"type": "task_completed"}
    assert why(task, updated({"status": "open"}, {"status": "waiting"}, "task"))[1] == (
        "status is 'waiting' after the change, not 'completed'"
    )
    assert why(task, updated({"status": "completed"}, {"status": "completed", "x": 1}, "task"))[
        1
    ] == ("status was 'completed' already before the change")
    case = {"type": "case_escalated"}
    assert why(case, updated({"escalated": False}, {"escalated": True}, "case"))[:2] == (
        True,
        "escalated became true (it was false)",
    )
    assert why({"type": "record_updated", "record_type": "deal"}, updated({"a": 1}, {"a": 1}))[
        1
    ] == ("the update changed nothing: the record is the same before and after")
    matched, reason, values = why(
        {"type": "record_updated", "record_type": "deal"}, updated({"a": 1}, {"a": 2, "b": 3})
    )
    assert matched and reason == "the update changed a, b" and values["changed_count"] == 2


def test_the_shared_checks_come_first_with_their_reason() -> None:
    trigger = {"type": "record_created", "record_type": "lead"}
    assert (
        why(trigger, created({}, "deal"))[1] == "it watches lead records; this event is of a 'deal'"
    )
    assert why(trigger, updated({}, {"a": 1}, "lead"))[1] == (
        "it fires when a lead is created; this event is 'updated'"
    )
    kind, params = resolve_trigger(TriggerSpec.model_validate(trigger))
    other = explain_trigger(kind, params, "globex", created({}, "lead"))
    assert not other.matched and other.reason == "the event belongs to another tenant"


@pytest.mark.parametrize(
    ("trigger", "says"),
    [
        ({"type": "webhook_received"}, "fired by a signed delivery to the workflow's inbound"),
        ({"type": "scheduled", "cron": "0 9 * * 1", "timezone": "Europe/Berlin"}, "the clock"),
        ({"type": "invoice_overdue"}, "once an unpaid invoice's due date has passed"),
        ({"type": "record_stalled", "record_type": "deal", "for": "3d"}, "stage has kept"),
    ],
)
def test_kinds_not_fired_by_record_changes_say_what_fires_them(
    trigger: dict[str, Any], says: str
) -> None:
    matched, reason, _ = why(trigger, created({}, "lead"))
    assert not matched and says in reason and reason.endswith("never by a record change")


def test_every_kind_has_an_explanation() -> None:
    assert all(callable(kind.explain) for kind in REGISTRY.values())


def test_a_long_value_is_cut_in_the_reason_and_whole_in_the_values() -> None:
    trigger = {"type": "status_changed", "record_type": "deal", "to": "won"}
    long = "x" * 10_000
    matched, reason, values = why(trigger, updated({"status": "a"}, {"status": long}))
    assert not matched and len(reason) < 300 and values["after"] == long


SCORES = st.one_of(st.none(), st.integers(-5, 120), st.text(max_size=3), st.booleans())


@given(
    before=SCORES,
    after=SCORES,
    operation=st.sampled_from(["created", "updated"]),
    threshold=st.integers(0, 100),
)
def test_the_explanation_agrees_with_the_processor_on_every_score(
    before: Any, after: Any, operation: str, threshold: int
) -> None:
    event = make_event(
        operation=operation,
        before={"score": before} if operation == "updated" else None,
        after={"score": after},
    )
    _, reason, values = why({"type": "lead_score_threshold", "threshold": threshold}, event)
    assert reason and values["threshold"] == threshold
