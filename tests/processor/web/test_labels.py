"""One set of display names on every page (``processor/web/labels.py``): trigger kinds, action
types and operators as the builder offers them, statuses and parameter names in words, the
audit log's actions and actors, and "Why didn't it run?" in sentences with its badges."""

from __future__ import annotations

import re
from html import unescape
from types import SimpleNamespace
from typing import Any

import processor.web.builder  # noqa: F401  (the builder's filters: as_json)
from actions.registry import REGISTRY as ACTIONS
from processor.core.operators import OPERATORS
from processor.core.triggers import KINDS
from processor.web import forms, labels
from processor.web.pages import templates
from tests.processor.web.test_escaping import rendered

SHELL = {"session": None, "csrf_field": "csrf_token", "csrf": "", "path": "/"}


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def render(template: str, **context: Any) -> str:
    return text_of(templates.get_template(template).render(**SHELL, **context))


def test_the_names_are_the_builders_for_every_registered_kind_type_and_operator() -> None:
    offered = {c.value: c.label for c in forms.trigger_choices()}
    assert {k.name: labels.trigger(k.name) for k in KINDS} == offered
    actions = {c.value: c.label for c in forms.action_choices()}
    assert {name: labels.action(name) for name in ACTIONS} == actions
    for op in OPERATORS:
        assert labels.operator(op.name) == forms.operator_label(op)
    assert labels.operator("gte") == "≥" and labels.operator("in") == "is one of"
    assert labels.action("send_slack_message") == "Send Slack Message"
    assert labels.trigger("pipeline_stage_changed") == "Pipeline Stage Changed"
    assert labels.words("actions_issued") == "Actions issued"
    assert labels.words("webhook_url") == "Webhook URL"
    assert labels.audit_action("workflow.activated") == "Workflow activated"
    assert labels.actor({"kind": "operator", "name": "operator"}) == "operator"
    assert labels.actor({"kind": "token", "name": "alice"}) == "alice (token)"
    assert labels.plural(1, "run") == "1 run" and labels.plural(2, "run") == "2 runs"
    # every template's environment has them
    assert {"trigger", "action", "op", "words", "audit_action", "actor"} <= set(templates.filters)


def test_a_run_and_the_runs_table_use_the_same_names() -> None:
    page = text_of(rendered("run.html", "plain words"))
    assert "Action 1: Send Email" in page and "Trigger Record Created" in page
    assert "Operator = " not in page and " eq " not in page  # the condition's op is "="
    table = text_of(rendered("runs_table.html", "plain words"))
    assert "1. Send Email: Failed" in table and "send email" not in table.casefold().replace(
        "send email:", ""
    )


def test_the_settings_tab_says_send_slack_message_and_webhook_url() -> None:
    workflow = {
        "id": "wf-1",
        "name": "Deals to Slack",
        "status": "active",
        "version": 2,
        "tenant_id": "t-1",
        "trigger": {"type": "pipeline_stage_changed", "record_type": "deal"},
        "conditions": {"all": [{"field": "amount", "op": "gte", "value": 1000}]},
        "actions": [
            {"type": "send_slack_message", "webhook_url": "https://hooks.example", "text": "x"}
        ],
    }
    page = render("workflow_settings.html", workflow=workflow, tab="settings")
    assert "Action 1: Send Slack Message" in page and "Webhook URL" in page
    assert "Pipeline Stage Changed" in page and "amount ≥ 1000" in page
    assert "Send slack message" not in page and "Webhook url" not in page


def test_the_test_result_shows_names_not_ids() -> None:
    answer = {
        "outcome": "actions_issued",
        "emitted": False,
        "trigger": {"type": "pipeline_stage_changed", "matched": True, "reason": "moved"},
        "conditions": [
            {"field": "amount", "op": "gte", "expected": 1000, "actual": 1200, "passed": True}
        ],
        "commands": [{"type": "send_slack_message", "params": {"text": "won"}}],
    }
    html = templates.get_template("builder_test.html").render(
        outcome=SimpleNamespace(test=answer), group_labels=labels.GROUPS
    )
    shown = text_of(html.split("<details>")[0])  # the whole answer, below, is the raw JSON
    assert "Result: Actions issued" in shown and "Pipeline Stage Changed: matched" in shown
    assert "Send Slack Message" in shown and "amount ≥ 1000" in shown.replace("  ", " ")
    for raw in ("actions_issued", "pipeline_stage_changed", "send_slack_message", "gte"):
        assert raw not in shown, raw


def test_the_audit_log_says_what_happened_in_words() -> None:
    events = [
        {
            "at": "2026-12-01T10:00:00Z",
            "actor": {"kind": "operator", "name": "operator"},
            "action": "workflow.activated",
            "subject_type": "workflow",
            "subject_id": "wf-1",
            "after": {"name": "Welcome"},
            "version": 2,
        }
    ]
    page = render("audit.html", events=events, subject="", older=None)
    assert "Workflow activated" in page and "workflow.activated" not in page
    assert "operator (operator)" not in page


def why(**not_triggered: Any) -> dict[str, Any]:
    return {
        "record": {"type": "lead", "id": "L-1"},
        "summary": "no workflow's trigger matched any event of lead 'L-1' in the run history",
        "events": [
            {
                "event_id": "evt-1",
                "operation": "updated",
                "occurred_at": "2026-12-01T10:00:00Z",
                "runs": [],
                "not_triggered": [
                    {
                        "workflow_id": "wf-1",
                        "workflow_name": "Welcome",
                        "trigger": "record_created",
                        "reason": "its trigger matches this event",
                        **not_triggered,
                    }
                ],
                "not_triggered_omitted": 0,
            }
        ],
        "active_workflows": [],
    }


def test_why_has_its_own_badge_for_a_workflow_that_was_not_active_then() -> None:
    page = render("why.html", answer=why(matched=True), record_type="lead", record_id="L-1")
    assert "not active then" in page and "trigger did not fire" not in page
    assert "(Record Created)" in page
    page = render("why.html", answer=why(matched=False), record_type="lead", record_id="L-1")
    assert "trigger did not fire" in page and "not active then" not in page


def test_why_s_summary_starts_as_a_sentence() -> None:
    page = render("why.html", answer=why(), record_type="lead", record_id="L-1")
    assert "No workflow's trigger matched" in page and "no workflow's" not in page
