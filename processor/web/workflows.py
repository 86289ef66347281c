"""Settings → Workflows: the list, and a workflow's detail page with its tabs (Runs,
Versions, Settings), its Runs tab's self-updating list, Activate/Deactivate, a diff between
two versions and "restore as draft"."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from processor.web.calls import Answer
from processor.web.pages import Page, PageError, Redirect, page

STATUSES = ("draft", "active", "inactive")
RUN_STATUSES = (
    "actions_issued",
    "succeeded",
    "partially_failed",
    "failed",
    "conditions_not_met",
    "loop_blocked",
)
RUNS_PER_PAGE = 25
POLL_SECONDS = 3
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
"""The Runs tab's time ranges (besides "any time" and a custom one)."""
MAX_FILTER = 256


def path_of(workflow_id: str, *rest: str) -> str:
    return "/workflows/" + "/".join([quote(workflow_id, safe=""), *rest])


def _matches(workflow: dict[str, Any], text: str) -> bool:
    if not text:
        return True
    trigger = workflow.get("trigger") or {}
    haystack = " ".join(
        str(x) for x in (workflow.get("name"), workflow.get("id"), *trigger.values())
    )
    return text.casefold() in haystack.casefold()


@page("/workflows")
async def workflow_list(page: Page) -> web.StreamResponse:
    if page.tenant_id is None:
        raise Redirect("/tenant")
    status = page.query.get("status", "")
    text = page.query.get("q", "").strip()[:MAX_FILTER]
    asked = {**page.tenant_query, "status": status if status in STATUSES else None}
    listed = await page.require(page.api.get("/workflows", **asked))
    shown = [w for w in listed["workflows"] if _matches(w, text)]
    shown.sort(key=lambda w: (str(w.get("name", "")).casefold(), w["id"]))
    since = page.runtime.clock() - timedelta(hours=24)
    counted = await page.require(
        page.api.get("/run-counts", **page.tenant_query, since=since.isoformat())
    )
    counts = {c["workflow_id"]: c for c in counted["workflows"]}
    rows = [{"workflow": w, "counts": counts.get(w["id"])} for w in shown]
    return page.render(
        "workflows.html",
        rows=rows,
        status_filter=status,
        text=text,
        statuses=STATUSES,
        total=listed["count"],
    )


def _run_filters(
    page: Page, narrowing: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, str | int | None], list[str]]:
    """The runs filters as asked (to show and to repeat in links), the API query they make,
    and what is wrong with them. ``narrowing``: text filters passed to the API as they are."""
    q = page.query
    names = ("status", "range", "from", "to", "record_id", "cursor", *narrowing)
    shown = {name: q.get(name, "").strip()[:MAX_FILTER] for name in names}
    problems: list[str] = []
    api: dict[str, str | int | None] = {"limit": RUNS_PER_PAGE}
    if shown["status"] in RUN_STATUSES:
        api["status"] = shown["status"]
    elif shown["status"]:
        problems.append(f"status: pick one of the list, not {shown['status']!r}")
    now = page.runtime.clock()
    if shown["range"] in RANGES:
        api["since"] = (now - RANGES[shown["range"]]).isoformat()
    for name, key in (("from", "since"), ("to", "until")):
        if shown[name]:
            try:
                at = datetime.fromisoformat(shown[name])
            except ValueError:
                problems.append(f"{name}: a date and time, such as 2026-12-01T09:30")
                continue
            api[key] = (at if at.tzinfo else at.replace(tzinfo=now.tzinfo)).isoformat()
    for name in ("record_id", "cursor", *narrowing):
        if shown[name]:
            api[name] = shown[name]
    return shown, api, problems


async def runs_table(
    page: Page, *, narrowing: tuple[str, ...] = (), **fixed: str
) -> dict[str, Any]:
    """What the runs table shows: a page of runs, newest first, from ``GET /runs`` with the
    page's filters (and ``fixed`` ones, such as the Runs tab's workflow); the API's 422
    problems are shown above the table."""
    shown, api, problems = _run_filters(page, narrowing)
    runs: list[dict[str, Any]] = []
    next_cursor = None
    if not problems:
        got = await page.api.get("/runs", **page.tenant_query, **api, **fixed)
        if got.status == 401:
            raise Redirect("/sign-in")
        if got.ok:
            runs, next_cursor = got.body["runs"], got.body.get("next_cursor")
        elif got.status == 422:
            problems = [f"{p['loc']}: {p['msg']}" for p in got.problems] or [got.error]
        else:
            raise PageError(got.status, got.error)
    keep = {k: v for k, v in shown.items() if v and k != "cursor"}
    return {
        "runs": runs,
        "filters": shown,
        "problems": problems,
        "statuses": RUN_STATUSES,
        "older": urlencode({**keep, "cursor": next_cursor}) if next_cursor else None,
        "filter_query": urlencode(keep),
        "live": not shown["cursor"],
        "poll_seconds": POLL_SECONDS,
    }


async def _workflow(page: Page) -> dict[str, Any]:
    workflow_id = page.match["workflow_id"]
    body: dict[str, Any] = await page.require(page.api.get(path_of(workflow_id)))
    return body


