"""ActionRunner with scripted executors: repeats, retries, timeouts, resumption."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from coeflow.errors import PermanentEffectError, TransientEffectError
from executors.ledger import ActionLedger
from executors.policy import RetryPolicy
from executors.runner import ActionRunner
from tests.factories import command_source, make_command
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome
from topics.runs import SourcePosition


class Scripted:
    """An executor whose answers are scripted per action id; it counts its calls."""

    action_type = "call_webhook"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.script: dict[str, list[str | Exception | float]] = {}

    async def perform(self, command: ActionCommand) -> str:
        self.calls.append(command.action_id)
        answers = self.script.get(command.action_id, [])
        answer = answers.pop(0) if answers else "HTTP 200"
        if isinstance(answer, float):  # hang this long
            await asyncio.sleep(answer)
            return "HTTP 200"
        if isinstance(answer, Exception):
            raise answer
        return answer


class Harness:
    def __init__(self, max_attempts: int = 3, timeout: float = 0.5, concurrency: int = 10) -> None:
        self.executor = Scripted()
        self.ledger = ActionLedger()
        self.outcomes: list[ActionOutcome] = []
        self.letters: list[tuple[str, str]] = []
        self.runner = ActionRunner(
            {"call_webhook": self.executor},
            self.ledger,
            publish=self._publish,
            dead_letter=self._dead_letter,
            policy=RetryPolicy(max_attempts=max_attempts, backoff=0.01, backoff_max=0.05),
            clock=lambda: datetime.now(UTC),
            timeout=timeout,
            concurrency=concurrency,
        )

    async def _publish(self, outcome: ActionOutcome) -> None:
        self.outcomes.append(outcome)

    async def _dead_letter(
        self, command: ActionCommand, source: SourcePosition, error: str
    ) -> None:
        self.letters.append((command.action_id, error))

    def statuses(self, command: ActionCommand) -> list[str]:
        return [o.status for o in self.outcomes if o.action_id == command.action_id]

    async def settle(self, done: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not done():  # noqa: ASYNC110 - polls conditions no event signals
                await asyncio.sleep(0.01)


def hook() -> ActionCommand:
    return make_command("call_webhook", {"url": "https://example.com/"})


async def test_success_is_recorded_before_the_command_is_acknowledged() -> None:
    h, command, acks = Harness(), hook(), []
    await h.runner.submit(
        command, command_source("call_webhook"), lambda: acks.append(len(h.outcomes))
    )
    await h.settle(lambda: bool(acks))
    assert acks == [1] and h.statuses(command) == ["succeeded"]
    assert h.ledger.is_done(command.action_id) and h.runner.in_flight == 0


async def test_a_repeated_command_is_performed_once() -> None:
    h, command, acks = Harness(), hook(), []
    h.executor.script[command.action_id] = [0.1]  # still running when the repeat arrives
    for offset in range(3):
        await h.runner.submit(
            command, command_source("call_webhook", offset), lambda: acks.append(1)
        )
    await h.settle(lambda: len(acks) == 3)
    await h.runner.submit(command, command_source("call_webhook", 3), lambda: acks.append(1))
    assert h.executor.calls == [command.action_id] and len(acks) == 4
    assert h.runner.stats.skipped_repeats == 3


async def test_a_peer_that_fails_twice_then_succeeds_gets_one_success_recorded() -> None:
    h, command, acks = Harness(), hook(), []
    h.executor.script[command.action_id] = [
        TransientEffectError("the peer answered HTTP 500"),
        TransientEffectError("the peer answered HTTP 500"),
    ]
    await h.runner.submit(command, command_source("call_webhook"), lambda: acks.append(1))
    await h.settle(lambda: "succeeded" in h.statuses(command))
    assert h.statuses(command) == ["retrying", "retrying", "succeeded"]
    assert [o.attempt for o in h.outcomes] == [1, 2, 3]
    assert acks == [1]  # acknowledged once, after the first outcome was stored
    assert h.letters == []


async def test_a_permanent_failure_is_not_retried_and_is_dead_lettered() -> None:
    h, command = Harness(), hook()
    h.executor.script[command.action_id] = [PermanentEffectError("the peer answered HTTP 400")]
    await h.runner.submit(command, command_source("call_webhook"), lambda: None)
    await h.settle(lambda: bool(h.letters))
    assert h.executor.calls == [command.action_id] and h.statuses(command) == ["failed"]
    assert h.letters == [(command.action_id, "the peer answered HTTP 400")]


async def test_the_retry_budget_ends_in_failure_and_a_dead_letter() -> None:
    h, command = Harness(max_attempts=3), hook()
    h.executor.script[command.action_id] = [TransientEffectError("HTTP 503")] * 5
    await h.runner.submit(command, command_source("call_webhook"), lambda: None)
    await h.settle(lambda: bool(h.letters))
    assert h.statuses(command) == ["retrying", "retrying", "failed"]
    assert h.letters == [(command.action_id, "HTTP 503 (gave up after 3 attempts)")]


async def test_a_hanging_peer_times_out_while_other_commands_flow() -> None:
    h = Harness(max_attempts=1, timeout=0.5)
    stuck, others = hook(), [hook() for _ in range(20)]
    h.executor.script[stuck.action_id] = [30.0]
    acks: list[str] = []
    await h.runner.submit(stuck, command_source("call_webhook"), lambda: acks.append("stuck"))
    for n, command in enumerate(others, 1):
        await h.runner.submit(
            command, command_source("call_webhook", n), lambda: acks.append("other")
        )
    await h.settle(lambda: acks.count("other") == 20, within=0.4)
    assert "stuck" not in acks  # the others finished while it still hung
    await h.settle(lambda: "stuck" in acks, within=2)
    [outcome] = [o for o in h.outcomes if o.action_id == stuck.action_id]
    assert (outcome.status, outcome.error) == (
        "failed",
        "no answer within 0.5s (gave up after 1 attempts)",
    )


async def test_unexpected_executor_errors_fail_the_action_with_the_type_only() -> None:
    h, command = Harness(), hook()
    h.executor.script[command.action_id] = [KeyError("secret-ish detail")]
    await h.runner.submit(command, command_source("call_webhook"), lambda: None)
    await h.settle(lambda: bool(h.letters))
    assert h.outcomes[0].error == "the executor failed: KeyError"


async def test_waiting_actions_resume_and_released_ones_stop() -> None:
    h = Harness()
    now = datetime.now(UTC)
    resumed, released = hook(), hook()
    waiting = [
        ActionOutcome.of(
            c,
            source=SourcePosition(topic="workflow.actions.call_webhook", partition=p, offset=0),
            attempt=1,
            status="retrying",
            at=now,
            next_attempt_at=now + timedelta(seconds=delay),
        )
        for c, p, delay in [(resumed, 0, 0.05), (released, 1, 0.3)]
    ]
    assert h.runner.resume(waiting) == 2
    assert h.runner.release({("workflow.actions.call_webhook", 1)}) == 1
    await h.settle(lambda: bool(h.outcomes))
    await asyncio.sleep(0.4)
    assert h.executor.calls == [resumed.action_id]
    assert [(o.attempt, o.status) for o in h.outcomes] == [(2, "succeeded")]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_submit_waits_while_all_slots_are_busy(concurrency: int) -> None:
    h = Harness(concurrency=concurrency)
    commands = [hook() for _ in range(concurrency + 1)]
    for command in commands:
        h.executor.script[command.action_id] = [0.2]
    for command in commands[:-1]:
        await h.runner.submit(command, command_source("call_webhook"), lambda: None)
    blocked = asyncio.ensure_future(
        h.runner.submit(commands[-1], command_source("call_webhook"), lambda: None)
    )
    await asyncio.sleep(0.05)
    assert not blocked.done()
    await h.settle(blocked.done)
    await h.settle(lambda: len(h.outcomes) == len(commands))
