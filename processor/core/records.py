"""Record state (pure): the latest snapshot of each record, and when each field last changed.

``apply_change`` folds one change into a record's state. Changes of one record arrive in order
on one partition, so the offset of the last change applied tells a change read again after a
restart (at-least-once) from a new one: that one changes nothing, and nothing is armed twice.

Fields are tracked at the top level: ``changed_at["owner"]`` moves when any part of ``owner``
does. A record first seen through an update has no history: its unchanged fields count from
that update.
"""

from __future__ import annotations

from dataclasses import dataclass

from topics.events import ChangeEvent
from topics.records import RecordState


@dataclass(frozen=True, slots=True)
class StateChange:
    key: str
    prior: RecordState | None
    state: RecordState | None
    """``None``: the record was deleted."""


def state_key(tenant_id: str, record_type: str, record_id: str) -> str:
    return f"{tenant_id}/{record_type}/{record_id}"


def apply_change(prior: RecordState | None, event: ChangeEvent, offset: int) -> StateChange | None:
    """The state after ``event`` (read at ``offset``), or ``None`` if ``prior`` already holds it."""
    if prior is not None and offset <= prior["offset"]:
        return None
    key = state_key(event.tenant_id, event.record_type, event.record_id)
    if event.operation == "deleted" or event.after is None:
        return StateChange(key, prior, None)
    at = event.occurred_at.isoformat()
    changed_at = dict.fromkeys(event.after, at)
    if prior is not None:
        fields, since = prior["fields"], prior["changed_at"]
        for name, value in event.after.items():
            if name in fields and fields[name] == value:
                changed_at[name] = since.get(name, at)
    state: RecordState = {
        "tenant_id": event.tenant_id,
        "record_type": event.record_type,
        "record_id": event.record_id,
        "fields": event.after,
        "changed_at": changed_at,
        "updated_at": at,
        "offset": offset,
    }
    return StateChange(key, prior, state)
