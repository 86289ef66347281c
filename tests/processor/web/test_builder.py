"""The builder's pages over HTTP: its edits (add, remove, move, change a trigger), saving
through the API with every problem at its field, activating, testing, the webhook secret
shown once, escaping and tenant isolation.

The admin API is stood in for by a few routes that validate with the real compiler
(``validate_workflow``) and dry-run with the real core (``dry_run``), so the problems and
the explanations are the API's own; the browser test runs the real worker."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

import processor.web.builder  # noqa: F401  (registers the builder's pages)
from coeflow.errors import InvalidInput, InvalidWorkflow
from processor.api.runs import _record
from processor.core.access import mint
from processor.core.compiler import validate_workflow
from processor.core.decide import dry_run
from processor.core.pipeline import decode_change
from processor.web.builder import EDITS, apply_edit, dry_run_event, samples_from_runs
from processor.web.forms import document_to_form, form_to_document
from processor.web.pages import templates
from processor.web.sessions import SessionStore
from tests.factories import SEED_WORKFLOW
from tests.processor.web.conftest import OpenClient, pages_app
from topics.api import RunSearch

OPERATOR = "operator-token-for-tests"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
XSS = "<img src=x onerror=alert(1)>"


class FakeApi:
    """The admin API's workflow endpoints over a dict, for one tenant's token."""

    def __init__(self) -> None:
        self.workflows: dict[str, dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str, Any]] = []
        self.created = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/workflows", self.create)
        app.router.add_get("/api/v1/workflows/{id}", self.read)
        app.router.add_put("/api/v1/workflows/{id}", self.change)
        app.router.add_post("/api/v1/workflows/{id}/activate", self.status("active"))
        app.router.add_post("/api/v1/workflows/{id}/deactivate", self.status("inactive"))
        app.router.add_post("/api/v1/workflows/{id}/test", self.test)
        app.router.add_post("/api/v1/workflows/{id}/webhook-secret", self.rotate)
        app.router.add_get("/api/v1/runs", self.run_search)

    @staticmethod
    def reply(body: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    def tenant(self, request: web.Request) -> str:
        assert request.headers["Authorization"].startswith("Bearer ")
        return "t-1"

    def save(self, document: dict[str, Any]) -> dict[str, Any] | web.Response:
        try:
            validate_workflow(document)
        except InvalidWorkflow as exc:
            problems = [{"loc": p.loc, "msg": p.msg} for p in exc.problems]
            return self.reply({"error": "invalid workflow", "problems": problems}, 422)
        saved = {**document, "inbound_secrets": []}
        if document["trigger"].get("type") == "webhook_received":
            saved["inbound_secrets"] = [{"hint": "whsec_…abcd", "created_at": NOW.isoformat()}]
            saved["inbound_secret"] = "whsec_the-new-secret-abcd"
        self.workflows[document["id"]] = {k: v for k, v in saved.items() if k != "inbound_secret"}
        return saved

    async def create(self, request: web.Request) -> web.Response:
        document = await request.json()
        self.calls.append(("POST", request.path, document))
        self.created += 1
        document = {"id": f"wf-{self.created}", "tenant_id": self.tenant(request), **document}
        saved = self.save({**document, "version": 1})
        return saved if isinstance(saved, web.Response) else self.reply(saved, 201)

    def found(self, request: web.Request) -> dict[str, Any]:
        workflow = self.workflows.get(request.match_info["id"])
        if workflow is None or workflow["tenant_id"] != self.tenant(request):
            raise web.HTTPNotFound(text='{"error": "no workflow"}', content_type="application/json")
        return workflow

    async def read(self, request: web.Request) -> web.Response:
        return self.reply(self.found(request))

    async def change(self, request: web.Request) -> web.Response:
        current = self.found(request)
        document = await request.json()
        self.calls.append(("PUT", request.path, document))
        if document.pop("version", current["version"]) != current["version"]:
            return self.reply({"error": "stale version"}, 409)
        document = {
            "id": current["id"],
            "tenant_id": current["tenant_id"],
            "status": current["status"],
            **document,
            "version": current["version"] + 1,
        }
        saved = self.save(document)
        return saved if isinstance(saved, web.Response) else self.reply(saved)

    def status(self, status: str) -> Any:
        async def change(request: web.Request) -> web.Response:
            current = self.found(request)
            self.calls.append(("POST", request.path, None))
            saved = {**current, "status": status, "version": current["version"] + 1}
            self.workflows[current["id"]] = saved
            return self.reply(saved)

        return change

    async def rotate(self, request: web.Request) -> web.Response:
        current = self.found(request)
        saved = {**current, "version": current["version"] + 1}
        self.workflows[current["id"]] = saved
        return self.reply({**saved, "inbound_secret": "whsec_rotated-secret-wxyz"})

    async def test(self, request: web.Request) -> web.Response:
        current = self.found(request)
        raw = await request.read()
        self.calls.append(("POST", request.path, orjson.loads(raw)))
        compiled = validate_workflow(
            {k: v for k, v in current.items() if k not in ("inbound_secrets",)}
        )
        decision = dry_run(compiled, decode_change(raw, 1 << 20), max_depth=5, now=NOW)
        run = decision.run
        return self.reply(
            {
                "workflow_id": current["id"],
                "workflow_version": current["version"],
                "workflow_status": current["status"],
                "tenant_matches": decision.tenant_matches,
                "trigger": {"type": compiled.kind.name, "matched": decision.trigger_matches},
                "conditions": [c.model_dump(mode="json") for c in decision.conditions],
                "outcome": run.status if run else "not_triggered",
                "error": run.document.get("error") if run else None,
                "commands": [c.model_dump(mode="json") for c in run.commands] if run else [],
                "emitted": False,
            }
        )

    async def run_search(self, request: web.Request) -> web.Response:
        """The API's own reading of the query (``RunSearch``, then ``_record``)."""
        try:
            record = _record(RunSearch.model_validate(dict(request.query)))
        except (ValidationError, InvalidInput) as exc:
            return self.reply({"error": "invalid query", "problems": str(exc)}, 400)
        runs = [
            r
            for r in self.runs
            if record is None
            or (record[0] in (None, r["record"]["type"]) and record[1] in (None, r["record"]["id"]))
        ]
        return self.reply({"runs": runs, "next_cursor": None})


