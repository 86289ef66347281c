"""``coeflow workflows apply -f FILE --backtest 7d``: beside the textual diff of each workflow
the file creates or changes, its behavioural diff over the window: what the file's version
would have done with the tenant's retained record changes against what the active one did.

Each backtest is ``POST /workflows/{id}/backtest`` with the file's workflow as ``definition``
(the API takes one for an id that does not exist yet: no baseline), then ``GET
/backtests/{id}`` until it ends. The API queues backtests per tenant and runs few at once, so
an apply keeps only ``AT_ONCE`` of its own started. A workflow that cannot be backtested
(the API says why) or a backtest that fails is reported and the others go on; Ctrl-C cancels
the started ones (``DELETE``).

The report counts the changed events that issue other actions (actions in one version and
not the other, other types, other parameters) and shows those first: a version that only lets
other records fail its conditions changes little, one that emails others changes much, and a
new workflow's every run is a change. It names what differs in each changed record (its
status, its actions, which parameters) without the values: the output of an apply lands in
CI logs, and the values are the records' own (the API, its CSV and the web app show them to
those who may see them).
"""

from __future__ import annotations

import argparse
import re
import shutil
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import quote

from pydantic import ValidationError

from coeflow.logsafe import escape
from coeflow.redact import without_values
from processor.core.backtest_diff import param_differences
from topics.backtests import (
    Backtest,
    BacktestResult,
    BacktestStarted,
    ChangedOutcome,
    ReplayedOutcome,
)

