"""A token bucket per key (pure: the caller passes the time): how often a tenant may ask for
work whose cost it chooses, such as a dry run, whose merge fields may take up to their deadline
of the worker's one event loop."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateLimit:
    per_second: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    """key → (tokens, when they were counted)."""

    def allow(self, key: str, now: float) -> float | None:
        """``None`` if ``key`` may go ahead now (a token is taken), else the seconds until it
        may."""
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # a bound on keys: drop those refilled by now
                self._buckets = {
                    k: (t, at)
                    for k, (t, at) in self._buckets.items()
                    if t + (now - at) * self.per_second < self.burst
                }
            return None
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.per_second
