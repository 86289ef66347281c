"""The exception tree. Every error the product raises on purpose is a ``CoeflowError``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError


class CoeflowError(Exception):
    """Root of every error raised on purpose by Coeffection Workflows."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located by a path such as ``actions.0.to``."""

    loc: str
    msg: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}" if self.loc else self.msg


_VALUE_ERROR = "Value error, "
"""What pydantic puts before the message of a ``ValueError`` our validators raise: the
message says it all already."""


def problems_from(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """pydantic's errors as ``Problem``s, located under ``prefix`` (e.g. ``actions.0``)."""
    problems = []
    for err in exc.errors(include_url=False):
        parts = [prefix] if prefix else []
        parts.extend(str(part) for part in err["loc"])
        problems.append(Problem(".".join(parts), err["msg"].removeprefix(_VALUE_ERROR)))
    return problems


class InvalidInput(CoeflowError):
    """Input that can never be processed as it is; carries every problem found."""

    summary = "invalid input"

    def __init__(self, problems: Sequence[Problem], summary: str | None = None) -> None:
        self.problems = tuple(problems)
        if summary is not None:
            self.summary = summary
        details = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{self.summary}: {details}" if details else self.summary)


class InvalidEvent(InvalidInput):
    """A record-change message that is not a valid ChangeEvent (it is dead-lettered)."""

    summary = "not a valid ChangeEvent"


class InvalidWorkflow(InvalidInput):
    """A workflow definition refused when it is saved."""

    summary = "invalid workflow"


class UnknownOperator(InvalidWorkflow):
    """A condition names an operator that is not registered; the message lists valid ones."""

    def __init__(self, loc: str, name: str, valid: Sequence[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(
            [Problem(loc, f"unknown operator {name!r}; valid operators: {', '.join(valid)}")]
        )


class ActionRenderError(CoeflowError):
    """An action's parameters could not be rendered for one event (the run fails)."""


class BrokerError(CoeflowError):
    """The Kafka-API broker could not be started, reached or prepared."""


class NotFound(CoeflowError):
    """A workflow, run or token that does not exist for the caller's tenant (another
    tenant's is not found either: its existence is not the caller's to learn)."""


class Conflict(CoeflowError):
    """A write that contradicts the current state, such as a stale version."""


class AccessDenied(CoeflowError):
    """A request the admin API refuses for who sent it; ``status`` is the HTTP answer."""

    status = 403


class Unauthenticated(AccessDenied):
    """No bearer token, or one that is unknown, malformed or revoked."""

    status = 401


class Forbidden(AccessDenied):
    """A valid token whose scope does not allow the request (a read token writing)."""

    status = 403


class EffectError(CoeflowError):
    """An action's effect did not happen (an executor's peer refused it or could not be
    reached). The text becomes the outcome's error, so it must say why without secrets."""


class TransientEffectError(EffectError):
    """Worth another attempt: a timeout, a refused connection, a 5xx, a 429."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentEffectError(EffectError):
    """Would fail the same way again: a 4xx, an address we refuse, a missing setting."""


class OutboundBlocked(PermanentEffectError):
    """A user-supplied URL that outbound calls may not reach (SSRF protection)."""


class InvalidCommand(InvalidInput):
    """A message on an action topic that is not a valid ActionCommand (it is dead-lettered)."""

    summary = "not a valid ActionCommand"


class InboundRefused(CoeflowError):
    """A POST to an inbound webhook URL that is not accepted; ``status`` is the HTTP answer
    (401 unsigned or stale, 404 no such webhook, 409 a replay or an inactive workflow, 413 too
    large, 400 not a JSON object). Nothing is published for it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
