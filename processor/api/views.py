"""What every admin API view shares: authentication, scopes, tenants, bodies, errors, and
the declaration each operation makes of itself (which the OpenAPI document is built from).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import orjson
from aiohttp.web import HTTPException
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError

from coeflow.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    NotFound,
    Unauthenticated,
    problems_from,
)
from processor.core.access import Principal, authenticate
from processor.core.compiler import CompiledWorkflow
from processor.core.pipeline import Outbound
from processor.projections import AdminViews
from processor.replica import TopicReplica
from processor.runtime import Runtime
from topics import codec
from topics.access import Scope
from topics.catalog import API_TOKENS, AUDIT, DEFINITIONS, WORKFLOW_VERSIONS
from topics.types import MAX_NESTING, within_nesting

log = logging.getLogger(__name__)

API = "/api/v1"
_WRITE_VISIBLE_TIMEOUT = 10.0
_AUDIT_VISIBLE_TIMEOUT = 2.0

M = TypeVar("M", bound=BaseModel)


class NamesTenant(Protocol):
    """A query that may name a tenant (``tenant_id``; ``None``: none named)."""

    @property
    def tenant_id(self) -> str | None: ...


Q = TypeVar("Q", bound=NamesTenant)
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Response]])


@dataclass(frozen=True, slots=True)
class Operation:
    """What one method of a view does, for the OpenAPI document and the scope check."""

    summary: str
    scope: Scope | None
    """``None``: no token needed."""
    response: type[BaseModel] | None = None
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None


def operation(summary: str, **details: Any) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        handler.operation = Operation(summary, **{"scope": "read", **details})  # type: ignore[attr-defined]
        return handler

    return mark


ROUTES: list[tuple[str, type[View]]] = []
"""Every view of the admin API, with its path: registered with the app, and described by the
OpenAPI document, from this one list."""


def route(path: str) -> Callable[[type[View]], type[View]]:
    def add(view: type[View]) -> type[View]:
        ROUTES.append((API + path, view))
        return view

    return add


class ApiError(Exception):
    def __init__(self, status: int, error: str, **details: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.details = status, error, details


class ApiView(View):
    """Checks readiness, the token and its scope, maps domain errors to HTTP statuses, and
    encodes with our codec."""

    @property
    def runtime(self) -> Runtime:
        return cast(Runtime, cast(Any, self.app).runtime)

    @property
    def admin(self) -> AdminViews:
        assert self.runtime.admin is not None  # the API runs with the api role
        return self.runtime.admin

    def get_methods(self) -> set[str]:
        """The methods the router sends here: those this view declares an ``operation`` for,
        and HEAD with GET (Faust's own adds HEAD to every view)."""
        declared = {m.upper() for m, h in self.methods.items() if hasattr(h, "operation")}
        return declared | ({"HEAD"} if "GET" in declared else set())

    async def dispatch(self, request: Any) -> Any:
        try:
            method = request.method.lower()
            # HEAD runs GET (Faust's ``View.head``), so it needs what GET needs.
            handler = self.methods.get("get" if method == "head" else method)
            spec: Operation | None = getattr(handler, "operation", None)
            if spec is None:  # a method this view does not declare: not served
                allowed = ", ".join(sorted(self.get_methods()))
                return self.reply(
                    {"error": f"method {request.method} is not allowed here; allowed: {allowed}"},
                    405,
                    headers={"Allow": allowed},
                )
            if spec.scope is not None:
                if not (self.runtime.replica.ready.is_set() and self.admin.ready()):
                    raise ApiError(503, "workflow definitions are still loading; retry shortly")
                header = request.headers.get("Authorization", "")
                if not header.isascii():  # no token is; and bytes that are not UTF-8 arrive
                    # as surrogates, which the token check could not even encode
                    raise Unauthenticated("invalid bearer token")
                principal = authenticate(
                    header, self.runtime.settings.admin_token, self.admin.tokens.tokens
                )
                principal.require(spec.scope)
                request["principal"] = principal
            return await super().dispatch(request)
        except ApiError as exc:
            wait = exc.details.get("retry_after_seconds")
            headers = (  # whole seconds, rounded up, as HTTP says it
                {"Retry-After": str(max(1, math.ceil(wait)))}
                if isinstance(wait, int | float)
                else None
            )
            return self.reply({"error": exc.error, **exc.details}, exc.status, headers=headers)
        except AccessDenied as exc:
            return self.reply({"error": str(exc)}, exc.status)
        except NotFound as exc:
            return self.reply({"error": str(exc)}, 404)
        except Conflict as exc:
            return self.reply({"error": str(exc)}, 409)
        except InvalidInput as exc:
            return self.reply(
                {
                    "error": exc.summary,
                    "problems": [{"loc": p.loc, "msg": p.msg} for p in exc.problems],
                },
                422,
            )
        except HTTPException as exc:  # raised by aiohttp itself, e.g. 413 for a large body
            return self.reply({"error": exc.text or exc.reason}, exc.status)
        except Exception:
            # %r: the path is the caller's text (a percent-encoded CR LF is decoded in it).
            log.exception("admin API request failed: %s %r", request.method, request.path)
            return self.reply({"error": "internal error; the worker log has the details"}, 500)

    def reply(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        if status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return self.bytes(
            codec.dumps(body), content_type="application/json", status=status, headers=headers
        )

    @staticmethod
    def principal(request: Request) -> Principal:
        return cast(Principal, cast(Any, request)["principal"])

    async def document(self, request: Request) -> dict[str, Any]:
        """The body as a JSON object (400 when it is not one)."""
        raw = await request.read()
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ApiError(400, "the body must be a JSON object")
        if not within_nesting(document):  # what we could not even write to a topic
            raise ApiError(
                422, f"the body nests objects and arrays more than {MAX_NESTING} levels deep"
            )
        return document

    async def body(self, request: Request, model: type[M]) -> M:
        """The body as ``model`` (422 with every problem when it is not one)."""
        document = await self.document(request)
        try:
            return model.model_validate(document)
        except ValidationError as exc:
            raise InvalidInput(problems_from(exc), "invalid body") from None

    @staticmethod
    def query(request: Request, model: type[M]) -> M:
        try:
            return model.model_validate(dict(request.query))
        except ValidationError as exc:
            raise InvalidInput(problems_from(exc), "invalid query") from None

    def scoped_query(self, request: Request, model: type[Q]) -> tuple[Q, str | None]:
        """The request's query read as ``model`` (a pydantic model with ``tenant_id``), and
        the tenant it is about (``tenant_scope`` of the tenant it names)."""
        asked = cast(Q, self.query(request, cast(type[BaseModel], model)))
        return asked, self.tenant_scope(request, asked.tenant_id)

    def tenant_scope(self, request: Request, named: str | None) -> str | None:
        """The tenant a request is about: a tenant's token's own (naming another is a 404),
        or for the operator whatever it named (``None``: every tenant)."""
        principal = self.principal(request)
        if principal.tenant_id is None:
            return named
        if named is not None and named != principal.tenant_id:
            raise NotFound(f"no tenant {named!r}")
        return principal.tenant_id

    def workflow(self, request: Request, workflow_id: str) -> CompiledWorkflow:
        compiled = self.runtime.catalog.compiled(workflow_id)
        if compiled is None or not self.principal(request).sees(compiled.workflow.tenant_id):
            raise NotFound(f"no workflow {workflow_id!r}")
        return compiled

    async def publish(self, messages: list[Outbound]) -> None:
        """Send an admin change and wait until this worker's replicas hold it, so a read
        that follows sees it (read-your-writes)."""
        producer = self.app.producer
        stored = await asyncio.gather(
            *(producer.send_and_wait(m.topic, m.key, m.value, None, None, None) for m in messages)
        )
        replicas: dict[str, TopicReplica] = {
            DEFINITIONS: self.runtime.replica,
            API_TOKENS: self.admin.tokens,
            WORKFLOW_VERSIONS: self.admin.versions,
        }
        for message, metadata in zip(messages, stored, strict=True):
            if message.topic == AUDIT:
                # Best effort, so the Versions tab shows who made the change at once: the
                # audit log is not fenced (a worker just started may still be reading it),
                # and the change is made whether or not its event is read back.
                await self.admin.audit.wait_applied(
                    metadata.partition, metadata.offset, within=_AUDIT_VISIBLE_TIMEOUT
                )
            replica = replicas.get(message.topic)
            if replica is not None and not await replica.wait_applied(
                metadata.partition, metadata.offset, within=_WRITE_VISIBLE_TIMEOUT
            ):
                raise ApiError(
                    504, "the change was written but this worker has not read it back yet"
                )
