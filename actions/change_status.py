"""Change Status: set the record's ``status`` field."""

from __future__ import annotations

from actions.params import ActionParams, ActionType, Ref


class ChangeStatus(ActionParams):
    status: Ref


ACTION = ActionType("change_status", ChangeStatus, "Change the status")
