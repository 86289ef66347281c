from __future__ import annotations

import pytest
from pydantic import SecretStr

from coeflow.errors import Forbidden, Unauthenticated
from processor.core.access import OPERATOR, authenticate, mint
from tests.factories import NOW

OPERATOR_TOKEN = SecretStr("operator-secret")


def test_a_minted_token_authenticates_as_its_tenant_and_scope() -> None:
    text, stored = mint("acme", "write", "ci", "operator", NOW)
    assert text.startswith(f"cwt_{stored.token_id}_")
    assert text.split("_", 2)[2] not in stored.model_dump_json()  # only the hash is kept
    principal = authenticate(f"Bearer {text}", OPERATOR_TOKEN, {stored.token_id: stored})
    assert (principal.tenant_id, principal.scope) == ("acme", "write")
    assert principal.actor.token_id == stored.token_id and principal.actor.name == "ci"


def test_the_operator_token_sees_every_tenant() -> None:
    principal = authenticate("Bearer operator-secret", OPERATOR_TOKEN, {})
    assert principal is OPERATOR
    assert principal.sees("acme") and principal.sees("globex")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "missing bearer token"),
        ("Basic abc", "missing bearer token"),
        ("Bearer ", "missing bearer token"),
        ("Bearer wrong", "invalid bearer token"),
        ("Bearer cwt_unknown_secret", "invalid bearer token"),
        ("Bearer cwt_", "invalid bearer token"),
    ],
)
def test_bad_headers_are_refused_with_the_reason(header: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        authenticate(header, OPERATOR_TOKEN, {})


def test_a_wrong_secret_or_a_revoked_token_is_refused() -> None:
    text, stored = mint("acme", "read", "dash", "operator", NOW)
    tokens = {stored.token_id: stored}
    with pytest.raises(Unauthenticated, match="invalid bearer token"):
        authenticate(f"Bearer cwt_{stored.token_id}_not-the-secret", OPERATOR_TOKEN, tokens)
    revoked = {stored.token_id: stored.model_copy(update={"revoked_at": NOW})}
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticate(f"Bearer {text}", OPERATOR_TOKEN, revoked)


def test_without_an_operator_token_only_tenant_tokens_work() -> None:
    text, stored = mint("acme", "read", "dash", "operator", NOW)
    assert authenticate(f"Bearer {text}", None, {stored.token_id: stored}).tenant_id == "acme"
    with pytest.raises(Unauthenticated, match="COEFLOW_ADMIN_TOKEN, is not set"):
        authenticate("Bearer anything", None, {})


def test_scopes_are_ordered_and_tenants_kept_apart() -> None:
    text, stored = mint("acme", "write", "ci", "operator", NOW)
    principal = authenticate(f"Bearer {text}", OPERATOR_TOKEN, {stored.token_id: stored})
    principal.require("read")
    principal.require("write")
    with pytest.raises(Forbidden, match="scope is 'write'; this needs 'admin'"):
        principal.require("admin")
    assert principal.sees("acme") and not principal.sees("globex")
