"""The index of active workflows by (tenant, record type, trigger kind).

An event costs one lookup for its (tenant, record type), then one per trigger kind that can
fire on its operation: the work per event follows the workflows that could match it, never
the number of unrelated workflows.
"""

from __future__ import annotations

from processor.core.compiler import CompiledWorkflow
from processor.core.triggers import KINDS_BY_OPERATION
from topics.events import ChangeEvent

Bucket = dict[str, tuple[CompiledWorkflow, ...]]


class WorkflowIndex:
    def __init__(self) -> None:
        self._by_record_type: dict[tuple[str, str], Bucket] = {}
        self._where: dict[str, tuple[str, str, str]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def put(self, compiled: CompiledWorkflow) -> None:
        """Index ``compiled`` if active (replacing any earlier version), else drop it."""
        self.remove(compiled.id)
        if not compiled.active:
            return
        tenant, record_type = compiled.workflow.tenant_id, compiled.trigger.record_type
        kinds = self._by_record_type.setdefault((tenant, record_type), {})
        kinds[compiled.kind.name] = (*kinds.get(compiled.kind.name, ()), compiled)
        self._where[compiled.id] = (tenant, record_type, compiled.kind.name)

    def remove(self, workflow_id: str) -> None:
        where = self._where.pop(workflow_id, None)
        if where is None:
            return
        tenant, record_type, kind = where
        kinds = self._by_record_type[(tenant, record_type)]
        remaining = tuple(c for c in kinds[kind] if c.id != workflow_id)
        if remaining:
            kinds[kind] = remaining
        else:
            del kinds[kind]
            if not kinds:
                del self._by_record_type[(tenant, record_type)]

    def of_kind(self, tenant: str, record_type: str, kind: str) -> tuple[CompiledWorkflow, ...]:
        """Active workflows of one tenant, record type and trigger kind (timers, schedules)."""
        kinds = self._by_record_type.get((tenant, record_type))  # asked twice per change
        return kinds.get(kind, ()) if kinds else ()

    def kinds_of(self, tenant: str, record_type: str) -> Bucket | None:
        """The active workflows of one tenant and record type by trigger kind, or ``None``:
        the one lookup the hot path makes for an event that nothing watches."""
        return self._by_record_type.get((tenant, record_type))

    def candidates(self, event: ChangeEvent, kinds: Bucket | None = None) -> list[CompiledWorkflow]:
        """Active workflows of the event's tenant and record type (``kinds``, when the caller
        has looked them up) whose trigger kind can fire on the event's operation."""
        if kinds is None:
            kinds = self._by_record_type.get((event.tenant_id, event.record_type))
        if not kinds:
            return []
        found: list[CompiledWorkflow] = []
        for kind in KINDS_BY_OPERATION[event.operation]:
            of_kind = kinds.get(kind)
            if of_kind:
                found.extend(of_kind)
        return found
