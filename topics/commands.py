"""ActionCommand: one action to perform (topics ``workflow.actions.<type>``, keyed by action id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from topics.events import Causation, RecordRef


class ActionIdentity(BaseModel):
    """Which action of which run: what a command and the outcomes of its attempts share."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_version: int
    step: int
    type: str
    record: RecordRef


class ActionCommand(ActionIdentity):
    params: dict[str, Any]
    causation: Causation
    issued_at: datetime
