"""Update Field: set one field of the record that triggered the run."""

from __future__ import annotations

from actions.params import ActionParams, ActionType, JsonWithMergeFields
from topics.types import FieldPath


class UpdateField(ActionParams):
    field: FieldPath
    value: JsonWithMergeFields = None


ACTION = ActionType("update_field", UpdateField, "Update a field")
