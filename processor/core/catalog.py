"""The materialised ``workflow.definitions`` topic: every workflow's latest snapshot.

Fed one record at a time, in topic order, by whatever reads the topic (the replica in the
worker, a test directly). Active workflows are compiled into the index as they arrive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from coeflow.errors import InvalidWorkflow, problems_from
from coeflow.redact import without_values
from processor.core.compiler import CompiledWorkflow, compile_workflow
from processor.core.index import WorkflowIndex
from topics import codec
from topics.workflows import Workflow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A snapshot on the topic that this release cannot run; the workflow is not running."""

    workflow_id: str
    reason: str


class WorkflowCatalog:
    def __init__(self) -> None:
        self._workflows: dict[str, CompiledWorkflow] = {}
        self.index = WorkflowIndex()
        self.rejected: dict[str, Rejected] = {}
        self.scheduled: dict[str, CompiledWorkflow] = {}
        """Active Scheduled workflows: what the scheduler looks at every second."""

    def __len__(self) -> int:
        return len(self._workflows)

    def get(self, workflow_id: str) -> Workflow | None:
        compiled = self._workflows.get(workflow_id)
        return compiled.workflow if compiled else None

    def compiled(self, workflow_id: str) -> CompiledWorkflow | None:
        return self._workflows.get(workflow_id)

    def workflows(self, tenant_id: str | None = None) -> Iterator[Workflow]:
        for compiled in self._workflows.values():
            if tenant_id is None or compiled.workflow.tenant_id == tenant_id:
                yield compiled.workflow

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the definitions topic: a snapshot, or a tombstone that deletes."""
        workflow_id = key.decode("utf-8", "replace") if key is not None else ""
        if value is None:
            self._forget(workflow_id)
            return
        try:
            workflow = codec.decode(value, Workflow)
            if workflow.id != workflow_id:
                raise ValueError(
                    f"key {workflow_id!r} differs from the snapshot's id {workflow.id!r}"
                )
            compiled = compile_workflow(workflow)
        except ValidationError as exc:
            self._reject(workflow_id, "; ".join(str(p) for p in problems_from(exc)))
        except (InvalidWorkflow, ValueError) as exc:
            self._reject(workflow_id, str(exc))
        else:
            self.put(compiled)

    def put(self, compiled: CompiledWorkflow) -> None:
        self.rejected.pop(compiled.id, None)
        self._workflows[compiled.id] = compiled
        self.index.put(compiled)
        if compiled.kind.name == "scheduled" and compiled.active:
            self.scheduled[compiled.id] = compiled
        else:
            self.scheduled.pop(compiled.id, None)

    def _forget(self, workflow_id: str) -> None:
        self.rejected.pop(workflow_id, None)
        self._workflows.pop(workflow_id, None)
        self.scheduled.pop(workflow_id, None)
        self.index.remove(workflow_id)

    def _reject(self, workflow_id: str, reason: str) -> None:
        log.error(
            "workflow %r on the definitions topic cannot run: %s",
            workflow_id,
            without_values(reason),
        )
        self._forget(workflow_id)
        self.rejected[workflow_id] = Rejected(workflow_id, reason)
