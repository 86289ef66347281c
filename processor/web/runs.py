"""Runs: one run in full, the runs of all of a tenant's workflows, and "Why didn't it run?"."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from processor.web.pages import Page, PageError, Redirect, page
from processor.web.workflows import MAX_FILTER, runs_table

FAILED_STEPS = frozenset({"failed"})


@page("/runs/{run_id}")
async def run_page(page: Page) -> web.StreamResponse:
    detail = await page.require(page.api.get("/runs/" + quote(page.match["run_id"], safe="")))
    run = detail["run"]
    steps = detail["steps"]
    failed = [s for s in steps if s["status"] in FAILED_STEPS]
    return page.render(
        "run.html",
        run=run,
        steps=steps,
        failed=failed,
        condition_tree=detail.get("condition_tree"),
    )


async def _search(page: Page) -> dict[str, Any]:
    table = await runs_table(page, narrowing=("workflow_id", "record_type"))
    return {**table, "poll_url": "/runs/list", "show_workflow": True}


@page("/runs")
async def runs_search(page: Page) -> web.StreamResponse:
    if page.tenant_id is None:
        raise Redirect("/tenant")
    listed = await page.require(page.api.get("/workflows", **page.tenant_query))
    workflows = sorted(listed["workflows"], key=lambda w: (str(w["name"]).casefold(), w["id"]))
    return page.render("runs.html", workflows=workflows, **await _search(page))


@page("/runs/list")
async def runs_search_fragment(page: Page) -> web.StreamResponse:
    if page.tenant_id is None:
        raise Redirect("/tenant")
    return page.render("runs_table.html", **await _search(page))


@page("/why")
async def why(page: Page) -> web.StreamResponse:
    """A record's recent decisions: which workflows' triggers matched, which condition
    stopped each, with the values (the API's explanation)."""
    if page.tenant_id is None:
        raise Redirect("/tenant")
    record_type = page.query.get("record_type", "").strip()[:MAX_FILTER]
    record_id = page.query.get("record_id", "").strip()[:MAX_FILTER]
    answer, problem = None, None
    if record_type and record_id:
        path = f"/records/{quote(record_type, safe='')}/{quote(record_id, safe='')}/decisions"
        got = await page.api.get(path, **page.tenant_query)
        if got.status == 401:
            raise Redirect("/sign-in")
        if got.ok:
            answer = got.body
        elif got.status in (404, 422):
            problem = got.error
        else:
            raise PageError(got.status, got.error)
    elif record_type or record_id:
        problem = "Give both the record type and the record id."
    return page.render(
        "why.html", record_type=record_type, record_id=record_id, answer=answer, problem=problem
    )
