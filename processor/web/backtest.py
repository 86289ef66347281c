"""The builder's Backtest panel: what the workflow on the screen would have done over the
tenant's recent record changes, beside what the active version did.

The builder's form is the state here too: the window (``backtest.window``, or
``backtest.since``/``backtest.until``), the backtest being shown (``backtest.id``) and the page
of its changed records (``backtest.offset``) are fields of the form, kept across every edit,
so the panel survives a condition added while it runs. ``builder.py`` starts and cancels a
backtest (its ``backtest`` and ``cancel_backtest`` buttons); this module makes the API's
request from the form, reads the API's answer into what the template draws, and serves the
panel as an htmx fragment, polled while the backtest is queued or running, and the changed
records as CSV.

A form with unsaved changes is backtested as it stands (``definition``), not saved first: a
draft saved over an active workflow would stop it. Otherwise the API's defaults apply: the
newest saved version against the active one.

A result belongs to the workflow as it was backtested, which the form goes on changing: the form
keeps a digest of that definition (``backtest.digest``), and every round trip of the builder
compares it with the form's own, so a result of an earlier edit is marked out of date
(``Panel.stale``) rather than shown as the changes on the screen. The panel's own requests (its
polling, and ``builder.js`` after an edit typed in a text field) post the whole form to the
builder for that reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import ValidationError

from processor.core.backtest import NOT_BACKTESTED
from processor.core.backtest_diff import ParamDifference, param_differences
from processor.web import labels
from processor.web.forms import Form, form_to_document
from processor.web.pages import (
    SECURITY_HEADERS,
    Page,
    PageError,
    Redirect,
    as_json,
    edit_url,
    page,
)
from topics.backtests import ReplayedOutcome

FIELDS = (
    "backtest.window",
    "backtest.since",
    "backtest.until",
    "backtest.id",
    "backtest.offset",
    "backtest.digest",
)
"""The panel's fields of the builder's form, kept across its edits."""
SHOWN = ("backtest.id", "backtest.offset", "backtest.digest")
"""The fields that name the backtest shown (a new backtest replaces them)."""


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    length: timedelta | None
    """``None``: between the dates given (``backtest.since``/``backtest.until``)."""


WINDOWS: Mapping[str, Window] = {
    "24h": Window("Last 24 hours", timedelta(hours=24)),
    "7d": Window("Last 7 days", timedelta(days=7)),
    "30d": Window("Last 30 days", timedelta(days=30)),
    "between": Window("Between (UTC)", None),
}
"""The windows the panel offers, by the value of its radio buttons."""
DEFAULT_WINDOW = "7d"

CHANGED_PAGE = 20
"""Changed records shown at once (the CSV has every one the backtest kept)."""
POLL_SECONDS = 1
RUNNING = frozenset({"queued", "running"})

_BACKTEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""What a backtest id the form carries back may look like (it is echoed into a URL)."""
_DIGEST = re.compile(r"[0-9a-f]{64}")
"""What the digest of a backtested definition the form carries back may look like."""
_MAX_TIME_TEXT = 40
_MAX_OFFSET = 10_000_000


