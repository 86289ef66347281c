"""The admin web app, served by the worker's own web server at ``/`` beside the API.

Server-rendered pages (Jinja2, autoescaped) with htmx (vendored in ``static/``, its licence
beside it) for the parts that update themselves. Every page gets its data from the admin API's
own views, in process (``calls.py``), with the session's token: validation, permissions and
tenant scoping are the API's, in one place.

The parts:

- ``pages.py``: the registry (``PAGES``, ``@page``), ``Page`` (what a handler is given), the
  security headers (a Content-Security-Policy with no inline script) and the CSRF check;
- ``sessions.py``: server-side sessions in an HttpOnly, SameSite=Strict cookie (why not a
  signed cookie: its docstring);
- ``server.py``: registration with the worker's web server (``processor/app.py`` calls it);
- ``shell.py``: sign-in, the operator's tenant, sign-out; ``workflows.py``, ``runs.py``,
  ``across.py``: the pages; ``builder.py`` (its form from the models: ``forms.py``) and its
  Backtest panel, ``backtest.py``; ``templates/``: one template per page, ``base.html`` the
  layout.

Adding a page
-------------
In a module of this package (any module here is imported at registration; no list to edit)::

    from processor.web.pages import Page, page

    @page("/workflows/new")                      # GET by default
    async def new_workflow(page: Page) -> web.StreamResponse:
        catalog = await page.require(page.api.get("/catalog"))   # the API's logic
        return page.render("builder.html", catalog=catalog)

    @page("/workflows/new", methods=("POST",))   # CSRF is checked before this runs
    async def create(page: Page) -> web.StreamResponse:
        form = await page.form()
        answer = await page.api.post("/workflows", {...})       # an ``Answer``
        if answer.status == 422:
            return page.render("builder.html", problems=answer.problems, ...)
        raise Redirect(f"/workflows/{quote(answer.body['id'], safe='')}")

- ``page.api.get/post/put/delete(path, ...)`` call ``/api/v1`` + ``path`` as the signed-in
  token; ``page.require(...)`` returns the body or shows the API's error (a 401 goes to
  sign-in, a 404 stays a 404: another tenant's workflow is not found, as on the API).
  ``page.tenant_query`` is the tenant an operator picked, for endpoints that take
  ``tenant_id``.
- Templates ``{% extends "base.html" %}`` and fill ``{% block title %}`` and
  ``{% block content %}`` (and ``{% block head %}`` for a page's own stylesheet or script
  from ``/static``). Every form that posts has
  ``<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">``. No inline script,
  ``style=`` or ``on...=`` attribute (the CSP refuses them): behaviour goes in ``static/app.js``,
  styles in ``static/app.css``. ``{{ value|q }}`` quotes a value as one URL path segment.
- Path parameters are in ``page.match`` (``page.match["workflow_id"]``).

Adding a fragment
-----------------
A fragment is a page that answers part of one, for htmx: register it like a page (its own path,
e.g. ``/workflows/{workflow_id}/runs/list``) and render a template that is not a whole page
(no ``extends``). htmx requests carry the CSRF header (``static/app.js``) and the session
cookie, so a fragment is checked exactly as a page is; ``page.is_htmx`` tells them apart if
one path serves both, and ``page.redirect`` answers htmx with ``HX-Redirect``. To poll:
``hx-get="..." hx-trigger="every 3s" hx-swap="outerHTML"`` (no ``hx-on``: it needs eval).
"""
