"""The builder's Backtest panel over HTTP: the window read from the form, the request (the
unsaved changes as ``definition``, else the API's defaults), progress polled while it runs,
Cancel, the two columns of counts, the changed records with their conditions and both
outcomes, the CSV download, paging, escaping, and another tenant's or workflow's backtest.

The backtest API is stood in for by routes that run the real fold (``processor.core.backtest.
replay``) over a list of events with the real compiler, so the result has the API's shape and
its figures are the core's own; the browser test runs the real worker."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from coeflow.errors import InvalidWorkflow
from processor.core.backtest import NOT_BACKTESTED, ReplaySpec, replay
from processor.core.compiler import validate_workflow
from processor.core.pipeline import decode_change
from processor.web import backtest, labels
from processor.web.backtest import WindowError, count_rows, request_body, window_of
from processor.web.pages import templates
from tests.processor.web.conftest import OpenClient
from tests.processor.web.test_builder import XSS, Fake, FakeApi, post, saved_seed, values
from tests.processor.web.test_escaping import PLAIN, structure
from topics.backtests import Backtest, BacktestRequest, BacktestStarted

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer any"}


def lead(n: int, score: int, name: str = "") -> dict[str, Any]:
    """A lead created ``n`` hours before the wall clock's now: the builder reads its window
    ("the last 24 hours") from the wall clock, so the events must be placed by it too, not by
    ``NOW`` (which they drifted out of a day after it)."""
    return {
        "event_id": f"evt-{n}",
        "tenant_id": "t-1",
        "record_type": "lead",
        "record_id": f"L-{n}",
        "operation": "created",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=n)).isoformat(),
        "before": None,
        "after": {
            "name": name or f"Lead {n}",
            "email": f"l{n}@example.com",
            "score": score,
            "owner_id": "u-7",
        },
        "actor_id": None,
    }


class FakeBacktests(FakeApi):
    """The workflow endpoints, and the backtest's three over the real fold: a backtest is
    ``running`` at its first read and ``done`` at the next (or ``cancelled``)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.backtests: dict[str, dict[str, Any]] = {}
        self.reads: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.active: dict[str, dict[str, Any]] = {}
        """The baseline of each workflow: the version saved active (set by a test)."""

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/api/v1/workflows/{id}/backtest", self.start)
        app.router.add_get("/api/v1/backtests/{id}", self.backtest)
        app.router.add_delete("/api/v1/backtests/{id}", self.cancel)

    async def start(self, request: web.Request) -> web.Response:
        current = self.found(request)
        body = await request.json()
        self.requests.append(body)
        asked = BacktestRequest.model_validate(body)
        reason = NOT_BACKTESTED.get(current["trigger"]["type"])
        if reason is not None:
            return self.reply({"error": reason}, 422)
        saved = {k: v for k, v in current.items() if k != "inbound_secrets"}
        document = saved if asked.definition is None else {**saved, **asked.definition}
        try:
            candidate = validate_workflow(document)
        except InvalidWorkflow as exc:
            problems = [{"loc": p.loc, "msg": p.msg} for p in exc.problems]
            return self.reply({"error": "invalid workflow", "problems": problems}, 422)
        base = self.active.get(current["id"])
        assert asked.since is not None and asked.until is not None
        spec = ReplaySpec(
            candidate=candidate,
            candidate_version=None if asked.definition is not None else current["version"],
            baseline=validate_workflow(base) if base else None,
            baseline_version=base["version"] if base else None,
            since=asked.since,
            until=asked.until,
            max_events=1000,
            max_changed=1000,
            max_records=1000,
            max_depth=5,
        )
        events = [decode_change(orjson.dumps(e), 1 << 20) for e in self.events]
        result = replay(events, spec)
        backtest_id = f"bt-{len(self.backtests) + 1}"
        self.backtests[backtest_id] = Backtest(
            backtest_id=backtest_id,
            tenant_id=current["tenant_id"],
            workflow_id=current["id"],
            status="done",
            candidate_version=spec.candidate_version,
            baseline_version=spec.baseline_version,
            since=asked.since,
            until=asked.until,
            max_events=1000,
            created_at=NOW,
            result=result,
        ).model_dump(mode="json")
        started = BacktestStarted(
            backtest_id=backtest_id,
            status="queued",
            workflow_id=current["id"],
            candidate_version=spec.candidate_version,
            baseline_version=spec.baseline_version,
            since=asked.since,
            until=asked.until,
        )
        return self.reply(started.model_dump(mode="json"), 202)

    def own(self, request: web.Request) -> dict[str, Any] | None:
        """The backtest, if the token's tenant may see it (the API answers 404 otherwise)."""
        found = self.backtests.get(request.match_info["id"])
        if found is None or found["tenant_id"] != self.tenant(request):
            return None
        return found

    async def backtest(self, request: web.Request) -> web.Response:
        found = self.own(request)
        if found is None:
            return self.reply({"error": "no backtest"}, 404)
        self.calls.append(("GET", request.path, dict(request.query)))
        reads = self.reads[found["backtest_id"]] = self.reads.get(found["backtest_id"], 0) + 1
        if reads == 1 and found["status"] == "done":  # still running at its first read
            running = {**found, "status": "running", "result": None}
            running["progress"] = {"messages_read": 40, "messages_total": 160, "events_scanned": 9}
            return self.reply(running)
        result = found["result"]
        if request.query.get("format") == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["record_type", "record_id", "event_id", "candidate", "baseline"])
            for c in result["changed"] if result else []:
                statuses = [(c[s] or {}).get("status", "") for s in ("candidate", "baseline")]
                writer.writerow([c["record"]["type"], c["record"]["id"], c["event_id"], *statuses])
            return web.Response(text=out.getvalue(), content_type="text/csv")
        if result:
            offset = int(request.query.get("changed_offset", 0))
            limit = int(request.query.get("changed_limit", 1000))
            result = {**result, "changed": result["changed"][offset : offset + limit]}
        return self.reply({**found, "result": result})

    async def cancel(self, request: web.Request) -> web.Response:
        found = self.own(request)
        if found is None:
            return self.reply({"error": "no backtest"}, 404)
        self.calls.append(("DELETE", request.path, None))
        found.update(status="cancelled", result=None)
        return self.reply(found)


