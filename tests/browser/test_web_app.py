"""The web app in a real browser, against the session's worker: sign-in with a tenant's
token, the workflows list, a Runs tab that shows a new run by itself, a run opened, a run
stopped by its conditions explaining the score, Deactivate, the versions with a diff,
another tenant seeing none of it, record data that renders as text, and sign-out.

Workflows are made through the API here (the builder's tests make them by clicking). Each
test takes screenshots of the pages it visits under its temporary folder.
"""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import expect

from coeflow.tools.processes import TOKEN, WorkerProcess
from tests.browser.conftest import PHONE, Browsing, SignIn
from tests.integration.harness import Api, Peers, lead_created, publish, seed_workflow, tenant
from topics.catalog import RECORD_CHANGES

pytestmark = [pytest.mark.integration, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"


async def tenant_api(shared_worker: WorkerProcess) -> tuple[str, Api]:
    """A fresh tenant and a client holding an admin token of it."""
    name = tenant()
    return name, await Api(shared_worker.url).as_tenant(name)


async def active_workflow(client: Api, tenant_id: str, **overrides: Any) -> dict[str, Any]:
    created = await client.create(seed_workflow(tenant_id, **overrides))
    return created


def lead(tenant_id: str, n: int, score: int = 72, **fields: Any) -> dict[str, Any]:
    """A lead created now (the Runs tab's time filters look at recent runs), with ``fields``
    in its record."""
    event = lead_created(tenant_id, n, score=score)
    event["occurred_at"] = datetime.now(UTC).isoformat()
    event["after"].update(fields)
    return event


async def publish_lead(bootstrap: str, event: dict[str, Any]) -> None:
    await publish(bootstrap, RECORD_CHANGES, [(event["record_id"].encode(), event)])


async def runs_of(client: Api, workflow_id: str, count: int) -> list[dict[str, Any]]:
    body = await client.poll(
        f"/api/v1/workflows/{workflow_id}/runs", lambda b: len(b["runs"]) >= count, within=30
    )
    return body["runs"]  # type: ignore[no-any-return]


async def test_a_tenant_signs_in_and_sees_its_workflows(
    shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id)
    await client.create(
        seed_workflow(tenant_id, id=f"wf-draft-{tenant_id}", name="Deal desk", status="draft")
    )

    page = await signed_in(client.token or "")
    await expect(page).to_have_url(f"{browsing.base_url}/workflows")
    await expect(page.get_by_role("heading", name="Settings → Workflows")).to_be_visible()
    new = page.get_by_role("link", name="+ New Workflow")
    await expect(new).to_have_attribute("href", "/workflows/new")
    table = page.locator("#workflows")
    row = table.locator("tr", has_text=workflow["name"])
    await expect(row).to_contain_text("Record Created")
    await expect(row).to_contain_text("Active")
    await expect(row.locator("td").nth(3)).to_have_text("1")
    await expect(table.locator("tbody tr")).to_have_count(2)
    await browsing.shot(page, "workflows-list")
    await browsing.assert_labelled(page)

    await page.get_by_label("Status").select_option("draft")
    await page.get_by_role("button", name="Filter").click()
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table).to_contain_text("Deal desk")
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Name, id or trigger contains").fill("welcome")
    await page.get_by_role("button", name="Filter").click()
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table).to_contain_text(workflow["name"])

    # The keyboard: the first Tab reaches "Skip to content", which moves focus to the page.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(new).to_be_focused()  # the first control of the page: + New Workflow

    await page.set_viewport_size(PHONE)
    await page.goto("/workflows")
    await browsing.shot(page, "workflows-list-phone")
    browsing.watch.assert_clean()


