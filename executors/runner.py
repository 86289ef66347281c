"""Attempts actions: at once, concurrently, under a timeout; retries on a schedule.

Commands arrive at least once; the effect must happen once. ``ActionRunner`` skips a command
whose action the ledger knows as done, or that is already being attempted or waiting for a
retry. Each attempt's outcome is published to ``workflow.action-outcomes`` *before* anything
else happens: the command is acknowledged only once the outcome of its first attempt is
stored, and a retry is scheduled from the stored ``retrying`` outcome, so neither a retry
backoff nor a hanging peer holds back the command topic's commits for longer than one attempt.

The one window left: an executor that dies after the effect and before its outcome is stored
performs the action again when the command is redelivered. Peers that take the idempotency
key (webhooks) or the Message-ID (email) can recognise that repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from coeflow.clock import Clock
from coeflow.errors import EffectError, PermanentEffectError, TransientEffectError
from coeflow.redact import redacted
from executors.interface import Executor
from executors.ledger import ActionLedger
from executors.policy import RetryPolicy, attempt_outcome
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome
from topics.runs import SourcePosition

log = logging.getLogger(__name__)

Publish = Callable[[ActionOutcome], Awaitable[None]]
"""Store an outcome; returns once the broker has it."""
DeadLetter = Callable[[ActionCommand, SourcePosition, str], Awaitable[None]]
"""Send a failed command to the dead-letter topic with the reason."""
Owner = tuple[str, int]
"""(command topic, partition): what a worker holds and resumes retries for."""


@dataclass
class RunnerStats:
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    skipped_repeats: int = 0


class ActionRunner:
    def __init__(
        self,
        executors: Mapping[str, Executor],
        ledger: ActionLedger,
        *,
        publish: Publish,
        dead_letter: DeadLetter,
        policy: RetryPolicy,
        clock: Clock,
        timeout: float,
        concurrency: int,
        rng: random.Random | None = None,
    ) -> None:
        self.executors, self.ledger = executors, ledger
        self._publish, self._dead_letter = publish, dead_letter
        self.policy, self.clock, self.timeout = policy, clock, timeout
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self._active: dict[str, Owner] = {}  # being attempted or waiting for a retry
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = RunnerStats()

    @property
    def in_flight(self) -> int:
        return len(self._active)

    async def submit(
        self, command: ActionCommand, source: SourcePosition, on_accepted: Callable[[], object]
    ) -> None:
        """Take a command read at ``source``. ``on_accepted`` runs once the command's offset
        may be committed: its first outcome is stored, or it is a repeat. Waits only while
        ``concurrency`` attempts are running (backpressure)."""
        action = command.action_id
        if self.ledger.is_done(action) or action in self._active:
            self.stats.skipped_repeats += 1
            log.info("skipping repeated command %s (%s)", action, command.type)
            on_accepted()
            return
        self._active[action] = (source.topic, source.partition)
        await self._slots.acquire()
        self._spawn(self._run(command, source, 1, on_accepted, slot_held=True))

    def resume(self, waiting: Iterable[ActionOutcome]) -> int:
        """Schedule the next attempt of actions whose last outcome was ``retrying`` (after a
        restart or when their partition moved here). Returns how many were scheduled."""
        count = 0
        for outcome in waiting:
            if outcome.command is None or outcome.action_id in self._active:
                continue
            self._active[outcome.action_id] = (outcome.source.topic, outcome.source.partition)
            due = outcome.next_attempt_at or outcome.at
            self._schedule(
                outcome.command,
                outcome.source,
                outcome.attempt + 1,
                max((due - self.clock()).total_seconds(), 0.0),
            )
            count += 1
        return count

    def release(self, owners: Collection[Owner]) -> int:
        """Stop retrying actions of partitions this worker no longer holds: their new owner
        resumes them from the ledger. Attempts already running finish."""
        released = [a for a, owner in self._active.items() if owner in owners and a in self._timers]
        for action in released:
            self._timers.pop(action).cancel()
            del self._active[action]
        return len(released)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule(
        self, command: ActionCommand, source: SourcePosition, attempt: int, delay: float
    ) -> None:
        def start() -> None:
            self._timers.pop(command.action_id, None)
            self._spawn(self._run(command, source, attempt, None, slot_held=False))

        self._timers[command.action_id] = asyncio.get_running_loop().call_later(delay, start)

    async def _run(
        self,
        command: ActionCommand,
        source: SourcePosition,
        attempt: int,
        on_accepted: Callable[[], object] | None,
        *,
        slot_held: bool,
    ) -> None:
        action = command.action_id
        try:
            if not slot_held:
                await self._slots.acquire()
            try:
                result = await self._attempt(command)
            finally:
                self._slots.release()
            outcome = attempt_outcome(
                command,
                source=source,
                attempt=attempt,
                result=result,
                policy=self.policy,
                now=self.clock(),
                rng=self._rng,
            )
            self.ledger.apply(outcome)
            await self._publish(outcome)
            self._report(outcome)
            if outcome.status == "failed":
                await self._dead_letter(command, source, outcome.error or "failed")
            if on_accepted is not None:
                on_accepted()
            if outcome.status == "retrying" and outcome.next_attempt_at is not None:
                delay = (outcome.next_attempt_at - self.clock()).total_seconds()
                self._schedule(command, source, attempt + 1, max(delay, 0.0))
                return
        except asyncio.CancelledError:
            raise
        except Exception:  # publishing retries on its own; this is a bug, and must be seen
            log.exception("action %s: could not record the outcome of attempt %d", action, attempt)
        self._active.pop(action, None)

    async def _attempt(self, command: ActionCommand) -> str | EffectError:
        executor = self.executors.get(command.type)
        if executor is None:
            return PermanentEffectError(f"this worker has no executor for {command.type!r}")
        try:
            return await asyncio.wait_for(executor.perform(command), self.timeout)
        except TimeoutError:
            return TransientEffectError(f"no answer within {self.timeout:g}s")
        except EffectError as exc:
            return exc
        except Exception as exc:
            log.exception("executor %s failed on %s", command.type, command.action_id)
            return PermanentEffectError(f"the executor failed: {type(exc).__name__}")

    def _report(self, outcome: ActionOutcome) -> None:
        where = f"{outcome.type} {outcome.action_id} attempt {outcome.attempt}"
        if outcome.status == "succeeded":
            self.stats.succeeded += 1
            log.info("%s succeeded: %s", where, redacted(outcome.detail or ""))
        elif outcome.status == "retrying":
            self.stats.retried += 1
            retry_at = outcome.next_attempt_at
            log.warning("%s: %s; retrying at %s", where, redacted(outcome.error or ""), retry_at)
        else:
            self.stats.failed += 1
            log.error("%s failed: %s", where, redacted(outcome.error or ""))
