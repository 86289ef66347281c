from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from processor.core.backtest_csv import BOM, COLUMNS, changed_csv, safe_cell
from topics.backtests import ActionOutline, ChangedOutcome, ReplayedOutcome
from topics.events import RecordRef
from topics.runs import ConditionResult

AT = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)


def outcome(status: str, score_passed: bool, *actions: ActionOutline) -> ReplayedOutcome:
    return ReplayedOutcome(
        status=status,
        actions=list(actions),
        conditions=[
            ConditionResult(field="score", op="gte", expected=50, actual=60, passed=True),
            ConditionResult(field="score", op="gte", expected=80, actual=60, passed=score_passed),
        ],
    )


def a_change(
    candidate: ReplayedOutcome | None,
    baseline: ReplayedOutcome | None,
    *differences: str,
    record_id: str = "L-1",
) -> ChangedOutcome:
    """One changed lead creation, ``evt-1`` at ``AT``."""
    return ChangedOutcome(
        record=RecordRef(type="lead", id=record_id),
        event_id="evt-1",
        occurred_at=AT,
        trigger="record_created",
        candidate=candidate,
        baseline=baseline,
        differences=list(differences),
    )


def rows(text: str) -> list[list[str]]:
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text.removeprefix(BOM))))


def cells(row: list[str]) -> dict[str, str]:
    return dict(zip(COLUMNS, row, strict=True))


def test_one_row_per_changed_event_with_both_outcomes_and_the_conditions_that_differ() -> None:
    email = ActionOutline(step=0, type="send_email", params={"to": "a@example.com", "b": 1})
    changed = a_change(
        outcome("conditions_not_met", False),
        outcome("actions_issued", True, email),
        "status",
        "actions",
    )
    started = changed.model_copy(update={"candidate": None, "differences": ["started"]})
    header, first, second = rows(changed_csv([changed, started], 2, 1))
    assert tuple(header) == COLUMNS
    assert first[:10] == [
        "lead",
        "L-1",
        "evt-1",
        "2026-11-25T19:00:00+00:00",
        "record_created",
        "status; actions",
        "2",
        "1",
        "conditions_not_met",
        "actions_issued",
    ]
    row = cells(first)
    assert row["candidate_actions"] == "" and row["parameters_that_differ"] == ""
    assert row["baseline_actions"] == '0 send_email {"b":1,"to":"a@example.com"}'
    assert row["conditions_that_differ"] == (
        "score gte 80 (actual 60): candidate failed, baseline passed"
    )
    row = cells(second)
    assert row["candidate_status"] == "no run" and row["differences"] == "started"
    assert row["conditions_that_differ"].count("no run in candidate") == 2


def test_the_versions_name_an_unsaved_candidate_and_a_missing_baseline() -> None:
    changed = a_change(outcome("actions_issued", True), None, "started")
    row = cells(rows(changed_csv([changed], None, None))[1])
    assert (row["candidate_version"], row["baseline_version"]) == ("unsaved", "none")


def test_a_condition_the_baseline_lacks_is_not_in_baseline() -> None:
    added = ConditionResult(field="country", op="eq", expected="DE", actual="FR", passed=False)
    candidate = outcome("conditions_not_met", True)
    candidate.conditions.append(added)
    changed = a_change(candidate, outcome("actions_issued", True), "status")
    row = cells(rows(changed_csv([changed], 2, 1))[1])
    assert row["conditions_that_differ"] == (
        'country eq "DE" (actual "FR"): candidate failed, not in baseline'
    )


def test_the_parameters_that_differ_name_each_actions_keys() -> None:
    email = {"to": "a@example.com", "subject": "Hi", "body": "B"}
    mine = ActionOutline(step=0, type="send_email", params={**email, "subject": "Hello"})
    theirs = ActionOutline(step=0, type="send_email", params=email)
    task = ActionOutline(step=1, type="create_task", params={"title": "T", "due": "1d"})
    untitled = task.model_copy(update={"params": {}})
    changed = a_change(
        outcome("actions_issued", True, mine, task),
        outcome("actions_issued", True, theirs, untitled),
        "params",
    )
    row = cells(rows(changed_csv([changed], 2, 1))[1])
    assert row["parameters_that_differ"] == "0 send_email: subject\n1 create_task: due, title"


def test_the_text_starts_with_a_byte_order_mark_for_excel() -> None:
    text = changed_csv([], 1, None)
    assert text.encode()[:3] == b"\xef\xbb\xbf"
    assert text.encode().decode("utf-8-sig").startswith("record_type,")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_gets_an_apostrophe(start: str) -> None:
    assert safe_cell(f"{start}HYPERLINK(1)") == f"'{start}HYPERLINK(1)"
    changed = a_change(None, outcome("actions_issued", True), "started", record_id=f"{start}cmd")
    assert rows(changed_csv([changed], 1, None))[1][1] == f"'{start}cmd"


def test_plain_cells_are_left_as_they_are() -> None:
    assert safe_cell("L-1") == "L-1" and safe_cell("") == "" and safe_cell("a=b") == "a=b"
