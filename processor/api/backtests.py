"""Backtests: what a workflow version would have done over the retained record changes, beside
another version (``processor/backtests.py`` runs them, in the memory of this worker).

Start one with ``POST /workflows/{id}/backtest`` (202: it runs in the background), follow it and
read its result with ``GET /backtests/{id}`` (JSON, or the changed events as CSV), stop it with
``DELETE``. A read-scope token may do all three: a backtest changes nothing.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any, Literal

from faust.web import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from coeflow.addresses import Allowlist
from coeflow.errors import InvalidInput, InvalidWorkflow, NotFound, Problem
from processor.api.views import ApiError, ApiView, operation, route
from processor.backtests import Backtests, TooManyBacktests
from processor.core.access import Principal
from processor.core.backtest import NOT_BACKTESTED
from processor.core.backtest_csv import changed_csv
from processor.core.backtest_versions import choose_versions
from processor.core.compiler import CompiledWorkflow, validate_workflow
from processor.core.rates import RateLimit
from topics.api import SERVER_FIELDS
from topics.backtests import Backtest, BacktestRequest, BacktestStarted
from topics.workflows import Workflow

DEFAULT_WINDOW = timedelta(days=7)

STARTS = RateLimit(per_second=0.2, burst=5)
"""Backtests a tenant may start, per second, whatever it cancels: each starts a process."""

MAX_PAGE = 10_000
CSV_TYPE = "text/csv; charset=utf-8"


def accepts_csv(accept: str) -> bool:
    """Whether an ``Accept`` header prefers CSV to JSON: ``text/csv`` with a weight above
    zero and above ``application/json``'s (equal, JSON: the default). Case-insensitive, as
    media types are; a weight that cannot be read counts as 1."""
    weights: dict[str, float] = {}
    for item in accept.split(",")[:64]:
        kind, *parameters = item.split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    weight = 1.0
        name = kind.strip().lower()
        weights[name] = max(weights.get(name, 0.0), weight)
    csv = weights.get("text/csv", 0.0)
    return csv > 0 and csv > weights.get("application/json", 0.0)


class BacktestQuery(BaseModel):
    """``GET /backtests/{id}``: the format, and a page of the changed events."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "csv"] | None = Field(
        None,
        description="`csv`: the changed events as CSV (`Accept: text/csv` says the same).",
    )
    changed_offset: Annotated[int, Field(ge=0, le=10_000_000)] = Field(
        0, description="The first changed event shown (from 0, earliest first)."
    )
    changed_limit: Annotated[int | None, Field(ge=1, le=MAX_PAGE)] = Field(
        None, description="How many changed events are shown; default every one kept."
    )


class BacktestView(ApiView):
    @property
    def backtests(self) -> Backtests:
        return self.admin.backtests

    def found(self, request: Request, backtest_id: str) -> Backtest:
        """The backtest, if this token's tenant may see it (another tenant's is a 404)."""
        backtest = self.backtests.get(backtest_id, self.principal(request).tenant_id)
        if backtest is None:
            raise NotFound(f"no backtest {backtest_id[:80]!r}")
        return backtest