class FakeWorker(Fake):
    api: FakeBacktests

    def __init__(self) -> None:
        super().__init__()
        self.api = FakeBacktests()


@pytest.fixture
def fake() -> FakeWorker:
    return FakeWorker()


@pytest.fixture
async def client(fake: FakeWorker, open_client: OpenClient) -> TestClient[Any, Any]:
    return await open_client(fake.app(), fake.sessions, fake.token)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


async def seeded(client: TestClient[Any, Any], fake: FakeWorker) -> tuple[str, dict[str, str]]:
    """The seed saved (score ≥ 50), the same saved as its active baseline, and leads scored
    10, 60, 75 and 90 in the last day: the workflow's id and its builder's form."""
    workflow_id, html = await saved_seed(client, fake)
    fake.api.active[workflow_id] = {**fake.api.workflows[workflow_id], "status": "active"}
    fake.api.active[workflow_id].pop("inbound_secrets")
    fake.api.events = [lead(1, 10), lead(2, 60, name=XSS), lead(3, 75), lead(4, 90)]
    return workflow_id, values(html)


def raised_to(form: dict[str, str], threshold: int) -> dict[str, str]:
    """The form with the seed's condition changed to score ≥ ``threshold`` (not saved)."""
    assert form["conditions.0.field"] == "score"
    return {**form, "conditions.0.value": str(threshold)}


# --------------------------------------------------------------------------- pure parts


