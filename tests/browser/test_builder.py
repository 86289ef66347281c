"""The builder in a real browser against a real worker: the seed's workflow "New Lead →
Welcome Email" built only by clicking and typing, a bad field's error at the field, a test
against a pasted lead, Activate, and a published lead's run in the Runs tab with both steps.
Screenshots of the builder land in the test's temporary folder (``screenshots/``)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import pytest
from playwright.async_api import Locator, Page, Response, expect

from coeflow.tools.processes import WorkerProcess
from tests.browser.conftest import Browsing, SignIn
from tests.integration.harness import Api, lead_created, publish
from topics.catalog import RECORD_CHANGES

pytestmark = [pytest.mark.integration, pytest.mark.browser]

RUN_WITHIN_MS = 40_000


def block(page: Page, prefix: str) -> Locator:
    return page.locator(f'[id="block-{prefix}"]')


SETTLED = """() => {
    window.coeflowSettled = false;
    const settled = (event) => {
        if (event.target && event.target.id === "builder") {
            window.coeflowSettled = true;
            document.body.removeEventListener("htmx:afterSettle", settled);
        }
    };
    document.body.addEventListener("htmx:afterSettle", settled);
}"""
"""Marks the page until htmx has swapped and settled the next answer (run by the test through
the browser's debugging protocol, which the page's CSP does not govern)."""


FOLLOWERS = ("op=backtest_intro", "op=backtest_panel")
"""The posts of the Backtest panel and its intro (after an edit typed, and the panel's poll):
no answer of the builder's."""


def builders_answer(response: Response) -> bool:
    posted = response.request.post_data or ""
    return response.request.method == "POST" and not any(f in posted for f in FOLLOWERS)


async def posted(page: Page, action: Any) -> None:
    """Do ``action`` (a click, a choice) and wait for the builder's answer to be swapped in
    and processed by htmx (a swap of the builder, not of the Backtest panel or its intro, which
    post the form too): the response alone is not enough, as the next control the test
    uses may be the one the swap replaces (a choice made on it before htmx has bound the new
    one is lost on a loaded machine). A whole page loaded instead has no mark, and passes."""
    await page.evaluate(SETTLED)
    async with page.expect_response(builders_answer):
        await action
    await page.wait_for_function("() => window.coeflowSettled !== false")
    await page.wait_for_load_state()
    await expect(page.locator("#builder")).to_be_visible()


async def test_the_seed_workflow_built_by_clicking_and_typing(
    browsing: Browsing, signed_in: SignIn, shared_worker: WorkerProcess, bootstrap: str
) -> None:
    tenant = f"t-builder-{uuid.uuid4().hex[:8]}"
    client = await Api(shared_worker.url).as_tenant(tenant)
    page = await signed_in(client.token or "")
    await browsing.walk(page, build_test_activate_and_run(browsing, page, tenant, bootstrap))


async def build_test_activate_and_run(
    browsing: Browsing, page: Page, tenant: str, bootstrap: str
) -> None:

    await page.get_by_role("link", name="+ New Workflow").first.click()
    await expect(page).to_have_url(re.compile(r"/workflows/new$"))
    await page.get_by_label("Name").fill("New Lead → Welcome Email")
    trigger = page.get_by_label("When")
    await expect(trigger.locator("option", has_text="Scheduled (Recurring)")).to_have_count(1)
    await posted(page, trigger.select_option(label="Lead Score Threshold"))
    await expect(page.get_by_label(re.compile("^Threshold"))).to_be_visible()  # its own field
    await posted(page, page.get_by_label("When").select_option(label="Record Created"))
    await page.get_by_label(re.compile("^Record type")).fill("lead")

    # Condition: Lead Score ≥ 50
    await posted(page, page.get_by_role("button", name="+ Add condition").click())
    await page.get_by_label("Field", exact=True).fill("score")
    await posted(page, page.get_by_label("Operator").select_option(label="≥"))
    await page.get_by_label("Value", exact=True).fill("50")

    # Action 1: Send Email, its address mistyped for now
    await page.get_by_label("Add an action").select_option(label="Send Email")
    await posted(page, page.get_by_role("button", name="+ Add action").click())
    email = block(page, "actions.0")
    await email.get_by_label(re.compile("^To")).fill("ada-at-example")
    await email.get_by_label(re.compile("^Subject")).fill("Welcome — Thanks for your interest")
    await email.get_by_label(re.compile("^Body")).fill(
        "Hi , thanks for your interest in Coeffection."
    )

    # Action 2, added with the keyboard: Create Task "Follow-up call" for the lead owner,
    # due in 2 days; the focus lands on the new block
    await page.get_by_label("Add an action").select_option(label="Create Task")
    await page.get_by_role("button", name="+ Add action").focus()
    await posted(page, page.keyboard.press("Enter"))
    await expect(page.locator('[id="f-actions.1.type"]')).to_be_focused()
    task = block(page, "actions.1")
    await task.get_by_label(re.compile("^Title")).fill("Follow-up call")
    await task.get_by_label(re.compile("^Assignee")).focus()
    await task.get_by_label("Merge field").select_option("{{record.owner_id}}")
    await task.get_by_role("button", name="Insert at the cursor").click()
    await expect(task.get_by_label(re.compile("^Assignee"))).to_have_value("{{record.owner_id}}")
    await task.get_by_label(re.compile("^Due in")).fill("2d")

    # Save: the mistyped address is refused, at its field
    await posted(page, page.get_by_role("button", name="Save draft").click())
    await expect(page.locator("#builder-error")).to_contain_text("Not saved: 1 problem")
    to = block(page, "actions.0").get_by_label(re.compile("^To"))
    await expect(to).to_have_attribute("aria-invalid", "true")
    await expect(page.locator('[id="e-actions.0.params.to"]')).to_contain_text(
        "is not an email address"
    )
    await browsing.shot(page, "builder-error-at-the-field")
    await browsing.assert_labelled(page)

    # Fix it with the merge-field picker, put the name in the body, and save
    await to.fill("")
    email = block(page, "actions.0")
    await email.get_by_label("Merge field").select_option("{{record.email}}")
    await email.get_by_role("button", name="Insert at the cursor").click()
    await expect(to).to_have_value("{{record.email}}")
    body = email.get_by_label(re.compile("^Body"))
    await body.focus()
    await body.evaluate("(e) => e.setSelectionRange(3, 3)")  # after "Hi "
    await email.get_by_label("Merge field").select_option("{{record.name}}")
    await email.get_by_role("button", name="Insert at the cursor").click()
    await expect(body).to_have_value("Hi {{record.name}}, thanks for your interest in Coeffection.")
    await posted(page, page.get_by_role("button", name="Save draft").click())
    await expect(page.get_by_role("status")).to_contain_text("Saved as a draft: version 1.")
    await expect(page.locator("#state")).to_have_text("Draft")
    await expect(page).to_have_url(re.compile(r"/workflows/[^/]+/edit$"))
    heading = await page.get_by_role("heading", level=1).inner_text()
    name = heading.removeprefix("Workflow Builder — ")
    await expect(page).to_have_title(f"Edit {name} · Coeffection Workflows")  # not "+ New…"
    workflow_id = page.url.rsplit("/", 2)[-2]

    # Test against a pasted lead: nothing is emitted
    xss = "<img src=x onerror=alert(1)>"
    lead = {"name": xss, "email": "ada@example.com", "score": 72, "owner_id": "u-7"}
    await page.get_by_label("The record, as JSON").fill(orjson.dumps(lead).decode())
    await posted(page, page.get_by_role("button", name="Test", exact=True).click())
    result = page.locator("#test-result")
    await expect(result.locator("h3")).to_contain_text("Actions issued")
    await expect(result).to_contain_text("nothing emitted")
    await expect(result).to_contain_text("score")
    await expect(result).to_contain_text("Follow-up call")
    await expect(result).to_contain_text(xss)  # as text
    await browsing.shot(page, "builder-tested")
    await browsing.assert_labelled(page)

    # Activate, with the state visible
    await posted(page, page.get_by_role("button", name="Activate").click())
    await expect(page.locator("#state")).to_have_text("Active")
    await expect(page.get_by_role("button", name="Deactivate")).to_be_visible()
    await page.set_viewport_size({"width": 1280, "height": 800})
    await browsing.shot(page, "builder-active")
    await browsing.assert_labelled(page)

    # A lead is created: its run appears in the Runs tab by itself, with both steps
    await page.goto(f"/workflows/{workflow_id}/runs")
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(tenant, 1, score=72))])
    runs = page.locator("#runs")
    await expect(runs).to_contain_text("1. Send Email: Succeeded", timeout=RUN_WITHIN_MS)
    await expect(runs).to_contain_text("2. Create Task: Succeeded", timeout=RUN_WITHIN_MS)
    await browsing.shot(page, "runs-tab")

    # At a phone's width the builder still reads top to bottom
    await page.goto(f"/workflows/{workflow_id}/edit")
    await page.set_viewport_size({"width": 390, "height": 844})
    await browsing.shot(page, "builder-phone")
    await browsing.assert_labelled(page)


