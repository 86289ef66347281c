"""A run's progress after its actions were issued, folded from run records and outcomes.

The processor publishes a run as ``actions_issued``; executors (and the CRM, for record
mutations) then publish one outcome per attempt. Both are keyed by run id, so they meet in one
partition, in either order. Once every issued action has a final outcome the run is complete,
and the run tracker publishes it again with its final status and each step's outcome.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from topics.outcomes import ActionOutcome, OutcomeStatus
from topics.runs import IssuedAction, RunRecord, RunStatus


class StepProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: OutcomeStatus
    attempts: int
    detail: str | None = None
    error: str | None = None
    at: datetime


class RunProgress(BaseModel):
    """What is known of one run until it completes (the run tracker's table value)."""

    model_config = ConfigDict(frozen=True)

    run: RunRecord | None = None
    steps: dict[int, StepProgress] = {}
    updated_at: datetime


def track(
    progress: RunProgress | None, item: RunRecord | ActionOutcome, now: datetime
) -> tuple[RunProgress | None, RunRecord | None]:
    """Fold ``item`` into ``progress``. Returns the progress to keep (``None``: nothing to
    keep) and, once the run is complete, the run record to publish."""
    if isinstance(item, RunRecord):
        if item.status != "actions_issued":  # decided without actions, or our own result
            return progress, None
        progress = RunProgress(run=item, steps=progress.steps if progress else {}, updated_at=now)
    else:
        steps = dict(progress.steps) if progress else {}
        current = steps.get(item.step)
        if current is None or _newer(item, current):
            steps[item.step] = StepProgress(
                status=item.status,
                attempts=item.attempt,
                detail=item.detail,
                error=item.error,
                at=item.at,
            )
        progress = RunProgress(run=progress.run if progress else None, steps=steps, updated_at=now)
    completed = complete(progress)
    return (None, completed) if completed is not None else (progress, None)


def _newer(outcome: ActionOutcome, current: StepProgress) -> bool:
    if current.status in ("succeeded", "failed"):
        return False  # a final outcome stays; a repeat cannot undo it
    return outcome.final or outcome.attempt >= current.attempts


def complete(progress: RunProgress) -> RunRecord | None:
    """The run's final record, if every issued action has a final outcome."""
    run = progress.run
    if run is None:
        return None
    steps = []
    for action in run.actions:
        step = progress.steps.get(action.step)
        if step is None or step.status not in ("succeeded", "failed"):
            return None
        steps.append(
            IssuedAction(
                step=action.step,
                type=action.type,
                action_id=action.action_id,
                params=action.params,
                status="succeeded" if step.status == "succeeded" else "failed",
                attempts=step.attempts,
                detail=step.detail,
                error=step.error,
            )
        )
    succeeded = sum(step.status == "succeeded" for step in steps)
    status: RunStatus = (
        "succeeded"
        if succeeded == len(steps)
        else "failed"
        if succeeded == 0
        else "partially_failed"
    )
    completed_at = max((progress.steps[a.step].at for a in run.actions), default=run.decided_at)
    return run.model_copy(update={"status": status, "actions": steps, "completed_at": completed_at})
