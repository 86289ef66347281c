"""The admin API (JSON over HTTP, bearer token): workflows are written to the definitions
topic and read from this worker's replica of it.

A write returns once this worker's replica holds it, so a read that follows sees it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from dataclasses import asdict
from typing import Any

import faust
import orjson
from aiohttp.web import HTTPException
from faust.web import Request, Response, View
from pydantic import ValidationError

from coeflow.errors import Conflict, InvalidInput, InvalidWorkflow, NotFound, Problem, problems_from
from processor.core.compiler import CompiledWorkflow, compile_workflow
from processor.core.decide import dry_run
from processor.core.inbound import with_secrets
from processor.core.pipeline import decode_change
from processor.runtime import Runtime
from topics import codec
from topics.catalog import DEFINITIONS
from topics.workflows import Workflow

log = logging.getLogger(__name__)

API = "/api/v1"
_WRITE_VISIBLE_TIMEOUT = 10.0
_SERVER_FIELDS = ("updated_at", "inbound_secrets")
_MAX_GRACE = 30 * 86400.0


class ApiError(Exception):
    def __init__(self, status: int, error: str, **details: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.details = status, error, details


def register(app: faust.App, runtime: Runtime) -> None:
    write_lock = asyncio.Lock()

    class ApiView(View):
        """Authenticates, maps domain errors to HTTP statuses, and encodes with our codec."""

        async def dispatch(self, request: Any) -> Any:
            try:
                self._authenticate(request)
                if not runtime.replica.ready.is_set():
                    raise ApiError(503, "workflow definitions are still loading; retry shortly")
                return await super().dispatch(request)
            except ApiError as exc:
                return self.reply({"error": exc.error, **exc.details}, exc.status)
            except NotFound as exc:
                return self.reply({"error": str(exc)}, 404)
            except Conflict as exc:
                return self.reply({"error": str(exc)}, 409)
            except InvalidInput as exc:
                return self.reply(_invalid(exc), 422)
            except HTTPException as exc:  # raised by aiohttp itself, e.g. 413 for a large body
                return self.reply({"error": exc.text or exc.reason}, exc.status)
            except Exception:
                log.exception("admin API request failed: %s %s", request.method, request.path)
                return self.reply({"error": "internal error; the worker log has the details"}, 500)

        def _authenticate(self, request: Any) -> None:
            token = runtime.settings.admin_token
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if token is None:
                raise ApiError(
                    401, "the admin API has no token configured (set COEFLOW_ADMIN_TOKEN)"
                )
            if scheme.lower() != "bearer" or not given:
                raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)")
            if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                raise ApiError(401, "invalid bearer token")

        def reply(self, body: Any, status: int = 200) -> Response:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return self.bytes(
                codec.dumps(body), content_type="application/json", status=status, headers=headers
            )

        async def body(self, request: Request) -> dict[str, Any]:
            raw = await request.read()
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, f"the body is not valid JSON: {exc}") from None
            if not isinstance(document, dict):
                raise ApiError(400, "the body must be a JSON object")
            return document

    async def publish(workflow_id: str, workflow: Workflow | None) -> None:
        value = codec.dumps(workflow) if workflow is not None else None
        metadata = await app.producer.send_and_wait(
            DEFINITIONS, workflow_id.encode(), value, None, None, None
        )
        if not await runtime.replica.wait_applied(
            metadata.partition, metadata.offset, within=_WRITE_VISIBLE_TIMEOUT
        ):
            raise ApiError(504, "the change was written but this worker has not read it back yet")

    def existing(workflow_id: str) -> CompiledWorkflow:
        compiled = runtime.catalog.compiled(workflow_id)
        if compiled is None:
            raise NotFound(f"no workflow {workflow_id!r}")
        return compiled

    async def save(
        document: dict[str, Any], current: Workflow | None, rotate_grace: float | None = None
    ) -> Workflow:
        """Validate and compile (so only runnable workflows reach the topic), then publish.
        Inbound webhook secrets are the server's: kept from ``current``, made when needed."""
        now = runtime.clock()
        try:
            workflow = Workflow.model_validate({**document, "updated_at": now})
        except ValidationError as exc:
            raise InvalidWorkflow(problems_from(exc)) from None
        compile_workflow(workflow)
        workflow = with_secrets(workflow, current, now, rotate_grace=rotate_grace)
        await publish(workflow.id, workflow)
        return workflow

    async def change_status(workflow_id: str, status: str) -> Workflow:
        """A new version with ``status``; asking for the status it has changes nothing."""
        async with write_lock:
            current = existing(workflow_id).workflow
            if current.status == status:
                return current
            document = current.model_dump(mode="json", by_alias=True)
            new = {**document, "status": status, "version": current.version + 1}
            return await save(new, current)

    @app.page(f"{API}/workflows")
    class Workflows(ApiView):
        async def get(self, request: Request) -> Response:
            tenant = request.query.get("tenant_id")
            status = request.query.get("status")
            found = sorted(
                (
                    w
                    for w in runtime.catalog.workflows(tenant)
                    if status is None or w.status == status
                ),
                key=lambda w: w.id,
            )
            return self.reply({"workflows": found, "count": len(found)})

        async def post(self, request: Request) -> Response:
            document = await self.body(request)
            for name in ("version", *_SERVER_FIELDS):
                document.pop(name, None)
            document.setdefault("id", f"wf-{uuid.uuid4().hex[:16]}")
            document.setdefault("status", "draft")
            async with write_lock:
                if (
                    isinstance(document["id"], str)
                    and runtime.catalog.get(document["id"]) is not None
                ):
                    raise Conflict(f"workflow {document['id']!r} exists already; PUT changes it")
                workflow = await save({**document, "version": 1}, None)
            return self.reply(workflow, 201)

    @app.page(API + "/workflows/{workflow_id}")
    class OneWorkflow(ApiView):
        async def get(self, request: Request, workflow_id: str) -> Response:
            return self.reply(existing(workflow_id).workflow)

        async def put(self, request: Request, workflow_id: str) -> Response:
            document = await self.body(request)
            for name in _SERVER_FIELDS:
                document.pop(name, None)
            async with write_lock:
                current = existing(workflow_id).workflow
                if document.setdefault("id", workflow_id) != workflow_id:
                    raise InvalidWorkflow(
                        [Problem("id", f"must be {workflow_id!r}, the id in the path")]
                    )
                if document.get("tenant_id", current.tenant_id) != current.tenant_id:
                    raise InvalidWorkflow(
                        [Problem("tenant_id", "a workflow cannot move to another tenant")]
                    )
                expected = document.pop("version", None)
                if expected is not None and expected != current.version:
                    raise Conflict(
                        f"workflow {workflow_id!r} is at version {current.version}, "
                        f"not {expected}; "
                        "reload it and apply your change again"
                    )
                document.setdefault("status", current.status)
                workflow = await save({**document, "version": current.version + 1}, current)
            return self.reply(workflow)

        async def delete(self, request: Request, workflow_id: str) -> Response:
            async with write_lock:
                existing(workflow_id)
                await publish(workflow_id, None)
            return self.reply({"deleted": workflow_id})

    @app.page(API + "/workflows/{workflow_id}/activate")
    class Activate(ApiView):
        async def post(self, request: Request, workflow_id: str) -> Response:
            return self.reply(await change_status(workflow_id, "active"))

    @app.page(API + "/workflows/{workflow_id}/deactivate")
    class Deactivate(ApiView):
        async def post(self, request: Request, workflow_id: str) -> Response:
            return self.reply(await change_status(workflow_id, "inactive"))

    @app.page(API + "/workflows/{workflow_id}/webhook-secret")
    class RotateSecret(ApiView):
        async def post(self, request: Request, workflow_id: str) -> Response:
            options = await self.body(request) if (await request.read()).strip() else {}
            grace = options.get("grace_seconds", 86400)
            if (
                isinstance(grace, bool)
                or not isinstance(grace, int | float)
                or not (0 <= grace <= _MAX_GRACE)
            ):
                raise InvalidInput(
                    [Problem("grace_seconds", f"must be a number from 0 to {_MAX_GRACE:g}")]
                )
            async with write_lock:
                current = existing(workflow_id).workflow
                if current.trigger.type != "webhook_received":
                    raise Conflict(f"workflow {workflow_id!r} has no inbound webhook to rotate")
                document = current.model_dump(mode="json", by_alias=True)
                new = {**document, "version": current.version + 1}
                return self.reply(await save(new, current, rotate_grace=float(grace)))

    @app.page(API + "/workflows/{workflow_id}/test")
    class DryRun(ApiView):
        async def post(self, request: Request, workflow_id: str) -> Response:
            compiled = existing(workflow_id)
            event = decode_change(await request.read(), runtime.settings.max_event_bytes)
            decision = dry_run(
                compiled, event, max_depth=runtime.settings.max_causation_depth, now=runtime.clock()
            )
            run = decision.run
            return self.reply(
                {
                    "workflow_id": workflow_id,
                    "workflow_version": compiled.workflow.version,
                    "workflow_status": compiled.workflow.status,
                    "tenant_matches": decision.tenant_matches,
                    "trigger": {"type": compiled.kind.name, "matched": decision.trigger_matches},
                    "conditions": decision.conditions,
                    "outcome": run.record.status if run else "not_triggered",
                    "error": run.record.error if run else None,
                    "commands": run.commands if run else [],
                    "emitted": False,
                }
            )


