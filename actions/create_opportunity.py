"""Create Opportunity: a deal in the CRM, optionally closing a relative time after the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from actions.params import ActionParams, ActionType, Line, Ref
from topics.types import Duration, parse_duration


class CreateOpportunity(ActionParams):
    name: Line
    amount: float | None = Field(default=None, ge=0)
    currency: Ref | None = None
    stage: Ref | None = None
    owner_id: Ref | None = None
    close_in: Duration | None = None

    def command_params(self, anchor: datetime) -> dict[str, Any]:
        params = self.model_dump(mode="json", exclude_none=True, exclude={"close_in"})
        if self.close_in is not None:
            params["close_at"] = anchor + parse_duration(self.close_in)
        return params


ACTION = ActionType("create_opportunity", CreateOpportunity, "Create an opportunity")
