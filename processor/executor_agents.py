"""The executors in a worker: one agent per action type we perform, and what they share.

Each agent reads ``workflow.actions.<type>`` as raw bytes, decodes the command (a bad one is
dead-lettered, then acknowledged) and hands it to the ``ActionRunner``, which acknowledges it
once the outcome of its first attempt is stored. Before a worker acts on any command after a
partition assignment, it fences the outcome log: it has then read every outcome written before
the assignment, so a command another worker already performed is recognised as a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Set
from datetime import timedelta
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import TP, AppT
from mode import Service

from coeflow.clock import Clock
from coeflow.errors import InvalidCommand
from coeflow.settings import Settings
from executors.base import ExecutorContext, decode_command
from executors.ledger import ActionLedger
from executors.policy import RetryPolicy
from executors.registry import EXECUTORS
from executors.runner import ActionRunner, Owner
from processor.core.pipeline import Outbound, dead_letter, source_of
from processor.delivery import deliver, producer_send
from processor.raw import raw_topic
from processor.replica import OutcomeReplica
from topics import codec
from topics.catalog import ACTION_OUTCOMES, action_topic
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome
from topics.runs import SourcePosition

log = logging.getLogger(__name__)

_FENCE_KEY = b"coeflow-fence"
_FENCE_WITHIN = 30.0


class ExecutorRole(Service):
    """The executors' shared state in one worker: ledger, outcome replica, runner, clients."""

    def __init__(self, app: AppT, settings: Settings, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app, self.settings, self.clock = app, settings, clock
        self.topics = frozenset(action_topic(name) for name in EXECUTORS)
        self.ledger = ActionLedger()
        self.replica = OutcomeReplica(settings, self.ledger, loop=self.loop)
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
        self.synced = asyncio.Event()
        self._owned: set[Owner] = set()
        self._generation = 0

    def on_init_dependencies(self) -> list[Service]:
        return [self.replica]

    async def on_started(self) -> None:
        if self.settings.webhook_signing_secret is None:
            log.warning("COEFLOW_WEBHOOK_SIGNING_SECRET is not set: Call Webhook actions fail")
        if self.settings.smtp_host is None:
            log.warning("COEFLOW_SMTP_HOST is not set: Send Email actions fail")

    async def on_stop(self) -> None:
        await self.runner.close()
        await self.context.aclose()

    def on_assigned(self, assigned: Set[TP]) -> None:
        """A new assignment: stop retrying what moved away, and fence before acting again."""
        owned = {(tp.topic, tp.partition) for tp in assigned if tp.topic in self.topics}
        released = self.runner.release(self._owned - owned)
        if released:
            log.info("%d waiting actions moved to another worker", released)
        self._owned = owned
        self._generation += 1
        self.synced.clear()
        self.add_future(self._sync(self._generation))

    async def _sync(self, generation: int) -> None:
        while not await self.replica.fence(self._send_fence, _FENCE_WITHIN):
            if self.should_stop:
                return
            log.warning("the outcome log did not catch up within %ss; retrying", _FENCE_WITHIN)
        if generation != self._generation:  # a newer assignment is syncing
            return
        resumed = self.runner.resume(self.ledger.waiting(self._owns))
        if resumed:
            log.info("resumed %d actions waiting for another attempt", resumed)
        self.synced.set()

    def _owns(self, outcome: ActionOutcome) -> bool:
        return (outcome.source.topic, outcome.source.partition) in self._owned

    async def _send_fence(self, topic: str, partition: int) -> int:
        stored = await self.app.producer.send(topic, _FENCE_KEY, None, partition, None, None)
        return int((await stored).offset)

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
    app.add_dependency(role)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # the stub wants *args
    async def on_assigned(sender: AppT, assigned: Set[TP], **_: Any) -> None:
        role.on_assigned(assigned)

    for action_type in EXECUTORS:
        _register_agent(app, role, action_type)


def _register_agent(app: faust.App, role: ExecutorRole, action_type: str) -> None:
    commands = raw_topic(app, action_topic(action_type))
    send = producer_send(app)

    async def execute(stream: faust.StreamT[bytes]) -> None:
        async for event in cast(Stream[bytes], stream).noack().events():
            message = event.message
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
