"""Add to Sequence: enrol the record in a sales sequence."""

from __future__ import annotations

from actions.params import ActionParams, ActionType, Ref


class AddToSequence(ActionParams):
    sequence_id: Ref
    sender_id: Ref | None = None


ACTION = ActionType("add_to_sequence", AddToSequence, "Add to a sequence")
