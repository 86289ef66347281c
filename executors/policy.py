"""When to try an action again: pure functions of the attempt, the failure and the time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from coeflow.errors import EffectError, PermanentEffectError, TransientEffectError
from coeflow.settings import Settings
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome
from topics.runs import SourcePosition


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff: float
    backoff_max: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.action_max_attempts, settings.action_backoff, settings.action_backoff_max
        )

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), or ``None`` when
        the budget is spent. Exponential backoff with full jitter between half and all of the
        step, so retries from many actions spread out; a peer's Retry-After is honoured (up to
        ``backoff_max``) when it asks for longer."""
        if attempt >= self.max_attempts:
            return None
        step = min(self.backoff * 2 ** (attempt - 1), self.backoff_max)
        jittered = step * (0.5 + 0.5 * (rng or random).random())
        if retry_after is not None:
            jittered = max(jittered, min(retry_after, self.backoff_max))
        return jittered


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """An HTTP Retry-After value (seconds or an HTTP date) in seconds from ``now``."""
    if not header:
        return None
    header = header.strip()
    if header.isascii() and header.isdigit():  # isdigit alone takes '²', which float refuses
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


_TRANSIENT_STATUSES = frozenset({408, 425, 429})


def check_http_status(status: int, retry_after: float | None = None) -> None:
    """Raise the failure an HTTP status means for a delivery; return on 2xx."""
    if 200 <= status < 300:
        return
    if status >= 500 or status in _TRANSIENT_STATUSES:
        raise TransientEffectError(f"the peer answered HTTP {status}", retry_after)
    if 300 <= status < 400:
        raise PermanentEffectError(f"the peer answered HTTP {status}; redirects are not followed")
    raise PermanentEffectError(f"the peer answered HTTP {status}")


def attempt_outcome(
    command: ActionCommand,
    *,
    source: SourcePosition,
    attempt: int,
    result: str | EffectError,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random | None = None,
) -> ActionOutcome:
    """The outcome of attempt ``attempt``: succeeded (``result`` is what the peer said),
    retrying at a later time, or failed for good (a permanent error, or the budget spent)."""
    if isinstance(result, str):
        return ActionOutcome.of(
            command, source=source, attempt=attempt, status="succeeded", at=now, detail=result
        )
    delay = None
    if isinstance(result, TransientEffectError):
        delay = policy.delay(attempt, result.retry_after, rng)
    if delay is None:
        error = str(result)
        if isinstance(result, TransientEffectError):
            error = f"{error} (gave up after {attempt} attempts)"
        return ActionOutcome.of(
            command, source=source, attempt=attempt, status="failed", at=now, error=error
        )
    return ActionOutcome.of(
        command,
        source=source,
        attempt=attempt,
        status="retrying",
        at=now,
        error=str(result),
        next_attempt_at=now + timedelta(seconds=delay),
    )
