"""Signed-in sessions of the web app: server-side, each named by a random id in a cookie.

Why server-side and not a signed cookie: the bearer token an admin types at sign-in stays in
this worker's memory and never goes back to the browser, not even sealed; signing out deletes
the session, so a copied cookie is dead at once (a signed cookie stays valid until it
expires, unless the server keeps a list of revoked ones, which is a session store again);
and a revoked API token ends every session made with it on its next request, because each
request authenticates the stored token again, as the API does. The cost: a session lives in
one worker's memory, so a restart signs everyone out, and behind a load balancer a browser
must stick to its worker. Sessions are bounded in number and time (``SessionStore``), so
sign-ins cannot grow memory without end.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page
sends it), ``Path=/``, and ``Secure`` when the request came over HTTPS. Every form and every
htmx request carries the session's CSRF token (``csrf_matches``); the sign-in form, before
there is a session, carries a double-submit token (the ``SIGN_IN_COOKIE`` value repeated in
the form).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

SESSION_COOKIE = "coeflow_session"
SIGN_IN_COOKIE = "coeflow_sign_in"
CSRF_FIELD = "csrf_token"
"""The form field that carries the CSRF token."""
CSRF_HEADER = "X-CSRF-Token"
"""The header that carries it on htmx requests (``static/app.js`` adds it)."""

MAX_SESSIONS = 2_000
"""Past this many, signing in drops the session idle longest."""
MAX_SESSIONS_PER_TENANT = 100
"""Past this many of one tenant's tokens (or the operator's), signing in drops that tenant's
session idle longest: a tenant signing in again and again pushes out only its own."""
IDLE_SECONDS = 8 * 3600.0
"""A session unused this long is over."""
LIFETIME_SECONDS = 24 * 3600.0
"""A session is over this long after its sign-in, used or not."""


def new_secret() -> str:
    """An unguessable value for a session id or a CSRF token (256 bits)."""
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a request's CSRF token is the session's (compared in constant time)."""
    if not given or not given.isascii():
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(slots=True)
class Session:
    """One signed-in browser."""

    id: str = field(repr=False)
    token: SecretStr
    """The bearer token given at sign-in: every page calls the API's logic with it."""
    operator: bool
    """Signed in with the operator's token, who picks a tenant (``tenant_id``)."""
    owner: str | None
    """The token's tenant (``None``: the operator's), whose sessions are bounded together."""
    tenant_id: str | None
    """The tenant every page shows: a tenant token's own, or the operator's pick."""
    who: str
    """Who signed in, for the header: the token's name, or "operator"."""
    started: float
    seen: float
    csrf: str = field(default_factory=new_secret, repr=False)


class SessionStore:
    """The sessions of this worker, bounded: at most ``max_sessions``, ``max_per_tenant`` of
    one tenant's tokens, each over after ``idle_seconds`` unused or ``lifetime_seconds`` after
    sign-in."""

    def __init__(
        self,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_per_tenant: int = MAX_SESSIONS_PER_TENANT,
        idle_seconds: float = IDLE_SECONDS,
        lifetime_seconds: float = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions, self.max_per_tenant = max_sessions, max_per_tenant
        self.idle_seconds, self.lifetime_seconds = idle_seconds, lifetime_seconds
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        """Least recently used first."""

    def __len__(self) -> int:
        return len(self._sessions)

    def start(
        self, token: SecretStr, *, operator: bool, tenant_id: str | None, who: str
    ) -> Session:
        """A new session (with a new id and CSRF token: nothing from before sign-in carries
        over, so a planted cookie cannot become a signed-in one)."""
        now = self.clock()
        self._expire(now)
        owner = None if operator else tenant_id
        own = [s.id for s in self._sessions.values() if s.owner == owner]  # oldest use first
        for session_id in own[: max(len(own) - self.max_per_tenant + 1, 0)]:
            del self._sessions[session_id]
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session = Session(
            id=new_secret(),
            token=token,
            operator=operator,
            owner=owner,
            tenant_id=tenant_id,
            who=who,
            started=now,
            seen=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie's id (and it counts as used now), or ``None``."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if self._over(session, now):
            del self._sessions[session_id]
            return None
        session.seen = now
        self._sessions.move_to_end(session_id)
        return session

    def end(self, session_id: str | None) -> None:
        """Sign-out: the session is gone; its cookie names nothing any more."""
        if session_id:
            self._sessions.pop(session_id, None)

    def _over(self, session: Session, now: float) -> bool:
        return (
            now - session.seen > self.idle_seconds or now - session.started > self.lifetime_seconds
        )

    def _expire(self, now: float) -> None:
        """Drop sessions that are over, oldest use first (they are in that order)."""
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._over(oldest, now):
                # Lifetime can end a session used recently; the others are found by get().
                break
            self._sessions.popitem(last=False)
