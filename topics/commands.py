"""ActionCommand: one action to perform (topics ``workflow.actions.<type>``, keyed by action id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from topics.events import Causation, RecordRef


class ActionCommand(BaseModel):
    model_config = ConfigDict(frozen=True)

    action_id: str
    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_version: int
    step: int
    type: str
    params: dict[str, Any]
    record: RecordRef
    causation: Causation
    issued_at: datetime
