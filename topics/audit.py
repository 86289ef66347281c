"""AuditEvent: who changed what (topic ``workflow.audit``, append-only, keyed by tenant id).

One event per create, update, activate, deactivate, delete and secret rotation of a workflow
and per token created or revoked, with the state before and after. Secrets never appear:
a workflow's inbound webhook secrets show only when they were made and expire, a token only
its public view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

AuditAction = Literal[
    "workflow.created",
    "workflow.updated",
    "workflow.activated",
    "workflow.deactivated",
    "workflow.secret_rotated",
    "workflow.deleted",
    "token.created",
    "token.revoked",
]


class Actor(BaseModel):
    """Who made a change: the operator's token, a tenant's token, or the product itself (the
    demo loading its workflows)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["operator", "token", "system"]
    token_id: str | None = None
    name: str


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    audit_id: str
    at: datetime
    actor: Actor
    tenant_id: str
    action: AuditAction
    subject_type: Literal["workflow", "token"]
    subject_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
