"""What a worker has done since it started, and what its log says of each message: counts for
``/health`` and `coeflow dev`'s progress line, a line per dead letter and per crash, and with
``COEFLOW_LOG_RUNS`` a line per run (no value from a record: ``coeflow.redact``), at most
``RUN_LINES_PER_SECOND`` a second."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coeflow.redact import shown, without_values
from processor.core.pipeline import Outcome, Position, source_of
from topics.runs import RunRecord, SourcePosition

log = logging.getLogger(__name__)
run_log = logging.getLogger("coeflow.runs")


RUN_LINES_PER_SECOND = 20
"""Run lines a second at most; past that, a line a second counts the runs it did not show.
A person reads a few lines a second, and describing a run (validating its record, formatting,
writing the line) costs several times deciding it: with a line for every run, `coeflow dev`
given every-event-runs events ran at a fifth of its speed without."""


class RunLines:
    """Which runs get their own line: the first ``per_second`` of each second; the others
    are counted by status and said in one line once their second is over (``tick``, which the
    batched paths call between fetches, or the next run)."""

    def __init__(
        self, per_second: int = RUN_LINES_PER_SECOND, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second, self.clock = per_second, clock
        self._second = 0.0
        self._shown = 0
        self.unshown: Counter[str] = Counter()
        """Runs of the current second past the bound, by status."""

    def take(self, status: str) -> bool:
        """Whether a run of ``status`` gets its line now."""
        second = self.clock() // 1
        if second != self._second:
            self.flush()
            self._second, self._shown = second, 0
        if self._shown < self.per_second:
            self._shown += 1
            return True
        self.unshown[status] += 1
        return False

    def tick(self) -> None:
        """Say how many runs of a second that is over went without a line, if any did."""
        if self.unshown and self.clock() // 1 != self._second:
            self.flush()

    def flush(self) -> None:
        """Say how many runs went without a line, if any did."""
        if not self.unshown:
            return
        counts = ", ".join(f"{n:,} {status}" for status, n in self.unshown.most_common())
        total = sum(self.unshown.values())
        run_log.info(
            "%s more %s without a line of their own (%s): the log shows at most %d a second; "
            "the Runs tab and GET /api/v1/runs have the runs the history keeps",
            f"{total:,}",
            "run" if total == 1 else "runs",
            counts,
            self.per_second,
        )
        self.unshown.clear()


@dataclass
class Stats:
    """``events`` counts every message that can run workflows (record changes, deliveries,
    ticks, fired timers)."""

    log_runs: bool = False
    events: int = 0
    dead_letters: int = 0
    runs: Counter[str] = field(default_factory=Counter)
    run_lines: RunLines = field(default_factory=RunLines)
    """Which runs get a line of their own, with ``log_runs`` (the run tracker's too)."""

    def count(self, outcome: Outcome, at: Position) -> None:
        """Count what one message did, and say what an operator needs to hear of it."""
        self.events += 1
        runs, dead_letter = outcome.runs, outcome.dead_letter
        if not runs and dead_letter is None:
            return
        # A loop, not Counter.update of a generator and any() of another: once per event
        counts, crashed = self.runs, False
        for run in runs:
            counts[run.document["status"]] += 1
            if run.crash is not None:
                crashed = True
        if dead_letter is not None:
            self.dead_letters += 1
            _report(outcome, source_of(at))  # the position as the schema's, only to say it
        elif crashed or outcome.error is not None:
            _report(outcome, source_of(at))
        if self.log_runs:
            for done in outcome.runs:
                if not self.run_lines.take(done.status):
                    continue
                try:
                    line = describe_run(done.record)
                except ValueError:  # a run its model refuses: say so, never fail the batch
                    line = f"run {done.run_id}: {done.status} (its record does not validate)"
                run_log.info(line)

    def summary(self) -> dict[str, Any]:
        return {"events": self.events, "dead_letters": self.dead_letters, "runs": dict(self.runs)}


def _report(outcome: Outcome, source: SourcePosition) -> None:
    where = f"{source.topic}:{source.partition}@{source.offset}"
    if outcome.error is not None:
        log.error("dead-lettered %s", where, exc_info=outcome.error)
    elif outcome.dead_letter is not None:
        log.warning("dead-lettered %s: %s", where, without_values(outcome.dead_letter.error))
    for run in outcome.runs:
        if run.crash is not None:
            log.error(
                "run %s of workflow %s failed unexpectedly (%s)",
                run.run_id,  # from the document: validating it again could raise here
                run.document["workflow_id"],
                where,
                exc_info=run.crash,
            )


def describe_run(r: RunRecord) -> str:
    """One readable line per run, for the terminal of ``coeflow dev``: what happened and why,
    with no value from the record (``coeflow.redact``); the run record has them all."""
    head = (
        f"run {r.workflow_id} v{r.workflow_version} on {r.record.type} {r.record.id} "
        f"({r.trigger}): {r.status}"
    )
    if r.status == "actions_issued":
        return f"{head} → {', '.join(a.type for a in r.actions)}"
    if r.completed_at is not None:
        return f"{head}: " + ", ".join(
            f"{a.type} ✓"
            if a.status == "succeeded"
            else f"{a.type} ✗ {without_values(a.error or '')}"
            for a in r.actions
        )
    if r.status == "conditions_not_met":
        failed = [
            f"{c.field} {c.op} {c.expected!r} (was {shown(c.actual)})"
            for c in r.conditions
            if not c.passed
        ]
        return f"{head}: {'; '.join(failed)}"
    return f"{head}: {without_values(r.error or '')}"