class Fake:
    def __init__(self) -> None:
        self.token, stored = mint("t-1", "admin", "alice", "operator", NOW)
        self.sessions = SessionStore()
        self.api = FakeApi()
        self.runtime = SimpleNamespace(
            settings=SimpleNamespace(admin_token=SecretStr(OPERATOR)),
            admin=SimpleNamespace(
                tokens=SimpleNamespace(tokens={stored.token_id: stored}), ready=lambda: True
            ),
        )

    def app(self) -> web.Application:
        app = web.Application()
        self.api.routes(app)
        return pages_app(self.runtime, self.sessions, app)


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
async def client(fake: Fake, open_client: OpenClient) -> TestClient[Any, Any]:
    return await open_client(fake.app(), fake.sessions, fake.token)


async def post(
    client: TestClient[Any, Any],
    path: str,
    form: dict[str, str],
    op: str,
    htmx: bool = False,
    trigger: str | None = None,
) -> tuple[int, str]:
    data = {**form, "op": op, "csrf_token": client.csrf}  # type: ignore[attr-defined]
    headers = {"HX-Request": "true"} if htmx else {}
    if trigger is not None:
        headers["HX-Trigger"] = trigger
    response = await client.post(path, data=data, headers=headers, allow_redirects=False)
    return response.status, await response.text()


async def saved_seed(client: TestClient[Any, Any], fake: Fake) -> tuple[str, str]:
    """The seed form saved as a new draft: the workflow's id and the page after."""
    _, html = await post(client, "/workflows/new", SEED_FORM, "save")
    (workflow_id,) = fake.api.workflows
    return workflow_id, html