WINDOW_UNITS: Mapping[str, timedelta] = {
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
"""The units of ``--backtest`` (no ``m``: minutes or months?)."""
MAX_WINDOW = timedelta(days=90)
"""The longest window: longer than a record-change log is usually kept, and the API caps
the events one backtest scans anyway."""
_WINDOW = re.compile(r"([1-9][0-9]{0,4})([a-z])")

AT_ONCE = 2
"""Backtests of one apply started and not yet finished at once. The API runs a tenant's
backtests a few at a time and refuses more than a few queued; two keep its queue busy and
leave room for someone in the web app."""
FIRST_CHANGED = 5
"""Changed records shown per workflow (the API pages the rest)."""
CHANGED_PAGE, CHANGED_READ_MAX = 1_000, 10_000
"""The changed events a finished backtest is read for, a page at a time, to count and show
first those that issue other actions (the API keeps ``COEFLOW_BACKTEST_MAX_CHANGED``, a
thousand by default); past ``CHANGED_READ_MAX`` the count is of the first read."""
POLL_FIRST, POLL_MAX = 0.2, 2.0
"""Seconds between two reads of a running backtest: quick at first, for short ones."""
BUSY_PAUSE, BUSY_WAIT_MAX = 1.0, 300.0
"""Seconds before asking again while the API answers 429 (its queue for the tenant is full;
doubled each time), and how long to keep asking."""
MISSED_READS = 3
"""Reads of a running backtest in a row that may fail (the API unreachable, a 5xx) before it
is given up as failed."""
CANCEL_WAIT = 30.0
"""Seconds Ctrl-C waits for the started backtests to be deleted."""
WAIT_MAX = 3600.0
"""Seconds after which a backtest still unfinished is cancelled and reported as failed."""

Ending = Literal["done", "not_backtested", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Window:
    """``--backtest``'s window: its length, and its text as given (``24h`` is said ``24h``,
    not ``1d``)."""

    span: timedelta
    text: str


def parse_window(text: str) -> Window:
    """``--backtest``'s window: a whole number and a unit of ``WINDOW_UNITS``, at most
    ``MAX_WINDOW``."""
    match = _WINDOW.fullmatch(text.strip())
    if match is None or match.group(2) not in WINDOW_UNITS:
        units = ", ".join(WINDOW_UNITS)
        raise argparse.ArgumentTypeError(
            f"{escape(text[:40])!r} is not a window: a positive whole number and one of the "
            f"units {units} (24h, 7d, 2w)"
        )
    window = int(match.group(1)) * WINDOW_UNITS[match.group(2)]
    if window > MAX_WINDOW:
        raise argparse.ArgumentTypeError(
            f"{text.strip()} is longer than the longest window, {MAX_WINDOW.days}d"
        )
    return Window(window, match.group(0))


class Api(Protocol):
    def call(self, method: str, path: str, body: Any = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one workflow's backtest."""

    workflow_id: str
    ending: Ending
    backtest: Backtest | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Asked:
    """One workflow to backtest: its id and the workflow the file would write."""

    workflow_id: str
    definition: dict[str, Any]


class Progress:
    """One line on a terminal, rewritten in place, saying where each running backtest is;
    nothing at all when ``stream`` is ``None`` (not a terminal)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.states: dict[str, str] = {}
        self.lock = threading.Lock()
        self._shown = False

    def update(self, workflow_id: str, state: str | None) -> None:
        if self.stream is None:
            return
        with self.lock:
            if state is None:
                self.states.pop(workflow_id, None)
            else:
                self.states[workflow_id] = state
            self._draw()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The line cleared while something else is written to the terminal."""
        with self.lock:
            self._clear()
            yield
            self._draw()

    def _draw(self) -> None:
        self._clear()
        if self.stream is None or not self.states:
            return
        line = "backtest " + ", ".join(f"{w}: {s}" for w, s in self.states.items())
        width = shutil.get_terminal_size().columns - 1
        self.stream.write(line if len(line) <= width else line[: max(width - 1, 0)] + "…")
        self.stream.flush()
        self._shown = True

    def _clear(self) -> None:
        if self.stream is not None and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def progress_of(backtest: Backtest) -> str:
    """A running backtest's state in a few words."""
    if backtest.status != "running":
        return backtest.status
    progress = backtest.progress
    if progress.messages_total:
        share = min(progress.messages_read / progress.messages_total, 1.0)
        return f"{share:.0%} ({progress.events_scanned:,} events)"
    return f"{progress.events_scanned:,} events"


class Backtests:
    """The backtests of one apply, ``AT_ONCE`` at a time, each from its start to its end."""

    def __init__(
        self,
        api: Api,
        since: datetime,
        *,
        progress: Progress | None = None,
        poll_first: float = POLL_FIRST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.since = since
        self.progress = progress or Progress(None)
        self.poll_first = poll_first
        self.clock = clock
        self.stopping = threading.Event()
        """Set by Ctrl-C: each backtest deletes itself and ends ``cancelled``."""
        self._active = 0
        self._ended = threading.Condition()

    def run(self, asked: Sequence[Asked]) -> Generator[Outcome]:
        """Each workflow's outcome, in the order asked, as soon as it and those before it
        are known. Ctrl-C while waiting cancels the started backtests, waits until they are
        deleted, and is raised again."""
        with ThreadPoolExecutor(max_workers=AT_ONCE, thread_name_prefix="backtest") as pool:
            futures: list[Future[Outcome]] = []
            try:
                futures += (pool.submit(self.one, a) for a in asked)
                for future in futures:
                    yield future.result()
            except BaseException:
                self.stopping.set()
                for future in futures:
                    future.cancel()
                # Not only the pool's threads: one started by a submit that Ctrl-C broke
                # off is no thread the pool knows to wait for.
                with self._ended:
                    self._ended.wait_for(lambda: self._active == 0, timeout=CANCEL_WAIT)
                raise

    def one(self, asked: Asked) -> Outcome:
        """Start one backtest, follow it to its end; never raises for what the API answers."""
        workflow_id = asked.workflow_id
        with self._ended:
            self._active += 1
        try:
            if self.stopping.is_set():
                return Outcome(workflow_id, "cancelled", reason="interrupted")
            self.progress.update(workflow_id, "starting")
            return self._follow(workflow_id, self._start(asked))
        except _Ended as ended:
            return Outcome(workflow_id, ended.ending, reason=ended.reason)
        finally:
            self.progress.update(workflow_id, None)
            with self._ended:
                self._active -= 1
                self._ended.notify_all()

    def _start(self, asked: Asked) -> str:
        body = {"definition": asked.definition, "since": self.since.isoformat()}
        path = f"/workflows/{quote(asked.workflow_id, safe='')}/backtest"
        busy_until = self.clock() + BUSY_WAIT_MAX
        pause = BUSY_PAUSE
        while True:
            try:
                answer = self.api.call("POST", path, body)
                break
            except Exception as exc:  # every failure is this workflow's own
                status = getattr(exc, "status", None)
                wait = _retry_after(exc) or pause
                if status == 429 and self.clock() + wait < busy_until:
                    self.progress.update(asked.workflow_id, "waiting for a free slot")
                    if self.stopping.wait(wait):
                        raise _Ended("cancelled", "interrupted") from None
                    pause = min(pause * 2, 10.0)
                    continue
                refused = status is not None and 400 <= status < 500 and status not in _FAILURES
                raise _Ended("not_backtested" if refused else "failed", _reason(exc)) from None
        try:
            return BacktestStarted.model_validate(answer).backtest_id
        except ValidationError as exc:
            raise _Ended("failed", f"the API's answer is no backtest: {_short(exc)}") from None

    def _follow(self, workflow_id: str, backtest_id: str) -> Outcome:
        path = f"/backtests/{quote(backtest_id, safe='')}"
        deadline = self.clock() + WAIT_MAX
        pause = self.poll_first
        missed = 0
        while True:
            if self.stopping.wait(pause):
                self._cancel(path)
                return Outcome(workflow_id, "cancelled", reason="interrupted")
            pause = min(pause * 1.5, POLL_MAX)
            try:
                backtest = Backtest.model_validate(
                    self.api.call("GET", f"{path}?changed_limit={FIRST_CHANGED}")
                )
            except ValidationError as exc:
                self._cancel(path)
                return Outcome(workflow_id, "failed", reason=f"unreadable answer: {_short(exc)}")
            except Exception as exc:
                status = getattr(exc, "status", None)
                missed += 1
                if (status is None or status >= 500) and missed < MISSED_READS:
                    continue  # the API unreachable a moment, or a worker restarting
                self._cancel(path)
                return Outcome(workflow_id, "failed", reason=_reason(exc))
            missed = 0
            if backtest.status == "done":
                if backtest.result is None:
                    return Outcome(workflow_id, "failed", backtest, "done without a result")
                return self._with_changed(workflow_id, path, backtest)
            if backtest.status in ("failed", "cancelled"):
                reason = escape(backtest.error or backtest.status)
                return Outcome(workflow_id, _ending(backtest), backtest, reason)
            if self.clock() > deadline:
                self._cancel(path)
                return Outcome(workflow_id, "failed", reason=f"not finished after {WAIT_MAX:.0f} s")
            self.progress.update(workflow_id, progress_of(backtest))

    def _with_changed(self, workflow_id: str, path: str, backtest: Backtest) -> Outcome:
        """A finished backtest with its kept changed events (the reads while it ran asked
        for the first few only), up to ``CHANGED_READ_MAX``."""
        assert backtest.result is not None
        result = backtest.result
        if len(result.changed) >= result.changed_count:
            return Outcome(workflow_id, "done", backtest)
        changed: list[ChangedOutcome] = []
        missed = 0
        while len(changed) < CHANGED_READ_MAX:
            if self.stopping.is_set():
                return Outcome(workflow_id, "cancelled", reason="interrupted")
            limit = min(CHANGED_PAGE, CHANGED_READ_MAX - len(changed))
            try:
                page = Backtest.model_validate(
                    self.api.call(
                        "GET", f"{path}?changed_offset={len(changed)}&changed_limit={limit}"
                    )
                ).result
            except ValidationError as exc:
                return Outcome(workflow_id, "failed", reason=f"unreadable answer: {_short(exc)}")
            except Exception as exc:
                status = getattr(exc, "status", None)
                missed += 1
                if (status is None or status >= 500) and missed < MISSED_READS:
                    self.stopping.wait(self.poll_first)
                    continue
                return Outcome(workflow_id, "failed", reason=_reason(exc))
            missed = 0
            if page is None:
                return Outcome(workflow_id, "failed", reason="done without a result")
            changed += page.changed[:limit]
            if len(page.changed) < limit:
                break  # the last page
        whole = backtest.model_copy(
            update={"result": result.model_copy(update={"changed": changed})}
        )
        return Outcome(workflow_id, "done", whole)

    def _cancel(self, path: str) -> None:
        """``DELETE`` a backtest; one that has ended or is gone already is fine."""
        with suppress(Exception):  # what cannot be deleted ends on its own
            self.api.call("DELETE", path)


_FAILURES = frozenset({401, 403, 404, 408, 429})
"""4xx answers that are no reason of the workflow's own: they fail its backtest."""


class _Ended(Exception):
    def __init__(self, ending: Ending, reason: str) -> None:
        super().__init__(reason)
        self.ending, self.reason = ending, reason


def _ending(backtest: Backtest) -> Ending:
    """How a backtest that did not end ``done`` counts. One that scanned the whole window and
    found none of the tenant's record changes in it (the API fails it, with its result) has
    nothing to replay: it is not backtested, as a scheduled workflow is not."""
    result = backtest.result
    if (
        backtest.status == "failed"
        and result is not None
        and result.events_scanned == 0
        and result.timers_fired == 0
        and result.stopped_early is None
    ):
        return "not_backtested"
    return "failed" if backtest.status == "failed" else "cancelled"


def _reason(exc: Exception) -> str:
    """A refusal in one line: the API's problems (``version: a scheduled workflow is not
    backtested: …``), else its error (and what to do, for a refused token), else the
    exception."""
    answer = getattr(exc, "answer", None)
    hint = getattr(exc, "hint", "")
    if isinstance(answer, dict):
        problems = answer.get("problems")
        if isinstance(problems, list) and problems:
            said = [
                f"{p.get('loc')}: {p.get('msg')}" if p.get("loc") else str(p.get("msg"))
                for p in problems[:5]
                if isinstance(p, dict)
            ]
            return escape("; ".join(said))[:1000]
        if isinstance(answer.get("error"), str):
            return escape(answer["error"] + (f": {hint}" if hint else ""))[:1000]
    return escape(str(exc))[:1000]


def _retry_after(exc: Exception) -> float | None:
    """The seconds a 429 says to wait (``retry_after_seconds``), within reason."""
    answer = getattr(exc, "answer", None)
    seconds = answer.get("retry_after_seconds") if isinstance(answer, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return min(float(seconds), 30.0)
    return None


def _short(exc: ValidationError) -> str:
    return escape(without_values(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))


# The report


def report(outcome: Outcome, window: Window) -> str:
    """One workflow's behavioural diff as text: the counts of both versions side by side,
    how many records changed and the first of them; or why there is none."""
    name = outcome.workflow_id
    if outcome.ending == "not_backtested":
        return f"backtest of {name}: not backtested: {outcome.reason}\n"
    if outcome.ending != "done":
        return f"backtest of {name}: {outcome.ending}: {outcome.reason}\n"
    assert outcome.backtest is not None and outcome.backtest.result is not None
    result = outcome.backtest.result
    covered = result.window
    lines = [
        f"backtest of {name} over {window.text} "
        f"({_time(covered.since)} to {_time(covered.until)}): "
        f"{_count(result.events_scanned, 'record change')}"
        + (f", {_count(result.timers_fired, 'timer')} due" if result.timers_fired else "")
    ]
    if covered.note:
        lines.append(f"  note: {escape(covered.note)}")
    if result.stopped_early:
        lines.append(f"  stopped early: {escape(result.stopped_early)}")
    if result.invalid_events:
        lines.append(f"  {_count(result.invalid_events, 'invalid event')} skipped")
    if result.changes_untracked:
        lines.append(
            f"  {_count(result.changes_untracked, 'record change')} without their records' "
            "timers (too many records to follow)"
        )
    if result.baseline.version is None:
        lines.append("  no version runs yet: every run it would start is a change")
    lines += _columns(result.candidate, result.baseline)
    if result.changed_count == 0:
        lines.append("  changed: none, both versions did the same")
    else:
        lines += _changed_lines(result)
    return "\n".join(lines) + "\n"


def _changed_lines(result: BacktestResult) -> list[str]:
    """How many events changed and how many of them issue other actions, then the first
    few, those that issue other actions first: a version that only lets another set of
    records fail its conditions changes little, one that emails others changes much."""
    kept = result.changed
    acting = [c for c in kept if issues_other_actions(c)]
    rest = [c for c in kept if not issues_other_actions(c)]
    shown = (acting + rest)[:FIRST_CHANGED]
    of = (
        "of them"
        if len(kept) >= result.changed_count
        else f"of the first {len(kept):,}"  # the API kept (or this read) fewer
    )
    if not acting:
        which = f"none {of} issues other actions"
    elif len(acting) == len(kept) == result.changed_count:
        which = "all of them issue other actions"
    else:
        which = f"{len(acting):,} {of} issue other actions"
    notes = []
    if len(shown) < result.changed_count:
        notes.append(
            f"the first {len(shown)} below"
            + (", those first" if 0 < len(acting) < len(kept) else "")
        )
    if result.changed_truncated:
        notes.append(f"the API keeps the first {result.changed_cap:,}")
    more = f" ({'; '.join(notes)})" if notes else ""
    head = f"  changed: {_count(result.changed_count, 'event')}, {which}{more}"
    return [head, *(f"    {_changed(c)}" for c in shown)]


def issues_other_actions(change: ChangedOutcome) -> bool:
    """Whether the two versions issue other actions for the event: actions in one and not
    the other, other types or steps, or other rendered parameters."""

    def issued(outcome: ReplayedOutcome | None) -> list[tuple[int, str, dict[str, Any]]]:
        return [] if outcome is None else [(a.step, a.type, a.params) for a in outcome.actions]

    return issued(change.candidate) != issued(change.baseline)


def _columns(candidate: Any, baseline: Any) -> list[str]:
    """Runs by status and actions by type, the file's version then the baseline."""
    right = (
        f"v{baseline.version}" + (f" ({baseline.status})" if baseline.status else "")
        if baseline.version is not None
        else "no active version"
    )
    rows: list[tuple[str, int, int]] = [("runs", candidate.runs_total, baseline.runs_total)]
    for status in _keys(candidate.runs, baseline.runs):
        rows.append((f"  {status}", candidate.runs.get(status, 0), baseline.runs.get(status, 0)))
    actions = (sum(candidate.actions.values()), sum(baseline.actions.values()))
    rows.append(("actions", *actions))
    for kind in _keys(candidate.actions, baseline.actions):
        rows.append((f"  {kind}", candidate.actions.get(kind, 0), baseline.actions.get(kind, 0)))
    label = max(len(r[0]) for r in rows)
    first = max(len("this file"), *(len(f"{r[1]:,}") for r in rows))
    second = max(len(right), *(len(f"{r[2]:,}") for r in rows))
    head = f"  {'':{label}}  {'this file':>{first}}  {right:>{second}}"
    body = [f"  {n:{label}}  {a:>{first},}  {b:>{second},}" for n, a, b in rows]
    return [head, *body]


def _keys(*counts: Mapping[str, int]) -> list[str]:
    return sorted({escape(k) for c in counts for k in c})


def _changed(change: ChangedOutcome) -> str:
    """One changed record: which, when, and what differs (the active one's, then the
    file's), without the records' values."""
    record = f"{escape(change.record.type)} {escape(change.record.id)}"
    what = "; ".join(_difference(d, change.baseline, change.candidate) for d in change.differences)
    return f"{record}  {_time(change.occurred_at)}  {escape(change.trigger)}: {what}"


def _difference(kind: str, before: ReplayedOutcome | None, after: ReplayedOutcome | None) -> str:
    if kind == "started" or before is None or after is None:
        if after is None:
            return f"runs only in the active one ({_status(before)})"
        return f"runs only with this file ({_status(after)})"
    if kind == "status":
        return f"status {_status(before)} -> {_status(after)}{_not_met(before, after)}"
    if kind == "actions":
        return f"actions {_actions(before)} -> {_actions(after)}"
    if kind == "params":
        return f"parameters of {_params_changed(before, after)}"
    return escape(kind)


def _not_met(before: ReplayedOutcome, after: ReplayedOutcome) -> str:
    """The conditions (the workflow's own: field, operator, expected) the side whose
    conditions were not met failed on."""
    for side, outcome in (("this file", after), ("the active one", before)):
        failed = [c for c in outcome.conditions if not c.passed]
        if outcome.status == "conditions_not_met" and failed:
            listed = ", ".join(_condition(c) for c in failed[:3])
            return f" ({side}: {listed}{', …' if len(failed) > 3 else ''} not met)"
    return ""


def _status(outcome: ReplayedOutcome | None) -> str:
    return "no run" if outcome is None else outcome.status


def _actions(outcome: ReplayedOutcome) -> str:
    return ", ".join(escape(a.type) for a in outcome.actions) or "none"


def _params_changed(before: ReplayedOutcome, after: ReplayedOutcome) -> str:
    """Which parameters of which actions differ, by name only (``param_differences``, as the
    web app's panel and the CSV name them)."""
    parts = [
        # Numbered from 1, as the builder and the run pages number actions ("Action 1").
        f"action {d.position + 1} {escape(d.type)} ({', '.join(escape(k) for k in d.keys[:5])})"
        for d in param_differences(after, before)
    ]
    return "; ".join(parts) or "the actions"


def _condition(condition: Any) -> str:
    expected = "" if condition.expected is None else f" {_short_value(condition.expected)}"
    return f"{escape(condition.field)} {escape(condition.op)}{expected}"


def _short_value(value: Any) -> str:
    """An expected value of a condition: the workflow's own, not a record's; cut short."""
    text = escape(str(value))
    return text if len(text) <= 30 else text[:29] + "…"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def since(window: Window, now: datetime | None = None) -> datetime:
    """The window's start: ``window`` before now."""
    return (now or datetime.now(UTC)) - window.span
