"""What every part of one worker is handed: its settings, clock and workflows, the admin API's
projections, the decodes its readers of one topic share, and the counts it keeps. Which parts a
worker runs (for ``/health`` and the dev reporter) is the app's to know:
``processor.app.Parts``."""

from __future__ import annotations

from dataclasses import dataclass, field

from coeflow.clock import Clock
from coeflow.settings import Settings
from processor.core.catalog import WorkflowCatalog
from processor.projections import AdminViews
from processor.replica import DefinitionsReplica
from processor.shared_decoding import SharedDecodes
from processor.stats import Stats


@dataclass
class Runtime:
    settings: Settings
    catalog: WorkflowCatalog
    replica: DefinitionsReplica
    clock: Clock
    admin: AdminViews | None = None
    """What the admin API reads besides workflows; present with the api role."""
    stats: Stats = field(default_factory=Stats)
    decodes: SharedDecodes = field(default_factory=SharedDecodes)
    """What the readers of one topic in this worker decode once for each other (the replicas of
    runs and outcomes and the run tracker)."""
