"""What the web app's HTTP tests share: the pages served over a stand-in worker, and a
factory of test clients, signed in or not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from processor.web.pages import PAGES, view_for
from processor.web.sessions import SESSION_COOKIE, SessionStore

OpenClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def pages_app(
    runtime: Any, sessions: SessionStore, app: web.Application | None = None
) -> web.Application:
    """Every registered page over a stand-in worker (its runtime and its session store),
    added to ``app`` after the routes it has (the stand-in API's), templated paths last."""
    app = web.Application() if app is None else app
    faust_app = SimpleNamespace(runtime=runtime, web_sessions=sessions)
    for path in sorted(PAGES, key=lambda p: "{" in p):
        view = view_for(path, PAGES[path])(faust_app, None)  # type: ignore[arg-type]
        for method in view.get_methods():
            app.router.add_route(method, path, view.dispatch)
    return app


@pytest.fixture
async def open_client() -> AsyncIterator[OpenClient]:
    """``await open_client(app)``: a test client of ``app`` (closed after the test) that keeps
    its cookies over plain HTTP; with ``sessions`` and ``token``, signed in with that token as
    alice of t-1, the session's CSRF token in ``client.csrf``."""
    async with AsyncExitStack() as stack:

        async def open_(
            app: web.Application, sessions: SessionStore | None = None, token: str = ""
        ) -> TestClient[Any, Any]:
            client = await stack.enter_async_context(
                TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
            )
            if sessions is not None:
                session = sessions.start(
                    SecretStr(token), operator=False, tenant_id="t-1", who="alice"
                )
                client.session.cookie_jar.update_cookies({SESSION_COOKIE: session.id})
                client.csrf = session.csrf  # type: ignore[attr-defined]
            return client

        yield open_