async def test_the_runs_tab_shows_a_new_run_by_itself_and_opens_it(
    bootstrap: str, shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id)
    page = await signed_in(client.token or "")
    await page.get_by_role("link", name=workflow["name"]).click()
    await expect(page.get_by_role("link", name="Runs", exact=True).last).to_have_attribute(
        "aria-current", "page"
    )
    await expect(page.locator("#runs")).to_contain_text("No runs")

    await publish_lead(bootstrap, lead(tenant_id, 1, score=72))
    rows = page.locator("#runs tbody tr")
    await expect(rows).to_have_count(1, timeout=30_000)  # no reload: htmx polls the tab
    await expect(rows.first).to_contain_text("L-1")
    # Both steps, each with its status, as the executors finish them.
    await expect(rows.first).to_contain_text("1. Send Email: Succeeded", timeout=30_000)
    await expect(rows.first).to_contain_text("2. Create Task: Succeeded", timeout=30_000)
    await expect(rows.first).to_contain_text("Succeeded")
    await browsing.shot(page, "runs-tab")
    await browsing.assert_labelled(page)

    await rows.first.get_by_role("link").click()
    await expect(page.get_by_role("heading", name=f"Run of {workflow['name']}")).to_be_visible()
    await expect(page.locator("#event-after")).to_contain_text('"name": "Lead 1"')
    await expect(page.locator("#conditions tr.group")).to_contain_text("All of these")
    await expect(page.locator("#conditions tr.group")).to_contain_text("holds")
    conditions = page.locator("#conditions tbody tr.leaf")
    await expect(conditions.first).to_contain_text("score")
    await expect(conditions.first).to_contain_text("72")
    await expect(conditions.first).to_contain_text("passed")
    email = page.locator("#step-1")
    await expect(email).to_contain_text("Send Email")
    await expect(email).to_contain_text("Rendered parameters")
    await expect(email).to_contain_text("lead1@example.com")
    await expect(email.locator("table tbody tr")).to_have_count(1)  # one attempt
    task = page.locator("#step-2")
    await expect(task).to_contain_text("Follow-up call")
    await expect(page.locator("#failed-steps")).to_have_count(0)
    await browsing.shot(page, "run")
    await browsing.assert_labelled(page)
    await page.set_viewport_size(PHONE)
    await browsing.shot(page, "run-phone")

    # The list counts it: the last run and its status, one run in 24 hours, no failure.
    await page.goto("/workflows")
    row = page.locator("#workflows tbody tr", has_text=workflow["name"])
    await expect(row.locator('td[data-label="Last run"]')).to_contain_text("Succeeded")
    await expect(row.locator('td[data-label="Runs (24 h)"]')).to_have_text("1")
    await expect(row.locator('td[data-label="Failures (24 h)"]')).to_have_text("0")
    browsing.watch.assert_clean()


async def test_the_runs_tab_filters_by_status_record_and_time_and_pages(
    bootstrap: str, shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id)
    events = [lead(tenant_id, n, score=10) for n in range(1, 27)]
    events.append(lead(tenant_id, 100, score=90))
    await publish(bootstrap, RECORD_CHANGES, [(e["record_id"].encode(), e) for e in events])
    await runs_of(client, workflow["id"], 27)

    page = await signed_in(client.token or "")
    await page.goto(f"/workflows/{workflow['id']}/runs")
    rows = page.locator("#runs tbody tr")
    await expect(rows).to_have_count(25)  # a page
    await page.get_by_label("Status").select_option("conditions_not_met")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(25)
    await page.get_by_role("link", name="Older runs →").click()
    await expect(rows).to_have_count(1)  # 26 stopped by the score, 25 on the first page
    await expect(rows.first).to_contain_text("Conditions not met")
    await expect(page.locator("#runs")).to_contain_text("An older page")
    await page.get_by_role("link", name="Newest runs").click()
    await expect(rows).to_have_count(25)

    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Record id").fill("L-100")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("L-100")
    await page.get_by_label("Record id").fill("")
    await page.get_by_label("Time range").select_option("1h")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(25)
    await page.get_by_label("Time range").select_option("")
    await page.get_by_label("From (UTC)").fill("2099-01-01T00:00")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#runs")).to_contain_text("No runs match these filters")
    browsing.watch.assert_clean()


