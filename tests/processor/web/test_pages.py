"""The web app's shell over HTTP: sign-in with a token into a server-side session (an
HttpOnly, SameSite=Strict cookie that never holds the token), CSRF on every form and htmx
request, the Content-Security-Policy, sign-out, and the API's own views called in process
with the session's token. The worker's API is stood in for by one route."""

from __future__ import annotations

from datetime import UTC, datetime
from http.cookies import SimpleCookie
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

import processor.web.shell  # noqa: F401  (registers the shell's pages)
from processor.core.access import mint
from processor.web.pages import CONTENT_SECURITY_POLICY, as_json, templates
from processor.web.sessions import CSRF_HEADER, SESSION_COOKIE, SIGN_IN_COOKIE, SessionStore
from tests.processor.web.conftest import OpenClient, pages_app

OPERATOR = "operator-token-for-tests"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Fake:
    """The worker's parts a page touches: settings, the token replica, the API's list."""

    def __init__(self) -> None:
        self.tenant_token, stored = mint("t-1", "admin", "alice", "operator", NOW)
        self.stored = stored
        self.tokens = {stored.token_id: stored}
        self.sessions = SessionStore()
        self.api_calls: list[tuple[str, str, str]] = []
        self.runtime = SimpleNamespace(
            settings=SimpleNamespace(admin_token=SecretStr(OPERATOR)),
            admin=SimpleNamespace(tokens=SimpleNamespace(tokens=self.tokens), ready=lambda: True),
        )

    async def workflows(self, request: web.Request) -> web.Response:
        self.api_calls.append(
            (request.method, request.path_qs, request.headers.get("Authorization", ""))
        )
        body = {"workflows": [{"tenant_id": "t-1"}, {"tenant_id": "t-2"}], "count": 2}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/workflows", self.workflows)
        return pages_app(self.runtime, self.sessions, app)


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
async def client(fake: Fake, open_client: OpenClient) -> TestClient[Any, Any]:
    return await open_client(fake.app())


def set_cookies(response: Any) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


async def sign_in_csrf(client: TestClient[Any, Any]) -> str:
    response = await client.get("/sign-in")
    assert response.status == 200
    return set_cookies(response)[SIGN_IN_COOKIE].value


async def signed_in(client: TestClient[Any, Any], token: str) -> Any:
    csrf = await sign_in_csrf(client)
    return await client.post(
        "/sign-in", data={"token": token, "csrf_token": csrf}, allow_redirects=False
    )


def csrf_of(fake: Fake) -> str:
    (session,) = fake.sessions._sessions.values()
    return session.csrf


