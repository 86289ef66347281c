"""Every action type's parameters: accepted when valid, refused by field name when not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from actions.params import RENDERED, ActionType, plain_fields
from actions.registry import REGISTRY, resolve_action
from coeflow.errors import ActionRenderError, InvalidWorkflow

ANCHOR = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)

VALID: dict[str, dict[str, Any]] = {
    "send_email": {"to": "{{record.email}}", "subject": "Welcome", "body": "Hi {{record.name}}"},
    "send_sms": {"to": "+49 151 1234 5678", "body": "Hi {{record.name}}"},
    "create_task": {"title": "Follow-up call", "assignee": "{{record.owner_id}}", "due_in": "2d"},
    "create_case": {"subject": "Escalation for {{record.name}}", "priority": "high"},
    "update_field": {"field": "status", "value": "contacted"},
    "assign_owner": {"owner_id": "u-9"},
    "add_to_sequence": {"sequence_id": "seq-onboarding"},
    "send_slack_message": {
        "webhook_url": "https://hooks.slack.com/services/T/B/X",
        "text": "New lead {{record.name}}",
    },
    "call_webhook": {
        "url": "https://example.com/hook",
        "method": "POST",
        "headers": {"X-Source": "coeflow"},
        "body": {"lead": "{{record.email}}"},
    },
    "create_opportunity": {"name": "{{record.name}} deal", "amount": 5000, "close_in": "30d"},
    "add_note": {"body": "Welcome email sent to {{record.email}}"},
    "change_status": {"status": "contacted"},
}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("send_email", {"subject": "x", "body": "y"}, "to"),
    ("send_email", {"to": "not-an-email", "subject": "x", "body": "y"}, "to"),
    ("send_email", {"to": "a@b.com", "subject": "line\nbreak", "body": "y"}, "subject"),
    ("send_email", {"to": "a@b.com", "subject": "{{recrd.x}}", "body": "y"}, "subject"),
    ("send_email", {"to": "a@b.com", "subject": "x", "body": "y", "bcc": "c@d.com"}, "bcc"),
    ("send_sms", {"to": "0151 123", "body": "x"}, "to"),
    ("send_sms", {"to": "+4915112345678", "body": ""}, "body"),
    ("create_task", {"title": "x", "due_in": "two days"}, "due_in"),
    ("create_task", {"title": "", "due_in": "2d"}, "title"),
    ("create_task", {"title": "x", "priority": "asap"}, "priority"),
    ("create_case", {"subject": "x", "priority": "whenever"}, "priority"),
    ("update_field", {"field": "bad field", "value": 1}, "field"),
    ("update_field", {"field": "status", "value": "{{record.__class__}}"}, "value"),
    ("assign_owner", {}, "owner_id"),
    ("assign_owner", {"owner_id": "  "}, "owner_id"),
    ("add_to_sequence", {"sequence": "x"}, "sequence_id"),
    ("send_slack_message", {"webhook_url": "ftp://x", "text": "hi"}, "webhook_url"),
    ("send_slack_message", {"webhook_url": "https://x.example", "text": ""}, "text"),
    ("call_webhook", {"url": "javascript:alert(1)"}, "url"),
    ("call_webhook", {"url": "https://x.example", "method": "TRACE"}, "method"),
    ("call_webhook", {"url": "https://x.example", "headers": {"Bad Header": "x"}}, "headers"),
    ("call_webhook", {"url": "https://x.example", "headers": {"Host": "evil"}}, "headers"),
    ("create_opportunity", {"name": "x", "amount": -1}, "amount"),
    ("create_opportunity", {"name": "x", "close_in": "soon"}, "close_in"),
    ("add_note", {"body": ""}, "body"),
    ("change_status", {}, "status"),
]


def test_all_twelve_contract_action_types_are_registered() -> None:
    assert set(REGISTRY) == set(VALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_parameters_are_accepted(name: str) -> None:
    REGISTRY[name].validate_definition(VALID[name], "actions.0")


@pytest.mark.parametrize(("name", "params", "field"), INVALID)
def test_invalid_parameters_are_refused_naming_the_field(
    name: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidWorkflow) as raised:
        REGISTRY[name].validate_definition(params, "actions.3")
    assert any(p.loc.startswith(f"actions.3.{field}") for p in raised.value.problems), raised.value


def test_unknown_action_type_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidWorkflow) as raised:
        resolve_action("send_fax", "actions.0.type")
    assert "send_email" in str(raised.value) and "change_status" in str(raised.value)


def test_relative_times_become_absolute_from_the_event_time() -> None:
    params = REGISTRY["create_task"].command_params(
        {"title": "Follow-up call", "assignee": "u-7", "due_in": "2d"}, ANCHOR
    )
    assert params == {
        "title": "Follow-up call",
        "assignee": "u-7",
        "priority": "normal",
        "due_at": datetime(2026, 11, 27, 19, 0, tzinfo=UTC),
    }
    opportunity = REGISTRY["create_opportunity"].command_params(
        {"name": "Deal", "close_in": "1d12h"}, ANCHOR
    )
    assert opportunity["close_at"] == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    assert "close_in" not in opportunity


def test_rendered_values_are_checked() -> None:
    """A merge field that renders to garbage fails the run instead of issuing a bad command."""
    action = REGISTRY["send_email"]
    for to in ("", "{{record.email}}", "ada lovelace@example.com", "ada@example", "a@b@c.com"):
        with pytest.raises(ActionRenderError, match="to"):
            action.command_params({"to": to, "subject": "x", "body": "y"}, ANCHOR)


def test_a_rendered_address_is_checked_for_its_shape_and_a_saved_one_in_full() -> None:
    """On the hot path an address is checked for its shape (the email executor checks it in
    full before sending); a literal one in a workflow is checked in full when it is saved."""
    action = REGISTRY["send_email"]
    rendered = {"to": " ada@-example.com ", "subject": "x", "body": "y", "cc": ["b@example.com"]}
    assert action.command_params(rendered, ANCHOR)["to"] == "ada@-example.com"
    with pytest.raises(InvalidWorkflow, match="to"):
        action.validate_definition({**rendered, "to": "ada@-example.com"}, "actions.0")


def test_phone_numbers_are_normalised() -> None:
    params = REGISTRY["send_sms"].command_params({"to": "+49 (151) 1234-5678", "body": "x"}, ANCHOR)
    assert params["to"] == "+4915112345678"


ADD_NOTE = REGISTRY["add_note"]


def _validated(action: ActionType, rendered: object) -> object:
    """What pydantic's second validation makes of ``rendered``: the params, or the error."""
    try:
        return action.params.model_validate(rendered, context=RENDERED).command_params(
            datetime(2026, 1, 1, tzinfo=UTC)
        )
    except ValidationError:
        return ActionRenderError


def _commanded(action: ActionType, rendered: object) -> object:
    try:
        return action.command_params(rendered, datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    except ActionRenderError:
        return ActionRenderError


@given(
    st.one_of(
        st.fixed_dictionaries({"body": st.text(max_size=20)}),
        st.fixed_dictionaries({"body": st.sampled_from(["", "x" * 50_000, "x" * 50_001])}),
        st.dictionaries(
            st.sampled_from(["body", "title", "extra"]),
            st.one_of(st.text(max_size=5), st.integers(), st.none(), st.lists(st.text())),
            max_size=3,
        ),
    )
)
def test_a_plain_text_action_accepts_and_refuses_what_pydantic_does(rendered: object) -> None:
    """add_note's rendered params skip the second pydantic validation (``plain_fields``):
    the same params, or the same refusal, as pydantic."""
    assert _commanded(ADD_NOTE, rendered) == _validated(ADD_NOTE, rendered)


def test_only_text_fields_without_checks_are_plain() -> None:
    assert plain_fields(ADD_NOTE.params) == {"body": (1, 50_000)}
    for action in REGISTRY.values():
        if action.name != "add_note":
            assert plain_fields(action.params) is None, action.name
