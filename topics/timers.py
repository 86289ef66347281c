"""Timer: a durable event-time timer (topic ``workflow.timers``, compacted, keyed by timer key;
a null value cancels). When it is due, the worker that owns it publishes it to
``workflow.timer-fires`` (keyed by record id) and cancels it; the processor runs the workflows
waiting for it. Its ``fire_id`` names the occasion (an invoice and one due date), so a timer
fired twice after a crash yields the same runs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from topics.types import EventTime, NonEmptyStr

Name = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
"""A timer's key or fire id: made of a tenant, a record and a workflow id, each up to 256."""


class Timer(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: Name
    kind: NonEmptyStr
    tenant_id: NonEmptyStr
    record_type: NonEmptyStr
    record_id: NonEmptyStr
    due_at: EventTime
    fire_id: Name
    record: dict[str, Any]
    """The record as it was when the timer was armed: what the runs see."""
    workflow_id: NonEmptyStr | None = None
    """The one workflow this timer runs (a stalled record); ``None``: every active workflow of
    its tenant waiting for its kind (an overdue invoice)."""
    fired_at: EventTime | None = None