async def test_a_webhook_workflow_shows_its_url_and_its_secret_once(
    browsing: Browsing, signed_in: SignIn, shared_worker: WorkerProcess
) -> None:
    tenant = f"t-hook-{uuid.uuid4().hex[:8]}"
    client = await Api(shared_worker.url).as_tenant(tenant)
    page = await signed_in(client.token or "")
    await page.goto("/workflows/new")
    await page.get_by_label("Name").fill("Form posted → note")
    await posted(page, page.get_by_label("When").select_option(label="Webhook Received"))
    await expect(page.get_by_text("made when you save")).to_be_visible()
    await page.get_by_label("Add an action").select_option(label="Add Note")
    await posted(page, page.get_by_role("button", name="+ Add action").click())
    await block(page, "actions.0").get_by_label(re.compile("^Body")).fill("{{record.message}}")
    await posted(page, page.get_by_role("button", name="Save draft").click())
    secret = page.get_by_label("Signing secret")
    first = await secret.input_value()
    assert first.startswith("whsec_"), first
    url = await page.get_by_label(re.compile("^Inbound URL")).input_value()
    assert re.fullmatch(rf"{re.escape(shared_worker.url)}/hooks/wf-[0-9a-f]+", url), url
    await browsing.shot(page, "webhook-secret-once")
    await browsing.assert_labelled(page)
    await page.reload()  # a read shows the secret's hint only
    await expect(page.get_by_label("Signing secret")).to_have_count(0)
    await expect(page.get_by_text(f"…{first[-4:]}")).to_be_visible()
    await posted(page, page.get_by_role("button", name="Rotate secret").click())
    rotated = await page.get_by_label("Signing secret").input_value()
    assert rotated.startswith("whsec_") and rotated != first
    browsing.watch.assert_clean()