async def test_the_sign_in_page_has_the_policy_and_a_strict_http_only_form_cookie(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/sign-in")
    assert response.status == 200
    policy = response.headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    cookie = set_cookies(response)[SIGN_IN_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie.value in await response.text()  # repeated in the form: double submit


async def test_signing_in_without_the_form_token_is_refused(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    await sign_in_csrf(client)
    response = await client.post("/sign-in", data={"token": OPERATOR}, allow_redirects=False)
    assert response.status == 403
    response = await client.post(
        "/sign-in", data={"token": OPERATOR, "csrf_token": "x" * 43}, allow_redirects=False
    )
    assert response.status == 403
    assert len(fake.sessions) == 0


async def test_a_wrong_token_signs_nobody_in(client: TestClient[Any, Any], fake: Fake) -> None:
    response = await signed_in(client, "not-a-token")
    assert response.status == 401
    assert SESSION_COOKIE not in set_cookies(response)
    assert "Not signed in" in await response.text()
    assert len(fake.sessions) == 0


async def test_the_operator_signs_in_into_a_cookie_without_the_token_and_picks_a_tenant(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    response = await signed_in(client, OPERATOR)
    assert response.status == 303 and response.headers["Location"] == "/tenant"
    cookie = set_cookies(response)[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert OPERATOR not in cookie.value and OPERATOR not in response.headers["Location"]
    (session,) = fake.sessions._sessions.values()
    assert session.operator and session.tenant_id is None and session.id == cookie.value

    page = await client.get("/tenant")
    assert page.status == 200
    text = await page.text()
    assert "t-1" in text and "t-2" in text and OPERATOR not in text
    # The tenants came from the API's view, called with the session's token.
    assert fake.api_calls == [("GET", "/api/v1/workflows", f"Bearer {OPERATOR}")]

    refused = await client.post("/tenant", data={"tenant_id": "t-2"}, allow_redirects=False)
    assert refused.status == 403 and session.tenant_id is None
    picked = await client.post(
        "/tenant",
        data={"tenant_id": "t-2"},
        headers={CSRF_HEADER: session.csrf},
        allow_redirects=False,
    )
    assert picked.status == 303 and session.tenant_id == "t-2"


async def test_a_tenant_token_keeps_its_own_tenant(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    response = await signed_in(client, fake.tenant_token)
    assert response.status == 303 and response.headers["Location"] == "/workflows"
    (session,) = fake.sessions._sessions.values()
    assert not session.operator and session.tenant_id == "t-1"
    other = await client.post(
        "/tenant",
        data={"tenant_id": "t-2", "csrf_token": session.csrf},
        allow_redirects=False,
    )
    assert other.status == 403 and session.tenant_id == "t-1"


async def test_sign_out_ends_the_session(client: TestClient[Any, Any], fake: Fake) -> None:
    await signed_in(client, OPERATOR)
    csrf = csrf_of(fake)
    old = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    assert (await client.post("/sign-out", allow_redirects=False)).status == 403
    out = await client.post("/sign-out", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/sign-in?signed-out"
    assert len(fake.sessions) == 0
    signed_out = await client.get(out.headers["Location"])
    assert "You are signed out." in await signed_out.text()
    assert "You are signed out." not in await (await client.get("/sign-in")).text()
    # The old cookie, sent again, names nothing.
    again = await client.get("/tenant", cookies={SESSION_COOKIE: old}, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/sign-in"


async def test_pages_need_a_session_and_htmx_is_told_to_go_to_sign_in(
    client: TestClient[Any, Any],
) -> None:
    page = await client.get("/tenant", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/sign-in"
    fragment = await client.get("/tenant", headers={"HX-Request": "true"}, allow_redirects=False)
    assert fragment.status == 204 and fragment.headers["HX-Redirect"] == "/sign-in"


async def test_a_revoked_token_ends_its_sessions(client: TestClient[Any, Any], fake: Fake) -> None:
    await signed_in(client, fake.tenant_token)
    assert len(fake.sessions) == 1
    fake.tokens[fake.stored.token_id] = fake.stored.model_copy(update={"revoked_at": NOW})
    page = await client.get("/tenant", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/sign-in"
    assert len(fake.sessions) == 0


async def test_a_too_long_token_is_refused_before_any_check(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    response = await signed_in(client, "x" * 10_000)
    assert response.status == 401 and len(fake.sessions) == 0


async def test_a_form_page_calls_the_api_after_reading_its_form(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    """The CSRF check reads the form before the page calls the API with a clone of the
    request (which aiohttp refuses for a request whose body was read, unless set aside)."""
    await signed_in(client, OPERATOR)
    response = await client.post(
        "/tenant", data={"tenant_id": "", "csrf_token": csrf_of(fake)}, allow_redirects=False
    )
    assert response.status == 422
    assert "Name a tenant" in await response.text()
    assert fake.api_calls == [("GET", "/api/v1/workflows", f"Bearer {OPERATOR}")]


async def test_a_form_past_its_size_is_a_page_saying_so(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    await signed_in(client, OPERATOR)
    response = await client.post(
        "/tenant",
        data={"tenant_id": "x" * (2 * 1024 * 1024), "csrf_token": csrf_of(fake)},
        allow_redirects=False,
    )
    assert response.status == 413
    assert response.content_type == "text/html"
    assert "Content-Security-Policy" in response.headers


def test_a_value_json_cannot_hold_is_shown_as_python_writes_it_not_an_error() -> None:
    assert as_json({"n": 2**70}) == repr({"n": 2**70})
    indented = templates.from_string("{{ v|json }}").render(v={"a": 1})
    assert indented == "{\n  &#34;a&#34;: 1\n}"  # and escaped, as any text
    inline = templates.from_string("{{ v|as_json }}").render(v=[1, "<b>"])
    assert inline == "[1,&#34;&lt;b&gt;&#34;]"
