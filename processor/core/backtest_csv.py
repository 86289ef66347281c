"""A backtest's changed events as CSV, for a spreadsheet: one row per changed event, both
outcomes side by side (``candidate_``: the version tried, ``baseline_``: the one it is compared
with, each version's number in its column), the parameters and the conditions that differ.

The text starts with a UTF-8 byte-order mark: without it Excel reads the file in the machine's
legacy code page, and a lead named "Zoë" shows as "ZoÃ«".

Every cell is the data of a record change, which anyone who can write to the CRM chose: a cell
a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return
first) gets a leading apostrophe, the way OWASP recommends against CSV injection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import orjson

from processor.core.backtest_diff import param_differences
from topics.backtests import ChangedOutcome, ReplayedOutcome
from topics.runs import ConditionResult

COLUMNS = (
    "record_type",
    "record_id",
    "event_id",
    "occurred_at",
    "trigger",
    "differences",
    "candidate_version",
    "baseline_version",
    "candidate_status",
    "baseline_status",
    "candidate_actions",
    "baseline_actions",
    "parameters_that_differ",
    "conditions_that_differ",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

NO_RUN = "no run"
BOM = "\ufeff"
UNSAVED = "unsaved"
"""The candidate's version cell for an unsaved definition."""
NO_BASELINE = "none"
"""The baseline's version cell when there is none (a workflow that does nothing)."""


def safe_cell(text: str) -> str:
    """``text``, with an apostrophe first if a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def changed_csv(
    changed: Iterable[ChangedOutcome], candidate_version: int | None, baseline_version: int | None
) -> str:
    """The rows, a byte-order mark first; the versions as the result's sides name them
    (``None``: an unsaved candidate, or no baseline)."""
    versions = (
        UNSAVED if candidate_version is None else str(candidate_version),
        NO_BASELINE if baseline_version is None else str(baseline_version),
    )
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in changed:
        cells = (
            row.record.type,
            row.record.id,
            row.event_id,
            row.occurred_at.isoformat(),
            row.trigger,
            "; ".join(row.differences),
            *versions,
            _status(row.candidate),
            _status(row.baseline),
            _actions(row.candidate),
            _actions(row.baseline),
            _parameters_that_differ(row.candidate, row.baseline),
            _conditions_that_differ(row.candidate, row.baseline),
        )
        writer.writerow([safe_cell(c) for c in cells])
    return out.getvalue()


def _status(outcome: ReplayedOutcome | None) -> str:
    return NO_RUN if outcome is None else outcome.status


def _actions(outcome: ReplayedOutcome | None) -> str:
    """Each action as ``step type {rendered parameters}``, one per line."""
    if outcome is None:
        return ""
    return "\n".join(
        f"{a.step} {a.type} {orjson.dumps(a.params, option=orjson.OPT_SORT_KEYS).decode()}"
        for a in outcome.actions
    )


def _parameters_that_differ(
    candidate: ReplayedOutcome | None, baseline: ReplayedOutcome | None
) -> str:
    """Each action both versions issued whose rendered parameters differ, as ``step type:
    key, key``, one per line."""
    return "\n".join(
        f"{d.step} {d.type}: {', '.join(d.keys)}" for d in param_differences(candidate, baseline)
    )


def _conditions_that_differ(
    candidate: ReplayedOutcome | None, baseline: ReplayedOutcome | None
) -> str:
    """The conditions one version tested and the other did not, or whose result differs: each
    with the value it saw and both results."""
    ours = _by_condition(candidate)
    theirs = _by_condition(baseline)
    lines = []
    for key in list(ours) + [k for k in theirs if k not in ours]:
        mine, other = ours.get(key), theirs.get(key)
        if mine is not None and other is not None and mine.passed == other.passed:
            continue
        seen = mine if mine is not None else other
        assert seen is not None
        lines.append(
            f"{seen.field} {seen.op} {_json(seen.expected)} (actual {_json(seen.actual)}): "
            f"{_result('candidate', candidate, mine)}, {_result('baseline', baseline, other)}"
        )
    return "\n".join(lines)


def _by_condition(outcome: ReplayedOutcome | None) -> dict[tuple[str, str, bytes], ConditionResult]:
    if outcome is None:
        return {}
    return {(c.field, c.op, orjson.dumps(c.expected, default=str)): c for c in outcome.conditions}


def _result(side: str, outcome: ReplayedOutcome | None, result: ConditionResult | None) -> str:
    """One version's result of a condition: ``baseline passed`` or ``failed``, ``no run in
    baseline`` when it started none, ``not in baseline`` when its run has no such condition
    (the edit added it)."""
    if outcome is None:
        return f"no run in {side}"
    if result is None:
        return f"not in {side}"
    return f"{side} {'passed' if result.passed else 'failed'}"


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()
