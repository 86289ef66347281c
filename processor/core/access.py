"""Who is calling the admin API, and what they may see and do. Pure: the caller passes the
tokens it knows and the time.

Two kinds of bearer token:
- the operator's (``COEFLOW_ADMIN_TOKEN``): every tenant, every scope; a request names the
  tenant where it needs one (a new workflow's ``tenant_id``);
- a tenant's (``cwt_<token id>_<secret>``, made through ``POST /api/v1/tokens``): one tenant
  and one scope; the tenant always comes from the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr

from coeflow.errors import Forbidden, Unauthenticated
from topics.access import SCOPE_RANK, ApiToken, Scope
from topics.audit import Actor

TOKEN_PREFIX = "cwt"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request."""

    tenant_id: str | None
    """``None`` for the operator, who sees every tenant."""
    scope: Scope
    actor: Actor

    def require(self, scope: Scope) -> None:
        if SCOPE_RANK[self.scope] < SCOPE_RANK[scope]:
            raise Forbidden(f"this token's scope is {self.scope!r}; this needs {scope!r}")

    def sees(self, tenant_id: str) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id


OPERATOR = Principal(None, "admin", Actor(kind="operator", name="operator"))


def mint(
    tenant_id: str, scope: Scope, name: str, created_by: str, now: datetime
) -> tuple[str, ApiToken]:
    """A new token: the text to hand to its holder (shown once), and what is stored."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    stored = ApiToken(
        token_id=token_id,
        tenant_id=tenant_id,
        scope=scope,
        name=name,
        created_at=now,
        created_by=created_by,
        secret_sha256=_digest(secret),
    )
    return f"{TOKEN_PREFIX}_{token_id}_{secret}", stored


def authenticate(
    header: str, operator_token: SecretStr | None, tokens: Mapping[str, ApiToken]
) -> Principal:
    """The caller named by an ``Authorization`` header, or ``Unauthenticated`` saying why."""
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    prefix, _, rest = given.partition("_")
    if prefix == TOKEN_PREFIX and rest:
        token_id, _, secret = rest.partition("_")
        token = tokens.get(token_id)
        if token is None or not hmac.compare_digest(_digest(secret), token.secret_sha256):
            raise Unauthenticated("invalid bearer token")
        if token.revoked_at is not None:
            raise Unauthenticated("this token was revoked")
        return Principal(
            token.tenant_id, token.scope, Actor(kind="token", token_id=token_id, name=token.name)
        )
    if operator_token is None:
        raise Unauthenticated(
            "invalid bearer token (and the operator's token, COEFLOW_ADMIN_TOKEN, is not set)"
        )
    if not hmac.compare_digest(given.encode(), operator_token.get_secret_value().encode()):
        raise Unauthenticated("invalid bearer token")
    return OPERATOR


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
