"""``coeflow workflows apply --backtest``: the window, the report's text, and the backtests'
lifecycle against a fake admin API (start, poll, refusals, failures, Ctrl-C)."""

from __future__ import annotations

import argparse
import io
import itertools
import re
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from coeflow.tools import workflow_backtests as backtests
from coeflow.tools.demo import WELCOME_WORKFLOW
from coeflow.tools.workflow_backtests import (
    Asked,
    Backtests,
    Outcome,
    Window,
    parse_window,
    report,
)
from coeflow.tools.workflow_files import BACKTEST_FAILED, ApiFailure, apply
from tests.factories import SEED_WORKFLOW
from topics.backtests import Backtest, ChangedOutcome

SEED = {k: v for k, v in SEED_WORKFLOW.items() if k != "version"}
SINCE = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=7)
WEEK = parse_window("7d")


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        (" 2w ", timedelta(weeks=2)),
        ("90d", backtests.MAX_WINDOW),
    ],
)
def test_a_window_is_a_whole_number_and_a_unit(text: str, window: timedelta) -> None:
    assert parse_window(text) == Window(window, text.strip())


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0d", "is not a window"),
        ("-7d", "is not a window"),
        ("7", "is not a window"),
        ("7m", "is not a window"),
        ("1.5d", "is not a window"),
        ("07d", "is not a window"),
        ("d", "is not a window"),
        ("7 d", "is not a window"),
        ("1" * 400 + "d", "is not a window"),
        ("\x1b[2J7d", "is not a window"),
        ("91d", "longer than the longest window, 90d"),
        ("13w", "longer than the longest window"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=says) as caught:
        parse_window(text)
    assert "\x1b" not in str(caught.value) and len(str(caught.value)) < 200


def side(
    version: int | None, status: str | None, runs: dict[str, int], actions: dict[str, int]
) -> dict[str, Any]:
    return {
        "version": version,
        "status": status,
        "runs_total": sum(runs.values()),
        "runs": runs,
        "actions": actions,
    }


def condition(passed: bool, actual: Any = 72) -> dict[str, Any]:
    return {"field": "score", "op": "gte", "expected": 80, "actual": actual, "passed": passed}


def email(to: str, subject: str = "Welcome") -> dict[str, Any]:
    return {"step": 0, "type": "send_email", "params": {"to": to, "subject": subject}}


def changed(n: int, differences: list[str], candidate: Any, baseline: Any) -> dict[str, Any]:
    return {
        "record": {"type": "lead", "id": f"L-{n}"},
        "event_id": f"evt-{n}",
        "occurred_at": (SINCE + timedelta(hours=n)).isoformat(),
        "trigger": "record_created",
        "candidate": candidate,
        "baseline": baseline,
        "differences": differences,
    }


def done(workflow_id: str, **result: Any) -> dict[str, Any]:
    """A finished backtest as the API answers it."""
    return {
        "backtest_id": f"bt-{workflow_id}",
        "tenant_id": "acme",
        "workflow_id": workflow_id,
        "status": "done",
        "candidate_version": None,
        "baseline_version": 4,
        "since": SINCE.isoformat(),
        "until": UNTIL.isoformat(),
        "max_events": 1_000_000,
        "created_at": UNTIL.isoformat(),
        "result": {
            "events_scanned": 12_345,
            "window": {"since": SINCE.isoformat(), "until": UNTIL.isoformat()},
            "candidate": side(None, None, {"actions_issued": 80, "conditions_not_met": 40}, {}),
            "baseline": side(4, "active", {"actions_issued": 100, "conditions_not_met": 20}, {}),
            "changed_count": 0,
            "changed": [],
            "changed_cap": 1000,
            "changed_truncated": False,
            **result,
        },
    }


def outcome_of(answer: dict[str, Any]) -> Outcome:
    return Outcome(answer["workflow_id"], "done", Backtest.model_validate(answer))


