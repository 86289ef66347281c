"""Create Task: a task in the CRM, e.g. "Follow-up call", due a relative time after the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from actions.params import ActionParams, ActionType, Line, Ref, Text
from topics.types import Duration, parse_duration


class CreateTask(ActionParams):
    title: Line
    assignee: Ref | None = None
    due_in: Duration | None = None
    description: Text | None = None
    priority: Literal["low", "normal", "high"] = "normal"

    def command_params(self, anchor: datetime) -> dict[str, Any]:
        params = self.model_dump(mode="json", exclude_none=True, exclude={"due_in"})
        if self.due_in is not None:
            params["due_at"] = anchor + parse_duration(self.due_in)
        return params


ACTION = ActionType("create_task", CreateTask, "Create a task")