def values(html: str) -> dict[str, str]:
    """The form values a page shows (inputs, selected options, textareas)."""
    found: dict[str, str] = {}
    for match in re.finditer(
        r'<input type="(?:text|hidden)"[^>]*?name="([^"]+)"[^>]*?value="([^"]*)"', html
    ):
        found[unescape(match.group(1))] = unescape(match.group(2))
    for match in re.finditer(r'<input type="text" id="[^"]*" name="([^"]+)" value="([^"]*)"', html):
        found[unescape(match.group(1))] = unescape(match.group(2))
    for match in re.finditer(r'<select id="[^"]*" name="([^"]+)".*?</select>', html, re.S):
        selected = re.search(r'<option value="([^"]*)" selected>', match.group(0))
        if selected:
            found[unescape(match.group(1))] = unescape(selected.group(1))
    for match in re.finditer(
        r'<textarea id="[^"]*" name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S
    ):
        found[unescape(match.group(1))] = unescape(match.group(2))
    found.pop("csrf_token", None)
    return found


SEED_FORM = document_to_form(
    {k: v for k, v in SEED_WORKFLOW.items() if k not in ("id", "tenant_id", "status", "version")}
)


# ---------------------------------------------------------------------------- pure edits


def test_actions_are_added_moved_and_removed() -> None:
    form = apply_edit({**SEED_FORM, "new_action": "add_note"}, "add_action")
    assert form is not None
    assert [form[f"actions.{i}.type"] for i in range(3)] == [
        "send_email",
        "create_task",
        "add_note",
    ]
    moved = apply_edit(form, "move_up:2")
    assert moved is not None
    assert [moved[f"actions.{i}.type"] for i in range(3)] == [
        "send_email",
        "add_note",
        "create_task",
    ]
    assert moved["actions.2.params.title"] == "Follow-up call"  # its parameters move with it
    assert apply_edit(moved, "move_up:0") == moved  # the first cannot go higher
    assert apply_edit(moved, "move_down:2") == moved
    removed = apply_edit(moved, "remove_action:0")
    assert removed is not None
    assert [removed[f"actions.{i}.type"] for i in range(2)] == ["add_note", "create_task"]
    for nonsense in (
        "remove_action:9",
        "remove_action:-1",
        "move_up:x",
        "remove_action:" + "9" * 50,
    ):
        assert apply_edit(removed, nonsense) == removed
    assert apply_edit(removed, "save") is None  # not an edit: the API's


def test_conditions_are_added_nested_and_removed() -> None:
    form = {"name": "n", "trigger.type": "record_created", "trigger.params.record_type": "lead"}
    first = apply_edit(form, "add_condition:conditions")
    assert first is not None and form_to_document(first)["conditions"] == {
        "all": [{"field": "", "op": "eq"}]
    }
    nested = apply_edit(first, "add_any:conditions")
    assert nested is not None
    nested = apply_edit(nested, "add_condition:conditions.1")
    assert nested is not None
    assert form_to_document(nested)["conditions"] == {
        "all": [{"field": "", "op": "eq"}, {"any": [{"field": "", "op": "eq"}] * 2}]
    }
    negated = apply_edit(nested, "add_not:conditions.1")
    assert negated is not None
    assert form_to_document(negated)["conditions"]["all"][1]["any"][2] == {
        "not": {"field": "", "op": "eq"}
    }
    removed = apply_edit(negated, "remove_condition:conditions.1")
    assert removed is not None
    assert form_to_document(removed)["conditions"] == {"all": [{"field": "", "op": "eq"}]}
    cleared = apply_edit(removed, "remove_condition:conditions")
    assert cleared is not None and "conditions" not in form_to_document(cleared)
    assert apply_edit(removed, "remove_condition:conditions.7.3") == removed
    assert apply_edit(removed, "add_condition:elsewhere") == removed


def test_a_group_changed_to_not_keeps_all_its_children() -> None:
    form = {
        **SEED_FORM,
        "conditions.kind": "not",
        "conditions.1.kind": "leaf",
        "conditions.1.field": "country",
        "conditions.1.op": "eq",
        "conditions.1.value": "ZZ",
    }
    document = form_to_document(form)
    assert document["conditions"] == {
        "not": {
            "all": [
                {"field": "score", "op": "gte", "value": 50},
                {"field": "country", "op": "eq", "value": "ZZ"},
            ]
        }
    }