def test_the_report_shows_both_columns_and_the_first_changed_records() -> None:
    not_met = {"status": "conditions_not_met", "conditions": [condition(False)]}
    issued = {"status": "actions_issued", "actions": [email("ada@example.com")]}
    answer = done(
        "wf-a",
        candidate=side(
            None, None, {"actions_issued": 80, "conditions_not_met": 40}, {"send_email": 80}
        ),
        baseline=side(
            4,
            "active",
            {"actions_issued": 100, "conditions_not_met": 20},
            {"send_email": 100, "add_note": 3},
        ),
        timers_fired=2,
        changed_count=3,
        changed=[
            changed(1, ["status", "actions"], not_met, issued),
            changed(2, ["started"], None, issued),
            changed(
                3, ["params"], {**issued, "actions": [email("ada@example.com", "Hi Ada")]}, issued
            ),
        ],
    )
    assert report(outcome_of(answer), WEEK).splitlines() == [
        "backtest of wf-a over 7d (2026-11-24 12:00:00 UTC to 2026-12-01 12:00:00 UTC): "
        "12,345 record changes, 2 timers due",
        "                        this file  v4 (active)",
        "  runs                        120          120",
        "    actions_issued             80          100",
        "    conditions_not_met         40           20",
        "  actions                      80          103",
        "    add_note                    0            3",
        "    send_email                 80          100",
        "  changed: 3 events, all of them issue other actions",
        "    lead L-1  2026-11-24 13:00:00 UTC  record_created: status actions_issued -> "
        "conditions_not_met (this file: score gte 80 not met); actions send_email -> none",
        "    lead L-2  2026-11-24 14:00:00 UTC  record_created: runs only in the active one "
        "(actions_issued)",
        "    lead L-3  2026-11-24 15:00:00 UTC  record_created: parameters of action 1 send_email "
        "(subject)",
    ]


def test_the_report_says_what_differs_without_the_records_values() -> None:
    issued = {"status": "actions_issued", "actions": [email("ada@example.com")]}
    renamed = {**issued, "actions": [email("grace@example.com", "Hi Grace")]}
    not_met = {"status": "conditions_not_met", "conditions": [condition(False, actual=3)]}
    answer = done(
        "wf-a",
        changed_count=2,
        changed=[
            changed(1, ["params"], renamed, issued),
            {
                **changed(2, ["status"], issued, not_met),
                "record": {"type": "lead", "id": "L\x1b]0;x\x07"},
            },
        ],
    )
    text = report(outcome_of(answer), WEEK)
    assert "parameters of action 1 send_email (subject, to)" in text
    assert (
        "status conditions_not_met -> actions_issued (the active one: score gte 80 not met)" in text
    )
    for value in ("ada@", "grace@", "Hi Grace", "actual", "\x1b", "\x07"):
        assert value not in text
    assert "lead L\\x1b]0;x\\x07" in text


def test_the_report_of_a_new_workflow_an_unchanged_behaviour_and_the_notes() -> None:
    answer = done(
        "wf-new",
        baseline=side(None, None, {}, {}),
        window={
            "since": SINCE.isoformat(),
            "until": UNTIL.isoformat(),
            "note": "the retained history starts at 2026-11-27T00:00:00 UTC, after since",
        },
        stopped_early="max_events (1,000,000) reached",
    )
    lines = report(outcome_of(answer), parse_window("36h")).splitlines()
    assert lines[0].startswith("backtest of wf-new over 36h (")
    assert lines[1:4] == [
        "  note: the retained history starts at 2026-11-27T00:00:00 UTC, after since",
        "  stopped early: max_events (1,000,000) reached",
        "  no version runs yet: every run it would start is a change",
    ]
    assert lines[4].endswith("this file  no active version")
    assert lines[5] == "  runs                        120                  0"
    assert lines[-1] == "  changed: none, both versions did the same"


@pytest.mark.parametrize("text", ["24h", "36h", "14d", "2w", "90d"])
def test_the_window_is_said_as_it_was_given(text: str) -> None:
    header = report(outcome_of(done("wf-a")), parse_window(text)).splitlines()[0]
    assert header.startswith(f"backtest of wf-a over {text} (2026-11-24 12:00:00 UTC to ")


NOT_MET = {"status": "conditions_not_met", "conditions": [condition(False)]}
ISSUED = {"status": "actions_issued", "actions": [email("ada@example.com")]}


