"""Durations, event times and nesting are range-checked where they enter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from tests.factories import make_event
from topics.timers import Timer
from topics.types import MAX_DURATION, MAX_NESTING, check_nesting, nesting, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1d12h", 129_600), ("3650d", 315_360_000), ("2 w", 1_209_600)],
)
def test_durations_up_to_ten_years_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("3651d", "longer than the longest duration a workflow may give, 3650d (ten years)"),
        ("999999999d", "longer than the longest duration"),
        ("99999999999999s", "longer than the longest duration"),
        ("9" * 5000 + "s", "is not a duration"),
        ("1d" * 40, "is not a duration"),
        ("soon", "is not a duration"),
    ],
)
def test_a_duration_past_the_maximum_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_duration(text)
    assert timedelta(days=3650) == MAX_DURATION


@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:00:00Z",
        "3000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
    ],
)
def test_an_event_time_out_of_range_is_refused(moment: str) -> None:
    with pytest.raises(
        ValidationError, match=r"Input should be (less than 3000|greater than or equal to 1970)"
    ):
        make_event(occurred_at=moment)


def test_event_times_in_range_pass_whatever_their_offset() -> None:
    event = make_event(occurred_at=datetime(2999, 12, 31, 20, tzinfo=timezone(timedelta(hours=-3))))
    assert event.occurred_at.astimezone(UTC).year == 2999


def test_a_timer_due_out_of_range_is_not_a_valid_timer() -> None:
    with pytest.raises(ValidationError):
        Timer(
            key="k",
            kind="invoice_overdue",
            tenant_id="acme",
            record_type="invoice",
            record_id="I-1",
            due_at=datetime(9999, 1, 1, tzinfo=UTC),
            fire_id="f",
            record={},
        )


def test_causation_depth_is_bounded() -> None:
    with pytest.raises(ValidationError, match=r"causation\.depth"):
        make_event(depth=10**30)


def test_nesting_counts_levels_and_stops_past_the_limit() -> None:
    assert [nesting(v) for v in (1, "x", {}, {"a": 1}, {"a": [1]}, [[[]]])] == [0, 0, 1, 1, 2, 3]
    deep: list = []
    inner = deep
    for _ in range(1000):
        inner.append([])
        inner = inner[0]
    assert nesting(deep) == MAX_NESTING + 1  # counted no further than needed
    with pytest.raises(ValueError, match="more than 64 levels"):
        check_nesting(deep)
    assert check_nesting({"a": [{"b": 1}]}) == {"a": [{"b": 1}]}
