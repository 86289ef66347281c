"""The builder's Backtest panel in a real browser against a real worker: leads published over
the last hours, the active seed workflow opened in the builder, its condition raised without
saving, a backtest over the last 24 hours run to the end, its two columns of counts, a changed
record opened to its conditions' values, and the CSV downloaded. Screenshots land in the
test's temporary folder (``screenshots/``)."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from coeflow.tools.processes import WorkerProcess
from tests.browser.conftest import Browsing, SignIn
from tests.browser.test_builder import posted
from tests.integration.harness import Api, lead_created, publish, seed_workflow
from topics.catalog import RECORD_CHANGES

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BACKTEST_WITHIN_MS = 90_000
XSS = "<img src=x onerror=alert(1)>"
SCORES = (10, 60, 75, 90)
"""Leads L-1…L-4: with the seed's score ≥ 50, three run; raised to 80, one does, so L-2 and
L-3 change."""


async def a_tenant_with_leads(
    shared_worker: WorkerProcess, bootstrap: str, scores: tuple[int, ...], *, xss_name: int = 0
) -> tuple[Api, dict[str, Any]]:
    """A new tenant with the active seed workflow and leads L-1, L-2, … of ``scores``,
    created an hour apart before now (lead ``xss_name`` named ``XSS``)."""
    tenant = f"t-backtest-{uuid.uuid4().hex[:8]}"
    client = await Api(shared_worker.url).as_tenant(tenant)
    workflow = await client.create(seed_workflow(tenant))
    now = datetime.now(UTC)
    leads = []
    for n, score in enumerate(scores, start=1):
        event = lead_created(
            tenant, n, score=score, occurred_at=(now - timedelta(hours=n)).isoformat()
        )
        if n == xss_name:
            event["after"]["name"] = XSS
        leads.append((f"L-{n}".encode(), event))
    await publish(bootstrap, RECORD_CHANGES, leads)
    return client, workflow


async def test_a_backtest_of_an_unsaved_edit_shows_what_would_differ(
    browsing: Browsing, signed_in: SignIn, shared_worker: WorkerProcess, bootstrap: str
) -> None:
    client, workflow = await a_tenant_with_leads(shared_worker, bootstrap, SCORES, xss_name=2)
    page = await signed_in(client.token or "")
    await browsing.walk(page, backtest_an_edit(browsing, page, workflow["id"]))


async def backtest_an_edit(browsing: Browsing, page: Page, workflow_id: str) -> None:
    await page.goto(f"/workflows/{workflow_id}/edit")
    await expect(page.locator("#state")).to_have_text("Active")

    # Raise the condition to score ≥ 80, unsaved, and backtest it over the last 24 hours; the
    # intro follows the edit as soon as it is typed (no button pressed)
    intro = page.locator("#backtest-intro")
    await expect(intro).to_contain_text("through version 1 as saved")
    await page.get_by_label("Value", exact=True).fill("80")
    await page.get_by_label("Value", exact=True).press("Tab")
    await expect(intro).to_contain_text("through your unsaved changes")
    await page.get_by_label("Last 24 hours").check()
    await browsing.assert_labelled(page)
    await posted(page, page.get_by_role("button", name="Backtest", exact=True).click())
    panel = page.locator("#backtest")
    await expect(panel).to_be_visible()
    await browsing.shot(page, "backtest-started")
    await expect(page.locator("#backtest-status")).to_have_text("Done", timeout=BACKTEST_WITHIN_MS)
    await expect(page.locator("#state")).to_have_text("Active")  # nothing was saved
    await expect(page.get_by_label("Value", exact=True)).to_have_value("80")

    # The two columns: the unsaved edit beside the active version
    counts = page.locator("#backtest-counts")
    await expect(counts.locator("thead th").nth(1)).to_have_text("Backtested Your unsaved changes")
    await expect(counts.locator("thead th").nth(2)).to_have_text("Compared with Version 1 (active)")
    assert await row(counts, "Runs") == ["4", "4"]
    assert await row(counts, "Actions issued") == ["1", "3"]
    assert await row(counts, "Conditions not met") == ["3", "1"]
    assert await row(counts, "Send Email") == ["1", "3"]
    await expect(page.locator("#backtest-changed-count")).to_have_text("2 outcomes would change")
    # the leads, and the tasks the live runs of the active version created meanwhile
    summary = page.locator("#backtest-summary")
    await expect(summary).to_contain_text(re.compile(r"[4-7] record changes replayed"))
    await browsing.shot(page, "backtest-done")

    # The changed records, earliest first: L-3 (75), then L-2 (60, its name hostile)
    changed = page.locator("#backtest-changed > li")
    await expect(changed).to_have_count(2)
    first = changed.nth(0)
    await expect(first.locator("summary")).to_contain_text("lead L-3")
    await expect(first.locator("summary")).to_contain_text("Conditions not met")
    await first.locator("summary").click()
    sides = first.locator(".side")
    candidate = sides.nth(0).locator("table.conditions tbody tr")
    await expect(candidate).to_contain_text("score")
    await expect(candidate.locator("td").nth(2)).to_have_text("80")
    await expect(candidate.locator("td").nth(3)).to_have_text("75")
    await expect(candidate).to_contain_text("not met")
    baseline = sides.nth(1)
    await expect(baseline.locator("table.conditions tbody tr")).to_contain_text("passed")
    await expect(baseline).to_contain_text("Send Email")
    await expect(baseline).to_contain_text("lead3@example.com")
    second = changed.nth(1)
    await second.locator("summary").click()
    await expect(second.locator(".side").nth(1)).to_contain_text(f"Hi {XSS}")  # as text
    await browsing.shot(page, "backtest-changed-record-open")
    await browsing.assert_labelled(page)

    # The CSV
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name=re.compile("Download the changed records")).click()
    download = await download_info.value
    assert re.fullmatch(r"backtest-[A-Za-z0-9_-]+\.csv", download.suggested_filename)
    path = await download.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert [r["record_id"] for r in rows] == ["L-3", "L-2"]
    assert {r["candidate_status"] for r in rows} == {"conditions_not_met"}

    # At a phone's width the panel reads top to bottom
    await page.set_viewport_size({"width": 390, "height": 844})
    await browsing.shot(page, "backtest-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Typed on, the result is of another workflow: it says so, dimmed, until typed back
    stale = page.locator("#backtest-stale")
    await page.get_by_label("Value", exact=True).fill("85")
    await page.get_by_label("Value", exact=True).press("Tab")
    await expect(stale).to_have_text(
        re.compile("The workflow changed since this backtest: run it again")
    )
    await expect(panel).to_have_class(re.compile(r"\bstale\b"))
    await expect(counts.locator("thead th").nth(1)).to_have_text(
        "Backtested Your changes, as backtested"
    )
    opacity = await panel.locator(".outcome").evaluate("e => getComputedStyle(e).opacity")
    assert float(opacity) < 1
    await browsing.shot(page, "backtest-out-of-date")
    await page.get_by_label("Value", exact=True).fill("80")
    await page.get_by_label("Value", exact=True).press("Tab")
    await expect(stale).to_have_count(0)
    await expect(counts.locator("thead th").nth(1)).to_have_text("Backtested Your unsaved changes")


async def test_the_running_version_alone_and_a_parameter_only_change(
    browsing: Browsing, signed_in: SignIn, shared_worker: WorkerProcess, bootstrap: str
) -> None:
    client, workflow = await a_tenant_with_leads(shared_worker, bootstrap, (60, 75))
    page = await signed_in(client.token or "")
    await browsing.walk(page, alone_then_a_parameter(browsing, page, workflow["id"]))


async def alone_then_a_parameter(browsing: Browsing, page: Page, workflow_id: str) -> None:
    await page.goto(f"/workflows/{workflow_id}/edit")
    await expect(page.locator("#state")).to_have_text("Active")

    # No edit: version 1, the one that runs, beside nothing (no version ran before it)
    await page.get_by_label("Last 24 hours").check()
    await posted(page, page.get_by_role("button", name="Backtest", exact=True).click())
    await expect(page.locator("#backtest-status")).to_have_text("Done", timeout=BACKTEST_WITHIN_MS)
    alone = page.locator("#backtest-alone")
    await expect(alone).to_contain_text("This is the version that runs; no earlier version ran")
    counts = page.locator("#backtest-counts")
    await expect(counts.locator("thead th").nth(1)).to_have_text("Backtested Version 1 (active)")
    await expect(counts.locator("thead th").nth(2)).to_have_text(
        "Compared with No earlier active version (does nothing)"
    )
    await browsing.shot(page, "backtest-running-version-alone")

    # Another subject, unsaved: the same runs, other parameters, named and marked
    subject = page.get_by_label("Subject")
    await subject.fill("Another subject for {{record.name}}")
    await subject.press("Tab")
    await expect(page.locator("#backtest-stale")).to_be_visible()
    await posted(page, page.get_by_role("button", name="Backtest", exact=True).click())
    await expect(page.locator("#backtest-status")).to_have_text("Done", timeout=BACKTEST_WITHIN_MS)
    await expect(alone).to_have_count(0)
    await expect(page.locator("#backtest-stale")).to_have_count(0)
    changed = page.locator("#backtest-changed > li")
    await expect(changed).to_have_count(2)
    first = changed.nth(0)
    await expect(first.locator("summary")).to_contain_text("Action 1 Send Email: subject")
    await expect(first.locator("summary")).to_contain_text("Actions issued in both")
    await first.locator("summary").click()
    marks = first.locator("pre.params mark")
    await expect(marks).to_have_count(2)
    await expect(marks.nth(0)).to_contain_text("Another subject for Lead 2")
    await expect(marks.nth(1)).to_contain_text("Welcome")
    await browsing.shot(page, "backtest-parameters-differ")
    await browsing.assert_labelled(page)


async def row(table: Locator, label: str) -> list[str]:
    """The two counts of the row named ``label``."""
    header = table.page.get_by_role("rowheader", name=label, exact=True)
    cells = table.locator("tbody tr").filter(has=header).locator("td")
    return [t.strip() for t in await cells.all_inner_texts()]
