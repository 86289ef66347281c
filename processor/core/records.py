"""Record state (pure): when each field of a record last changed.

``apply_change`` folds one change into a record's state. Changes of one record arrive in order
on one partition, so the offset of the last change applied tells a change read again after a
restart (at-least-once) from a new one: that one changes nothing, and nothing is armed twice.

Fields are tracked at the top level: ``changed_at["owner"]`` moves when any part of ``owner``
does. Whether a field changed is read from the event's own ``before`` and ``after``, so the
state keeps no copy of the record. A record first seen through an update has no history: its
unchanged fields count from that update. A ``created`` event starts the record afresh.

A state is kept only for the (tenant, record type) pairs that a ``record_stalled`` workflow
watches (the pipeline asks the index), so it says which watched (``watch``): a state written
under other watchers may have missed changes while nobody watched, and counts as none (the
record is seen afresh at this change). A change read again is still not applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from processor.core.compiler import CompiledWorkflow
from topics.events import ChangeEvent
from topics.records import RecordState


class StateChange(NamedTuple):
    """One per change: a named tuple costs less to make than a frozen dataclass."""

    key: str
    prior: RecordState | None
    state: RecordState | None
    """``None``: the record was deleted."""


def state_key(tenant_id: str, record_type: str, record_id: str) -> str:
    return f"{tenant_id}/{record_type}/{record_id}"


def watch_of(waiting: Iterable[CompiledWorkflow]) -> str:
    """The ``watch`` of a state: the stall workflows of its record type, by id and version."""
    return " ".join(sorted(f"{c.id}@{c.workflow.version}" for c in waiting))


def apply_change(
    prior: RecordState | None, event: ChangeEvent, offset: int, watch: str = ""
) -> StateChange | None:
    """The state after ``event`` (read at ``offset``), or ``None`` if ``prior`` already holds it.
    ``watch`` (``watch_of``): a ``prior`` written under another counts as none."""
    if prior is not None and offset <= prior["offset"]:
        return None
    if prior is not None and prior.get("watch", "") != watch:
        prior = None  # written before a gap in which nobody kept it: it may have missed changes
    key = state_key(event.tenant_id, event.record_type, event.record_id)
    after = event.after
    if event.operation == "deleted" or after is None:
        return StateChange(key, prior, None)
    at = event.occurred_at.isoformat()
    changed_at = dict.fromkeys(after, at)
    before = event.before
    if prior is not None and before is not None and event.operation == "updated":
        since = prior["changed_at"]
        for name, value in after.items():
            if name in before and before[name] == value:
                changed_at[name] = since.get(name, at)
    state: RecordState = {"changed_at": changed_at, "updated_at": at, "offset": offset}
    if watch:
        state["watch"] = watch
    return StateChange(key, prior, state)
