"""What the worker's web server answers when no view does: JSON errors for every path.

Faust serves views through aiohttp, whose router answers an unknown path (404) or a method
no view has (405, with ``Allow``) in plain text, and whose own ``HTTPException``s (413 for a
body past ``client_max_size``) and unexpected errors outside a view's own handling become
plain text too. This middleware, installed on the aiohttp application
(``web_application_options`` in ``processor/app.py``), turns each into the JSON error body
the API documents (``{"error": ...}``), keeping the status and headers such as ``Allow``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from topics import codec

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DROPPED_HEADERS = frozenset({"content-type", "content-length"})


def json_error(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=codec.dumps({"error": error}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


NOT_FOUND = "no such endpoint; the API is under /api/v1 (see /api/v1/openapi.json)"
NOT_FOUND_WITHOUT_API = (
    "no such endpoint: this worker answers /health only; the admin API, the web app and the "
    "inbound webhook URL are served by workers with the api role (COEFLOW_ROLES)"
)
"""The 404 of a worker whose roles lack ``api``: every path but ``/health``."""


def _reason(request: web.Request, exc: web.HTTPException, not_found: str) -> str:
    if isinstance(exc, web.HTTPNotFound):
        return not_found
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {request.method} is not allowed here; allowed: {allowed}"
    text = exc.text or ""
    prefix = f"{exc.status}: "
    return text.removeprefix(prefix) if text.startswith(prefix) else text or exc.reason


HANDLER_OPTIONS = {"auto_decompress": False}
"""For aiohttp's request handler: bodies are read as sent. Decompressing them is work a caller
chooses the size of before any check (1 MB of gzip is 1 GiB of zeros: seconds of the event
loop, token or not); no endpoint here takes a compressed body."""


def errors_middleware(
    not_found: str,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware, its 404 saying ``not_found``."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return json_error(415, "compressed request bodies are not accepted; send plain JSON")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() not in _DROPPED_HEADERS}
            return json_error(exc.status, _reason(request, exc, not_found), headers)
        except Exception:
            # %r: the path is the caller's text (a percent-encoded CR LF is decoded in it).
            log.exception("request failed: %s %r", request.method, request.path)
            return json_error(500, "internal error; the worker log has the details")

    return json_errors


json_errors = errors_middleware(NOT_FOUND)
"""A worker with the api role."""
json_errors_without_api = errors_middleware(NOT_FOUND_WITHOUT_API)
"""A worker without it, which serves ``/health`` alone."""
