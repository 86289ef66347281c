"""The web app's page registry and what every page shares: the session, CSRF, the API calls,
rendering with autoescape, and the security headers.

A page is an ``async def handler(page: Page) -> web.StreamResponse`` registered with
``@page(path, methods=...)``; ``PAGES`` is the one table ``processor/web/server.py``
registers with the worker's web server (as ``processor.api.views.ROUTES`` is for the API).
Read ``processor/web/__init__.py`` for how to add a page or a fragment.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import jinja2
import orjson
from aiohttp import web
from faust.web import View

from coeflow.errors import Unauthenticated
from processor.core.access import authenticate
from processor.runtime import Runtime
from processor.web import labels
from processor.web.calls import Answer, ApiCaller
from processor.web.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Session,
    SessionStore,
    csrf_matches,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
"""Scripts and styles only from ``/static`` (no inline script, no inline style, no eval:
htmx runs with ``allowEval`` off and its inline indicator styles off, ``templates/base.html``);
a record field that slipped past escaping still could not run."""

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages show a tenant's data: no shared cache keeps them, the browser's back button
    # does not show them after sign-out.
    "Cache-Control": "no-store",
}

SAFE_METHODS = frozenset({"GET", "HEAD"})

FORM_NOT_URLENCODED = (
    "the app's forms are sent as application/x-www-form-urlencoded, not multipart/form-data"
)
FORM_NOT_TEXT = "the form is not text in its charset (the app's forms are UTF-8)"

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name: record fields are hostile
    # A field an API answer leaves out (a scheduled trigger has no record type) renders as
    # nothing, as the JSON client would see no value.
    undefined=jinja2.Undefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    """An API time (ISO 8601) as ``2026-12-01 11:02:03 UTC``; what is not one, as given."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if at.tzinfo is not None else "")


def as_json(value: Any, indent: bool = False) -> str:
    """A value as JSON text, for autoescape to escape like any text (``tojson`` writes ``<``
    as ``\\u003c``, which a person should not have to read); indented for ``<pre>``. A value
    JSON cannot hold (an integer past 64 bits, nesting past orjson's) is written as Python
    writes it, never an error page."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS if indent else 0
    try:
        return orjson.dumps(value, option=option, default=str).decode()
    except TypeError:
        return repr(value)


templates.filters["q"] = lambda value: quote(str(value), safe="")
"""``{{ id|q }}``: a value as one URL path segment."""
templates.filters["when"] = _when
templates.filters["json"] = lambda value: as_json(value, indent=True)
templates.filters["as_json"] = as_json
labels.install(templates)  # the display names: trigger, action, op, words…

Handler = Callable[["Page"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class PageSpec:
    path: str
    method: str
    handler: Handler
    signed_in: bool
    operator_only: bool


PAGES: dict[str, dict[str, PageSpec]] = {}
"""path → method → page: every page and fragment of the web app."""


def edit_url(workflow_id: str) -> str:
    """The builder of one workflow: where its form posts (the panels' own requests too)."""
    return f"/workflows/{quote(workflow_id, safe='')}/edit"


def page(
    path: str,
    *,
    methods: tuple[str, ...] = ("GET",),
    signed_in: bool = True,
    operator_only: bool = False,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``path`` and ``methods``. ``signed_in``: without a session the
    browser goes to the sign-in page. ``operator_only``: a tenant's session gets a 404, as
    the API's operator endpoints answer. Every method but GET and HEAD checks the CSRF
    token before the handler runs."""

    def add(handler: Handler) -> Handler:
        routes = PAGES.setdefault(path, {})
        for method in methods:
            if method.upper() in routes:
                raise ValueError(f"{method} {path} is registered twice")
            routes[method.upper()] = PageSpec(
                path, method.upper(), handler, signed_in, operator_only
            )
        return handler

    return add


class Redirect(Exception):
    """Go to ``location`` (see other: a form's POST becomes a GET of the next page)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class PageError(Exception):
    """A page that cannot be shown: its status and the reason, shown on an error page."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Page:
    """One request to a page: its session, its form, its API calls and its rendering."""

    def __init__(
        self,
        request: web.Request,
        runtime: Runtime,
        sessions: SessionStore,
        session: Session | None,
    ) -> None:
        self.request, self.runtime, self.sessions, self.session = (
            request,
            runtime,
            sessions,
            session,
        )
        self.match: Mapping[str, str] = request.match_info
        self._form: Mapping[str, str] | None = None
        self.api = ApiCaller(request, session.token.get_secret_value() if session else "")

    @property
    def is_htmx(self) -> bool:
        """An htmx request: answer a fragment, not a whole page."""
        return self.request.headers.get("HX-Request") == "true"

    @property
    def tenant_id(self) -> str | None:
        return self.session.tenant_id if self.session else None

    @property
    def tenant_query(self) -> dict[str, str | int | None]:
        """What an API call names as its tenant: the operator's pick (a tenant's token
        needs none; the API takes its tenant from the token)."""
        if self.session is not None and self.session.operator:
            return {"tenant_id": self.session.tenant_id}
        return {}

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query

    async def form(self) -> Mapping[str, str]:
        """The form fields (the last value of each), read as URL-encoded UTF-8 text.

        Every form of the app is ``application/x-www-form-urlencoded`` (browsers' and htmx's
        default): a multipart body (whose file parts aiohttp would spool to disk) is refused,
        and so is a body that is not text in its declared charset, each with a 4xx saying so
        rather than the 500 aiohttp's decoding error would make."""
        if self._form is None:
            if self.request.content_type == "multipart/form-data":
                raise PageError(415, FORM_NOT_URLENCODED)
            try:
                data = await self.request.post()
            except (UnicodeDecodeError, LookupError):
                raise PageError(400, FORM_NOT_TEXT) from None
            self._form = {k: v for k, v in data.items() if isinstance(v, str)}
        return self._form

    async def require(self, answer: Awaitable[Answer]) -> Any:
        """The body of an API answer that must succeed; otherwise the page shows the API's
        reason with its status (a 404 for another tenant's workflow, as the API says)."""
        got = await answer
        if got.status == 401:
            raise Redirect("/sign-in")
        if not got.ok:
            raise PageError(got.status, got.error)
        return got.body

    def render(
        self,
        template: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> web.Response:
        """``template`` with ``context`` (autoescaped), and what the layout needs."""
        html = templates.get_template(template).render(
            session=self.session,
            csrf_field=CSRF_FIELD,
            csrf=self.session.csrf if self.session else "",
            path=self.request.path,
            **context,
        )
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers={**SECURITY_HEADERS, **(headers or {})},
        )

    def redirect(self, location: str) -> web.StreamResponse:
        """To ``location``: an htmx request is told by ``HX-Redirect`` (it would otherwise
        swap the whole next page into a fragment)."""
        if self.is_htmx:
            return web.Response(status=204, headers={**SECURITY_HEADERS, "HX-Redirect": location})
        return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})


