"""Workflows: create, read, list, update, delete, activate, deactivate, rotate an inbound
webhook's secret, dry-run, and every saved version.

A write validates and compiles first (only runnable workflows reach the topic), then sends the
definition, its immutable version and the audit event, and returns once this worker's
replicas hold them. Writes of one workflow on one worker take turns (``writing``), so its
versions count up one by one; writes of different workflows overlap.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from faust.web import Request, Response

from coeflow.addresses import Allowlist
from coeflow.errors import Conflict, InvalidWorkflow, NotFound, Problem
from processor.api.views import ApiError, ApiView, operation, route
from processor.core.access import Principal
from processor.core.audit import workflow_change
from processor.core.compiler import validate_workflow
from processor.core.decide import dry_run
from processor.core.deliveries import with_secrets
from processor.core.explain import condition_tree
from processor.core.pipeline import decode_change
from processor.core.rates import RateLimit
from processor.core.triggers import explain_trigger
from topics.api import (
    SERVER_FIELDS,
    Deleted,
    DryRunResult,
    PublicWorkflow,
    SavedWorkflow,
    SecretRotation,
    TriggerResult,
    VersionList,
    WorkflowBody,
    WorkflowList,
    WorkflowQuery,
)
from topics.audit import AuditAction
from topics.events import ChangeEvent
from topics.runs import ConditionResult
from topics.workflows import Workflow


class WorkflowView(ApiView):
    """Saving, for the views that change workflows."""

    def writing(self, workflow_id: object) -> AbstractAsyncContextManager[None]:
        """Held by a write of ``workflow_id`` from its read of the current workflow to the read
        back of what it sent: the id namespace is global, so a create's check that the id is
        free and any change's next version are seen by one write at a time. An id that is not
        a string takes nothing (``save`` refuses it)."""
        if not isinstance(workflow_id, str):
            return nullcontext()
        return self.admin.writes.hold(f"workflow:{workflow_id}")

    async def save(
        self,
        request: Request,
        action: AuditAction,
        document: dict[str, Any],
        current: Workflow | None,
        rotate_grace: float | None = None,
    ) -> Workflow:
        now = self.runtime.clock()
        allowlist = Allowlist.parse(self.runtime.settings.outbound_allowlist)
        workflow = validate_workflow({**document, "updated_at": now}, allowlist).workflow
        workflow = with_secrets(workflow, current, now, rotate_grace=rotate_grace)
        actor = self.principal(request).actor
        await self.publish(workflow_change(action, current, workflow, actor, now))
        return workflow

    async def edited(self, request: Request) -> dict[str, Any]:
        """A workflow body as sent, server fields dropped (``save`` validates the rest, as a
        whole workflow, so every problem is listed at once)."""
        document = await self.document(request)
        for name in SERVER_FIELDS:
            document.pop(name, None)
        return document

    async def change_status(self, request: Request, workflow_id: str, status: str) -> Response:
        """A new version with ``status``; asking for the status it has changes nothing."""
        async with self.writing(workflow_id):
            current = self.workflow(request, workflow_id).workflow
            if current.status == status:
                return self.reply(PublicWorkflow.of(current))
            document = current.model_dump(mode="json", by_alias=True)
            new = {**document, "status": status, "version": current.version + 1}
            action: AuditAction = (
                "workflow.activated" if status == "active" else "workflow.deactivated"
            )
            return self.reply(_saved(await self.save(request, action, new, current), current))


def _saved(workflow: Workflow, current: Workflow | None) -> PublicWorkflow:
    """A saved workflow as its writer sees it: secrets as hints, and the inbound webhook
    secret this write made, if it made one (at most one: the newest), which is never shown
    again. A write that made none answers what a read would."""
    before = {s.secret for s in current.inbound_secrets} if current is not None else set()
    made = next((s.secret for s in workflow.inbound_secrets if s.secret not in before), None)
    if made is None:
        return PublicWorkflow.of(workflow)
    return SavedWorkflow.of(workflow, inbound_secret=made)


def _tenant_of(principal: Principal, document: dict[str, Any]) -> None:
    """A tenant's token writes its own tenant's workflows: the body may repeat it, not
    name another."""
    if principal.tenant_id is None:
        return
    named = document.setdefault("tenant_id", principal.tenant_id)
    if named != principal.tenant_id:
        raise InvalidWorkflow(
            [Problem("tenant_id", "comes from the token; this token's tenant is another")]
        )


@route("/workflows")
class Workflows(WorkflowView):
    @operation("List workflows", query=WorkflowQuery, response=WorkflowList)
    async def get(self, request: Request) -> Response:
        asked, tenant = self.scoped_query(request, WorkflowQuery)
        found = sorted(
            (
                w
                for w in self.runtime.catalog.workflows(tenant)
                if asked.status is None or w.status == asked.status
            ),
            key=lambda w: w.id,
        )
        return self.reply(
            WorkflowList(workflows=[PublicWorkflow.of(w) for w in found], count=len(found))
        )

    @operation(
        "Create a workflow (a draft unless `status` says otherwise)",
        scope="write",
        body=WorkflowBody,
        response=SavedWorkflow,
        status=201,
    )
    async def post(self, request: Request) -> Response:
        document = await self.edited(request)
        document.pop("version", None)
        _tenant_of(self.principal(request), document)
        document.setdefault("id", f"wf-{uuid.uuid4().hex[:16]}")
        document.setdefault("status", "draft")
        workflow_id = document["id"]
        async with self.writing(workflow_id):
            if isinstance(workflow_id, str) and self.runtime.catalog.get(workflow_id) is not None:
                raise Conflict(f"workflow {workflow_id!r} exists already; PUT changes it")
            # A deleted workflow's id goes on from its last version: versions never repeat.
            version = (
                self.admin.versions.latest(workflow_id) + 1 if isinstance(workflow_id, str) else 1
            )
            workflow = await self.save(
                request, "workflow.created", {**document, "version": version}, None
            )
        return self.reply(_saved(workflow, None), 201)


@route("/workflows/{workflow_id}")
class OneWorkflow(WorkflowView):
    @operation("Read a workflow (inbound webhook secrets as hints)", response=PublicWorkflow)
    async def get(self, request: Request, workflow_id: str) -> Response:
        return self.reply(PublicWorkflow.of(self.workflow(request, workflow_id).workflow))

    @operation(
        "Change a workflow (a new version; `version` in the body guards against lost updates)",
        scope="write",
        body=WorkflowBody,
        response=SavedWorkflow,
    )
    async def put(self, request: Request, workflow_id: str) -> Response:
        document = await self.edited(request)
        async with self.writing(workflow_id):
            current = self.workflow(request, workflow_id).workflow
            if document.setdefault("id", workflow_id) != workflow_id:
                raise InvalidWorkflow(
                    [Problem("id", f"must be {workflow_id!r}, the id in the path")]
                )
            if document.setdefault("tenant_id", current.tenant_id) != current.tenant_id:
                raise InvalidWorkflow(
                    [Problem("tenant_id", "a workflow cannot move to another tenant")]
                )
            expected = document.pop("version", None)
            if expected is not None and (type(expected) is not int or expected < 1):
                raise InvalidWorkflow(
                    [Problem("version", "the version you edited: a whole number, 1 or more")]
                )
            if expected is not None and expected != current.version:
                raise Conflict(
                    f"workflow {workflow_id!r} is at version {current.version}, not {expected}; "
                    "reload it and apply your change again"
                )
            document.setdefault("status", current.status)
            new = {**document, "version": current.version + 1}
            workflow = await self.save(request, "workflow.updated", new, current)
        return self.reply(_saved(workflow, current))

    @operation("Delete a workflow (its versions and runs stay)", scope="write", response=Deleted)
    async def delete(self, request: Request, workflow_id: str) -> Response:
        async with self.writing(workflow_id):
            current = self.workflow(request, workflow_id).workflow
            actor = self.principal(request).actor
            now = self.runtime.clock()
            await self.publish(workflow_change("workflow.deleted", current, None, actor, now))
        return self.reply(Deleted(deleted=workflow_id))


@route("/workflows/{workflow_id}/activate")
class Activate(WorkflowView):
    @operation("Activate a workflow (a new version)", scope="write", response=SavedWorkflow)
    async def post(self, request: Request, workflow_id: str) -> Response:
        return await self.change_status(request, workflow_id, "active")


@route("/workflows/{workflow_id}/deactivate")
class Deactivate(WorkflowView):
    @operation("Deactivate a workflow (a new version)", scope="write", response=SavedWorkflow)
    async def post(self, request: Request, workflow_id: str) -> Response:
        return await self.change_status(request, workflow_id, "inactive")


@route("/workflows/{workflow_id}/webhook-secret")
class RotateSecret(WorkflowView):
    @operation(
        "Rotate the inbound webhook's signing secret (the old one works for `grace_seconds`); "
        "the answer holds the new secret, once",
        scope="write",
        body=SecretRotation,
        response=SavedWorkflow,
    )
    async def post(self, request: Request, workflow_id: str) -> Response:
        has_body = bool((await request.read()).strip())
        options = await self.body(request, SecretRotation) if has_body else SecretRotation()
        async with self.writing(workflow_id):
            current = self.workflow(request, workflow_id).workflow
            if current.trigger.type != "webhook_received":
                raise Conflict(f"workflow {workflow_id!r} has no inbound webhook to rotate")
            document = current.model_dump(mode="json", by_alias=True)
            new = {**document, "version": current.version + 1}
            workflow = await self.save(
                request, "workflow.secret_rotated", new, current, options.grace_seconds
            )
        return self.reply(_saved(workflow, current))


DRY_RUNS = RateLimit(per_second=10, burst=20)
"""Dry runs per tenant: each may take its merge fields' deadline of the worker's event loop."""


@route("/workflows/{workflow_id}/test")
class DryRun(WorkflowView):
    @operation(
        "Dry run: the decision for a ChangeEvent, with the rendered commands; emits nothing",
        body=ChangeEvent,
        response=DryRunResult,
    )
    async def post(self, request: Request, workflow_id: str) -> Response:
        compiled = self.workflow(request, workflow_id)
        wait = DRY_RUNS.allow(compiled.workflow.tenant_id, time.monotonic())
        if wait is not None:
            raise ApiError(
                429,
                f"too many dry runs for this tenant; at most {DRY_RUNS.per_second:g} a second",
                retry_after_seconds=round(wait, 2),
            )
        settings = self.runtime.settings
        raw = await request.read()
        event = decode_change(raw, settings.max_event_bytes)  # refused with the reasons
        if not isinstance(event, ChangeEvent):
            # The hot decoder's event (``topics/hot_events.py``) has equal values; the run
            # record a dry run shows embeds the event as the model (a run decided on the hot
            # path embeds its bytes instead).
            event = ChangeEvent.model_validate_json(raw)
        decision = dry_run(
            compiled, event, max_depth=settings.max_causation_depth, now=self.runtime.clock()
        )
        run = decision.run
        why = explain_trigger(compiled.kind, compiled.trigger, compiled.workflow.tenant_id, event)
        conditions = [ConditionResult.model_validate(c) for c in decision.conditions]
        return self.reply(
            DryRunResult(
                workflow_id=workflow_id,
                workflow_version=compiled.workflow.version,
                workflow_status=compiled.workflow.status,
                tenant_matches=decision.tenant_matches,
                trigger=TriggerResult(
                    type=compiled.kind.name,
                    matched=decision.trigger_matches,
                    reason=why.reason,
                    values=dict(why.values),
                ),
                conditions=conditions,
                condition_tree=condition_tree(compiled.workflow.conditions, conditions),
                outcome=run.record.status if run else "not_triggered",
                error=run.record.error if run else None,
                commands=list(run.commands) if run else [],
                emitted=False,
            )
        )


@route("/workflows/{workflow_id}/versions")
class Versions(WorkflowView):
    @operation("Every saved version of a workflow, newest first", response=VersionList)
    async def get(self, request: Request, workflow_id: str) -> Response:
        principal = self.principal(request)
        versions = [v for v in self.admin.versions.of(workflow_id) if principal.sees(v.tenant_id)]
        if not versions:
            raise NotFound(f"no workflow {workflow_id!r}")
        shown = [PublicWorkflow.of(v) for v in versions]
        return self.reply(VersionList(workflow_id=workflow_id, versions=shown))
