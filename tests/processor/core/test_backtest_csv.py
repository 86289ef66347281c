from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from processor.core.backtest_csv import COLUMNS, changed_csv, safe_cell
from topics.backtests import ActionOutline, ChangedOutcome, ReplayedOutcome
from topics.events import RecordRef
from topics.runs import ConditionResult

AT = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)


def outcome(status: str, score_passed: bool, *actions: ActionOutline) -> ReplayedOutcome:
    return ReplayedOutcome(
        status=status,  # type: ignore[arg-type]
        actions=list(actions),
        conditions=[
            ConditionResult(field="score", op="gte", expected=50, actual=60, passed=True),
            ConditionResult(field="score", op="gte", expected=80, actual=60, passed=score_passed),
        ],
    )


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_one_row_per_changed_event_with_both_outcomes_and_the_conditions_that_differ() -> None:
    email = ActionOutline(step=0, type="send_email", params={"to": "a@example.com", "b": 1})
    changed = ChangedOutcome(
        record=RecordRef(type="lead", id="L-1"),
        event_id="evt-1",
        occurred_at=AT,
        trigger="record_created",
        candidate=outcome("conditions_not_met", False),
        baseline=outcome("actions_issued", True, email),
        differences=["status", "actions"],
    )
    started = changed.model_copy(update={"candidate": None, "differences": ["started"]})
    header, first, second = rows(changed_csv([changed, started]))
    assert tuple(header) == COLUMNS
    assert first[:8] == [
        "lead",
        "L-1",
        "evt-1",
        "2026-11-25T19:00:00+00:00",
        "record_created",
        "status; actions",
        "conditions_not_met",
        "actions_issued",
    ]
    assert first[8] == ""
    assert first[9] == '0 send_email {"b":1,"to":"a@example.com"}'
    assert first[10] == "score gte 80 (actual 60): candidate failed, baseline passed"
    assert second[6] == "no run" and second[5] == "started"
    assert second[10].count("not tested") == 2  # neither condition ran in the candidate


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_gets_an_apostrophe(start: str) -> None:
    assert safe_cell(f"{start}HYPERLINK(1)") == f"'{start}HYPERLINK(1)"
    changed = ChangedOutcome(
        record=RecordRef(type="lead", id=f"{start}cmd"),
        event_id="evt-1",
        occurred_at=AT,
        trigger="record_created",
        candidate=None,
        baseline=outcome("actions_issued", True),
        differences=["started"],
    )
    assert rows(changed_csv([changed]))[1][1] == f"'{start}cmd"


def test_plain_cells_are_left_as_they_are() -> None:
    assert safe_cell("L-1") == "L-1" and safe_cell("") == "" and safe_cell("a=b") == "a=b"