def test_the_window_is_the_last_day_week_month_or_between_two_times() -> None:
    assert window_of({"backtest.window": "24h"}, NOW) == (NOW - timedelta(hours=24), NOW)
    assert window_of({}, NOW) == (NOW - timedelta(days=7), NOW)
    assert window_of({"backtest.window": "30d"}, NOW)[0] == NOW - timedelta(days=30)
    assert window_of({"backtest.window": "whatever"}, NOW)[0] == NOW - timedelta(days=7)
    between = {"backtest.window": "between", "backtest.since": "2026-11-20T09:30"}
    assert window_of(between, NOW) == (datetime(2026, 11, 20, 9, 30, tzinfo=UTC), NOW)
    between["backtest.until"] = "2026-11-21T00:00:00+01:00"
    assert window_of(between, NOW)[1] == datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "field", "reason"),
    [
        ("", "", "backtest.since", "give the window's start"),
        ("2026-11-22T00:00", "2026-11-21T00:00", "backtest.since", "before the end"),
        ("2026-11-22T00:00", "2026-11-22T00:00", "backtest.since", "before the end"),
        ("2026-12-02T00:00", "", "backtest.since", "the start is after now"),
        ("2026-12-02T00:00", "2026-12-03T00:00", "backtest.since", "the start is after now"),
        ("yesterday", "", "backtest.since", "not a date and time"),
        ("0001-01-01T00:00+05:00", "", "backtest.since", "not a date and time"),
        ("2026-11-22T00:00", "9999-12-31T23:59-05:00", "backtest.until", "not a date"),
        ("2026-11-22T00:00", "2026-11-22T00:00" + "0" * 50, "backtest.until", "not a date"),
    ],
)
def test_a_window_that_is_none_is_refused_at_its_field(
    since: str, until: str, field: str, reason: str
) -> None:
    form = {"backtest.window": "between", "backtest.since": since, "backtest.until": until}
    with pytest.raises(WindowError, match=reason) as raised:
        window_of(form, NOW)
    assert raised.value.field == field


def test_unsaved_changes_go_as_the_definition_and_a_saved_version_as_the_apis_default() -> None:
    form = {"name": "W", "version": "3", "trigger.type": "record_created", "backtest.window": "24h"}
    body = request_body(form, NOW, unsaved=True)
    assert body["since"] == (NOW - timedelta(hours=24)).isoformat()
    assert body["definition"]["name"] == "W" and "version" not in body["definition"]
    assert "version" not in body and "compare_to" not in body
    assert "definition" not in request_body(form, NOW, unsaved=False)
    BacktestRequest.model_validate(body)  # what the API reads


def test_the_two_columns_have_every_status_and_type_either_side_has() -> None:
    result = {
        "candidate": {"runs_total": 3, "runs": {"actions_issued": 3}, "actions": {"send_email": 3}},
        "baseline": {
            "runs_total": 4,
            "runs": {"actions_issued": 2, "conditions_not_met": 2},
            "actions": {"send_email": 2, "create_task": 2, "x": True},
        },
    }
    rows = [(r.label, r.candidate, r.baseline, r.differs) for r in count_rows(result)]
    assert rows == [
        ("Runs", 3, 4, True),
        ("Actions issued", 3, 2, True),
        ("Conditions not met", 0, 2, True),
        ("Create Task", 0, 2, True),
        ("Send Email", 3, 2, True),
    ]
    assert count_rows({})[0] == backtest.CountRow("Runs", 0, 0, "total")


# --------------------------------------------------------------------------- over HTTP