def _invalid(exc: InvalidInput) -> dict[str, Any]:
    return {
        "error": exc.summary,
        "problems": [{"loc": p.loc, "msg": p.msg} for p in exc.problems],
    }


def register_health(app: faust.App, runtime: Runtime) -> None:
    """``GET /health`` (no token): readiness and what this worker holds and has done, for
    whichever roles it runs."""

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            roles = runtime.settings.roles
            body: dict[str, Any] = {"roles": sorted(roles)}
            ready = True
            if "processor" in roles:
                ready = runtime.replica.ready.is_set()
                body |= {
                    "workflows": len(runtime.catalog),
                    "active_workflows": len(runtime.catalog.index),
                    "rejected_workflows": {
                        k: r.reason for k, r in runtime.catalog.rejected.items()
                    },
                    "record_change_partitions": (
                        runtime.changes.partitions if runtime.changes is not None else []
                    ),
                    "processed": runtime.stats.summary(),
                }
            if runtime.executors is not None:
                executors = runtime.executors
                ready = ready and executors.synced.is_set()
                body["executors"] = {
                    "synced": executors.synced.is_set(),
                    "in_flight": executors.runner.in_flight,
                    "known_actions": len(executors.ledger),
                    **asdict(executors.runner.stats),
                }
            body["ready"] = ready
            return self.bytes(
                codec.dumps(body), content_type="application/json", status=200 if ready else 503
            )