class WindowError(ValueError):
    """The window typed is not one (the reason is shown at its field, ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _time(form: Form, name: str, what: str) -> datetime | None:
    """A ``datetime-local`` control's text as UTC; ``None`` when empty."""
    text = form.get(name, "").strip()
    if not text:
        return None
    if len(text) > _MAX_TIME_TEXT:
        raise WindowError(name, f"{what} is not a date and time, such as 2026-11-24T09:00")
    try:
        at = datetime.fromisoformat(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 at +05:00 in UTC
        raise WindowError(
            name, f"{what} is not a date and time, such as 2026-11-24T09:00"
        ) from None


def window_of(form: Form, now: datetime) -> tuple[datetime, datetime]:
    """The window the form chose, as (since, until): the last 24 hours, 7 or 30 days up to
    ``now``, or between the two times typed (UTC; the end, when empty, is ``now``)."""
    chosen = WINDOWS.get(form.get("backtest.window", DEFAULT_WINDOW)) or WINDOWS[DEFAULT_WINDOW]
    if chosen.length is not None:
        return now - chosen.length, now
    since = _time(form, "backtest.since", "the start")
    until = _time(form, "backtest.until", "the end") or now
    if since is None:
        raise WindowError("backtest.since", "give the window's start, such as 2026-11-24T09:00")
    if since > now:  # said before the end's check: with the end empty, the end is now
        raise WindowError("backtest.since", "the start is after now: no change happened yet")
    if since >= until:
        raise WindowError("backtest.since", "the start must be before the end")
    return since, until


def request_body(form: Form, now: datetime, unsaved: bool) -> dict[str, Any]:
    """``POST /workflows/{id}/backtest``'s body: the window, and with unsaved changes the
    workflow the form describes as the candidate (its id is the path's)."""
    since, until = window_of(form, now)
    body: dict[str, Any] = {"since": since.isoformat(), "until": until.isoformat()}
    if unsaved:
        definition = form_to_document(form)
        definition.pop("version", None)
        body["definition"] = definition
    return body


def not_backtested(form: Form) -> str | None:
    """Why the trigger on the screen cannot be backtested (the API's reason), or ``None``."""
    return NOT_BACKTESTED.get(form.get("trigger.type", ""))


def backtest_id(form: Form) -> str | None:
    """The backtest the form shows, when it names one that can be one."""
    given = form.get("backtest.id", "")
    return given if _BACKTEST_ID.fullmatch(given) else None


def is_stale(form: Form, current: str) -> bool:
    """Whether the workflow the form describes (its digest, ``current``) is another than the
    one the backtest shown was of. A form without a digest (a page older than the digest) is
    not called out of date: nothing says it is."""
    backtested = digest_of(form)
    return bool(backtested) and backtested != current


def digest_of(form: Form) -> str:
    """The digest of what the backtest shown was of, as the form carries it on (if it is one)."""
    given = form.get("backtest.digest", "")
    return given if _DIGEST.fullmatch(given) else ""


def offset_of(text: str) -> int:
    """A page's first changed record, from the form or a query (0 for anything else)."""
    if not text.isascii() or not text.isdigit() or len(text) > 8:
        return 0
    return min(int(text), _MAX_OFFSET)


# --------------------------------------------------------------------------------------------
# What the template draws


@dataclass(frozen=True, slots=True)
class CountRow:
    """One row of the two columns: a label and each side's count."""

    label: str
    candidate: int
    baseline: int
    kind: str
    """``total``, ``status`` or ``action``: how the row is drawn."""

    @property
    def differs(self) -> bool:
        return self.candidate != self.baseline


def _counts(side: Any, key: str) -> dict[str, int]:
    found = side.get(key) if isinstance(side, dict) else None
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool)}


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def count_rows(result: Mapping[str, Any]) -> list[CountRow]:
    """The candidate's and the baseline's counts side by side: runs in all, runs by status,
    actions by type (each name either side has, in the order of the registries' labels)."""
    candidate, baseline = result.get("candidate") or {}, result.get("baseline") or {}
    rows = [
        CountRow(
            "Runs",
            _number(candidate.get("runs_total")),
            _number(baseline.get("runs_total")),
            "total",
        )
    ]
    for key, kind, name in (("runs", "status", labels.words), ("actions", "action", labels.action)):
        mine, theirs = _counts(candidate, key), _counts(baseline, key)
        for item in sorted(mine.keys() | theirs.keys()):
            rows.append(CountRow(name(item), mine.get(item, 0), theirs.get(item, 0), kind))
    return rows


ROLES = {"candidate": "Backtested", "baseline": "Compared with"}
"""What each column is to the backtest, above its title: the candidate is always the left one."""
UNSAVED = "Your unsaved changes"
UNSAVED_STALE = "Your changes, as backtested"
"""The candidate's title once the form has changed since (``Panel.stale``)."""
NO_BASELINE = "No earlier active version (does nothing)"