async def test_a_backtest_of_unsaved_changes_runs_then_shows_counts_and_changed_records(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    edited = {**raised_to(form, 80), "backtest.window": "24h"}
    status, html = await post(client, f"/workflows/{workflow_id}/edit", edited, "backtest")
    assert status == 200, html
    (asked,) = fake.api.requests
    assert asked["definition"]["conditions"] == {
        "all": [{"field": "score", "op": "gte", "value": 80}]
    }
    assert datetime.fromisoformat(asked["until"]) - datetime.fromisoformat(asked["since"]) == (
        timedelta(hours=24)
    )
    assert fake.api.workflows[workflow_id]["version"] == 1  # nothing saved
    # running: progress, polled every second (the form posted: it follows the form's edits),
    # a Cancel button, the unsaved form kept
    assert 'hx-post="/workflows/' + workflow_id + '/edit"' in html
    assert """hx-vals='{"op": "backtest_panel"}'""" in html
    assert 'hx-trigger="every 1s, edited from:#builder"' in html and 'hx-target="this"' in html
    assert "Read 40 of about 160 messages (25%)" in text_of(html)
    assert 'value="cancel_backtest"' in html
    assert values(html)["conditions.0.value"] == "80"
    assert values(html)["backtest.id"] == "bt-1"
    # the poll: done, so it stops polling (and follows the form's edits still)
    status, fragment = await post(
        client, f"/workflows/{workflow_id}/edit", values(html), "backtest_panel", htmx=True
    )
    assert status == 200 and 'hx-trigger="edited from:#builder"' in fragment
    assert "<html" not in fragment and 'id="backtest"' in fragment
    shown = text_of(fragment)
    assert "4 record changes replayed" in shown and "2 outcomes would change" in shown
    counts = re.search(r'<table id="backtest-counts".*?</table>', fragment, re.S)
    assert counts is not None
    rows = text_of(counts.group(0))
    assert "Backtested Your unsaved changes Compared with Version 1 (active)" in rows
    assert "changed since this backtest" not in fragment
    assert "Runs 4 4" in rows and "Actions issued 1 3" in rows
    assert "Conditions not met 3 1" in rows and "Send Email 1 3" in rows
    # the changed records, earliest first: L-3 (75) and L-2 (60), each with its values
    changed = re.findall(r"<details>.*?</details>", fragment, re.S)
    assert len(changed) == 2
    assert "lead L-3" in text_of(changed[0]) and "lead L-2" in text_of(changed[1])
    first = text_of(changed[0])
    assert "another status" in first and "Conditions not met instead of Actions issued" in first
    assert "score ≥ 80 75 not met" in first and "score ≥ 50 75 passed" in first
    assert "Send Email" in first and "l3@example.com" in first
    assert '/csv" download' in fragment


async def test_record_fields_in_a_backtest_are_escaped(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    await post(client, f"/workflows/{workflow_id}/edit", raised_to(form, 80), "backtest")
    response = await client.get(f"/workflows/{workflow_id}/backtests/bt-1")
    response = await client.get(f"/workflows/{workflow_id}/backtests/bt-1")
    fragment = await response.text()
    assert "Hi &lt;img src=x onerror=alert(1)&gt;" in fragment and XSS not in fragment


async def test_without_changes_the_saved_version_goes_and_the_panel_survives_an_edit(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    _, html = await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    (asked,) = fake.api.requests
    assert "definition" not in asked
    assert datetime.fromisoformat(asked["until"]) - datetime.fromisoformat(asked["since"]) == (
        timedelta(days=7)
    )
    await client.get(f"/workflows/{workflow_id}/backtests/bt-1")  # running
    _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), "refresh")
    assert "changed since this backtest" not in html  # the same workflow: the result is its own
    added = {**values(html), "new_action": "add_note"}
    _, html = await post(client, f"/workflows/{workflow_id}/edit", added, "add_action")
    assert values(html)["backtest.id"] == "bt-1"
    shown = text_of(html)
    assert "Backtested Version 1 (draft) Compared with Version 1 (active)" in shown
    assert "No record would change: both versions do the same over the window." in shown
    # the action added is an edit since: the result is marked out of date
    assert "The workflow changed since this backtest: run it again." in shown
    assert 'class="backtest-result stale"' in html


async def test_a_window_between_two_times_and_its_mistakes_at_the_field(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    between = {**form, "backtest.window": "between", "backtest.since": "2026-11-30T09:00"}
    await post(client, f"/workflows/{workflow_id}/edit", between, "backtest")
    assert fake.api.requests[-1]["since"] == "2026-11-30T09:00:00+00:00"
    wrong = {**between, "backtest.until": "2026-11-29T09:00"}
    status, html = await post(client, f"/workflows/{workflow_id}/edit", wrong, "backtest")
    assert status == 422 and len(fake.api.requests) == 1
    assert 'id="e-backtest"' in html and "the start must be before the end" in html
    assert (
        'id="f-backtest.since" name="backtest.since" value="2026-11-30T09:00" aria-invalid' in html
    )
    assert 'value="between" checked' in html


async def test_the_apis_refusal_is_shown_at_the_button(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    broken = {**form, "actions.0.params.to": "not-an-address"}
    status, html = await post(client, f"/workflows/{workflow_id}/edit", broken, "backtest")
    assert status == 422 and "Not started: invalid workflow: Action 1 · To:" in text_of(html)
    assert "actions.0.to" not in text_of(html)
    assert re.search(r'name="actions\.0\.params\.to" value="not-an-address"[^>]*aria-invalid', html)
    assert "backtest.id" not in values(html)


async def test_a_trigger_that_is_not_backtested_says_why_instead_of_a_button(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    hook = {k: v for k, v in form.items() if not k.startswith(("conditions", "trigger.params"))}
    hook["trigger.type"] = "webhook_received"
    _, html = await post(client, f"/workflows/{workflow_id}/edit", hook, "refresh")
    assert 'id="backtest-start"' not in html
    assert labels.sentence(NOT_BACKTESTED["webhook_received"]) in text_of(html)


async def test_cancel_while_it_runs(client: TestClient[Any, Any], fake: FakeWorker) -> None:
    workflow_id, form = await seeded(client, fake)
    _, html = await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), "cancel_backtest")
    assert ("DELETE", "/api/v1/backtests/bt-1", None) in fake.api.calls
    assert "Cancelled." in html and 'hx-trigger="every' not in html


async def test_the_csv_is_the_apis_as_a_download(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    await post(client, f"/workflows/{workflow_id}/edit", raised_to(form, 80), "backtest")
    response = await client.get(f"/workflows/{workflow_id}/backtests/bt-1/csv")
    assert response.status == 200
    assert response.content_type == "text/csv" and response.charset == "utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="backtest-bt-1.csv"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:2] == ["record_type", "record_id"]
    assert [r[1] for r in rows[1:]] == ["L-3", "L-2"]


async def test_another_tenants_or_another_workflows_backtest_is_not_found(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    fake.api.backtests["bt-other"] = {**fake.api.backtests["bt-1"], "tenant_id": "t-2"}
    for path in (
        f"/workflows/{workflow_id}/backtests/bt-other",
        f"/workflows/{workflow_id}/backtests/bt-other/csv",
        "/workflows/wf-elsewhere/backtests/bt-1",
        "/workflows/wf-elsewhere/backtests/bt-1/csv",
        f"/workflows/{workflow_id}/backtests/bt-nothing",
    ):
        response = await client.get(path)
        assert response.status == 404, path
    # a form naming one it may not see shows no panel
    _, html = await post(
        client, f"/workflows/{workflow_id}/edit", {**form, "backtest.id": "bt-other"}, "refresh"
    )
    assert 'id="backtest"' not in html and "backtest.id" not in values(html)
    # nor one whose id is no id
    _, html = await post(
        client, f"/workflows/{workflow_id}/edit", {**form, "backtest.id": "../x"}, "refresh"
    )
    assert 'id="backtest"' not in html


async def test_the_changed_records_are_paged(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    fake.api.events = [lead(n, 60) for n in range(1, 46)]
    _, html = await post(client, f"/workflows/{workflow_id}/edit", raised_to(form, 80), "backtest")
    await client.get(f"/workflows/{workflow_id}/backtests/bt-1")
    _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), "refresh")
    assert "Changed records 1–20 of 45" in text_of(html)
    assert 'value="backtest_page:20"' in html and "backtest_page:0" not in html
    _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), "backtest_page:40")
    assert "Changed records 41–45 of 45" in text_of(html)
    listed = re.search(r'<ul class="changed" id="backtest-changed">.*?</ul>', html, re.S)
    assert listed is not None and len(re.findall(r"<details>", listed.group(0))) == 5
    assert 'value="backtest_page:20"' in html  # previous
    assert fake.api.calls[-1][2]["changed_offset"] == "40"
    assert fake.api.calls[-1][2]["changed_limit"] == str(backtest.CHANGED_PAGE)


async def test_a_new_workflow_is_saved_before_it_is_backtested(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    response = await client.get("/workflows/new")
    html = await response.text()
    assert "Save the draft first; then backtest it" in html
    assert 'id="backtest-start"' not in html


def hostile_backtest(text: str, status: str = "done") -> dict[str, Any]:
    """A backtest whose every string a record, a workflow or the API could put there is
    ``text``."""
    outcome = {
        "status": text,
        "actions": [{"step": 0, "type": text, "params": {text[:20] or "k": text}}],
        "conditions": [
            {"field": text, "op": text, "expected": text, "actual": text, "passed": False}
        ],
        "error": text,
    }
    side = {"version": 2, "status": text, "runs_total": 1, "runs": {text: 1}, "actions": {text: 2}}
    return {
        "backtest_id": text,
        "workflow_id": "wf-1",
        "status": status,
        "since": text,
        "until": "2026-12-01T10:00:00Z",
        "error": text,
        "candidate_version": None,
        "progress": {"messages_read": 3, "messages_total": 9, "events_scanned": 1},
        "result": {
            "events_scanned": 1,
            "timers_fired": 1,
            "invalid_events": 1,
            "changes_untracked": 1,
            "stopped_early": text,
            "window": {"note": text},
            "candidate": side,
            "baseline": {**side, "version": None},
            "changed_count": 30,
            "changed_cap": 25,
            "changed_truncated": True,
            "changed": [
                {
                    "record": {"type": text, "id": text},
                    "event_id": text,
                    "occurred_at": text,
                    "trigger": text,
                    "differences": [text, "status"],
                    "candidate": outcome,
                    "baseline": outcome,
                }
            ],
        },
    }


def panel_html(text: str, status: str, stale: bool = False) -> str:
    panel = backtest.Panel("wf-1", hostile_backtest(text, status), offset=20, stale=stale)
    return templates.get_template("builder_backtest.html").render(panel=panel)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_whatever_a_record_holds_never_changes_the_panels_markup(text: str) -> None:
    for status in ("done", "running", "failed"):
        for stale in (False, True):
            assert structure(panel_html(text, status, stale)) == structure(
                panel_html(PLAIN, status, stale)
            )


def test_the_classic_payloads_render_as_text_in_the_panel() -> None:
    for payload in (XSS, "<script>alert(2)</script>", '"><b x="'):
        html = panel_html(payload, "done")
        assert payload not in html
        assert structure(html) == structure(panel_html(PLAIN, "done"))


async def test_an_operator_sees_only_the_picked_tenants_backtests(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    # an operator's token sees every tenant's backtests; its session has picked t-1
    fake.api.backtests["bt-1"]["tenant_id"] = "t-2"
    fake.api.tenant = lambda request: "t-2"  # type: ignore[method-assign]
    assert (await client.get("/api/v1/backtests/bt-1", headers=AUTH)).status == 200
    for path in ("", "/csv"):
        response = await client.get(f"/workflows/{workflow_id}/backtests/bt-1{path}")
        assert response.status == 404, path


async def test_a_backtest_forgotten_while_polled_ends_the_polling(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    del fake.api.backtests["bt-1"]
    path = f"/workflows/{workflow_id}/backtests/bt-1"
    response = await client.get(path, headers={"HX-Request": "true"})
    fragment = await response.text()
    assert response.status == 200 and "no longer kept" in fragment
    assert 'id="backtest"' in fragment and "hx-trigger" not in fragment
    assert (await client.get(path)).status == 404


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.text(max_size=45), st.datetimes().map(lambda d: d.isoformat())),
    st.one_of(st.text(max_size=45), st.datetimes().map(lambda d: d.isoformat() + "+05:00")),
)
def test_whatever_is_typed_as_the_window_is_a_window_or_a_reason(since: str, until: str) -> None:
    form = {"backtest.window": "between", "backtest.since": since, "backtest.until": until}
    try:
        start, end = window_of(form, NOW)
    except WindowError as exc:
        assert exc.field in ("backtest.since", "backtest.until") and str(exc)
    else:
        assert start < end and start.tzinfo is UTC and end.tzinfo is UTC


HOSTILE = ["x" * 5000, "²", "../../etc", "%00", "bt-1\r\nSet-Cookie: a=b", XSS, "-1", "9" * 30]


async def test_hostile_ids_offsets_and_fields_are_never_a_500(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    for text in HOSTILE:
        segment = quote(text, safe="")
        for path in (f"backtests/{segment}", f"backtests/{segment}/csv"):
            response = await client.get(f"/workflows/{workflow_id}/{path}")
            assert response.status == 404, (path, response.status)
        response = await client.get(f"/workflows/{workflow_id}/backtests/bt-1?offset={segment}")
        assert response.status == 200
        for field in backtest.FIELDS:
            for op in (
                "backtest",
                "cancel_backtest",
                f"backtest_page:{text}",
                "refresh",
                "backtest_panel",
                "backtest_intro",
            ):
                hostile = {**form, "backtest.window": "between", field: text}
                status, html = await post(client, f"/workflows/{workflow_id}/edit", hostile, op)
                assert status < 500, (field, op, status)
                assert XSS not in html


# --------------------------------------------------------------------------- what a newcomer met

ALONE = (
    "This is the version that runs; no earlier version ran, so every run it started is listed "
    "as a change. Edit the workflow to see what an edit would change."
)


async def panel_after(client: TestClient[Any, Any], workflow_id: str, form: dict[str, str]) -> str:
    """The panel as its own post of the form draws it (its poll, or after an edit typed)."""
    status, fragment = await post(
        client, f"/workflows/{workflow_id}/edit", form, "backtest_panel", htmx=True
    )
    assert status == 200 and "<html" not in fragment
    return fragment


async def test_a_result_of_an_earlier_edit_says_it_is_out_of_date_and_is_dimmed(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    edit = f"/workflows/{workflow_id}/edit"
    _, html = await post(client, edit, raised_to(form, 80), "backtest")
    backtested = values(html)
    assert re.fullmatch(r"[0-9a-f]{64}", backtested["backtest.digest"])
    fragment = await panel_after(client, workflow_id, backtested)
    assert "changed since this backtest" not in fragment and "stale" not in fragment
    assert "Backtested Your unsaved changes" in text_of(fragment)
    # typed on: the panel's own post says so, and so does the next round trip
    again = {**backtested, "conditions.0.value": "90"}
    for shown in (
        await panel_after(client, workflow_id, again),
        (await post(client, edit, again, "refresh"))[1],
    ):
        words = text_of(shown)
        assert "The workflow changed since this backtest: run it again." in words
        assert 'class="backtest-result stale"' in shown
        assert "Your changes, as backtested" in words and "Your unsaved changes" not in words
    _, html = await post(client, edit, again, "refresh")
    assert values(html)["backtest.digest"] == backtested["backtest.digest"]  # kept across edits
    # back to what was backtested: its own result again
    _, html = await post(client, edit, {**again, "conditions.0.value": "80"}, "refresh")
    assert "changed since this backtest" not in html
    # a new backtest is of the form as it is now
    _, html = await post(client, edit, again, "backtest")
    assert values(html)["backtest.id"] == "bt-2"
    assert values(html)["backtest.digest"] != backtested["backtest.digest"]
    assert "changed since this backtest" not in await panel_after(client, workflow_id, values(html))


async def test_a_digest_that_is_none_claims_nothing(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    _, html = await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    for digest in ("", "0" * 63, "A" * 64, XSS):
        fragment = await panel_after(
            client, workflow_id, {**values(html), "backtest.digest": digest}
        )
        assert "changed since this backtest" not in fragment
        _, page = await post(
            client,
            f"/workflows/{workflow_id}/edit",
            {**values(html), "backtest.digest": digest},
            "refresh",
        )
        assert values(page)["backtest.digest"] == ""


async def test_the_intro_follows_the_form(client: TestClient[Any, Any], fake: FakeWorker) -> None:
    workflow_id, form = await seeded(client, fake)
    edit = f"/workflows/{workflow_id}/edit"
    _, html = await post(client, edit, form, "refresh")
    intro = re.search(r'<p class="muted" id="backtest-intro"[^>]*>', html)
    assert intro is not None and 'hx-trigger="edited from:#builder"' in intro.group(0)
    assert """hx-vals='{"op": "backtest_intro"}'""" in intro.group(0)
    assert "through version 1 as saved" in text_of(html)
    # after an edit typed (builder.js posts the form): the intro alone, of the form as it is
    status, fragment = await post(client, edit, raised_to(form, 80), "backtest_intro", htmx=True)
    assert status == 200 and "<html" not in fragment and 'id="builder"' not in fragment
    assert 'id="backtest-intro"' in fragment
    words = text_of(fragment)
    assert "through your unsaved changes (nothing is saved)" in words
    assert "newest version saved active before it" in words
    _, fragment = await post(client, edit, form, "backtest_intro", htmx=True)
    assert "through version 1 as saved" in text_of(fragment)


async def test_the_running_version_alone_says_every_run_is_a_change(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    fake.api.active.clear()  # no version was active before this one
    fake.api.workflows[workflow_id]["status"] = "active"
    _, html = await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    words = text_of(await panel_after(client, workflow_id, values(html)))
    assert ALONE in words
    assert words.index(ALONE) < words.index("record changes replayed")
    assert (
        "Backtested Version 1 (active) Compared with No earlier active version (does nothing)"
        in words
    )
    # an edit beside nothing, or the running version beside an earlier one: not said
    _, html = await post(client, f"/workflows/{workflow_id}/edit", raised_to(form, 80), "backtest")
    words = text_of(await panel_after(client, workflow_id, values(html)))
    assert ALONE not in words and "Backtested Your unsaved changes Compared with No" in words
    fake.api.active[workflow_id] = {**fake.api.workflows[workflow_id], "version": 0}
    fake.api.active[workflow_id].pop("inbound_secrets")
    _, html = await post(client, f"/workflows/{workflow_id}/edit", form, "backtest")
    assert ALONE not in text_of(await panel_after(client, workflow_id, values(html)))


async def test_a_parameter_only_change_names_the_keys_and_marks_them_in_both_columns(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    edited = {**form, "actions.0.params.subject": "Another subject"}
    _, html = await post(client, f"/workflows/{workflow_id}/edit", edited, "backtest")
    fragment = await panel_after(client, workflow_id, values(html))
    changed = re.findall(r"<details>.*?</details>", fragment, re.S)
    assert len(changed) == 3  # scores 60, 75 and 90 ran in both
    summary = re.search(r"<summary>.*?</summary>", changed[0], re.S)
    assert summary is not None
    words = text_of(summary.group(0)).replace("( ", "(").replace(" )", ")")
    assert "other parameters (Action 1 Send Email: subject): Actions issued in both" in words
    assert "instead of" not in words
    marks = [unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", changed[0], re.S)]
    assert marks == [
        '"subject": "Another subject"',
        '"subject": "Welcome — Thanks for your interest"',
    ]
    assert "· other subject" in text_of(changed[0])


def test_the_window_note_is_a_caution_not_a_success() -> None:
    html = panel_html(PLAIN, "done")
    assert '<p class="caution" id="backtest-note">' in html
    assert 'class="notice"' not in html
    css = (Path(backtest.__file__).parent / "static" / "builder.css").read_text()
    assert re.search(r"\.builder \.caution \{[^}]*var\(--warn-bg\)", css)


async def test_a_refused_condition_is_named_as_the_builders_list_names_it(
    client: TestClient[Any, Any], fake: FakeWorker
) -> None:
    workflow_id, form = await seeded(client, fake)
    edit = f"/workflows/{workflow_id}/edit"
    _, html = await post(client, edit, form, "add_condition:conditions")
    empty = {**values(html), "conditions.1.field": ""}
    status, html = await post(client, edit, empty, "backtest")
    words = text_of(html)
    assert status == 422
    assert "Not started: invalid workflow: Condition 2 · Field: '' is not a field path" in words
    assert "conditions.all" not in words and "leaf.field" not in words
    # the same name as the list of problems at the top
    assert '<a href="#f-conditions.1.field">Condition 2 · Field</a>' in html


def test_hostile_parameter_keys_and_values_are_marked_as_text() -> None:
    hostile = hostile_backtest(PLAIN)
    (changed,) = hostile["result"]["changed"]
    for side, value in (("candidate", XSS), ("baseline", "plain")):
        changed[side] = {
            "status": "actions_issued",
            "actions": [{"step": 0, "type": "send_email", "params": {XSS: value, "n": 2**70}}],
            "conditions": [],
        }
    changed["differences"] = ["params"]
    panel = backtest.Panel("wf-1", hostile)
    html = templates.get_template("builder_backtest.html").render(panel=panel)
    assert XSS not in html
    marks = [unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", html, re.S)]
    assert marks == [f'"{XSS}": "{XSS}"', f'"{XSS}": "plain"']
    assert str(2**70) in html  # past orjson's integers: written all the same


def test_the_parameters_in_pieces_read_as_the_json_they_were() -> None:
    params = {"to": "a@example.com", "cc": ["b@example.com"], "data": {"k": [1, {"x": None}]}}
    pieces = backtest.params_text(params, ("cc",))
    assert (
        "".join(text for text, _ in pieces)
        == orjson.dumps(params, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    )
    assert [text for text, marked in pieces if marked] == ['"cc": [\n    "b@example.com"\n  ]']
    assert backtest.params_text({}) == [("{}", False)]
