"""The record state of the partitions this worker processes: each record's latest snapshot,
kept per partition of ``crm.record-changes`` with its changelog,
``<app id>-record-state-changelog`` (compacted, keyed by ``tenant/record type/record id``)."""

from __future__ import annotations

from typing import cast

from coeflow.settings import Settings
from processor.core.pipeline import Outbound, StateOf
from processor.core.records import StateChange
from processor.stores import ChangelogStore
from topics import codec
from topics.catalog import record_state_changelog
from topics.records import RecordState


class RecordStates(ChangelogStore):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, record_state_changelog(settings.app_id), "record-state")

    def of(self, partition: int) -> StateOf:
        """The state lookup of one partition, for ``process_change``."""
        store = self.partition(partition)

        def state_of(key: str) -> RecordState | None:
            encoded = store.get(key.encode())  # written by this path: parsed, not validated
            return cast(RecordState, codec.loads(encoded)) if encoded is not None else None

        return state_of

    def apply(self, partition: int, change: StateChange) -> Outbound:
        """Keep ``change`` and return its changelog message."""
        if change.state is None:
            return self.put(partition, change.key.encode(), None)
        return self.put(partition, change.key.encode(), codec.dumps(change.state))
