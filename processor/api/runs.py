"""The run history: a workflow's runs, the runs of all of a tenant's workflows, one run in
full, and why a record's events did or did not run workflows. Served from this worker's
history (``processor/projections.py``)."""

from __future__ import annotations

from typing import cast

from faust.web import Request, Response

from coeflow.errors import InvalidInput, NotFound, Problem
from processor.api.views import ApiView, operation, route
from processor.core.explain import condition_tree, explain_record
from processor.core.history import run_detail
from topics.api import (
    RecordDecisions,
    RunCountsPage,
    RunCountsQuery,
    RunDetail,
    RunPage,
    RunQuery,
    RunSearch,
    TenantQuery,
    WorkflowRunCounts,
)
from topics.runs import RunStatus
from topics.workflows import Workflow

MAX_NAME = 256
"""A record type or id is at most this long (``topics.types.NonEmptyStr``)."""


@route("/workflows/{workflow_id}/runs")
class WorkflowRuns(ApiView):
    @operation(
        "A workflow's runs, newest first; filter by status, time, record type and record, "
        "page with `cursor`",
        query=RunQuery,
        response=RunPage,
    )
    async def get(self, request: Request, workflow_id: str) -> Response:
        asked = self.query(request, RunQuery)
        principal = self.principal(request)
        known = self.runtime.catalog.get(workflow_id) or next(
            iter(self.admin.versions.of(workflow_id)), None
        )
        if known is None or not principal.sees(known.tenant_id):
            raise NotFound(f"no workflow {workflow_id!r}")
        page = self.admin.history.search(
            [workflow_id],
            limit=asked.limit,
            status=asked.status,
            since=asked.since,
            until=asked.until,
            cursor=asked.cursor,
            record=_record(asked),
        )
        runs = [r for r in page.runs if principal.sees(r.tenant_id)]
        return self.reply(RunPage(runs=runs, next_cursor=page.next_cursor))


def _record(asked: RunQuery) -> tuple[str | None, str | None] | None:
    """The records a query of runs names: (their type or ``None``, the id or ``None``): one
    record, or every record of a type (``record_type`` alone)."""
    if asked.record_id is None and asked.record_type is None:
        return None
    return asked.record_type, asked.record_id


class HistoryView(ApiView):
    def version(self, workflow_id: str, version: int) -> Workflow | None:
        """The saved version a run ran (deleted workflows' too), if this worker knows it."""
        return self.admin.versions.versions.get(workflow_id, {}).get(version)


@route("/runs")
class Runs(HistoryView):
    @operation(
        "The runs of all of a tenant's workflows, newest first; filter by workflow, status, "
        "time, record type (alone: every record of it) and record, page with `cursor`",
        query=RunSearch,
        response=RunPage,
    )
    async def get(self, request: Request) -> Response:
        asked, tenant = self.scoped_query(request, RunSearch)
        history = self.admin.history
        workflows = history.workflows_of(tenant)
        if asked.workflow_id is not None:
            workflows = [w for w in workflows if w == asked.workflow_id]
        record = _record(asked)
        page = history.search(
            workflows,
            limit=asked.limit,
            status=asked.status,
            since=asked.since,
            until=asked.until,
            cursor=asked.cursor,
            record=record,
        )
        principal = self.principal(request)
        runs = [r for r in page.runs if principal.sees(r.tenant_id)]
        return self.reply(RunPage(runs=runs, next_cursor=page.next_cursor))


FAILED = ("failed", "partially_failed")


@route("/run-counts")
class RunCounts(HistoryView):
    @operation(
        "Each workflow's runs since a time, by status, and its last run (the workflows "
        "list's columns), counted without reading the runs",
        query=RunCountsQuery,
        response=RunCountsPage,
    )
    async def get(self, request: Request) -> Response:
        asked, tenant = self.scoped_query(request, RunCountsQuery)
        history = self.admin.history
        counted = []
        for workflow_id in sorted(history.workflows_of(tenant)):
            counts = history.counts(workflow_id, asked.since)
            counted.append(
                WorkflowRunCounts.model_construct(
                    workflow_id=workflow_id,
                    runs=sum(counts.by_status.values()),
                    failed=sum(counts.by_status.get(s, 0) for s in FAILED),
                    by_status=counts.by_status,
                    last_run_id=counts.last_run_id,
                    last_status=cast(RunStatus | None, counts.last_status),
                    last_decided_at=counts.last_decided_at,
                )
            )
        return self.reply(RunCountsPage(since=asked.since, workflows=counted))


@route("/runs/{run_id}")
class OneRun(HistoryView):
    @operation(
        "One run: the trigger event, each condition with its actual value, each action with "
        "its rendered parameters and every attempt",
        response=RunDetail,
    )
    async def get(self, request: Request, run_id: str) -> Response:
        found = self.admin.history.get(run_id)
        if found is None or not self.principal(request).sees(found[0].tenant_id):
            raise NotFound(f"no run {run_id!r} (or it left the history)")
        detail = run_detail(*found)
        run = found[0]
        saved = self.version(run.workflow_id, run.workflow_version)
        if saved is not None:
            detail.condition_tree = condition_tree(saved.conditions, run.conditions)
        return self.reply(detail)


@route("/records/{record_type}/{record_id}/decisions")
class Decisions(HistoryView):
    @operation(
        "Why a record's recent events did or did not run workflows",
        query=TenantQuery,
        response=RecordDecisions,
    )
    async def get(self, request: Request, record_type: str, record_id: str) -> Response:
        if len(record_type) > MAX_NAME or len(record_id) > MAX_NAME:
            raise NotFound(f"no record of that type and id (each is at most {MAX_NAME} characters)")
        _, tenant = self.scoped_query(request, TenantQuery)
        if tenant is None:
            raise InvalidInput(
                [Problem("tenant_id", "the operator's token must name the record's tenant")],
                "invalid query",
            )
        runs = self.admin.history.of_record((tenant, record_type, record_id))
        active = [  # by the compiled trigger: a lead_score_threshold implies its record type
            compiled
            for w in self.runtime.catalog.workflows(tenant)
            if w.status == "active"
            and (compiled := self.runtime.catalog.compiled(w.id)) is not None
            and compiled.trigger.record_type == record_type
        ]
        explained = explain_record(tenant, record_type, record_id, runs, active, self.version)
        return self.reply(explained)
