"""Assign Owner: make a user the owner of the record."""

from __future__ import annotations

from actions.params import ActionParams, ActionType, Ref


class AssignOwner(ActionParams):
    owner_id: Ref


ACTION = ActionType("assign_owner", AssignOwner, "Assign an owner")
