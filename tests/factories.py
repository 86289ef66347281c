"""Builders for test data: a valid event or workflow, changed only where a test says so."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from coeflow.tools.demo import WELCOME_WORKFLOW
from topics.commands import ActionCommand
from topics.events import ChangeEvent
from topics.records import RecordState
from topics.runs import SourcePosition
from topics.workflows import Workflow

_ids = itertools.count(1)

Factory = Callable[..., Any]
"""The type of the ``event_factory`` and ``workflow_factory`` fixtures."""

NOW = datetime(2026, 11, 25, 19, 0, 1, tzinfo=UTC)
"""The decision time that unit tests pass to the core."""


def source(offset: int = 0) -> SourcePosition:
    """Where a test's event was "read"."""
    return SourcePosition(topic="crm.record-changes", partition=0, offset=offset)


SEED_WORKFLOW: dict[str, Any] = {**WELCOME_WORKFLOW, "version": 1}

LEAD = {"name": "Ada", "email": "ada@example.com", "score": 72, "owner_id": "u-7"}


def make_event(
    *,
    operation: str = "created",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    depth: int | None = None,
    **fields: Any,
) -> ChangeEvent:
    """A valid ChangeEvent; ``after`` defaults to the seed's lead on a create."""
    n = next(_ids)
    if after is None and operation != "deleted":
        after = dict(LEAD)
    document: dict[str, Any] = {
        "event_id": f"evt-{n}",
        "tenant_id": "acme",
        "record_type": "lead",
        "record_id": f"L-{n}",
        "operation": operation,
        "occurred_at": datetime(2026, 11, 25, 19, 0, tzinfo=UTC),
        "before": before,
        "after": after,
        "actor_id": "u-7",
        "causation": None
        if depth is None
        else {"run_id": "run-0", "workflow_id": "wf-0", "depth": depth},
    }
    document.update(fields)
    return ChangeEvent.model_validate(document)


def make_workflow(**overrides: Any) -> Workflow:
    """The seed workflow (active), with ``overrides`` applied on top."""
    return Workflow.model_validate({**SEED_WORKFLOW, **overrides})


def make_command(action_type: str, params: dict[str, Any], **overrides: Any) -> ActionCommand:
    """An ActionCommand as the processor issues it; each call gets fresh run and action ids."""
    n = next(_ids)
    fields: dict[str, Any] = {
        "action_id": f"act-{n}",
        "run_id": f"run-{n}",
        "tenant_id": "acme",
        "workflow_id": "wf-welcome",
        "workflow_version": 1,
        "step": 0,
        "type": action_type,
        "params": params,
        "record": {"type": "lead", "id": "L-1"},
        "causation": {"run_id": f"run-{n}", "workflow_id": "wf-welcome", "depth": 1},
        "issued_at": NOW,
    }
    return ActionCommand.model_validate({**fields, **overrides})


def command_source(action_type: str, offset: int = 0) -> SourcePosition:
    """Where a test's command was "read"."""
    return SourcePosition(topic=f"workflow.actions.{action_type}", partition=0, offset=offset)


def no_state(key: str) -> RecordState | None:
    """A record store that has seen nothing (for ``process_change``)."""
    return None
