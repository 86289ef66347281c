"""ScheduledTick: one tick of a Scheduled workflow (topic ``workflow.schedule-ticks``, keyed by
workflow id). The worker that owns a workflow's schedule publishes each tick once; the log of
ticks is also how any worker knows the last tick of a schedule after a restart."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from topics.types import EventTime, NonEmptyStr

SCHEDULE_RECORD_TYPE = "schedule"


class ScheduledTick(BaseModel):
    model_config = ConfigDict(frozen=True)

    workflow_id: NonEmptyStr
    tenant_id: NonEmptyStr
    scheduled_for: EventTime
    emitted_at: EventTime
    skipped: int = Field(default=0, ge=0)
    """Due ticks that were missed while no worker ran and are covered by this one (counted up
    to ``processor.core.schedule.MAX_CATCH_UP``)."""

    @property
    def event_id(self) -> str:
        return f"tick:{self.workflow_id}:{self.scheduled_for.isoformat()}"

    @property
    def late_by(self) -> float:
        return (self.emitted_at - self.scheduled_for).total_seconds()
