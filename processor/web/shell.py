"""The app's shell: the index, sign-in with a token, the operator's choice of tenant, and
sign-out."""

from __future__ import annotations

from aiohttp import web
from pydantic import SecretStr

from coeflow.errors import Unauthenticated
from processor.core.access import authenticate
from processor.web.pages import SECURITY_HEADERS, Page, PageError, Redirect, page
from processor.web.sessions import SESSION_COOKIE, SIGN_IN_COOKIE, new_secret

MAX_TOKEN = 512
"""A token is far shorter; a longer field is refused before any check."""
MAX_TENANT = 256


def over_https(request: web.BaseRequest) -> bool:
    """Whether the browser reached us over HTTPS: directly, or through a proxy that ended TLS
    and said so (``X-Forwarded-Proto: https``, as load balancers do). A client that claims
    it falsely only makes its own cookie ``Secure``, which it then does not send over HTTP."""
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return request.secure or forwarded.split(",")[0].strip().lower() == "https"


def _cookie(page: Page, response: web.StreamResponse, name: str, value: str, path: str) -> None:
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=over_https(page.request),
    )


@page("/")
async def index(page: Page) -> web.StreamResponse:
    raise Redirect("/workflows" if page.tenant_id is not None else "/tenant")


@page("/sign-in", signed_in=False)
async def sign_in_form(page: Page) -> web.StreamResponse:
    if page.session is not None:
        raise Redirect("/")
    notice = "You are signed out." if SIGNED_OUT in page.query else None
    return _sign_in(page, notice=notice)


SIGNED_OUT = "signed-out"
"""The sign-in page's query after sign-out: it says so."""


def _sign_in(
    page: Page, error: str | None = None, status: int = 200, notice: str | None = None
) -> web.StreamResponse:
    """The sign-in form with a new double-submit CSRF token in a cookie and the form."""
    token = new_secret()
    response = page.render(
        "sign_in.html", status=status, sign_in_csrf=token, error=error, notice=notice
    )
    _cookie(page, response, SIGN_IN_COOKIE, token, "/sign-in")
    return response


@page("/sign-in", methods=("POST",), signed_in=False)
async def sign_in(page: Page) -> web.StreamResponse:
    given = (await page.form()).get("token", "").strip()
    if not given or len(given) > MAX_TOKEN or not given.isascii():
        return _sign_in(page, "Enter an API token: the operator's or a tenant's.", 401)
    admin = page.runtime.admin
    if admin is None or not admin.ready():
        return _sign_in(page, "The worker is still loading; try again in a moment.", 503)
    try:
        principal = authenticate(
            f"Bearer {given}", page.runtime.settings.admin_token, admin.tokens.tokens
        )
    except Unauthenticated as exc:
        return _sign_in(page, f"Not signed in: {exc}.", 401)
    operator = principal.tenant_id is None
    session = page.sessions.start(
        SecretStr(given),
        operator=operator,
        tenant_id=principal.tenant_id,
        who=principal.actor.name or ("operator" if operator else "token"),
    )
    response = web.Response(
        status=303,
        headers={**SECURITY_HEADERS, "Location": "/tenant" if operator else "/workflows"},
    )
    _cookie(page, response, SESSION_COOKIE, session.id, "/")
    response.del_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@page("/sign-out", methods=("POST",))
async def sign_out(page: Page) -> web.StreamResponse:
    assert page.session is not None
    page.sessions.end(page.session.id)
    response = web.Response(
        status=303, headers={**SECURITY_HEADERS, "Location": f"/sign-in?{SIGNED_OUT}"}
    )
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@page("/tenant")
async def tenant_form(page: Page) -> web.StreamResponse:
    """The operator's tenants: those with workflows (the operator may name another)."""
    assert page.session is not None
    if not page.session.operator:
        raise Redirect("/workflows")
    listed = await page.require(page.api.get("/workflows"))
    tenants = sorted({w["tenant_id"] for w in listed["workflows"]})
    return page.render("tenant.html", tenants=tenants, error=None)


@page("/tenant", methods=("POST",))
async def pick_tenant(page: Page) -> web.StreamResponse:
    assert page.session is not None
    if not page.session.operator:
        raise PageError(403, "a tenant's token shows its own tenant only")
    named = (await page.form()).get("tenant_id", "").strip()
    if not named or len(named) > MAX_TENANT:
        listed = await page.require(page.api.get("/workflows"))
        tenants = sorted({w["tenant_id"] for w in listed["workflows"]})
        return page.render(
            "tenant.html", status=422, tenants=tenants, error="Name a tenant (1–256 characters)."
        )
    page.session.tenant_id = named
    raise Redirect("/workflows")
