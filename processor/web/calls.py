"""The web app's calls of the admin API, in process: the same views, the same checks.

A page never reads the catalog or the history itself for what the API serves. It asks the
API's own view, through aiohttp's router, with the session's token in the ``Authorization``
header of a request made from the page's request (``BaseRequest.clone``): authentication,
scopes, tenant scoping, validation and the errors are the API's, in one place, and a page
shows exactly what a JSON client would get. No socket is opened; the body is the API's JSON,
decoded again (a page of runs is small; the cost is measured against nothing we could save).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from yarl import URL

from topics import codec
from topics.types import MAX_NESTING

API = "/api/v1"
UNENCODABLE = f"the body nests objects and arrays more than {MAX_NESTING} levels deep"
"""What the API says of a body past its nesting bound, for one too deep even to be sent."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API answered: its status and decoded JSON body."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """The API's reason for a refusal (``{"error": ...}``), or the status."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), str):
            return cast(str, self.body["error"])
        return f"the API answered {self.status}"

    @property
    def problems(self) -> list[dict[str, str]]:
        """A 422's problems, each ``{"loc": ..., "msg": ...}``."""
        if isinstance(self.body, dict) and isinstance(self.body.get("problems"), list):
            return [p for p in self.body["problems"] if isinstance(p, dict)]
        return []


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """What the API answered, its body as bytes."""

    status: int
    content_type: str
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """The API's reason for a refusal (its JSON ``{"error": ...}``), or the status."""
        if self.content_type == "application/json":
            try:
                return Answer(self.status, codec.loads(self.body)).error
            except ValueError:
                pass
        return f"the API answered {self.status}"


class ApiCaller:
    """Calls the admin API's views for one page request, as the holder of ``token``."""

    def __init__(self, request: web.Request, token: str) -> None:
        self._request, self._token = request, token

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: Any = None,
    ) -> Answer:
        """``method`` on ``/api/v1`` + ``path`` (already quoted: use ``quote`` for names
        that come from users); ``query`` items that are ``None`` are left out."""
        raw = b""
        if body is not None:
            try:
                raw = codec.dumps(body)
            except TypeError:  # orjson's JSONEncodeError: past its 254 levels, say
                return Answer(422, {"error": UNENCODABLE})
        status, _, data = await self._respond(method, path, query, raw, "application/json")
        return Answer(status, codec.loads(data) if data else None)

    async def raw(self, method: str, path: str, **query: str | int | None) -> RawAnswer:
        """An answer that is not JSON (a backtest's CSV), its body as the API wrote it; a
        refusal's JSON reason still reads as ``error``."""
        status, content_type, data = await self._respond(method, path, query, b"", "text/csv")
        return RawAnswer(status, content_type, data)

    async def _respond(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int | None] | None,
        raw: bytes,
        accept: str,
    ) -> tuple[int, str, bytes]:
        url = URL(API + path)
        if query:
            url = url.with_query({k: str(v) for k, v in query.items() if v is not None})
        headers = {"Authorization": f"Bearer {self._token}", "Accept": accept}
        if raw:
            headers["Content-Type"] = "application/json"
        # aiohttp refuses to clone a request whose body was read (a page's form): the clone
        # gets its own body below, so the page's is set aside while it is made.
        read, self._request._read_bytes = self._request._read_bytes, None
        try:
            inner = self._request.clone(method=method, rel_url=url, headers=headers)
        finally:
            self._request._read_bytes = read
        # What aiohttp's request handler does before a handler runs (web_app._handle): the
        # body is set as read, and the route is resolved; the view then dispatches as usual.
        inner._read_bytes = raw
        match = await self._request.app.router.resolve(inner)
        if match.http_exception is not None:
            error = codec.dumps({"error": match.http_exception.reason})
            return match.http_exception.status, "application/json", error
        inner._match_info = match
        response = cast(web.Response, await match.handler(inner))
        payload = response.body
        data = bytes(cast(bytes, payload)) if payload else b""
        return response.status, response.content_type, data

    async def get(self, path: str, **query: str | int | None) -> Answer:
        return await self.call("GET", path, query=query)

    async def post(self, path: str, body: Any = None, **query: str | int | None) -> Answer:
        return await self.call("POST", path, body=body, query=query)

    async def put(self, path: str, body: Any) -> Answer:
        return await self.call("PUT", path, body=body)

    async def delete(self, path: str) -> Answer:
        return await self.call("DELETE", path)
