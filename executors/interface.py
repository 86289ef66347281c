"""The one interface every executor implements, and what executors share in a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import orjson
from pydantic import ValidationError

from coeflow.clock import Clock
from coeflow.errors import InvalidCommand, problems_from
from coeflow.settings import Settings
from executors.http import HttpClient
from executors.outbound import Allowlist, OutboundClient
from topics import codec
from topics.commands import ActionCommand


@dataclass
class ExecutorContext:
    """Built once per worker: settings, the clock and the HTTP clients executors share."""

    settings: Settings
    clock: Clock
    http: HttpClient
    """For URLs the operator configured (the SMS provider)."""
    outbound: OutboundClient
    """For user-supplied URLs (Call Webhook, Slack): SSRF-checked, over ``http``."""

    @classmethod
    def create(cls, settings: Settings, clock: Clock) -> ExecutorContext:
        http = HttpClient(settings.action_timeout, settings.action_concurrency, clock)
        return cls(
            settings=settings,
            clock=clock,
            http=http,
            outbound=OutboundClient(Allowlist.parse(settings.outbound_allowlist), http),
        )

    async def aclose(self) -> None:
        await self.http.aclose()


def decode_command(value: bytes | None, action_type: str) -> ActionCommand:
    """The ActionCommand in ``value`` read from ``action_type``'s topic; ``InvalidCommand``
    with the reasons otherwise."""
    if value is None:
        raise InvalidCommand([], "tombstone (null value): action topics carry ActionCommands")
    try:
        command = ActionCommand.model_validate(codec.loads(value))
    except orjson.JSONDecodeError as exc:
        raise InvalidCommand([], f"not valid UTF-8 JSON: {exc}") from None
    except ValidationError as exc:
        raise InvalidCommand(problems_from(exc)) from None
    if command.type != action_type:
        raise InvalidCommand([], f"a {command.type!r} command on the {action_type!r} topic")
    return command


class Executor(Protocol):
    """Performs the effect of one action type.

    ``perform`` returns a short description of what the peer said (kept in the outcome), or
    raises ``TransientEffectError`` (retried) or ``PermanentEffectError`` (not retried). It
    runs under the attempt timeout, and must send the action id wherever the peer accepts an
    idempotency key."""

    action_type: str

    async def perform(self, command: ActionCommand) -> str: ...
