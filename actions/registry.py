"""Action type name → its ``ActionType``: the one list of what ``actions[].type`` may be."""

from __future__ import annotations

from collections.abc import Mapping

from actions import (
    add_note,
    add_to_sequence,
    assign_owner,
    call_webhook,
    change_status,
    create_case,
    create_opportunity,
    create_task,
    send_email,
    send_slack_message,
    send_sms,
    update_field,
)
from actions.params import ActionType
from coeflow.errors import InvalidWorkflow, Problem

REGISTRY: Mapping[str, ActionType] = {
    module.ACTION.name: module.ACTION
    for module in (
        send_email,
        send_sms,
        create_task,
        create_case,
        update_field,
        assign_owner,
        add_to_sequence,
        send_slack_message,
        call_webhook,
        create_opportunity,
        add_note,
        change_status,
    )
}


def resolve_action(name: str, loc: str) -> ActionType:
    try:
        return REGISTRY[name]
    except KeyError:
        valid = ", ".join(REGISTRY)
        raise InvalidWorkflow(
            [Problem(loc, f"unknown action type {name!r}; valid action types: {valid}")]
        ) from None
