"""The index of active workflows by (tenant, record type, trigger kind).

An event costs one lookup for its (tenant, record type) (``watching``), which gives both the
workflows by trigger kind and the candidates of each operation, kept ready for each pair as
workflows come and go: the work per event follows the workflows that could match it, never
the number of unrelated workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from processor.core.compiler import CompiledWorkflow
from processor.core.triggers import KINDS_BY_OPERATION
from topics.events import ChangeEvent

Bucket = dict[str, tuple[CompiledWorkflow, ...]]


class Watching(NamedTuple):
    """What watches one (tenant, record type), both ways an event needs it: one lookup."""

    kinds: Bucket
    """Trigger kind → the active workflows of that kind."""
    by_operation: Bucket
    """Operation → the active workflows whose kind can fire on it."""


class WorkflowIndex:
    def __init__(self) -> None:
        self._watching: dict[tuple[str, str], Watching] = {}
        """(tenant, record type) → what watches it; each replaced whole when a workflow of
        the pair comes or goes, never changed in place."""
        self._where: dict[str, tuple[str, str, str]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def put(self, compiled: CompiledWorkflow) -> None:
        """Index ``compiled`` if active (replacing any earlier version), else drop it."""
        self.remove(compiled.id)
        if not compiled.active:
            return
        pair = (compiled.workflow.tenant_id, compiled.trigger.record_type)
        kinds = self._kinds(pair)
        kinds[compiled.kind.name] = (*kinds.get(compiled.kind.name, ()), compiled)
        self._where[compiled.id] = (*pair, compiled.kind.name)
        self._watch(pair, kinds)

    def remove(self, workflow_id: str) -> None:
        where = self._where.pop(workflow_id, None)
        if where is None:
            return
        tenant, record_type, kind = where
        kinds = self._kinds((tenant, record_type))
        remaining = tuple(c for c in kinds[kind] if c.id != workflow_id)
        if remaining:
            kinds[kind] = remaining
        else:
            del kinds[kind]
        self._watch((tenant, record_type), kinds)

    def _kinds(self, pair: tuple[str, str]) -> Bucket:
        """A copy of the pair's workflows by kind, to change and ``_watch``."""
        watching = self._watching.get(pair)
        return dict(watching.kinds) if watching else {}

    def _watch(self, pair: tuple[str, str], kinds: Bucket) -> None:
        if not kinds:
            self._watching.pop(pair, None)
            return
        by_operation = {
            operation: tuple(c for kind in of_operation for c in kinds.get(kind, ()))
            for operation, of_operation in KINDS_BY_OPERATION.items()
        }
        self._watching[pair] = Watching(kinds, by_operation)

    def of_kind(self, tenant: str, record_type: str, kind: str) -> tuple[CompiledWorkflow, ...]:
        """Active workflows of one tenant, record type and trigger kind (timers, schedules)."""
        watching = self._watching.get((tenant, record_type))  # asked twice per change
        return watching.kinds.get(kind, ()) if watching else ()

    def watching(self, tenant: str, record_type: str) -> Watching | None:
        """What watches one tenant's record type, or ``None``: the one lookup the hot path
        makes for an event (an event that nothing watches costs no more)."""
        return self._watching.get((tenant, record_type))

    def candidates(self, event: ChangeEvent) -> Sequence[CompiledWorkflow]:
        """Active workflows of the event's tenant and record type whose trigger kind can fire
        on the event's operation (in the order of ``KINDS_BY_OPERATION``): what
        ``process_change`` takes from ``watching``, for a caller with one event."""
        watching = self._watching.get((event.tenant_id, event.record_type))
        return watching.by_operation.get(event.operation, ()) if watching else ()
