"""InboundDelivery: a verified POST to a workflow's inbound webhook URL (topic
``workflow.inbound-webhooks``, keyed by workflow id, so one workflow's deliveries stay in order).

Only deliveries whose signature, timestamp, size and delivery id were checked reach the topic;
the processor turns each into a run of that one workflow, with the payload as the record.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from topics.types import EventTime, NonEmptyStr

WEBHOOK_RECORD_TYPE = "webhook"
"""The record type of a run triggered by a delivery: its record is the payload."""


class InboundDelivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery_id: NonEmptyStr
    workflow_id: NonEmptyStr
    tenant_id: NonEmptyStr
    signed_at: EventTime
    received_at: EventTime
    payload: dict[str, Any]
    signature: str | None = None
    """What was signed: ``t`` and the SHA-256 of the body. A delivery sent again under another
    id (the id is not signed) carries the same, whichever secret it is signed with."""

    @property
    def event_id(self) -> str:
        """One event per delivery: a repeated delivery gives the same run id."""
        return f"webhook:{self.workflow_id}:{self.delivery_id}"