def side_title(side: Any, unsaved: bool, stale: bool = False) -> str:
    """What a column is: "Version 4 (draft)", "Your unsaved changes", "No earlier active
    version"."""
    version = side.get("version") if isinstance(side, dict) else None
    if version is None:
        if unsaved:
            return UNSAVED_STALE if stale else UNSAVED
        return NO_BASELINE
    status = side.get("status")
    shown = {"draft": "draft", "active": "active", "inactive": "inactive"}.get(str(status))
    return f"Version {version}" + (f" ({shown})" if shown else "")


def outcome_of(found: Any) -> ReplayedOutcome | None:
    """One side of a changed record as the model, ``None`` for no run or what is no outcome."""
    if not isinstance(found, dict):
        return None
    try:
        return ReplayedOutcome.model_validate(found)
    except ValidationError:
        return None


def param_labels(found: Sequence[ParamDifference]) -> list[str]:
    """ "Action 1 Send Email: subject, body", one per action whose parameters differ."""
    return [f"Action {d.position + 1} {labels.action(d.type)}: {', '.join(d.keys)}" for d in found]


def params_text(params: Any, marked: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """An action's parameters as indented JSON in pieces, each top-level key's piece ``True``
    when it is among ``marked`` (drawn highlighted in both columns)."""
    if not isinstance(params, dict) or not params:
        return [(as_json(params, indent=True), False)]
    pieces: list[tuple[str, bool]] = [("{\n", False)]
    keys = sorted(params, key=str)
    for n, key in enumerate(keys):
        value = as_json(params[key], indent=True).replace("\n", "\n  ")
        pieces.append(("  ", False))
        pieces.append((f"{as_json(str(key))}: {value}", str(key) in marked))
        pieces.append((",\n" if n < len(keys) - 1 else "\n", False))
    pieces.append(("}", False))
    return pieces


@dataclass
class Panel:
    """A backtest as the panel draws it: the API's answer and what is made of it."""

    workflow_id: str
    backtest: dict[str, Any]
    offset: int = 0
    poll_seconds: int = POLL_SECONDS
    page_size: int = CHANGED_PAGE
    stale: bool = False
    """The form has changed since this backtest (``is_stale``): its result is of another
    workflow than the one on the screen."""

    @property
    def id(self) -> str:
        return str(self.backtest.get("backtest_id", ""))

    @property
    def status(self) -> str:
        return str(self.backtest.get("status", ""))

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def url(self) -> str:
        return f"/workflows/{quote(self.workflow_id, safe='')}/backtests/{quote(self.id, safe='')}"

    @property
    def edit_url(self) -> str:
        """The builder's, which the panel posts the form to (to follow its edits)."""
        return edit_url(self.workflow_id)

    @property
    def progress(self) -> dict[str, Any]:
        found = self.backtest.get("progress")
        return found if isinstance(found, dict) else {}

    @property
    def percent(self) -> int | None:
        """How far the read is (messages read of the estimate), ``None`` until known."""
        read, total = self.progress.get("messages_read"), self.progress.get("messages_total")
        if not isinstance(read, int) or not isinstance(total, int) or total <= 0:
            return None
        return max(0, min(100, read * 100 // total))

    @property
    def result(self) -> dict[str, Any] | None:
        found = self.backtest.get("result")
        return found if isinstance(found, dict) and self.status == "done" else None

    @property
    def unsaved(self) -> bool:
        return self.backtest.get("candidate_version") is None

    @property
    def rows(self) -> list[CountRow]:
        return count_rows(self.result) if self.result else []

    @property
    def changed(self) -> list[dict[str, Any]]:
        found = self.result.get("changed") if self.result else None
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []

    @property
    def kept(self) -> int:
        """How many changed records the backtest kept (and pages through)."""
        if not self.result:
            return 0
        count = _number(self.result.get("changed_count"))
        cap = self.result.get("changed_cap")
        if isinstance(cap, int) and self.result.get("changed_truncated"):
            return min(count, cap)
        return count

    @property
    def previous_offset(self) -> int | None:
        return max(0, self.offset - CHANGED_PAGE) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        following = self.offset + CHANGED_PAGE
        return following if following < self.kept else None

    @property
    def only_the_running_version(self) -> bool:
        """The version tried is the one that runs and no earlier version ran: every run it
        started is a change, against nothing."""
        if not self.result or self.unsaved:
            return False
        candidate, baseline = self.result.get("candidate"), self.result.get("baseline")
        return (
            isinstance(candidate, dict)
            and candidate.get("status") == "active"
            and isinstance(baseline, dict)
            and baseline.get("version") is None
        )

    def title(self, side: str) -> str:
        found = self.result.get(side) if self.result else None
        return side_title(found, self.unsaved and side == "candidate", self.stale)

    def role(self, side: str) -> str:
        return ROLES[side]

    def param_differences(self, changed: Mapping[str, Any]) -> list[ParamDifference]:
        """Which parameters of which action differ between a changed record's two outcomes."""
        return param_differences(
            outcome_of(changed.get("candidate")), outcome_of(changed.get("baseline"))
        )

    @staticmethod
    def marked(found: Sequence[ParamDifference]) -> dict[int, tuple[str, ...]]:
        """The keys to highlight, by the action's place in either run."""
        return {d.position: d.keys for d in found}

    param_labels = staticmethod(param_labels)
    params_text = staticmethod(params_text)


async def load(page: Page, workflow_id: str, backtest: str, offset: int = 0) -> Panel | None:
    """The backtest as the API has it, with one page of its changed records; ``None`` when
    the API has no such backtest of this workflow and the session's tenant (another
    tenant's, one an operator started for a tenant it has not picked, or one forgotten)."""
    answer = await page.api.get(
        f"/backtests/{quote(backtest, safe='')}",
        changed_offset=offset,
        changed_limit=CHANGED_PAGE,
    )
    if answer.status == 401:
        raise Redirect("/sign-in")
    if answer.status == 404:
        return None
    if not answer.ok or not isinstance(answer.body, dict):
        raise PageError(answer.status, answer.error)
    if answer.body.get("workflow_id") != workflow_id:
        return None
    if answer.body.get("tenant_id") != page.tenant_id:  # the operator's other tenants'
        return None
    return Panel(workflow_id, answer.body, offset)


# --------------------------------------------------------------------------------------------
# The fragment (polled) and the CSV


@page("/workflows/{workflow_id}/backtests/{backtest_id}")
async def backtest_panel(page: Page) -> web.StreamResponse:
    """The panel alone, for htmx to poll while the backtest runs (and to page its changed
    records with ``?offset=``)."""
    workflow_id, backtest = page.match["workflow_id"], page.match["backtest_id"]
    panel = await load(page, workflow_id, backtest, offset_of(page.query.get("offset", "")))
    if panel is None and page.is_htmx:
        # htmx swaps no refusal: the panel would poll on, unchanged; this ends it.
        return page.render("builder_backtest.html", panel=None)
    if panel is None:
        raise PageError(404, GONE)
    return page.render("builder_backtest.html", panel=panel)


GONE = "no such backtest: it may have been forgotten; start another"

_FILE_NAME = re.compile(r"[^A-Za-z0-9_-]")


@page("/workflows/{workflow_id}/backtests/{backtest_id}/csv")
async def backtest_csv(page: Page) -> web.StreamResponse:
    """The changed records as the API writes them (``?format=csv``), as a download."""
    workflow_id, backtest = page.match["workflow_id"], page.match["backtest_id"]
    if await load(page, workflow_id, backtest) is None:  # this workflow's, this tenant's
        raise PageError(404, GONE)
    answer = await page.api.raw("GET", f"/backtests/{quote(backtest, safe='')}", format="csv")
    if answer.status == 401:
        raise Redirect("/sign-in")
    if not answer.ok:
        raise PageError(answer.status, answer.error)
    name = _FILE_NAME.sub("", backtest)[:64] or "backtest"
    return web.Response(
        body=answer.body,
        content_type="text/csv",
        charset="utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="backtest-{name}.csv"',
        },
    )
