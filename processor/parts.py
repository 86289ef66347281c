"""Which parts one worker runs, for what reports on them: ``/health`` and `coeflow dev`'s
progress line. Kept apart from the ``Runtime`` every part is handed, so that no part needs to
know the others."""

from __future__ import annotations

from dataclasses import dataclass

from processor.changes import ChangeProcessor
from processor.executor_agents import ExecutorRole


@dataclass
class Parts:
    """The parts a worker runs, for what reports on them (``/health``, `coeflow dev`'s progress
    line); the parts themselves are handed the ``Runtime``."""

    changes: ChangeProcessor | None = None
    """Present with the processor role."""
    executors: ExecutorRole | None = None
    """Present with the executors role."""