def test_field_suggestions_come_from_recent_runs() -> None:
    runs = [
        {
            "record": {"type": "lead", "id": "L-1"},
            "conditions": [{"field": "score", "actual": 72}],
            "event": {"record_id": "L-1", "after": {"name": "Ada", "score": 72, "bad key": 1}},
        },
        {"record": {"type": "deal", "id": "D-1"}, "conditions": [{"field": "amount", "actual": 5}]},
    ]
    assert samples_from_runs(runs, "lead") == {"name": "Ada", "score": 72}


def test_the_test_event_is_of_the_triggers_type_and_the_workflows_tenant() -> None:
    workflow = {"tenant_id": "t-1", "trigger": {"type": "lead_score_threshold", "threshold": 50}}
    event = dry_run_event({"test.record": '{"id": "L-9", "score": 80}'}, workflow, NOW)
    assert (event["record_type"], event["record_id"], event["operation"]) == (
        "lead",
        "L-9",
        "created",
    )
    assert event["after"] == {"id": "L-9", "score": 80} and event["tenant_id"] == "t-1"
    pasted = {
        "operation": "updated",
        "after": {},
        "before": {},
        "tenant_id": "t-2",
        "event_id": "e",
    }
    assert (
        dry_run_event({"test.record": orjson.dumps(pasted).decode()}, workflow, NOW)["tenant_id"]
        == "t-1"
    )


# ---------------------------------------------------------------------------- pages


async def test_the_new_workflow_page_offers_every_trigger_and_labels_every_control(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/workflows/new")
    assert response.status == 200
    html = await response.text()
    for label in ("Scheduled (Recurring)", "Webhook Received", "Invoice Overdue", "Record Stalled"):
        assert label in html
    assert "Save draft" in html and "Activate" in html and "+ Add action" in html
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]*?\bid="([^"]+)"', html))
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert ids - labelled == set(), "every control has a label"
    assert "<script>" not in html and " style=" not in html and " onclick" not in html


async def test_changing_the_trigger_shows_its_parameters(client: TestClient[Any, Any]) -> None:
    form = {**SEED_FORM, "trigger.type": "scheduled"}
    status, html = await post(client, "/workflows/new", form, "refresh", htmx=True)
    assert status == 200
    assert html.lstrip().startswith('<form id="builder"')  # the fragment alone, for htmx
    assert 'name="trigger.params.cron"' in html and 'name="trigger.params.timezone"' in html
    assert 'value="UTC"' in html and "Europe/Berlin" in html  # the zones' datalist
    form = {**SEED_FORM, "trigger.type": "record_stalled"}
    _, html = await post(client, "/workflows/new", form, "refresh")
    assert 'name="trigger.params.for"' in html and "<html" in html  # a whole page without htmx


