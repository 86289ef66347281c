"""Backtests: what a workflow version would have done over the retained record changes, beside
what another version would have done (the admin API's bodies; ``processor/core/backtest.py``
computes the result, ``processor/backtests.py`` runs it).

A backtest emits nothing: no command, no run record, no timer. Its result is the counts of each
version's runs and actions, and every event (or fired timer) whose outcome differs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from topics.events import RecordRef
from topics.runs import ConditionResult, RunStatus
from topics.types import EventTime
from topics.workflows import WorkflowStatus

BacktestState = Literal["queued", "running", "done", "failed", "cancelled"]
"""``queued``: waiting for a free slot; ``running``; ``done`` (``result`` is set);
``failed`` (``error`` says why); ``cancelled`` (``DELETE``)."""

Difference = Literal["started", "status", "actions", "params"]
"""How two outcomes of one event differ: a run in one and not the other (``started``), another
status, other action types or steps (``actions``), or the same actions with other rendered
parameters (``params``)."""

MAX_BACKTEST_EVENTS = 10_000_000
"""The most record changes one backtest may scan (``max_events``)."""


class BacktestRequest(BaseModel):
    """``POST /workflows/{id}/backtest``: every field optional."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        None,
        ge=1,
        description="The version to try (the candidate); default the newest saved version, "
        "possibly a draft. Ignored when `definition` is given.",
    )
    compare_to: int | None = Field(
        None,
        ge=0,
        description="The version to compare with (the baseline); default the newest version "
        "saved as `active` before the candidate (none if there is none). `0`: no baseline, "
        "a workflow that does nothing.",
    )
    definition: dict[str, Any] | None = Field(
        None,
        description="An unsaved workflow (as `PUT` takes it) to try instead of a saved "
        "version: what the builder shows, or what `coeflow workflows apply --backtest` "
        "would write. Its `id` is the path's.",
    )
    since: EventTime | None = Field(
        None, description="The window's start (event time); default 7 days before `until`."
    )
    until: EventTime | None = Field(None, description="The window's end; default now.")
    max_events: int | None = Field(
        None,
        ge=1,
        le=MAX_BACKTEST_EVENTS,
        description="Stop after this many of the tenant's record changes inside the window "
        "(`COEFLOW_BACKTEST_MAX_EVENTS` by default); the result says where it stopped.",
    )


class BacktestProgress(BaseModel):
    messages_read: int = 0
    """Messages read from ``crm.record-changes`` (every tenant's: the topic is not split by
    tenant)."""
    messages_total: int | None = None
    """An estimate of the messages to read (from the offsets at the start), ``None`` until
    known."""
    events_scanned: int = 0
    """The tenant's record changes inside the window so far."""


class ActionOutline(BaseModel):
    """One action as a replay rendered it."""

    step: int
    type: str
    params: dict[str, Any]


class ReplayedOutcome(BaseModel):
    """What one version did with one event (or fired timer)."""

    status: RunStatus
    actions: list[ActionOutline] = []
    conditions: list[ConditionResult] = []
    """Every condition with the value it saw (the run record's own)."""
    error: str | None = None


class ChangedOutcome(BaseModel):
    """An event whose outcome differs between the two versions."""

    record: RecordRef
    event_id: str
    """The record change's id; for a fired timer, the timer's firing id."""
    occurred_at: datetime
    """When the change happened, or the timer came due."""
    trigger: str
    """The trigger kind that ran (the candidate's, else the baseline's)."""
    candidate: ReplayedOutcome | None
    """``None``: the candidate started no run."""
    baseline: ReplayedOutcome | None
    differences: list[Difference]


class SideSummary(BaseModel):
    """One version's runs over the window."""

    version: int | None
    """``None``: an unsaved definition (the candidate), or no baseline."""
    status: WorkflowStatus | None = None
    """The version's saved status (a backtest runs a draft or inactive version as if active)."""
    runs_total: int = 0
    runs: dict[str, int] = {}
    """Runs by status."""
    actions: dict[str, int] = {}
    """Actions issued, by type."""


class BacktestWindow(BaseModel):
    since: datetime
    """The window asked for (defaults filled in)."""
    until: datetime
    history_from: datetime | None = None
    """The earliest event time of the tenant's retained record changes (``None``: none)."""
    first_event_at: datetime | None = None
    """The earliest and latest event times scanned inside the window."""
    last_event_at: datetime | None = None
    note: str | None = None
    """Said when the window covered differs from the one asked: the retained history starts
    after ``since``, or ``max_events`` stopped the scan."""


class BacktestResult(BaseModel):
    events_scanned: int
    """The tenant's record changes inside the window given to both versions."""
    events_before_window: int = 0
    """Earlier record changes read to know each record's state (its timers) at ``since``."""
    invalid_events: int = 0
    """The tenant's messages the live processor would dead-letter (skipped here)."""
    timers_fired: int = 0
    """Overdue and stall timers that came due inside the window (both versions)."""
    window: BacktestWindow
    candidate: SideSummary
    baseline: SideSummary
    changed_count: int
    changed: list[ChangedOutcome]
    """The changed events, earliest first, at most ``changed_cap`` (a page of them when
    asked with ``changed_offset``/``changed_limit``)."""
    changed_cap: int
    """How many changed events a backtest keeps (``COEFLOW_BACKTEST_MAX_CHANGED``)."""
    changed_truncated: bool
    """``changed_count`` is more than were kept."""
    stopped_early: str | None = None
    """Why the scan ended before the window did (``max_events``), or ``None``."""
    changes_untracked: int = 0
    """Changes of records whose timers were not followed: more than
    ``COEFLOW_BACKTEST_MAX_RECORDS`` records needed a state at once (their timers are missing
    from both columns alike)."""


class Backtest(BaseModel):
    """``GET /backtests/{backtest_id}``."""

    backtest_id: str
    tenant_id: str
    workflow_id: str
    status: BacktestState
    candidate_version: int | None
    """``None``: an unsaved definition."""
    baseline_version: int | None
    since: datetime
    until: datetime
    max_events: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: BacktestProgress = BacktestProgress()
    error: str | None = None
    result: BacktestResult | None = None


class BacktestStarted(BaseModel):
    """The answer to ``POST /workflows/{id}/backtest`` (202)."""

    backtest_id: str
    status: BacktestState
    workflow_id: str
    candidate_version: int | None
    baseline_version: int | None
    since: datetime
    until: datetime