def runtime_of(view: View) -> Runtime:
    return cast(Runtime, cast(Any, view.app).runtime)


def sessions_of(view: View) -> SessionStore:
    return cast(SessionStore, cast(Any, view.app).web_sessions)


class PageView(View):
    """Serves the pages of one path: the session, the CSRF check, and the errors.

    The views of ``PAGES`` are made by ``view_for``; each answers only the methods its path
    registered."""

    pages: Mapping[str, PageSpec] = {}

    def get_methods(self) -> set[str]:
        methods = set(self.pages)
        return methods | ({"HEAD"} if "GET" in methods else set())

    async def dispatch(self, request: Any) -> Any:
        method = "GET" if request.method == "HEAD" else request.method
        spec = self.pages.get(method)
        if spec is None:  # the router sends only registered methods here
            raise web.HTTPMethodNotAllowed(request.method, sorted(self.get_methods()))
        sessions = sessions_of(self)
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        page = Page(request, runtime_of(self), sessions, session)
        try:
            if spec.signed_in:
                session = self._authenticated(page)
                if spec.operator_only and not session.operator:
                    raise PageError(404, "no such page")
            if method not in SAFE_METHODS:
                await self._check_csrf(page)
            return await spec.handler(page)
        except Redirect as go:
            return page.redirect(go.location)
        except PageError as exc:
            return page.render(
                "error.html", status=exc.status, status_code=exc.status, reason=exc.reason
            )
        except web.HTTPException as exc:  # aiohttp's own, e.g. 413 for a form past its size
            if exc.status < 400:
                raise
            # aiohttp's text says which bound: "Maximum number of form fields 1000 exceeded."
            text = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else ""
            return page.render(
                "error.html",
                status=exc.status,
                status_code=exc.status,
                reason=f"{exc.reason}: {text}" if text else exc.reason,
            )
        except Exception:
            # %r: the path is the caller's text. No query (it may name a record).
            log.exception("web app request failed: %s %r", request.method, request.path)
            return page.render(
                "error.html",
                status=500,
                status_code=500,
                reason="internal error; the worker log has the details",
            )

    def _authenticated(self, page: Page) -> Session:
        """The page's session, its token checked again as the API checks it (a revoked
        token ends the session), or to the sign-in page."""
        session = page.session
        if session is None:
            raise Redirect("/sign-in")
        admin = page.runtime.admin
        try:
            authenticate(
                f"Bearer {session.token.get_secret_value()}",
                page.runtime.settings.admin_token,
                admin.tokens.tokens if admin is not None else {},
            )
        except Unauthenticated:
            page.sessions.end(session.id)
            page.session = None
            raise Redirect("/sign-in") from None
        return session

    async def _check_csrf(self, page: Page) -> None:
        """The session's token in the form or (htmx) the header; before sign-in, the
        sign-in cookie's value repeated in the form."""
        given = page.request.headers.get(CSRF_HEADER)
        if given is None and page.request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            given = (await page.form()).get(CSRF_FIELD)
        if page.session is not None:
            expected = page.session.csrf
        else:
            expected = page.request.cookies.get(SIGN_IN_COOKIE, "")
        if not expected or not csrf_matches(expected, given):
            raise PageError(
                403,
                "the form is out of date or came from another site: reload the page and try again",
            )


def view_for(path: str, pages: Mapping[str, PageSpec]) -> type[View]:
    name = "Page" + "".join(part.strip("{}").title() for part in path.split("/") if part)
    return type(name or "PageIndex", (PageView,), {"pages": dict(pages)})