def test_a_new_workflow_counts_and_lists_first_the_changes_that_issue_actions() -> None:
    """Every run of a workflow without a version that runs is a change; most only fail its
    conditions, and those that email someone are the ones to read."""
    kept = [changed(n, ["started"], NOT_MET, None) for n in range(1, 9)]
    kept[5] = changed(6, ["started"], ISSUED, None)
    kept[7] = changed(8, ["started"], ISSUED, None)
    answer = done(
        "wf-new",
        candidate=side(None, None, {"actions_issued": 2, "conditions_not_met": 6}, {}),
        baseline=side(None, None, {}, {}),
        changed_count=8,
        changed=kept,
    )
    lines = report(outcome_of(answer), WEEK).splitlines()
    assert lines[1] == "  no version runs yet: every run it would start is a change"
    first = lines.index(next(line for line in lines if line.startswith("  changed: ")))
    assert lines[first:] == [
        "  changed: 8 events, 2 of them issue other actions (the first 5 below, those first)",
        "    lead L-6  2026-11-24 18:00:00 UTC  record_created: runs only with this file "
        "(actions_issued)",
        "    lead L-8  2026-11-24 20:00:00 UTC  record_created: runs only with this file "
        "(actions_issued)",
        *(
            f"    lead L-{n}  2026-11-24 {12 + n}:00:00 UTC  record_created: runs only with "
            "this file (conditions_not_met)"
            for n in (1, 2, 3)
        ),
    ]


@pytest.mark.parametrize(
    ("candidate", "baseline", "differences", "issues"),
    [
        (ISSUED, None, ["started"], True),
        (None, ISSUED, ["started"], True),
        (NOT_MET, None, ["started"], False),
        (NOT_MET, ISSUED, ["status", "actions"], True),
        ({**ISSUED, "actions": [email("ada@example.com", "Hi")]}, ISSUED, ["params"], True),
        ({**ISSUED, "status": "failed", "actions": []}, NOT_MET, ["status"], False),
    ],
)
def test_which_changes_issue_other_actions(
    candidate: Any, baseline: Any, differences: list[str], issues: bool
) -> None:
    change = ChangedOutcome.model_validate(changed(1, differences, candidate, baseline))
    assert backtests.issues_other_actions(change) is issues


def test_a_changed_list_the_api_cut_is_counted_over_what_it_kept() -> None:
    kept = [changed(n, ["started"], NOT_MET, None) for n in range(1000)]
    kept[700] = changed(700, ["started"], ISSUED, None)
    many = done("wf-a", changed_count=2_000, changed_truncated=True, changed=kept)
    lines = report(outcome_of(many), WEEK).splitlines()
    assert lines[-6:-4] == [
        "  changed: 2,000 events, 1 of the first 1,000 issue other actions (the first 5 below, "
        "those first; the API keeps the first 1,000)",
        "    lead L-700  2026-12-23 16:00:00 UTC  record_created: runs only with this file "
        "(actions_issued)",
    ]
    none = done("wf-a", changed_count=3, changed=kept[:3])
    assert report(outcome_of(none), WEEK).splitlines()[-4] == (
        "  changed: 3 events, none of them issues other actions"
    )


def test_a_workflow_not_backtested_or_a_failed_backtest_is_one_line_with_the_reason() -> None:
    refused = Outcome("wf-s", "not_backtested", reason="scheduled workflows are not backtested")
    failed = Outcome("wf-f", "failed", reason="the child process died")
    assert report(refused, WEEK) == (
        "backtest of wf-s: not backtested: scheduled workflows are not backtested\n"
    )
    assert report(failed, WEEK) == "backtest of wf-f: failed: the child process died\n"


