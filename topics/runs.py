"""RunRecord: what one workflow did with one event (topic ``workflow.runs``, keyed by run id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from topics.events import ChangeEvent, RecordRef

RunStatus = Literal[
    "actions_issued",
    "conditions_not_met",
    "loop_blocked",
    "failed",
    "succeeded",
    "partially_failed",
]
"""The processor decides the first four; once every issued action has a final outcome, the
run tracker publishes the run again as ``succeeded``, ``partially_failed`` or ``failed``."""
StepStatus = Literal["pending", "retrying", "succeeded", "failed"]


class SourcePosition(BaseModel):
    """Where a message was read: enough to find it again in Kafka."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int


class ConditionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    op: str
    expected: Any = None
    actual: Any = None
    passed: bool


class IssuedAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: int
    type: str
    action_id: str
    params: dict[str, Any] | None = None
    """The rendered parameters, as the command carries them."""
    status: StepStatus = "pending"
    attempts: int = 0
    detail: str | None = None
    error: str | None = None


class RunRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_version: int
    workflow_name: str
    event_id: str
    record: RecordRef
    trigger: str
    status: RunStatus
    conditions: list[ConditionResult]
    actions: list[IssuedAction]
    error: str | None = None
    depth: int
    source: SourcePosition | None = None
    occurred_at: datetime
    decided_at: datetime
    completed_at: datetime | None = None
    note: str | None = None
    """Anything unusual about when the run happened (a scheduled tick that ran late)."""
    event: ChangeEvent | None = None
    """The event that triggered the run, for the run history."""
