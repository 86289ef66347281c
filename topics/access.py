"""API tokens (topic ``workflow.api-tokens``, compacted, keyed by token id).

A token is bound to one tenant and one scope. Only a SHA-256 of its secret is stored: the
secret is random (256 bits), so a fast hash is enough, and whoever reads the topic cannot
use what they read. A revoked token stays on the topic with ``revoked_at`` set, so the
listing and the audit log keep it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from topics.types import NonEmptyStr

Scope = Literal["read", "write", "admin"]
"""``read`` reads; ``write`` also changes workflows; ``admin`` also manages the tenant's tokens."""

SCOPE_RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}


class TokenView(BaseModel):
    """What the API shows of a token: everything but the hash of its secret."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    tenant_id: str
    scope: Scope
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class ApiToken(TokenView):
    """A token as stored."""

    secret_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    def view(self) -> TokenView:
        return TokenView.model_validate(self.model_dump(exclude={"secret_sha256"}))


class TokenRequest(BaseModel):
    """``POST /api/v1/tokens``: ``tenant_id`` only from the operator's token; a tenant's
    admin token makes tokens for its own tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    scope: Scope
    tenant_id: NonEmptyStr | None = None


class TokenList(BaseModel):
    tokens: list[TokenView]


class TokenCreated(TokenView):
    """The answer to a created token: the only time its secret is shown."""

    token: str