class FakeApi:
    """An admin API with backtests: each runs for ``polls`` reads, then ends as ``endings``
    says (``done`` by default; ``refuse`` answers the POST 422, ``busy`` answers 429 a few
    times, ``never`` never ends, ``fail`` ends ``failed``). Counts what runs at once."""

    def __init__(self, endings: dict[str, str] | None = None, polls: int = 1) -> None:
        self.endings = endings or {}
        self.polls = polls
        self.calls: list[tuple[str, str]] = []
        self.bodies: dict[str, Any] = {}
        self.reads: dict[str, int] = {}
        self.running: set[str] = set()
        self.most_running = 0
        self.busy_left = 2
        self.lock = threading.Lock()
        self.current: list[dict[str, Any]] = []
        self.on_running: Any = None
        self.changes: dict[str, list[dict[str, Any]]] = {}
        """A backtest's changed events, paged as the API pages them."""
        self.pages_failing = 0

    def workflows(self, tenant: str | None) -> list[dict[str, Any]]:
        return self.current

    def call(self, method: str, path: str, body: Any = None) -> Any:
        with self.lock:
            self.calls.append((method, path))
        if method == "POST" and path.endswith("/backtest"):
            workflow_id = path.split("/")[2]
            ending = self.endings.get(workflow_id, "done")
            if ending == "refuse":
                problem = {"loc": "version", "msg": "a scheduled workflow is not backtested: ticks"}
                refusal: dict[str, Any] = {"error": "invalid workflow", "problems": [problem]}
                raise ApiFailure(f"{method} {path}: 422 invalid workflow", 422, refusal)
            if ending == "revoked":  # the token revoked since the apply began
                hint = "the token in COEFLOW_API_TOKEN was refused"
                said = {"error": "invalid bearer token"}
                raise ApiFailure(f"{method} {path}: 401 invalid bearer token", 401, said, hint)
            if ending == "busy":
                with self.lock:
                    self.busy_left -= 1
                    if self.busy_left >= 0:
                        busy = {"error": "too many", "retry_after_seconds": 0.01}
                        raise ApiFailure(f"{method} {path}: 429 too many", 429, busy)
            with self.lock:
                self.bodies[workflow_id] = body
                self.running.add(workflow_id)
                self.most_running = max(self.most_running, len(self.running))
                if self.on_running is not None:
                    self.on_running(self.running)
            return {
                "backtest_id": f"bt-{workflow_id}",
                "status": "queued",
                "workflow_id": workflow_id,
                "candidate_version": None,
                "baseline_version": 4,
                "since": body["since"],
                "until": UNTIL.isoformat(),
            }
        if method == "GET" and path.startswith("/backtests/"):
            workflow_id = path.split("/")[2].split("?")[0].removeprefix("bt-")
            query = dict(q.split("=") for q in path.split("?")[1].split("&"))
            offset, limit = int(query.pop("changed_offset", 0)), int(query.pop("changed_limit"))
            assert not query, path
            if limit != backtests.FIRST_CHANGED and self.pages_failing > 0:
                self.pages_failing -= 1
                raise ApiFailure(f"cannot reach the admin API at {path}")
            with self.lock:
                self.reads[workflow_id] = self.reads.get(workflow_id, 0) + 1
                reads = self.reads[workflow_id]
            kept = self.changes.get(workflow_id, [])
            answer = done(
                workflow_id, changed_count=len(kept), changed=kept[offset : offset + limit]
            )
            ending = self.endings.get(workflow_id, "done")
            if reads <= self.polls or ending == "never":
                return {
                    **answer,
                    "status": "running",
                    "result": None,
                    "progress": {"messages_read": 10, "messages_total": 40, "events_scanned": 3},
                }
            with self.lock:
                self.running.discard(workflow_id)
            if ending == "fail":
                return {**answer, "status": "failed", "result": None, "error": "the replay crashed"}
            if ending == "empty":
                empty = {**answer["result"], "events_scanned": 0}
                error = "no record change of this tenant happened inside the window"
                return {**answer, "status": "failed", "result": empty, "error": error}
            return answer
        if method == "DELETE":
            with self.lock:
                self.running.discard(path.split("/")[2].removeprefix("bt-"))
            return None
        if method in ("POST", "PUT"):
            return body
        raise AssertionError(f"unexpected {method} {path}")


def asked(*ids: str) -> list[Asked]:
    return [Asked(i, {**SEED, "id": i}) for i in ids]


def test_backtests_run_a_few_at_a_time_and_answer_in_the_order_asked() -> None:
    api = FakeApi(polls=2)
    runner = Backtests(api, SINCE, poll_first=0.001)
    ids = [f"wf-{n}" for n in range(6)]
    outcomes = list(runner.run(asked(*ids)))
    assert [(o.workflow_id, o.ending) for o in outcomes] == [(i, "done") for i in ids]
    assert api.most_running == backtests.AT_ONCE
    assert api.bodies["wf-3"] == {"definition": {**SEED, "id": "wf-3"}, "since": SINCE.isoformat()}
    assert all(o.backtest is not None and o.backtest.workflow_id == o.workflow_id for o in outcomes)


