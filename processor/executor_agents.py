"""The executors in a worker: one agent per action type we perform, and what they share.

Each agent reads ``workflow.actions.<type>`` as raw bytes, decodes the command (a bad one is
dead-lettered, then acknowledged) and hands it to the ``ActionRunner``, which acknowledges it
once the outcome of its first attempt is stored. Before a worker acts on any command after a
partition assignment, it fences the outcome log: it has then read every outcome written before
the assignment, so a command another worker already performed is recognised as a repeat.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import AppT
from mode import Service

from coeflow.clock import Clock
from coeflow.errors import InvalidCommand
from coeflow.settings import Settings
from executors.interface import ExecutorContext, decode_command
from executors.ledger import ActionLedger
from executors.policy import RetryPolicy
from executors.registry import EXECUTORS
from executors.runner import ActionRunner
from processor.byte_topics import byte_topic
from processor.core.pipeline import Outbound, dead_letter, source_of
from processor.delivery import deliver, producer_send
from processor.ownership import OwnedWork, TopicPartitionName, register_owned_work
from processor.replica import OutcomeReplica
from topics import codec
from topics.catalog import ACTION_OUTCOMES, FENCE_KEY, action_topic
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome
from topics.runs import SourcePosition

log = logging.getLogger(__name__)


class ExecutorRole(OwnedWork):
    """The executors' shared state in one worker: ledger, outcome replica, runner, clients.

    Its state log is the outcome log: after each assignment it is fenced, then the actions
    waiting for another attempt in the partitions this worker holds are resumed."""

    def __init__(
        self, app: AppT, settings: Settings, clock: Clock, outcomes: OutcomeReplica, **kwargs: Any
    ) -> None:
        self.ledger = ActionLedger()
        self.replica = outcomes  # the worker's one reader of the outcome log: its state log
        outcomes.folds.append(self.ledger.apply)
        topics = [action_topic(name) for name in EXECUTORS]
        super().__init__(app, self.replica, topics, **kwargs)
        self.settings, self.clock = settings, clock
        self.context = ExecutorContext.create(settings, clock)
        self._send = producer_send(app)
        self.runner = ActionRunner(
            {name: build(self.context) for name, build in EXECUTORS.items()},
            self.ledger,
            publish=self._publish,
            dead_letter=self._dead_letter,
            policy=RetryPolicy.from_settings(settings),
            clock=clock,
            timeout=settings.action_timeout,
            concurrency=settings.action_concurrency,
        )

    async def on_started(self) -> None:
        if self.settings.webhook_signing_secret is None:
            log.warning("COEFLOW_WEBHOOK_SIGNING_SECRET is not set: Call Webhook actions fail")
        if self.settings.smtp_host is None:
            log.warning("COEFLOW_SMTP_HOST is not set: Send Email actions fail")

    async def on_stop(self) -> None:
        await self.runner.close()
        await self.context.aclose()

    def on_released(self, lost: frozenset[TopicPartitionName]) -> None:
        released = self.runner.release(lost)
        if released:
            log.info("%d waiting actions moved to another worker", released)

    def on_synced(self) -> None:
        resumed = self.runner.resume(self.ledger.waiting(self._holds))
        if resumed:
            log.info("resumed %d actions waiting for another attempt", resumed)

    def _holds(self, outcome: ActionOutcome) -> bool:
        return (outcome.source.topic, outcome.source.partition) in self.held

    async def _publish(self, outcome: ActionOutcome) -> None:
        message = Outbound(ACTION_OUTCOMES, outcome.run_id.encode(), codec.dumps(outcome))
        await deliver(self._send, [message])

    async def _dead_letter(
        self, command: ActionCommand, source: SourcePosition, error: str
    ) -> None:
        letter = dead_letter(
            command.action_id.encode(),
            codec.dumps(command),
            source,
            f"action failed: {error}",
            self.settings,
            self.clock(),
        )
        await deliver(self._send, letter.messages)

    @Service.timer(600.0)
    async def _forget_old_actions(self) -> None:
        cutoff = self.clock() - timedelta(days=self.settings.action_ledger_days)
        forgotten = self.ledger.forget_before(cutoff)
        if forgotten:
            log.info("forgot %d actions that ended before %s", forgotten, cutoff)


def register(app: faust.App, role: ExecutorRole) -> None:
    register_owned_work(app, role)

    for action_type in EXECUTORS:
        _register_agent(app, role, action_type)


def _register_agent(app: faust.App, role: ExecutorRole, action_type: str) -> None:
    commands = byte_topic(app, action_topic(action_type))
    send = producer_send(app)

    async def execute(stream: faust.StreamT[bytes]) -> None:
        async for event in cast(Stream[bytes], stream).noack().events():
            message = event.message
            if message.value is None and message.key == FENCE_KEY:  # a reader's mark of "now"
                event.ack()
                continue
            source = source_of(message)
            try:
                command = decode_command(message.value, action_type)
            except InvalidCommand as exc:
                log.warning("dead-lettered %s:%d@%d: %s", *_where(source), exc)
                letter = dead_letter(
                    message.key, message.value, source, str(exc), role.settings, role.clock()
                )
                await deliver(send, letter.messages)
                event.ack()
                continue
            await role.synced.wait()
            await role.runner.submit(command, source, on_accepted=event.ack)

    app.agent(commands, name=f"execute-{action_type}")(execute)


def _where(source: SourcePosition) -> tuple[str, int, int]:
    return source.topic, source.partition, source.offset
