"""The names every page shows for the registries' ids: one set of display names, made from
the registries (trigger kinds, action types, operators) and the builder's labels
(``processor/web/forms.py``), so the builder, a run, "Why didn't it run?", a test's result,
the Settings tab, the runs tables and the audit log say the same thing.

Installed on the pages' Jinja environment as filters (``{{ run.trigger|trigger }}``) and
globals (``{{ plural(2, "run") }}``)."""

from __future__ import annotations

from typing import Any

import jinja2

from processor.core.operators import REGISTRY as OPERATORS
from processor.web import forms

_TRIGGERS = {c.value: c.label for c in forms.trigger_choices()}
_ACTIONS = {c.value: c.label for c in forms.action_choices()}
_OPERATORS = {name: forms.operator_label(op) for name, op in OPERATORS.items()}
GROUPS = {"all": "All of these", "any": "Any of these", "not": "Not this"}
"""A condition group's name (the builder's and a run's)."""
DIFFERENCES = {
    "started": "a run in one only",
    "status": "another status",
    "actions": "other actions",
    "params": "other parameters",
}
"""How a backtest's two outcomes of one event differ (``topics.backtests.Difference``)."""
BACKTEST_STATES = {
    "queued": "Queued",
    "running": "Running",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
"""A backtest's state (``topics.backtests.BacktestState``)."""


def words(name: Any) -> str:
    """An id in words, as the builder labels its controls: ``actions_issued`` → "Actions
    issued", ``webhook_url`` → "Webhook URL"."""
    return forms.label_of(str(name).replace("-", "_").replace(".", "_"))


def trigger(name: Any) -> str:
    """A trigger kind as the builder offers it: ``pipeline_stage_changed`` → "Pipeline
    Stage Changed"."""
    return _TRIGGERS.get(str(name)) or words(name)


def action(name: Any) -> str:
    """An action type as the builder offers it: ``send_slack_message`` → "Send Slack
    Message"."""
    return _ACTIONS.get(str(name)) or words(name)


def operator(name: Any) -> str:
    """An operator as the builder's select shows it: ``gte`` → "≥", ``in`` → "is one of"."""
    return _OPERATORS.get(str(name), str(name))


def group(name: Any) -> str:
    return GROUPS.get(str(name), str(name))


def difference(name: Any) -> str:
    return DIFFERENCES.get(str(name)) or words(name)


def backtest_state(name: Any) -> str:
    return BACKTEST_STATES.get(str(name)) or words(name)


def audit_action(name: Any) -> str:
    """An audit log entry's action: ``workflow.activated`` → "Workflow activated",
    ``workflow.secret_rotated`` → "Workflow secret rotated"."""
    return words(name).replace(" ID", " id") if name else ""


def actor(value: Any) -> str:
    """Who made a change: its name, and its kind when that says more (not "operator
    (operator)")."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    name, kind = str(value.get("name") or ""), str(value.get("kind") or "")
    if not kind or kind == name:
        return name or kind
    return f"{name} ({kind})"


def sentence(text: Any) -> str:
    """A message as a sentence: its first letter upper-case."""
    shown = "" if text is None else str(text)
    return shown[:1].upper() + shown[1:]


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``plural(1, "run")`` → "1 run", ``plural(2, "run")`` → "2 runs"."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


FILTERS = {
    "words": words,
    "trigger": trigger,
    "action": action,
    "op": operator,
    "group": group,
    "difference": difference,
    "backtest_state": backtest_state,
    "audit_action": audit_action,
    "actor": actor,
    "sentence": sentence,
}


def install(environment: jinja2.Environment) -> None:
    environment.filters.update(FILTERS)
    environment.globals["plural"] = plural