def test_a_refusal_or_a_failure_is_reported_and_the_others_go_on() -> None:
    api = FakeApi({"wf-s": "refuse", "wf-f": "fail", "wf-e": "empty", "wf-r": "revoked"})
    runner = Backtests(api, SINCE, poll_first=0.001)
    outcomes = list(runner.run(asked("wf-s", "wf-f", "wf-e", "wf-r", "wf-ok")))
    assert [(o.ending, o.reason) for o in outcomes] == [
        ("not_backtested", "version: a scheduled workflow is not backtested: ticks"),
        ("failed", "the replay crashed"),
        ("not_backtested", "no record change of this tenant happened inside the window"),
        ("failed", "invalid bearer token: the token in COEFLOW_API_TOKEN was refused"),
        ("done", ""),
    ]


def test_a_finished_backtests_changed_list_is_read_in_pages_and_shows_the_actions_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backtests, "CHANGED_PAGE", 4)
    api = FakeApi(polls=0)
    api.changes["wf-new"] = [changed(n, ["started"], NOT_MET, None) for n in range(1, 11)]
    api.changes["wf-new"][9] = changed(10, ["started"], ISSUED, None)  # on the last page
    api.pages_failing = 1  # a page read fails a moment: tried again
    [outcome] = Backtests(api, SINCE, poll_first=0.001).run(asked("wf-new"))
    assert outcome.ending == "done" and outcome.backtest and outcome.backtest.result
    assert [c.record.id for c in outcome.backtest.result.changed] == [
        f"L-{n}" for n in range(1, 11)
    ]
    reads = [p for m, p in api.calls if m == "GET"]
    assert reads == [
        "/backtests/bt-wf-new?changed_limit=5",
        "/backtests/bt-wf-new?changed_offset=0&changed_limit=4",
        "/backtests/bt-wf-new?changed_offset=0&changed_limit=4",
        "/backtests/bt-wf-new?changed_offset=4&changed_limit=4",
        "/backtests/bt-wf-new?changed_offset=8&changed_limit=4",
    ]
    lines = report(outcome, WEEK).splitlines()
    assert (
        "  changed: 10 events, 1 of them issue other actions (the first 5 below, those first)"
        in lines
    )
    assert lines[-5].startswith("    lead L-10 ")

    monkeypatch.setattr(backtests, "CHANGED_READ_MAX", 6)  # a bound on what is read
    capped = FakeApi(polls=0)
    capped.changes["wf-new"] = api.changes["wf-new"]
    [outcome] = Backtests(capped, SINCE, poll_first=0.001).run(asked("wf-new"))
    assert outcome.backtest and outcome.backtest.result
    assert len(outcome.backtest.result.changed) == 6
    assert "  changed: 10 events, none of the first 6 issues other actions (the first 5 below)" in (
        report(outcome, WEEK).splitlines()
    )
    down = FakeApi(polls=0)
    down.changes["wf-new"] = api.changes["wf-new"]
    down.pages_failing = backtests.MISSED_READS
    [outcome] = Backtests(down, SINCE, poll_first=0.001).run(asked("wf-new"))
    assert outcome.ending == "failed" and "cannot reach the admin API" in outcome.reason


def test_a_full_queue_is_asked_again_until_there_is_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backtests, "BUSY_PAUSE", 60)  # the API's retry_after_seconds rules
    api = FakeApi({"wf-b": "busy"})
    [outcome] = Backtests(api, SINCE, poll_first=0.001).run(asked("wf-b"))
    assert outcome.ending == "done"
    assert api.calls.count(("POST", "/workflows/wf-b/backtest")) == 3


class FlakyApi(FakeApi):
    """Reads of a backtest fail ``failures`` times in a row (unreachable), then answer."""

    def __init__(self, failures: int) -> None:
        super().__init__(polls=0)
        self.failures = failures

    def call(self, method: str, path: str, body: Any = None) -> Any:
        if method == "GET" and self.failures > 0:
            self.failures -= 1
            with self.lock:
                self.calls.append((method, path))
            raise ApiFailure(f"cannot reach the admin API at {path}")
        return super().call(method, path, body)