@route("/workflows/{workflow_id}/backtest")
class StartBacktest(BacktestView):
    @operation(
        "Backtest: replay the retained record changes through a version (or an unsaved "
        "definition) beside another; runs in the background, emits nothing",
        body=BacktestRequest,
        response=BacktestStarted,
        status=202,
    )
    async def post(self, request: Request, workflow_id: str) -> Response:
        has_body = bool((await request.read()).strip())
        asked = await self.body(request, BacktestRequest) if has_body else BacktestRequest()
        principal = self.principal(request)
        saved = self._saved(principal, workflow_id)
        definition = (
            self._definition(principal, workflow_id, saved, asked.definition)
            if asked.definition is not None
            else None
        )
        if not saved and definition is None:
            raise NotFound(f"no workflow {workflow_id!r}")
        chosen = choose_versions(
            workflow_id,
            saved,
            version=asked.version,
            compare_to=asked.compare_to,
            definition=definition,
            not_backtested=NOT_BACKTESTED,
        )
        now = self.runtime.clock()
        until = asked.until or now
        since = asked.since or until - DEFAULT_WINDOW
        if since >= until:
            raise InvalidInput([Problem("since", "must be before until")], "invalid window")
        if since > now:
            raise InvalidInput(
                [Problem("since", "is after now: no record change of the window happened yet")],
                "invalid window",
            )
        tenant_id = chosen.candidate.workflow.tenant_id
        wait = STARTS.allow(tenant_id, time.monotonic())
        if wait is not None:
            raise ApiError(
                429,
                "too many backtests started for this tenant; one every "
                f"{1 / STARTS.per_second:g} seconds on average, {STARTS.burst:g} at most at once",
                retry_after_seconds=round(wait, 2),
            )
        settings = self.runtime.settings
        try:
            started = self.backtests.start_backtest(
                tenant_id,
                workflow_id,
                chosen,
                since,
                until,
                asked.max_events or settings.backtest_max_events,
            )
        except TooManyBacktests as exc:
            raise ApiError(429, str(exc)) from None
        return self.reply(
            BacktestStarted(
                backtest_id=started.backtest_id,
                status=started.status,
                workflow_id=workflow_id,
                candidate_version=started.candidate_version,
                baseline_version=started.baseline_version,
                since=since,
                until=until,
            ),
            202,
        )

    def _saved(self, principal: Principal, workflow_id: str) -> dict[int, Workflow]:
        """The workflow's saved versions (a deleted workflow's too); another tenant's is a 404,
        even with a definition: ids are one namespace."""
        saved = self.admin.versions.versions.get(workflow_id, {})
        if saved and not any(principal.sees(w.tenant_id) for w in saved.values()):
            raise NotFound(f"no workflow {workflow_id!r}")
        return dict(saved)

    def _definition(
        self,
        principal: Principal,
        workflow_id: str,
        saved: dict[int, Workflow],
        document: dict[str, Any],
    ) -> CompiledWorkflow:
        """The unsaved definition as ``PUT`` would save it (refused with the same problems):
        the path's id, the workflow's tenant (a new workflow's: the token's, or for the
        operator the one it names)."""
        document = {k: v for k, v in document.items() if k not in SERVER_FIELDS}
        if document.setdefault("id", workflow_id) != workflow_id:
            raise InvalidWorkflow([Problem("id", f"must be {workflow_id!r}, the id in the path")])
        tenant = next(iter(saved.values())).tenant_id if saved else principal.tenant_id
        if tenant is not None and document.setdefault("tenant_id", tenant) != tenant:
            raise InvalidWorkflow(
                [Problem("tenant_id", "must be the workflow's tenant (this token's)")]
            )
        document["version"] = max(saved, default=0) + 1
        document.setdefault("status", "draft")
        allowlist = Allowlist.parse(self.runtime.settings.outbound_allowlist)
        return validate_workflow({**document, "updated_at": self.runtime.clock()}, allowlist)


@route("/backtests/{backtest_id}")
class OneBacktest(BacktestView):
    @operation(
        "A backtest: its status and progress, and once done its result (`?format=csv` or "
        "`Accept: text/csv`: the changed events as CSV)",
        query=BacktestQuery,
        response=Backtest,
    )
    async def get(self, request: Request, backtest_id: str) -> Response:
        asked = self.query(request, BacktestQuery)
        backtest = self.found(request, backtest_id)
        wants_csv = asked.format == "csv" or (
            asked.format is None and accepts_csv(request.headers.get("Accept", ""))
        )
        result = backtest.result
        end = None if asked.changed_limit is None else asked.changed_offset + asked.changed_limit
        if wants_csv:
            if result is None:
                raise ApiError(
                    409, f"backtest {backtest_id!r} is {backtest.status}: it has no result yet"
                )
            text = changed_csv(
                result.changed[asked.changed_offset : end],
                backtest.candidate_version,
                backtest.baseline_version,
            )
            return self.bytes(
                text.encode(),
                headers={
                    "Content-Type": CSV_TYPE,  # aiohttp takes no charset in content_type
                    "Content-Disposition": f'attachment; filename="{backtest.backtest_id}.csv"',
                },
            )
        if result is not None and (asked.changed_offset or end is not None):
            page = result.changed[asked.changed_offset : end]
            return self.reply(
                backtest.model_copy(update={"result": result.model_copy(update={"changed": page})})
            )
        encoded = self.backtests.encoded(backtest.backtest_id)  # found: this tenant's
        if encoded is not None:  # finished: the same answer every time, encoded once
            return self.bytes(encoded, content_type="application/json")
        return self.reply(backtest)

    @operation(
        "Cancel a backtest (queued or running; a finished one stays as it is)", response=Backtest
    )
    async def delete(self, request: Request, backtest_id: str) -> Response:
        backtest = self.found(request, backtest_id)
        cancelled = self.backtests.cancel(backtest.backtest_id)
        return self.reply(cancelled if cancelled is not None else backtest)