async def test_every_problem_is_shown_at_its_field_all_at_once(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    form = {
        **SEED_FORM,
        "name": "",
        "actions.0.params.to": "not-an-email",
        "actions.1.params.due_in": "2 days",
    }
    status, html = await post(client, "/workflows/new", form, "save")
    assert status == 422
    assert "Not saved: 3 problems, shown at their fields." in html
    for name, words in (
        ("name", "at least 1 character"),
        ("actions.0.params.to", "is not an email address"),
        ("actions.1.params.due_in", "is not a duration"),
    ):
        error = re.search(
            rf'<p class="field-error" id="e-{re.escape(name)}"[^>]*>(.*?)</p>', html, re.S
        )
        assert error is not None and words in unescape(error.group(1)), name
        assert f'aria-describedby="e-{name}"' in html or f'e-{name}"' in html
    assert values(html)["actions.1.params.due_in"] == "2 days"  # what was typed stays
    assert "Action 1 · To</a>" in html and "Action 2 · Due in</a>" in html  # in words
    assert fake.api.workflows == {}


async def test_saving_without_an_action_says_so_at_the_actions_in_words(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    form = {k: v for k, v in SEED_FORM.items() if not k.startswith("actions.")}
    status, html = await post(client, "/workflows/new", form, "save")
    assert status == 422
    assert "Not saved: 1 problem, shown at its field." in html
    error = re.search(r'<p class="field-error" id="e-actions"[^>]*>(.*?)</p>', html, re.S)
    assert error is not None and error.group(1) == "Add at least one action"
    assert '<a href="#f-actions">Actions</a>: Add at least one action' in html
    assert 'id="f-actions"' in html
    assert "List should have" not in html and "1 problems" not in html
    assert fake.api.workflows == {}


async def test_the_tabs_title_follows_the_saved_workflows_name(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    """htmx sets the tab's title from the fragment's own <title> (the heading changes too)."""
    form = {**SEED_FORM, "name": "Deals & more"}
    _, html = await post(client, "/workflows/new", form, "save", htmx=True)
    assert "<title>Edit Deals &amp; more · Coeffection Workflows</title>" in html
    assert "+ New Workflow" not in html
    (workflow_id,) = fake.api.workflows
    for op in ("test", "activate"):
        _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), op, htmx=True)
        assert "<title>Edit Deals &amp; more · Coeffection Workflows</title>" in html, op
    _, html = await post(client, "/workflows/new", SEED_FORM, "refresh", htmx=True)
    assert "<title>+ New Workflow · Coeffection Workflows</title>" in html


async def test_save_keeps_a_draft_then_activate_and_deactivate(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    status, html = await post(client, "/workflows/new", SEED_FORM, "save")
    assert status == 201
    assert "Saved as a draft: version 1." in html
    assert re.search(r'<span class="badge draft" id="state">Draft</span>', html)
    created = fake.api.calls[0][2]
    assert created["status"] == "draft"
    assert created["conditions"] == SEED_WORKFLOW["conditions"]
    assert created["actions"] == SEED_WORKFLOW["actions"]
    (workflow_id,) = fake.api.workflows
    edit = f"/workflows/{workflow_id}/edit"
    assert f'action="{edit}"' in html

    status, html = await post(client, edit, values(html), "activate")
    assert status == 200 and "Activated: version 2." in html
    assert '<span class="badge active" id="state">Active</span>' in html
    assert "Deactivate" in html
    status, html = await post(client, edit, values(html), "deactivate")
    assert "Deactivated: version 3." in html and "Inactive" in html


async def test_activate_saves_what_is_on_the_screen_first(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    workflow_id, html = await saved_seed(client, fake)
    form = {**values(html), "name": "Renamed"}
    _, html = await post(client, f"/workflows/{workflow_id}/edit", form, "activate")
    assert [c[0] for c in fake.api.calls[1:]] == ["PUT", "POST"]
    assert fake.api.workflows[workflow_id]["name"] == "Renamed"
    assert fake.api.workflows[workflow_id]["status"] == "active"


async def test_a_dry_run_shows_the_trigger_each_condition_and_the_rendered_actions(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    workflow_id, html = await saved_seed(client, fake)
    lead = {"name": XSS, "email": "ada@example.com", "score": 72, "owner_id": "u-7"}
    form = {**values(html), "test.record": orjson.dumps(lead).decode()}
    status, html = await post(client, f"/workflows/{workflow_id}/edit", form, "test")
    assert status == 200
    assert "actions_issued" in html and "nothing emitted" in html
    assert "matched" in html and "<code>score</code>" in html and "passed" in html
    assert "Follow-up call" in html and "ada@example.com" in html
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    event = fake.api.calls[-1][2]
    assert event["record_type"] == "lead" and event["operation"] == "created"
    low = {**form, "test.record": '{"score": 10}'}
    _, html = await post(client, f"/workflows/{workflow_id}/edit", low, "test")
    assert "conditions_not_met" in html and "<code>10</code>" in html


async def test_a_pasted_record_that_is_not_json_is_refused_at_its_field(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    workflow_id, html = await saved_seed(client, fake)
    form = {**values(html), "test.record": "score: 72"}
    status, html = await post(client, f"/workflows/{workflow_id}/edit", form, "test")
    assert status == 422 and 'id="e-test.record"' in html and "not valid JSON" in html


async def test_a_webhook_workflow_shows_its_url_and_the_secret_once(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    form = {**SEED_FORM, "trigger.type": "webhook_received"}
    form.pop("trigger.params.record_type")
    form.pop("conditions.kind"), form.pop("conditions.0.kind")
    for key in ("field", "op", "value"):
        form.pop(f"conditions.0.{key}")
    status, html = await post(client, "/workflows/new", form, "save")
    assert status == 201, html
    assert "whsec_the-new-secret-abcd" in html and "shown this once" in html
    (workflow_id,) = fake.api.workflows
    assert f"/hooks/{workflow_id}" in html
    response = await client.get(f"/workflows/{workflow_id}/edit")
    html = await response.text()
    assert "whsec_the-new-secret-abcd" not in html and "whsec_…abcd" in html
    _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), "rotate")
    assert "whsec_rotated-secret-wxyz" in html


async def test_another_tenants_workflow_is_not_found(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    fake.api.workflows["wf-other"] = {**SEED_WORKFLOW, "id": "wf-other", "tenant_id": "t-2"}
    response = await client.get("/workflows/wf-other/edit")
    assert response.status == 404
    assert "New Lead" not in await response.text()
    status, _ = await post(client, "/workflows/wf-other/edit", SEED_FORM, "activate")
    assert status == 404 and fake.api.workflows["wf-other"]["status"] == "active"


async def test_buttons_need_the_csrf_token(client: TestClient[Any, Any], fake: Fake) -> None:
    response = await client.post("/workflows/new", data={**SEED_FORM, "op": "save"})
    assert response.status == 403 and fake.api.calls == []


async def test_record_data_in_a_workflow_is_escaped(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    form = {**SEED_FORM, "name": XSS, "actions.0.params.subject": f"Hi {XSS}"}
    _, html = await post(client, "/workflows/new", form, "save")
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_not_group_reads_right_in_a_dry_runs_tree() -> None:
    """The API's condition tree (``topics.api.ConditionNode``): a ``not`` that held shows as a
    group that passed over a leaf that did not."""
    leaf = {"field": "country", "op": "in", "expected": ["ZZ"], "actual": "DE", "passed": False}
    answer = {
        "outcome": "actions_issued",
        "emitted": False,
        "error": None,
        "tenant_matches": True,
        "trigger": {
            "type": "lead_score_threshold",
            "matched": True,
            "reason": "score 40 → 85 crossed 80",
            "values": {"threshold": 80},
        },
        "conditions": [leaf],
        "condition_tree": {
            "kind": "not",
            "loc": "conditions",
            "passed": True,
            "children": [
                {
                    "kind": "leaf",
                    "loc": "conditions.not",
                    "passed": False,
                    "children": [],
                    "result": leaf,
                }
            ],
        },
        "commands": [],
    }
    html = templates.get_template("builder_test.html").render(
        outcome=SimpleNamespace(test=answer),
        group_labels={"all": "All of these", "any": "Any of these", "not": "Not this"},
    )
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))
    assert 'Conditions passed Not this failed country is one of ["ZZ"] · actual "DE"' in text, text
    assert "score 40 → 85 crossed 80" in text and "threshold" in text


async def test_recent_records_suggest_fields_and_fill_the_test(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    event = {
        "record_type": "lead",
        "record_id": "L-42",
        "operation": "created",
        "after": {"name": "Grace", "score": 90, "country": "DE"},
        "before": None,
    }
    fake.api.runs = [{"record": {"type": "lead", "id": "L-42"}, "conditions": [], "event": event}]
    _, html = await post(client, "/workflows/new", SEED_FORM, "save")
    assert '<datalist id="record-fields">' in html and '<option value="country">' in html
    assert "{{record.country}}" in html  # the merge-field picker knows the field
    assert "Pick a merge field and Insert it at the cursor, or type it yourself." in html
    operators = re.search(r'name="conditions.0.op".*?</select>', html, re.S)
    assert operators is not None
    assert "starts_with" not in operators.group(0)  # score is a number
    (workflow_id,) = fake.api.workflows
    assert "Use lead L-42" in html
    _, html = await post(client, f"/workflows/{workflow_id}/edit", values(html), "use_record:L-42")
    assert orjson.loads(values(html)["test.record"]) == event["after"]


async def test_a_new_workflow_is_offered_recent_records_of_its_type_and_their_fields(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    def run(record_type: str, record_id: str, after: dict[str, Any]) -> dict[str, Any]:
        event = {"record_type": record_type, "record_id": record_id, "operation": "created"}
        return {
            "record": {"type": record_type, "id": record_id},
            "conditions": [],
            "event": {**event, "after": after, "before": None},
        }

    fake.api.runs = [
        run("deal", "D-7", {"amount": 1200, "currency": "EUR"}),
        run("lead", "L-1", {"score": 90}),
    ]
    form = {**SEED_FORM, "trigger.params.record_type": "deal"}
    _, html = await post(client, "/workflows/new", form, "refresh")  # not saved: no workflow id
    assert fake.api.workflows == {}
    assert '<option value="amount">' in html and '<option value="currency">' in html
    assert "{{record.currency}}" in html  # the merge-field picker knows the field
    assert '<option value="score">' not in html and "L-1" not in html


@pytest.mark.parametrize(
    ("op", "trigger", "focus"),
    [
        ("refresh", "f-trigger.type", "f-trigger.type"),  # the select that was changed
        ("add_action", None, "f-actions.2.type"),
        ("move_down:0", None, "move-move_down-1"),
        ("remove_action:1", None, "new-action"),
        ("add_condition:conditions", None, "f-conditions.1.field"),
        ("add_any:conditions", None, "f-conditions.1.0.field"),
        ("remove_condition:conditions.0", None, "f-conditions.kind"),
    ],
)
async def test_the_focus_goes_where_the_keyboard_was(
    client: TestClient[Any, Any], op: str, trigger: str | None, focus: str
) -> None:
    """After a swap the control that was used is gone: the builder names the one to focus
    (``static/builder.js`` focuses it), and it exists in the new form."""
    form = {**SEED_FORM, "new_action": "add_note"}
    _, html = await post(client, "/workflows/new", form, op, htmx=True, trigger=trigger)
    assert f'data-focus="{focus}"' in html
    assert f'id="{focus}"' in html


def test_a_test_event_for_a_kind_no_record_change_fires_is_a_create() -> None:
    for kind in ("webhook_received", "scheduled", "record_created"):
        event = dry_run_event(
            {"test.record": "{}"}, {"tenant_id": "t", "trigger": {"type": kind}}, NOW
        )
        assert event["operation"] == "created", kind
    updated = dry_run_event(
        {"test.record": "{}"}, {"tenant_id": "t", "trigger": {"type": "record_updated"}}, NOW
    )
    assert updated["operation"] == "updated" and updated["before"] == {}


_ops = st.one_of(
    st.builds(
        lambda name, argument: f"{name}:{argument}",
        st.sampled_from(sorted(EDITS)),
        st.one_of(
            st.integers(0, 4).map(str),
            st.lists(st.integers(0, 3), max_size=4).map(
                lambda p: ".".join(["conditions", *map(str, p)])
            ),
            st.text(max_size=12),
        ),
    ),
    st.text(max_size=30),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ops, max_size=12), st.sampled_from(["add_note", "send_email", "", "nope"]))
def test_any_sequence_of_buttons_keeps_a_form_that_reads_as_a_document(
    ops: list[str], new_action: str
) -> None:
    form = {**SEED_FORM, "new_action": new_action}
    for op in ops:
        edited = apply_edit(form, op)
        if edited is not None:
            form = {**edited, "new_action": new_action}
    document = form_to_document(form)
    assert len(document["actions"]) <= 50
    assert form_to_document(document_to_form(document)) == document