@page("/workflows/{workflow_id}")
async def workflow_detail(page: Page) -> web.StreamResponse:
    raise Redirect(path_of(page.match["workflow_id"], "runs"))


@page("/workflows/{workflow_id}/runs")
async def runs_tab(page: Page) -> web.StreamResponse:
    workflow = await _workflow(page)
    return page.render(
        "workflow_runs.html",
        workflow=workflow,
        tab="runs",
        **await runs_table(page, workflow_id=workflow["id"]),
    )


@page("/workflows/{workflow_id}/runs/list")
async def runs_fragment(page: Page) -> web.StreamResponse:
    """The Runs tab's table alone: what htmx polls while the tab is open."""
    workflow = await _workflow(page)  # another tenant's workflow: 404, as on the API
    return page.render(
        "runs_table.html", workflow=workflow, **await runs_table(page, workflow_id=workflow["id"])
    )


async def _versions(page: Page, workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every version, newest first, each with who saved it and when (the audit log)."""
    workflow_id = workflow["id"]
    listed = await page.require(page.api.get(path_of(workflow_id, "versions")))
    audit = await page.api.get(
        "/audit",
        **page.tenant_query,
        subject_type="workflow",
        subject_id=workflow_id,
        limit=200,
    )
    made: dict[int, dict[str, Any]] = {}
    if audit.ok:
        for event in audit.body.get("events", []):
            version = event.get("version")
            if isinstance(version, int) and version not in made:
                made[version] = event
    return [{"workflow": v, "audit": made.get(v["version"])} for v in listed["versions"]]


def _version_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


@page("/workflows/{workflow_id}/versions")
async def versions_tab(page: Page) -> web.StreamResponse:
    workflow = await _workflow(page)
    versions = await _versions(page, workflow)
    numbers = [v["workflow"]["version"] for v in versions]
    older = _version_number(page.query.get("from", ""))
    newer = _version_number(page.query.get("to", ""))
    diff, problem = None, None
    if older is not None and newer is not None:
        got = await page.api.get(
            path_of(workflow["id"], "diff"), from_version=older, to_version=newer
        )
        if got.status == 401:
            raise Redirect("/sign-in")
        if got.ok:
            diff = got.body
        else:
            problem = got.error
    elif page.query.get("from") or page.query.get("to"):
        problem = "Pick two versions that exist."
    return page.render(
        "workflow_versions.html",
        workflow=workflow,
        tab="versions",
        versions=versions,
        numbers=numbers,
        older=older if older is not None else (numbers[1:2] or numbers[:1] or [None])[0],
        newer=newer if newer is not None else (numbers[:1] or [None])[0],
        diff=diff,
        problem=problem,
    )


@page("/workflows/{workflow_id}/versions/{version}")
async def version_page(page: Page) -> web.StreamResponse:
    """One saved version's definition (the API's ``GET .../versions/{version}``)."""
    workflow = await _workflow(page)
    number = _version_number(page.match["version"])
    if number is None:
        raise PageError(404, "no such version")
    definition = await page.require(page.api.get(path_of(workflow["id"], "versions", str(number))))
    return page.render(
        "workflow_version.html", workflow=workflow, tab="versions", definition=definition
    )


@page("/workflows/{workflow_id}/versions/{version}/restore", methods=("POST",))
async def restore(page: Page) -> web.StreamResponse:
    """A new draft version with an old one's definition (the API's restore)."""
    workflow_id = page.match["workflow_id"]
    number = _version_number(page.match["version"])
    if number is None:
        raise PageError(404, "no such version")
    saved = await page.api.post(path_of(workflow_id, "versions", str(number), "restore"))
    _refused(saved)
    raise Redirect(path_of(workflow_id, "versions"))


def _refused(answer: Answer) -> None:
    """Nothing for an answer that succeeded; else to sign-in (401) or the API's reason with
    every problem it listed."""
    if answer.status == 401:
        raise Redirect("/sign-in")
    if not answer.ok:
        problems = "; ".join(f"{p['loc']}: {p['msg']}" for p in answer.problems)
        raise PageError(answer.status, answer.error + (f" ({problems})" if problems else ""))


@page("/workflows/{workflow_id}/settings")
async def settings_tab(page: Page) -> web.StreamResponse:
    workflow = await _workflow(page)
    return page.render("workflow_settings.html", workflow=workflow, tab="settings")


async def _set_status(page: Page, action: str) -> web.StreamResponse:
    workflow_id = page.match["workflow_id"]
    _refused(await page.api.post(path_of(workflow_id, action)))
    back = (await page.form()).get("back", "")
    tab = back if back in ("runs", "versions", "settings") else "runs"
    raise Redirect(path_of(workflow_id, tab))


@page("/workflows/{workflow_id}/activate", methods=("POST",))
async def activate(page: Page) -> web.StreamResponse:
    return await _set_status(page, "activate")


@page("/workflows/{workflow_id}/deactivate", methods=("POST",))
async def deactivate(page: Page) -> web.StreamResponse:
    return await _set_status(page, "deactivate")