async def test_a_failed_action_is_impossible_to_miss(
    bootstrap: str,
    shared_worker: WorkerProcess,
    peers: Peers,
    browsing: Browsing,
    signed_in: SignIn,
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    refused = {"type": "call_webhook", "url": peers.http.url("/status/400/crm-hook")}
    workflow = await active_workflow(
        client, tenant_id, actions=[*seed_workflow(tenant_id)["actions"][:1], refused]
    )
    await publish_lead(bootstrap, lead(tenant_id, 5))
    await client.poll(
        f"/api/v1/workflows/{workflow['id']}/runs",
        lambda b: bool(b["runs"]) and b["runs"][0]["status"] == "partially_failed",
        within=30,
    )
    page = await signed_in(client.token or "")
    await page.goto(f"/workflows/{workflow['id']}/runs")
    row = page.locator("#runs tbody tr").first
    await expect(row).to_have_class("failed")
    await expect(row).to_contain_text("Partially failed")
    await expect(row).to_contain_text("2. Call Webhook: Failed")
    await row.get_by_role("link").click()
    banner = page.locator("#failed-steps")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("1 action failed")
    await expect(banner).to_contain_text("Action 2: Call Webhook")
    await expect(banner).to_contain_text("400")
    await expect(page.locator("#step-2")).to_have_class("step failed")
    await expect(page.locator("#step-2")).to_contain_text("FAILED")
    await expect(page.locator("#step-1")).to_have_class("step succeeded")
    await browsing.shot(page, "run-failed-action")
    await browsing.assert_labelled(page)
    browsing.watch.assert_clean()


async def test_a_run_stopped_by_its_conditions_explains_the_score(
    bootstrap: str, shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id)
    other = await active_workflow(
        client,
        tenant_id,
        id=f"wf-updated-{tenant_id}",
        name="Lead changed",
        trigger={"type": "record_updated", "record_type": "lead"},
    )
    await publish_lead(bootstrap, lead(tenant_id, 7, score=40))
    (run,) = await runs_of(client, workflow["id"], 1)
    assert run["status"] == "conditions_not_met"

    page = await signed_in(client.token or "")
    await page.goto(f"/workflows/{workflow['id']}/runs")
    row = page.locator("#runs tbody tr").first
    await expect(row).to_contain_text("Conditions not met")
    await row.get_by_role("link").click()
    await expect(page.locator("#conditions tr.group")).to_contain_text("does not hold")
    failed = page.locator("#conditions tbody tr.leaf.failed")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("score")
    await expect(failed.locator("td").nth(2)).to_have_text("50")
    await expect(failed.locator("td").nth(3)).to_have_text("40")
    await expect(failed).to_contain_text("not met")
    await expect(
        page.get_by_text("No steps ran: the conditions above were not met.")
    ).to_be_visible()
    await browsing.shot(page, "run-conditions-not-met")
    await browsing.assert_labelled(page)

    # "Why didn't it run?" from the Runs tab, then from the top of the app.
    await page.goto(f"/workflows/{workflow['id']}/runs")
    await page.get_by_role("link", name="Why didn't it run?").last.click()
    await expect(page.get_by_label("Record type")).to_have_value("lead")
    await page.get_by_label("Record id").fill("L-7")
    await page.get_by_role("button", name="Explain").click()
    answer = page.locator("#why-answer")
    await expect(answer).to_contain_text(re.compile(r"stopped by (its|their) conditions"))
    await expect(answer).to_contain_text(workflow["name"])
    await expect(answer).to_contain_text("actual value 40")
    # Another active workflow on leads whose trigger did not fire, and why.
    await expect(answer.locator(".not-triggered")).to_contain_text(other["name"])
    await expect(answer.locator(".not-triggered")).to_contain_text("trigger did not fire")
    await browsing.shot(page, "why")
    await browsing.assert_labelled(page)
    nav = page.get_by_role("navigation", name="Main")
    await nav.get_by_role("link", name="Why didn't it run?").click()
    await expect(page).to_have_url(f"{browsing.base_url}/why")
    browsing.watch.assert_clean()


async def test_deactivate_then_the_versions_with_a_diff_and_a_restore(
    shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id)
    page = await signed_in(client.token or "")
    await page.goto(f"/workflows/{workflow['id']}/settings")
    await expect(page.locator("#workflow-status")).to_have_text("Active")
    await browsing.shot(page, "settings-tab")
    await browsing.assert_labelled(page)

    await page.get_by_role("button", name="Deactivate").click()
    await expect(page.locator("#workflow-status")).to_have_text("Inactive")
    await expect(page.get_by_role("button", name="Activate")).to_be_visible()
    status, body = await client.call("GET", f"/api/v1/workflows/{workflow['id']}")
    assert status == 200 and body["status"] == "inactive" and body["version"] == 2

    await page.get_by_role("link", name="Versions").click()
    versions = page.locator("#versions tbody tr")
    await expect(versions).to_have_count(2)
    await expect(versions.nth(0)).to_contain_text("Deactivated")
    await expect(versions.nth(1)).to_contain_text("Created")
    await expect(versions.nth(0)).to_contain_text("admin (token)")  # who, from the audit log
    await page.get_by_label("Older").select_option("1")
    await page.get_by_label("Newer").select_option("2")
    await page.get_by_role("button", name="Show the diff").click()
    change = page.locator("#diff tbody tr", has_text="status")
    await expect(change.locator("td.del")).to_have_text('"active"')
    await expect(change.locator("td.add")).to_have_text('"inactive"')
    await browsing.shot(page, "versions-diff")
    await browsing.assert_labelled(page)

    await page.get_by_role("link", name="Version 1", exact=True).click()
    await expect(page.get_by_role("heading", name="Version 1")).to_contain_text("Active")
    await expect(page.locator("#conditions-tree")).to_contain_text("score ≥ 50")
    await browsing.shot(page, "version-1")
    await page.get_by_role("button", name="Restore version 1 as draft").click()
    await expect(versions).to_have_count(3)
    await expect(page.locator("#workflow-status")).to_have_text("Draft")
    status, body = await client.call("GET", f"/api/v1/workflows/{workflow['id']}")
    assert body["status"] == "draft" and body["version"] == 3
    assert body["actions"] == workflow["actions"]
    browsing.watch.assert_clean()


async def test_another_tenants_token_sees_none_of_it(
    bootstrap: str, shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id, name="Tenant A's secret flow")
    await publish_lead(bootstrap, lead(tenant_id, 3))
    (run,) = await runs_of(client, workflow["id"], 1)
    _, other = await tenant_api(shared_worker)

    page = await signed_in(other.token or "")
    await expect(page.get_by_text("No workflows yet")).to_be_visible()
    for path in (
        f"/workflows/{workflow['id']}/runs",
        f"/workflows/{workflow['id']}/versions",
        f"/workflows/{workflow['id']}/settings",
        f"/workflows/{workflow['id']}/runs/list",
        f"/runs/{run['run_id']}",
    ):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path
        assert "secret flow" not in await page.content()
    response = await page.request.post(f"/workflows/{workflow['id']}/deactivate")
    assert response.status == 403  # no CSRF token
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    for action in ("deactivate", "versions/1/restore"):
        response = await page.request.post(
            f"/workflows/{workflow['id']}/{action}", headers={"X-CSRF-Token": csrf or ""}
        )
        assert response.status == 404, action  # the API's answer for another tenant's
    for path in ("/runs", "/audit", "/why?record_type=lead&record_id=L-3"):
        await page.goto(path)
        assert "secret flow" not in await page.content(), path
        assert workflow["id"] not in await page.content(), path
    response = await page.goto("/dead-letters")
    assert response is not None and response.status == 404  # the operator's
    status, body = await client.call("GET", f"/api/v1/workflows/{workflow['id']}")
    assert status == 200 and body["status"] == "active"
    browsing.watch.console.clear()  # the 404s above are logged by the browser


async def test_record_data_renders_as_text_and_runs_no_script(
    bootstrap: str, shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    actions = [
        {
            "type": "send_email",
            "to": "{{record.email}}",
            "subject": "Hi {{record.name}}",
            "body": "Dear {{record.title}}",
        },
    ]
    workflow = await active_workflow(client, tenant_id, name=f"Flow {SCRIPT}", actions=actions)
    await publish_lead(bootstrap, lead(tenant_id, 9, name=XSS, title=SCRIPT))
    await runs_of(client, workflow["id"], 1)

    page = await signed_in(client.token or "")
    await expect(page.locator("#workflows")).to_contain_text(f"Flow {SCRIPT}")
    await page.goto(f"/workflows/{workflow['id']}/runs")
    await page.locator("#runs tbody tr").first.get_by_role("link").click()
    await expect(page.locator("#event-after")).to_contain_text(XSS)
    await expect(page.locator("#event-after")).to_contain_text(SCRIPT)
    await expect(page.locator("#step-1")).to_contain_text(f"Hi {XSS}")
    await page.goto("/why?record_type=lead&record_id=L-9")
    await expect(page.locator("#why-answer")).to_contain_text(SCRIPT)
    await page.goto("/runs?record_id=L-9")
    await expect(page.locator("#runs")).to_contain_text(SCRIPT)
    await asyncio.sleep(0.5)  # an onerror would have fired by now
    assert await page.locator("img[src=x]").count() == 0
    assert await page.evaluate("document.querySelectorAll('main script').length") == 0
    await browsing.shot(page, "xss-as-text")
    await browsing.assert_labelled(page)
    browsing.watch.assert_clean()


async def test_sign_out_ends_the_session(
    shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    _, client = await tenant_api(shared_worker)
    token = client.token or ""
    page = await signed_in(token)
    (cookie,) = [c for c in await browsing.context.cookies() if c["name"] == "coeflow_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert token not in cookie["value"] and token not in page.url
    assert await page.evaluate("document.cookie") == ""  # no script can read it

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{browsing.base_url}/sign-in?signed-out")
    await expect(page.locator("#sign-in-notice")).to_have_text("You are signed out.")
    await browsing.shot(page, "sign-in")
    await browsing.assert_labelled(page)
    await page.goto("/workflows")
    await expect(page).to_have_url(f"{browsing.base_url}/sign-in")
    # The old cookie, put back, names no session any more.
    await browsing.context.add_cookies([{**cookie}])  # type: ignore[list-item]
    await page.goto("/workflows")
    await expect(page).to_have_url(f"{browsing.base_url}/sign-in")
    browsing.watch.assert_clean()


async def test_the_operator_picks_a_tenant_and_sees_the_dead_letters_and_audit_log(
    bootstrap: str, shared_worker: WorkerProcess, browsing: Browsing, signed_in: SignIn
) -> None:
    tenant_id, client = await tenant_api(shared_worker)
    workflow = await active_workflow(client, tenant_id)
    poison = f"not JSON {tenant_id} {XSS}".encode()
    await publish(bootstrap, RECORD_CHANGES, [(b"poison", poison)])
    await Api(shared_worker.url).poll(
        "/api/v1/dead-letters?limit=200",
        lambda b: any(
            base64.b64decode(letter["value_base64"] or "") == poison for letter in b["dead_letters"]
        ),
    )
    page = await signed_in(TOKEN)
    await expect(page).to_have_url(f"{browsing.base_url}/tenant")
    await browsing.shot(page, "tenant")
    await browsing.assert_labelled(page)
    await page.get_by_label("Tenant").fill(tenant_id)
    await page.get_by_role("button", name="Show this tenant").click()
    await expect(page.locator("#workflows")).to_contain_text(workflow["name"])
    await page.get_by_role("link", name="Audit log").click()
    await expect(page.locator("#audit")).to_contain_text("Workflow created")
    await browsing.shot(page, "audit")
    await browsing.assert_labelled(page)
    await page.get_by_role("link", name="Dead letters").click()
    await expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    letter = page.locator("#dead-letters tbody tr", has_text=tenant_id)
    await expect(letter).to_have_count(1, timeout=20_000)
    await expect(letter).to_contain_text(RECORD_CHANGES)
    await letter.locator("summary").click()
    await expect(letter.locator("pre")).to_have_text(poison.decode())  # as text
    await browsing.shot(page, "dead-letters")
    await browsing.assert_labelled(page)
    await page.get_by_role("link", name="Runs", exact=True).click()
    await expect(page.get_by_role("heading", name="Runs of every workflow")).to_be_visible()
    await page.get_by_label("Workflow").select_option(label=workflow["name"])
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_label("Workflow")).to_have_value(workflow["id"])
    await browsing.shot(page, "runs-search")
    await browsing.assert_labelled(page)
    browsing.watch.assert_clean()
