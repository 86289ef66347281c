"""What the agents and API views of one worker share."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coeflow.clock import Clock
from coeflow.settings import Settings
from processor.core.catalog import WorkflowCatalog
from processor.replica import DefinitionsReplica

if TYPE_CHECKING:
    from processor.changes import ChangeProcessor
    from processor.executor_agents import ExecutorRole
    from processor.projections import AdminViews


@dataclass
class Stats:
    """What this worker has done since it started (shown by /health and `coeflow dev`):
    ``events`` counts every message that can run workflows (record changes, deliveries, ticks,
    fired timers)."""

    events: int = 0
    dead_letters: int = 0
    runs: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {"events": self.events, "dead_letters": self.dead_letters, "runs": dict(self.runs)}


@dataclass
class Runtime:
    """What the agents and API views of one worker share."""

    settings: Settings
    catalog: WorkflowCatalog
    replica: DefinitionsReplica
    clock: Clock
    executors: ExecutorRole | None = None
    """Present when this worker runs the executors role."""
    changes: ChangeProcessor | None = None
    """Present when this worker runs the processor role."""
    admin: AdminViews | None = None
    """What the admin API reads besides workflows; present with the processor role."""
    stats: Stats = field(default_factory=Stats)
