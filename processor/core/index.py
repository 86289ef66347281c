"""The index of active workflows by (tenant, record type, trigger kind).

An event costs one lookup for its (tenant, record type), then one for the candidates of its
operation, kept ready for each pair as workflows come and go: the work per event follows the
workflows that could match it, never the number of unrelated workflows.
"""

from __future__ import annotations

from collections.abc import Sequence

from processor.core.compiler import CompiledWorkflow
from processor.core.triggers import KINDS_BY_OPERATION
from topics.events import ChangeEvent

Bucket = dict[str, tuple[CompiledWorkflow, ...]]


class WorkflowIndex:
    def __init__(self) -> None:
        self._by_record_type: dict[tuple[str, str], Bucket] = {}
        self._by_operation: dict[tuple[str, str], Bucket] = {}
        """Per (tenant, record type): operation → the workflows whose kind can fire on it."""
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
        self._sort_by_operation((tenant, record_type))

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
        self._sort_by_operation((tenant, record_type))

    def _sort_by_operation(self, pair: tuple[str, str]) -> None:
        kinds = self._by_record_type.get(pair)
        if not kinds:
            self._by_operation.pop(pair, None)
            return
        self._by_operation[pair] = {
            operation: tuple(c for kind in of_operation for c in kinds.get(kind, ()))
            for operation, of_operation in KINDS_BY_OPERATION.items()
        }

    def of_kind(self, tenant: str, record_type: str, kind: str) -> tuple[CompiledWorkflow, ...]:
        """Active workflows of one tenant, record type and trigger kind (timers, schedules)."""
        kinds = self._by_record_type.get((tenant, record_type))  # asked twice per change
        return kinds.get(kind, ()) if kinds else ()

    def kinds_of(self, tenant: str, record_type: str) -> Bucket | None:
        """The active workflows of one tenant and record type by trigger kind, or ``None``:
        the one lookup the hot path makes for an event that nothing watches."""
        return self._by_record_type.get((tenant, record_type))

    def candidates(self, event: ChangeEvent) -> Sequence[CompiledWorkflow]:
        """Active workflows of the event's tenant and record type whose trigger kind can fire
        on the event's operation (in the order of ``KINDS_BY_OPERATION``)."""
        by_operation = self._by_operation.get((event.tenant_id, event.record_type))
        return by_operation.get(event.operation, ()) if by_operation else ()
