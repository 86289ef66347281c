"""The browser tests' fixtures: the session's broker and shared worker (those of
tests/integration), headless Chromium driven by Playwright, and a page signed in with a
token.

Playwright cannot download its own browsers on these machines: it drives Debian's
``chromium`` (``make test`` installs it when it is missing). Each test gets its own browser
context (its own cookies), and the screenshots it takes land in its temporary folder.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
)

import tests.integration.conftest as integration
from coeflow.tools.processes import WorkerProcess

# The integration tests' session fixtures: a broker, the executors' peers, the shared worker,
# and the workers' log folder (scanned for secrets at the end, the session's tokens among them).
bootstrap = integration.bootstrap
peers = integration.peers
workdir = integration.workdir
shared_worker = integration.shared_worker

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000


HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run in the session's event loop, where the one browser lives
    (starting Chromium for each test cost more than most tests)."""
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if pytest_asyncio.is_async_test(item) and HERE in item.path.parents:
            item.add_marker(session_loop, append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium: make test installs it (as root)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Watch:
    """What a page did that no test wants: dialogs (an ``alert`` from injected markup),
    page errors, and the console's errors (a script the CSP refused is one)."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console.append(message.text)

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", on_console)

    def assert_clean(self) -> None:
        assert self.dialogs == [], self.dialogs
        assert self.errors == [], self.errors
        assert self.console == [], self.console


@dataclass
class Browsing:
    """One test's browser context: its pages, the worker's address, and screenshots."""

    context: BrowserContext
    base_url: str
    shots: Path
    watch: Watch

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        self.watch.attach(page)
        return page

    async def shot(self, page: Page, name: str) -> Path:
        """A screenshot of the whole page under the test's temporary folder."""
        path = self.shots / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    async def walk(self, page: Page, scenario: Awaitable[None]) -> None:
        """Run ``scenario`` on ``page``; if it fails, the page as it was then is kept
        (``failed-here.png`` and ``.html``) for the person reading the failure. Then no
        console error, failed request or server error may have happened."""
        try:
            await scenario
        except Exception:
            await self.shot(page, "failed-here")
            (self.shots / "failed-here.html").write_text(await page.content())
            raise
        self.watch.assert_clean()

    async def assert_labelled(self, page: Page) -> None:
        """Every control of the page has a name a screen reader says: a label, an
        aria-label, or (a button) its text."""
        unnamed = await page.evaluate(UNLABELLED_CONTROLS)
        assert unnamed == [], f"controls without a label on {page.url}: {unnamed}"


UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll("input,select,textarea,button"))
  .filter(el => el.type !== "hidden")
  .filter(el => !((el.labels && el.labels.length) || el.getAttribute("aria-label")
                  || el.getAttribute("aria-labelledby")
                  || (el.tagName === "BUTTON" && el.textContent.trim())))
  .map(el => el.outerHTML.slice(0, 160))"""


@pytest_asyncio.fixture(loop_scope="session")
async def browsing(
    browser: Browser, shared_worker: WorkerProcess, tmp_path: Path
) -> AsyncIterator[Browsing]:
    context = await browser.new_context(viewport=DESKTOP, base_url=shared_worker.url)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        yield Browsing(context, shared_worker.url, shots, Watch())
    finally:
        await context.close()


SignIn = Callable[[str], Awaitable[Page]]


@pytest.fixture
def signed_in(browsing: Browsing) -> SignIn:
    """``await signed_in(token)``: a page signed in with ``token`` (as a person would: the
    sign-in form), showing what the app shows first."""

    async def sign_in(token: str) -> Page:
        page = await browsing.page()
        await page.goto("/")
        await page.get_by_label("API token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_load_state()
        assert "/sign-in" not in page.url, await page.content()
        return page

    return sign_in
