"""Add Note: a note on the record's timeline."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from actions.params import ActionParams, ActionType, Text


class AddNote(ActionParams):
    body: Annotated[Text, StringConstraints(min_length=1)]


ACTION = ActionType("add_note", AddNote, "Add a note")
