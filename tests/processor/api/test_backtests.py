"""The backtest API's choice of JSON or CSV from ``format`` and ``Accept``."""

from __future__ import annotations

import pytest

from processor.api.backtests import accepts_csv


@pytest.mark.parametrize(
    ("accept", "csv"),
    [
        ("text/csv", True),
        ("TEXT/CSV", True),  # media types are case-insensitive
        ("text/csv; charset=utf-8", True),
        ("text/csv, */*;q=0.1", True),
        ("application/json;q=0.5, text/csv", True),
        ("text/csv;q=0", False),  # explicitly not acceptable
        ("text/csv;q=0.000", False),
        ("application/json, text/csv", False),  # as welcome as JSON: JSON, the default
        ("text/csv;q=0.4, application/json;q=0.9", False),
        ("*/*", False),
        ("text/*", False),
        ("", False),
        ("text/csv;q=nonsense", True),  # an unreadable weight counts as 1
        ("x" * 8000, False),
    ],
)
def test_accept_asks_for_csv_only_when_it_prefers_it(accept: str, csv: bool) -> None:
    assert accepts_csv(accept) is csv