def test_a_read_that_fails_a_moment_is_tried_again_and_one_that_keeps_failing_ends_it() -> None:
    flaky = FlakyApi(failures=backtests.MISSED_READS - 1)
    [outcome] = Backtests(flaky, SINCE, poll_first=0.001).run(asked("wf-a"))
    assert outcome.ending == "done"
    down = FlakyApi(failures=backtests.MISSED_READS)
    [outcome] = Backtests(down, SINCE, poll_first=0.001).run(asked("wf-a"))
    assert (outcome.ending, outcome.reason) == (
        "failed",
        "cannot reach the admin API at /backtests/bt-wf-a?changed_limit=5",
    )
    assert ("DELETE", "/backtests/bt-wf-a") in down.calls


def test_a_backtest_that_never_ends_is_cancelled_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backtests, "WAIT_MAX", 0.05)
    api = FakeApi({"wf-n": "never"})
    [outcome] = Backtests(api, SINCE, poll_first=0.001).run(asked("wf-n"))
    assert (outcome.ending, outcome.reason) == ("failed", "not finished after 0 s")
    assert ("DELETE", "/backtests/bt-wf-n") in api.calls


def test_progress_is_one_line_rewritten_in_place() -> None:
    terminal = io.StringIO()
    api = FakeApi(polls=3)
    [outcome] = Backtests(api, SINCE, progress=backtests.Progress(terminal), poll_first=0.001).run(
        asked("wf-a")
    )
    assert outcome.ending == "done"
    written = terminal.getvalue()
    assert "backtest wf-a: 25% (3 events)" in written
    assert "\n" not in written and written.endswith("\r\x1b[K")


def file_of(tmp_path: Path, *workflows: dict[str, Any]) -> Path:
    path = tmp_path / "workflows.yaml"
    path.write_text(yaml.safe_dump({"workflows": list(workflows)}, sort_keys=False))
    return path


def test_apply_shows_each_diff_then_its_backtest_and_a_dry_run_changes_nothing(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    api.current = [{**SEED, "version": 4}, {**SEED, "id": "wf-b", "version": 2}]
    path = file_of(
        tmp_path, SEED, {**SEED, "id": "wf-b", "name": "Renamed"}, {**SEED, "id": "wf-c"}
    )
    out = io.StringIO()
    assert apply(api, path, True, out, WEEK) == 0  # type: ignore[arg-type]
    text = out.getvalue()
    assert (
        text.index("+++ file/wf-b")
        < text.index("backtest of wf-b over 7d")
        < text.index("+++ file/wf-c")
        < text.index("backtest of wf-c over 7d")
    )
    assert "backtest of wf-welcome" not in text  # unchanged: nothing to backtest
    assert text.endswith(
        "would create 1, would update 1, unchanged 1\n"
        "backtested 2 (0 behaving differently), not backtested 0, failed 0\n"
    )
    assert not [c for c in api.calls if c[0] in ("PUT",) or c == ("POST", "/workflows")]
    since = datetime.fromisoformat(api.bodies["wf-c"]["since"])
    assert abs(datetime.now(UTC) - timedelta(days=7) - since) < timedelta(minutes=1)


def test_a_failed_backtest_changes_nothing_and_says_so_in_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeApi({"wf-f": "fail", "wf-s": "refuse"})
    path = file_of(
        tmp_path, {**SEED, "id": "wf-f"}, {**SEED, "id": "wf-s"}, {**SEED, "id": "wf-ok"}
    )
    out = io.StringIO()
    assert apply(api, path, False, out, WEEK) == BACKTEST_FAILED  # type: ignore[arg-type]
    assert ("POST", "/workflows") not in api.calls
    assert "backtest of wf-f: failed: the replay crashed\n" in out.getvalue()
    assert out.getvalue().endswith(
        "backtested 1 (0 behaving differently), not backtested 1, failed 1\n"
    )
    assert "the backtest of wf-f did not finish; nothing was changed" in capsys.readouterr().err


def test_a_workflow_not_backtested_does_not_stop_the_apply(tmp_path: Path) -> None:
    api = FakeApi({"wf-s": "refuse"})
    path = file_of(tmp_path, {**SEED, "id": "wf-s"}, {**SEED, "id": "wf-ok"})
    out = io.StringIO()
    assert apply(api, path, False, out, WEEK) == 0  # type: ignore[arg-type]
    assert api.calls.count(("POST", "/workflows")) == 2
    assert out.getvalue().endswith(
        "created 2, updated 0, unchanged 0\n"
        "backtested 1 (0 behaving differently), not backtested 1, failed 0\n"
    )


def test_ctrl_c_cancels_the_running_backtests_and_changes_nothing(tmp_path: Path) -> None:
    api = FakeApi({f"wf-{n}": "never" for n in range(4)})

    def interrupt_when_two_run(running: set[str]) -> None:
        if len(running) == backtests.AT_ONCE:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)  # Ctrl-C

    api.on_running = interrupt_when_two_run
    path = file_of(tmp_path, *({**SEED, "id": f"wf-{n}"} for n in range(4)))
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        apply(api, path, False, io.StringIO(), WEEK)  # type: ignore[arg-type]
    assert time.monotonic() - began < 5
    deleted = sorted(p for m, p in api.calls if m == "DELETE")
    assert deleted == ["/backtests/bt-wf-0", "/backtests/bt-wf-1"]
    assert api.running == set()
    assert ("POST", "/workflows") not in api.calls
    assert ("POST", "/workflows/wf-2/backtest") not in api.calls


