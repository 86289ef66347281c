"""Create Case: a support case in the CRM."""

from __future__ import annotations

from typing import Literal

from actions.params import ActionParams, ActionType, Line, Ref, Text


class CreateCase(ActionParams):
    subject: Line
    description: Text | None = None
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    assignee: Ref | None = None


ACTION = ActionType("create_case", CreateCase, "Create a case")
