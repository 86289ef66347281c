"""Record state: when each field last changed, replays recognised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from processor.core.records import StateChange, apply_change
from tests.factories import make_event
from topics.events import ChangeEvent
from topics.records import RECORD_STATE, RecordState

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
DEAL = {"stage": "proposal", "status": "open", "amount": 100}


def at(moment: datetime) -> str:
    return moment.isoformat()


def change(operation: str, days: int, before: Any = None, after: Any = None) -> ChangeEvent:
    return make_event(
        record_type="deal",
        record_id="D-1",
        operation=operation,
        before=before,
        after=after,
        occurred_at=T0 + timedelta(days=days),
    )


def fold(*events: ChangeEvent) -> RecordState | None:
    state = None
    for offset, event in enumerate(events):
        applied = apply_change(state, event, offset)
        assert applied is not None
        state = applied.state
    return state


def test_a_created_record_has_every_field_changed_when_it_was_created() -> None:
    state = fold(change("created", 0, after=DEAL))
    assert state is not None and state["updated_at"] == at(T0) and state["offset"] == 0
    assert state["changed_at"] == {"stage": at(T0), "status": at(T0), "amount": at(T0)}
    assert RECORD_STATE.validate_python(state) == state, "the state fits its schema"


def test_an_update_moves_only_the_fields_it_changes() -> None:
    more = {**DEAL, "amount": 120, "note": "called"}
    state = fold(change("created", 0, after=DEAL), change("updated", 2, DEAL, more))
    assert state is not None
    two_days = at(T0 + timedelta(days=2))
    assert state["changed_at"] == {
        "stage": at(T0),
        "status": at(T0),
        "amount": two_days,
        "note": two_days,
    }
    gone = {"stage": "proposal", "status": "open"}
    state = fold(
        change("created", 0, after=DEAL),
        change("updated", 2, DEAL, more),
        change("updated", 3, more, gone),
    )
    assert state is not None and state["changed_at"] == {"stage": at(T0), "status": at(T0)}


def test_a_deleted_record_is_removed() -> None:
    state = fold(change("created", 0, after=DEAL))
    deleted = apply_change(state, change("deleted", 1, before=DEAL), 1)
    assert deleted == StateChange("acme/deal/D-1", state, None)


def test_a_record_created_again_starts_afresh() -> None:
    state = fold(
        change("created", 0, after=DEAL),
        change("deleted", 1, before=DEAL),
        change("created", 2, after=DEAL),
    )
    assert state is not None and set(state["changed_at"].values()) == {at(T0 + timedelta(days=2))}
    created = fold(change("created", 0, after=DEAL))
    again = apply_change(created, change("created", 2, after=DEAL), 1)
    assert again is not None and again.state is not None
    assert set(again.state["changed_at"].values()) == {at(T0 + timedelta(days=2))}


def test_whether_a_field_changed_is_read_from_the_event() -> None:
    """The event's ``before`` decides, so the state needs no copy of the record."""
    won = {**DEAL, "stage": "won"}
    state = fold(change("created", 0, after=DEAL), change("updated", 2, DEAL, won))
    assert state is not None and state["changed_at"]["stage"] == at(T0 + timedelta(days=2))
    # This event's before already says "won": to it, the stage did not change.
    state = fold(change("created", 0, after=DEAL), change("updated", 2, won, won))
    assert state is not None and state["changed_at"]["stage"] == at(T0)


def test_a_record_first_seen_through_an_update_counts_from_that_update() -> None:
    state = fold(change("updated", 5, DEAL, {**DEAL, "amount": 1}))
    assert state is not None and set(state["changed_at"].values()) == {at(T0 + timedelta(days=5))}


def test_a_change_read_again_after_a_restart_changes_nothing() -> None:
    created = change("created", 0, after=DEAL)
    state = apply_change(None, created, 41)
    assert state is not None and state.state is not None
    assert apply_change(state.state, created, 41) is None
    assert apply_change(state.state, change("updated", 1, DEAL, DEAL), 40) is None
    assert apply_change(state.state, change("updated", 1, DEAL, DEAL), 42) is not None


def test_a_state_with_a_time_without_its_offset_does_not_fit_the_schema() -> None:
    state = fold(change("created", 0, after=DEAL))
    assert state is not None
    with pytest.raises(ValidationError, match="timezone"):
        RECORD_STATE.validate_python({**state, "updated_at": "2026-11-01T09:00:00"})