DOCS = Path(__file__).resolve().parents[3] / "docs" / "command-line.md"
_ROW = re.compile(r"  (runs|actions|  [a-z_]+) +[\d,]+ +[\d,]+")
"""A row of the two columns: a total (runs, actions) or a part of the one above it."""
_SHAPES = (
    _ROW,
    *(
        re.compile(shape)
        for shape in (
            r"--- api/\S+",  # the textual diff begins
            r"backtest of \S+ over [1-9][0-9]*[hdw] \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to "
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): [\d,]+ record changes?(, [\d,]+ timers? due)?",
            r"  note: .+",
            r"  no version runs yet: every run it would start is a change",
            r" +this file  (v\d+ \(\w+\)|no active version)",
            r"  changed: none, both versions did the same",
            r"  changed: [\d,]+ events?, (all of them|none of (them|the first [\d,]+)|[\d,]+ of "
            r"(them|the first [\d,]+)) issues? other actions( \(.+\))?",
            r"    \S+ \S+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  [a-z_]+: .+",
            r"    …",
            r"would create \d+, would update \d+, unchanged \d+",
            r"backtested \d+ \(\d+ behaving differently\), not backtested \d+, failed \d+",
        )
    ),
)


def _documented_reports() -> list[list[str]]:
    """The text samples of command-line.md's "Backtesting a file"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Backtesting a file", 1)[1].split("\n#", 1)[0]
    return [block.split("\n```", 1)[0].splitlines() for block in section.split("```text\n")[1:]]


def test_the_documented_output_has_the_shape_the_report_prints() -> None:
    """The sample was a real run of the demo's workflows: every line is one the report prints,
    its counts add up, and the demo's welcome workflow shows both of its action types."""
    samples = _documented_reports()
    assert samples, "no sample under 'Backtesting a file'"
    welcome = {a["type"] for a in WELCOME_WORKFLOW["actions"]}
    seen_welcome = False
    for lines in samples:
        in_diff = False
        for line in lines:
            in_diff = (in_diff or line.startswith("--- api/")) and not line.startswith("backtest")
            if not in_diff:
                assert any(shape.fullmatch(line) for shape in _SHAPES), line
        rows = [line.split() for line in lines if _ROW.fullmatch(line)]
        for total in ("runs", "actions"):
            if not any(r[0] == total for r in rows):
                continue
            start = next(i for i, r in enumerate(rows) if r[0] == total)
            parts = list(
                itertools.takewhile(lambda r: r[0] not in ("runs", "actions"), rows[start + 1 :])
            )
            for column in (1, 2):
                counts = [int(r[column].replace(",", "")) for r in parts]
                assert sum(counts) == int(rows[start][column].replace(",", "")), (total, lines)
        if any(line.startswith(f"backtest of {WELCOME_WORKFLOW['id']} over ") for line in lines):
            seen_welcome = True
            start = next(i for i, r in enumerate(rows) if r[0] == "actions")
            assert {r[0] for r in rows[start + 1 :]} == welcome
    assert seen_welcome, "the sample backtests the demo's welcome workflow, as the README does"
