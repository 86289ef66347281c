"""The messages of an admin change: the new definition, its immutable version, and the audit
event saying who did it. Pure: the API (and the demo) send what these return.

Audit ids are deterministic (subject, version, action), so a change sent twice after a
retry can be told apart from two changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from processor.core.pipeline import Outbound
from topics import codec
from topics.access import ApiToken
from topics.audit import Actor, AuditAction, AuditEvent
from topics.catalog import API_TOKENS, AUDIT, DEFINITIONS, WORKFLOW_VERSIONS
from topics.workflows import Workflow


def version_key(workflow_id: str, version: int) -> bytes:
    return f"{workflow_id}@{version}".encode()


def workflow_change(
    action: AuditAction,
    before: Workflow | None,
    after: Workflow | None,
    actor: Actor,
    at: datetime,
) -> list[Outbound]:
    """A saved workflow (``after``) or a deleted one (``after`` is ``None``): the definition
    first (the caller waits until its replica holds it), then the version, then the audit."""
    subject = after or before
    assert subject is not None
    if after is not None:
        value = codec.dumps(after)
        messages = [
            Outbound(DEFINITIONS, after.id.encode(), value),
            Outbound(WORKFLOW_VERSIONS, version_key(after.id, after.version), value),
        ]
        version = after.version
    else:
        messages = [Outbound(DEFINITIONS, subject.id.encode(), None)]
        version = subject.version
    event = AuditEvent(
        audit_id=f"workflow:{subject.id}:v{version}:{action}",
        at=at,
        actor=actor,
        tenant_id=subject.tenant_id,
        action=action,
        subject_type="workflow",
        subject_id=subject.id,
        before=_public_workflow(before),
        after=_public_workflow(after),
    )
    return [*messages, _audit(event)]


def token_change(
    action: AuditAction, before: ApiToken | None, after: ApiToken, actor: Actor, at: datetime
) -> list[Outbound]:
    """A created or revoked token: the token first, then the audit event."""
    event = AuditEvent(
        audit_id=f"token:{after.token_id}:{action}",
        at=at,
        actor=actor,
        tenant_id=after.tenant_id,
        action=action,
        subject_type="token",
        subject_id=after.token_id,
        before=before.view().model_dump(mode="json") if before is not None else None,
        after=after.view().model_dump(mode="json"),
    )
    return [Outbound(API_TOKENS, after.token_id.encode(), codec.dumps(after)), _audit(event)]


def _audit(event: AuditEvent) -> Outbound:
    return Outbound(AUDIT, event.tenant_id.encode(), codec.dumps(event))


def _public_workflow(workflow: Workflow | None) -> dict[str, Any] | None:
    """A workflow as the audit log shows it: inbound webhook secrets by their dates only."""
    if workflow is None:
        return None
    document: dict[str, Any] = workflow.model_dump(mode="json", by_alias=True)
    document["inbound_secrets"] = [
        {"created_at": s["created_at"], "expires_at": s["expires_at"]}
        for s in document["inbound_secrets"]
    ]
    return document
