"""ActionOutcome: what one attempt at an action did (topic ``workflow.action-outcomes``).

Keyed by run id, so one run's outcomes share a partition with its RunRecords in
``workflow.runs`` and can be folded into the run's final status. Executors write one outcome
per attempt; the CRM reports record mutations the same way. A ``retrying`` outcome carries the
command, which makes this log the executors' durable retry schedule, and the outcome log is
also their record of completed action ids. Values are JSON; a null value is a fence (see
``processor/replica.py``) that readers skip.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from topics.commands import ActionCommand, ActionIdentity
from topics.runs import SourcePosition

OutcomeStatus = Literal["succeeded", "retrying", "failed"]
FINAL_OUTCOMES: frozenset[str] = frozenset({"succeeded", "failed"})


class ActionOutcome(ActionIdentity):
    attempt: int
    status: OutcomeStatus
    detail: str | None = None
    """What the peer said on success (an HTTP status, a message id), for the run history."""
    error: str | None = None
    next_attempt_at: datetime | None = None
    command: ActionCommand | None = None
    """On ``retrying``: the command to attempt again."""
    source: SourcePosition
    """Where the command was read: the worker holding that partition retries it."""
    at: datetime

    @property
    def final(self) -> bool:
        return self.status in FINAL_OUTCOMES

    @classmethod
    def of(
        cls,
        command: ActionCommand,
        *,
        source: SourcePosition,
        attempt: int,
        status: OutcomeStatus,
        at: datetime,
        detail: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> ActionOutcome:
        identity = {name: getattr(command, name) for name in ActionIdentity.model_fields}
        return cls(
            **identity,
            attempt=attempt,
            status=status,
            detail=detail,
            error=error,
            next_attempt_at=next_attempt_at,
            command=command if status == "retrying" else None,
            source=source,
            at=at,
        )
