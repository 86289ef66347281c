"""RecordState: the latest snapshot of a record, with when each of its fields last changed.

The value of the processor's ``record-state`` table (its changelog topic is
``<app id>-record-state-changelog``, compacted, keyed by ``tenant/record type/record id``).
Time-based triggers read it: a stalled record is one whose field has not changed for a while.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict


class RecordState(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    record_type: str
    record_id: str
    fields: dict[str, Any]
    changed_at: dict[str, AwareDatetime]
    """Top-level field → the ``occurred_at`` of the change that last gave it its value."""
    updated_at: AwareDatetime
    """The ``occurred_at`` of the last change applied."""
    offset: int
    """Where the last change applied was read in ``crm.record-changes`` (a record's changes
    share one partition): a change read again after a restart is not applied twice."""
