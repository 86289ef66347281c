"""The web app's registration with the worker's web server: every page of ``PAGES`` at its
path, the static files under ``/static/``, and the session store.

Every module of this package is imported first, so a module that registers pages (the
builder's too) needs no line here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, cast

import faust
from aiohttp import web

import processor.web
from processor.web.pages import PAGES, STATIC, view_for
from processor.web.sessions import SessionStore

_FAUST_INDEX = "faust.web.apps.production_index:blueprint"
"""Faust's placeholder at ``/`` (``{"status": "OK"}``); the web app's index replaces it."""


def import_pages() -> None:
    for module in pkgutil.iter_modules(processor.web.__path__):
        importlib.import_module(f"processor.web.{module.name}")


async def _nosniff(_request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``X-Content-Type-Options: nosniff`` on every answer, the static files' and the API's
    too (the pages set it themselves): a browser takes a file for what its type says, never
    for a script or a page it guessed from the bytes."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def harden(web_app: web.Application) -> None:
    """What every answer of the worker's web server gets (``_nosniff``)."""
    web_app.on_response_prepare.append(_nosniff)


def register(app: faust.App) -> None:
    import_pages()
    harden(cast(Any, app.web).web_app)
    cast(Any, app).web_sessions = SessionStore()
    blueprints = cast(Any, app.web.blueprints)
    blueprints._enabled = [(p, bp) for p, bp in blueprints._enabled if bp != _FAUST_INDEX]
    # Paths without a parameter first: aiohttp tries routes in order, and
    # ``/workflows/new`` must not be taken for the workflow "new".
    for path in sorted(PAGES, key=lambda p: "{" in p):
        app.page(path)(view_for(path, PAGES[path]))
    app.web.add_static("/static/", STATIC)
