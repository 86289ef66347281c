"""The executors' memory of every action, folded from ``workflow.action-outcomes``.

An action whose last outcome is final (succeeded or failed) is done: a repeated command for it
is skipped. An action whose last outcome is ``retrying`` is waiting for its next attempt; the
outcome carries the command, so the worker that holds the command's partition can resume it
after a restart or a rebalance.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from topics.outcomes import ActionOutcome


class ActionLedger:
    def __init__(self) -> None:
        self._done: dict[str, datetime] = {}  # action id → when it ended, oldest first
        self._waiting: dict[str, ActionOutcome] = {}

    def __len__(self) -> int:
        return len(self._done) + len(self._waiting)

    def apply(self, outcome: ActionOutcome) -> None:
        action = outcome.action_id
        if outcome.final:
            self._done.pop(action, None)  # re-insert: keeps the dict ordered by time
            self._done[action] = outcome.at
            self._waiting.pop(action, None)
        elif action not in self._done:
            current = self._waiting.get(action)
            if current is None or outcome.attempt >= current.attempt:
                self._waiting[action] = outcome

    def is_done(self, action_id: str) -> bool:
        return action_id in self._done

    def waiting(self, owned: Callable[[ActionOutcome], bool]) -> list[ActionOutcome]:
        """The actions waiting for another attempt that ``owned`` says are ours to resume."""
        return [outcome for outcome in self._waiting.values() if owned(outcome)]

    def forget_before(self, cutoff: datetime) -> int:
        """Forget actions that ended before ``cutoff`` (the outcome topic's retention), so the
        ledger stays as large as the window it can vouch for. Returns how many."""
        stale = []
        for action, ended in self._done.items():
            if ended >= cutoff:
                break
            stale.append(action)
        for action in stale:
            del self._done[action]
        return len(stale)
