"""The builder's form: controls generated from the parameter models, a workflow document to
form values and back, and the API's problems placed at their controls."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.registry import REGISTRY as ACTIONS
from coeflow.errors import InvalidWorkflow, Problem
from processor.core.compiler import validate_workflow
from processor.core.operators import OPERATORS, ValueShape
from processor.core.operators import REGISTRY as OPERATOR_NAMES
from processor.core.triggers import KINDS
from processor.web.forms import (
    OMIT,
    Control,
    action_choices,
    action_controls,
    control_name,
    control_names,
    document_to_form,
    flow,
    form_to_document,
    operators_for,
    problems_at_controls,
    read_value,
    show_value,
    trigger_choices,
    trigger_controls,
)
from tests.factories import SEED_WORKFLOW


def by_key(controls: tuple[Control, ...]) -> dict[str, Control]:
    return {c.key: c for c in controls}


# ---------------------------------------------------------------------------- controls


def test_create_task_controls_come_from_its_model() -> None:
    controls = by_key(action_controls("create_task"))
    assert list(controls) == ["title", "assignee", "due_in", "description", "priority"]
    assert controls["title"].required and controls["title"].merge_fields
    assert controls["title"].label == "Title"
    assert controls["due_in"].kind == "duration" and not controls["due_in"].required
    assert "2d" in controls["due_in"].help
    assert controls["description"].kind == "template"
    assert controls["priority"].kind == "select"
    assert controls["priority"].choices == ("low", "normal", "high")
    assert controls["priority"].default == "normal"


def test_send_email_controls() -> None:
    controls = by_key(action_controls("send_email"))
    assert [k for k, c in controls.items() if c.required] == ["to", "subject", "body"]
    assert controls["body"].kind == "template"
    assert controls["cc"].kind == "lines" and controls["cc"].merge_fields
    assert controls["reply_to"].label == "Reply to"


def test_trigger_controls_show_each_kinds_parameters() -> None:
    scheduled = by_key(trigger_controls("scheduled"))
    assert scheduled["cron"].kind == "cron" and scheduled["cron"].required
    assert scheduled["timezone"].kind == "timezone" and scheduled["timezone"].default == "UTC"
    assert scheduled["record_type"].kind == "fixed"
    stalled = by_key(trigger_controls("record_stalled"))
    assert stalled["for"].kind == "duration" and stalled["for"].label == "For"
    assert stalled["field"].default == "stage"
    threshold = by_key(trigger_controls("lead_score_threshold"))
    assert threshold["threshold"].kind == "number" and threshold["threshold"].required
    changed = by_key(trigger_controls("field_value_changed"))
    assert changed["field"].kind == "field"
    assert changed["from"].kind == "value" and not changed["from"].required
    assert "type" not in by_key(trigger_controls("record_created"))
    assert trigger_controls("no_such_kind") == ()


def test_every_registered_kind_and_type_is_offered_in_the_customer_pages_words() -> None:
    triggers = {c.value: c.label for c in trigger_choices()}
    assert list(triggers) == [k.name for k in KINDS]
    for label in (
        "Record Created",
        "Record Updated",
        "Field Value Changed",
        "Status Changed",
        "Pipeline Stage Changed",
        "Task Completed",
        "Case Escalated",
        "Contract Signed",
        "Invoice Overdue",
        "Lead Score Threshold",
        "Scheduled (Recurring)",
        "Webhook Received",
    ):
        assert label in triggers.values()
    assert "Record Stalled" in triggers.values()
    assert [c.label for c in action_choices()] == [
        "Send Email",
        "Send SMS",
        "Create Task",
        "Create Case",
        "Update Field",
        "Assign Owner",
        "Add to Sequence",
        "Send Slack Message",
        "Call Webhook",
        "Create Opportunity",
        "Add Note",
        "Change Status",
    ]
    assert "timer_rules.py" not in " ".join(c.help for c in trigger_choices())


def test_operators_that_fit() -> None:
    on_create = [c.value for c in operators_for("record_created", 72)]
    assert "gte" in on_create and "eq" in on_create
    assert "changed" not in on_create  # a create has no before
    assert "starts_with" not in on_create  # a number never starts with text
    on_update = [c.value for c in operators_for("record_updated", "Ada")]
    assert {"changed", "changed_to", "starts_with"} <= set(on_update)
    assert "gte" in on_update  # text is ordered too
    unknown_field = [c.value for c in operators_for("record_updated")]
    assert unknown_field == [op.name for op in OPERATORS]
    # the leaf's own operator stays, so the form shows what was saved
    kept = [c.value for c in operators_for("record_created", 72, current="starts_with")]
    assert "starts_with" in kept
    assert next(c for c in operators_for(None) if c.value == "gte").label == "≥"


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50", 50),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('"50"', "50"),
        ("Ada", "Ada"),
        ("[1, 2]", [1, 2]),
        ("", OMIT),
        ("   ", OMIT),
        ("NaN", "NaN"),
    ],
)
def test_value_text(text: str, value: Any) -> None:
    assert read_value(text) == value if value is not OMIT else read_value(text) is OMIT


def test_a_string_that_reads_as_something_else_is_shown_quoted() -> None:
    assert show_value("50") == '"50"'
    assert show_value("Ada") == "Ada"
    assert show_value("") == '""'


def test_the_seed_workflow_as_a_form() -> None:
    form = document_to_form(SEED_WORKFLOW)
    assert form["name"] == "New Lead → Welcome Email"
    assert form["trigger.type"] == "record_created"
    assert form["trigger.params.record_type"] == "lead"
    assert form["conditions.kind"] == "all"
    assert (form["conditions.0.field"], form["conditions.0.op"]) == ("score", "gte")
    assert form["conditions.0.value"] == "50"
    assert form["actions.0.type"] == "send_email"
    assert form["actions.0.params.subject"] == "Welcome — Thanks for your interest"
    assert form["actions.1.params.due_in"] == "2d"
    assert [s.title for s in flow(form)] == [
        "Trigger",
        "Condition",
        "Action 1",
        "Action 2",
        "End of Workflow",
    ]
    document = form_to_document(form)
    expected = {k: SEED_WORKFLOW[k] for k in ("name", "trigger", "conditions", "actions")}
    assert {k: document[k] for k in expected} == expected


def test_a_list_value_reads_from_commas() -> None:
    form = {
        "name": "x",
        "conditions.kind": "not",
        "conditions.0.kind": "leaf",
        "conditions.0.field": "country",
        "conditions.0.op": "in",
        "conditions.0.value": "ZZ, DE, 7",
    }
    document = form_to_document(form)
    assert document["conditions"] == {
        "not": {"field": "country", "op": "in", "value": ["ZZ", "DE", 7]}
    }
    assert document_to_form(document)["conditions.0.value"] == "ZZ, DE, 7"


def test_empty_controls_leave_parameters_out_and_bad_text_goes_as_typed() -> None:
    form = {
        "name": "n",
        "trigger.type": "lead_score_threshold",
        "trigger.params.threshold": "lots",
        "actions.3.type": "create_task",
        "actions.3.params.title": "",
        "actions.3.params.due_in": "",
        "actions.3.params.priority": "high",
        "actions.1.type": "add_note",
        "actions.1.params.body": "Hi",
    }
    document = form_to_document(form)
    assert document["trigger"] == {"type": "lead_score_threshold", "threshold": "lots"}
    # the order of the numbers, which need not be consecutive
    assert document["actions"] == [
        {"type": "add_note", "body": "Hi"},
        {"type": "create_task", "title": "", "priority": "high"},
    ]
    assert "conditions" not in document


def test_a_fixed_parameter_of_another_kind_is_dropped() -> None:
    form = {"trigger.type": "webhook_received", "trigger.params.record_type": "lead"}
    assert form_to_document(form)["trigger"] == {"type": "webhook_received"}
    form["trigger.params.record_type"] = "webhook"
    assert form_to_document(form)["trigger"] == {
        "type": "webhook_received",
        "record_type": "webhook",
    }


def test_parameters_of_another_kind_are_dropped_when_the_trigger_changes() -> None:
    form = {
        "trigger.type": "scheduled",
        "trigger.params.record_type": "lead",
        "trigger.params.threshold": "50",
        "trigger.params.cron": "0 9 * * 1",
    }
    assert form_to_document(form)["trigger"] == {"type": "scheduled", "cron": "0 9 * * 1"}


# ---------------------------------------------------------------------------- round trips

_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_scalar = st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
_item = st.text("abc@.xyz+-_0123456789 ", min_size=1, max_size=10).map(str.strip).filter(bool)


def _param(control: Control) -> st.SearchStrategy[Any]:
    kind = control.kind
    if kind in ("select", "fixed"):
        return st.sampled_from([c for c in control.choices if c])
    if kind == "number":
        return st.integers(-(10**9), 10**9) | st.floats(-1e12, 1e12, allow_nan=False)
    if kind == "value":
        return _json
    if kind == "lines":
        return st.lists(_item, min_size=1, max_size=3)
    if kind == "json":
        return st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
    return st.text(min_size=1, max_size=20)


@st.composite
def _params(draw: st.DrawFn, shown: tuple[Control, ...]) -> dict[str, Any]:
    params = {}
    for control in shown:
        if control.required or draw(st.booleans()):
            params[control.key] = draw(_param(control))
    return params


@st.composite
def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from([op.name for op in OPERATORS]))
    leaf: dict[str, Any] = {"field": draw(st.text(max_size=10)), "op": op}
    shape = OPERATOR_NAMES[op].value
    if shape is ValueShape.LIST:
        leaf["value"] = draw(st.lists(_scalar, max_size=4))
    elif shape is not ValueShape.NONE:
        leaf["value"] = draw(_json)
    return leaf


_conditions = st.recursive(
    _leaf(),
    lambda inner: (
        st.builds(lambda c: {"all": c}, st.lists(inner, max_size=3))
        | st.builds(lambda c: {"any": c}, st.lists(inner, max_size=3))
        | st.builds(lambda c: {"not": c}, inner)
    ),
    max_leaves=8,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    document: dict[str, Any] = {
        "name": draw(st.text(max_size=20)),
        "version": draw(st.integers(1, 10**6)),
        "trigger": {"type": kind.name, **draw(_params(trigger_controls(kind.name)))},
        "actions": [
            {"type": name, **draw(_params(action_controls(name)))}
            for name in draw(st.lists(st.sampled_from(list(ACTIONS)), min_size=1, max_size=4))
        ],
    }
    if draw(st.booleans()):
        document["conditions"] = draw(_conditions)
    return document


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_a_document_survives_the_form(document: dict[str, Any]) -> None:
    assert form_to_document(document_to_form(document)) == document


@settings(max_examples=200)
@given(documents())
def test_form_values_survive_the_document(document: dict[str, Any]) -> None:
    form = document_to_form(document)
    assert document_to_form(form_to_document(form)) == form


_names = st.sampled_from(
    [
        "name",
        "version",
        "trigger.type",
        "trigger.params.threshold",
        "conditions.kind",
        "conditions.0.kind",
        "conditions.0.0.kind",
        "conditions.0.op",
        "conditions.0.value",
        "actions.0.type",
        "actions.0.params.to",
        "actions.99.type",
    ]
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        _names | st.text(max_size=30),
        st.sampled_from(["all", "any", "not", "leaf", "send_email", "in", "gte"])
        | st.text(max_size=20),
        max_size=15,
    )
)
def test_any_form_reads_as_a_document_without_raising(form: dict[str, str]) -> None:
    document = form_to_document(form)
    assert isinstance(document["actions"], list) and "trigger" in document


def test_deep_or_wide_forms_are_read_within_bounds() -> None:
    deep = {"conditions." + ".".join(["0"] * n) + ".kind": "all" for n in range(500)}
    deep["conditions.kind"] = "all"
    document = form_to_document(deep)  # no RecursionError: the depth read is bounded
    assert "conditions" in document
    wide = {f"actions.{i}.type": "add_note" for i in range(5_000)}
    assert len(form_to_document(wide)["actions"]) == 200


# ---------------------------------------------------------------------------- problems


def _problems(document: dict[str, Any]) -> list[Problem]:
    with pytest.raises(InvalidWorkflow) as refused:
        validate_workflow({"id": "wf-1", "tenant_id": "acme", **document})
    return list(refused.value.problems)


def test_the_apis_problems_land_at_their_controls() -> None:
    form = {
        "name": "",
        "trigger.type": "scheduled",
        "trigger.params.cron": "every day",
        "conditions.kind": "all",
        "conditions.0.kind": "leaf",
        "conditions.0.field": "a b",
        "conditions.0.op": "gte",
        "conditions.0.value": "1",
        "actions.0.type": "send_email",
        "actions.0.params.to": "not-an-address",
        "actions.0.params.cc": "ok@example.com\nnope",
        "actions.1.type": "create_task",
        "actions.1.params.title": "Call",
        "actions.1.params.due_in": "2 days",
    }
    problems = _problems(form_to_document(form))
    placed = problems_at_controls(problems, control_names(form))
    assert sum(len(v) for v in placed.values()) == len(problems)
    assert set(placed) >= {
        "name",
        "trigger.params.cron",
        "conditions.0.field",
        "actions.0.params.to",
        "actions.0.params.cc",
        "actions.0.params.subject",
        "actions.1.params.due_in",
    }, placed
    assert "" not in placed
    assert "2 days" in placed["actions.1.params.due_in"][0]


def test_the_compilers_condition_problems_land_at_their_controls() -> None:
    form = {
        "name": "n",
        "trigger.type": "record_created",
        "trigger.params.record_type": "lead",
        "conditions.kind": "all",
        "conditions.0.kind": "not",
        "conditions.0.0.kind": "leaf",
        "conditions.0.0.field": "x",
        "conditions.0.0.op": "bogus",
        "conditions.1.kind": "any",
        "conditions.1.0.kind": "leaf",
        "conditions.1.0.field": "score",
        "conditions.1.0.op": "gte",
        "conditions.1.0.value": "[1]",
        "actions.0.type": "nope",
    }
    placed = problems_at_controls(_problems(form_to_document(form)), control_names(form))
    assert set(placed) == {"conditions.0.0.op", "conditions.1.0.value", "actions.0.type"}
    assert "valid operators" in placed["conditions.0.0.op"][0]


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        ("name", "name"),
        ("trigger", "trigger.type"),
        ("trigger.for", "trigger.params.for"),
        ("actions", "actions"),
        ("actions.2", "actions.2.type"),
        ("actions.0.cc.1", "actions.0.params.cc"),
        ("conditions.all.all.0.leaf.field", "conditions.0.field"),
        ("conditions.any.any.1.not.not.leaf.op", "conditions.1.0.op"),
        ("conditions.all.1.not.op", "conditions.1.0.op"),
        ("conditions.not.all.2.value", "conditions.0.2.value"),
        ("conditions", "conditions"),
        ("tenant_id", ""),
        ("", ""),
    ],
)
def test_locations_to_names(loc: str, name: str) -> None:
    assert control_name(loc) == name


@given(st.lists(st.text(max_size=40), max_size=10))
def test_no_problem_is_dropped(locs: list[str]) -> None:
    problems = [Problem(loc, "bad") for loc in locs]
    placed = problems_at_controls(problems, ["name", "actions.0.type", "conditions.kind"])
    assert sum(len(v) for v in placed.values()) == len(problems)


def test_a_problem_without_its_control_goes_to_the_closest_one() -> None:
    placed = problems_at_controls(
        [Problem("actions.0.bogus", "Extra inputs are not permitted"), Problem("tenant_id", "x")],
        ["actions.0.type"],
    )
    assert placed == {"actions.0.type": ["Extra inputs are not permitted"], "": ["tenant_id: x"]}
