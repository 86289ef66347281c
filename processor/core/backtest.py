"""What a workflow version would have done over past record changes, beside another version:
the fold a backtest runs over a tenant's retained ``crm.record-changes`` (pure).

Each version goes through the live core: ``decide`` for record-change triggers, the same
conditions and rendering, ``invoice_timer`` and ``stall_timers`` for the timers. Both run as if
active, whatever their saved status. The clock is the events' own: a run is decided at its
event's ``occurred_at``, and a timer fires at its ``due_at`` (or at the change that armed it,
if that came later: the live service fires a timer armed past due at once) when the replay of
its record reaches that time (a change of the record at or after it, or the window's end),
the way the live timer service would have fired it between those two changes. Records are
independent, so only each record's own changes need to come in order (one partition keeps them
so); how the partitions interleave changes nothing in the result, which lets a test compare a
backtest read from the broker with this fold over the same events.

The window ``[since, until]``: changes before ``since`` are folded into the records' state
(when a field got its value, which timers are armed) without deciding runs, so a stall or an
overdue invoice that comes due inside the window fires; changes after ``until`` are left out.
Loop depth is each event's own (``causation.depth`` as it was). A change delivered again (the
same event id, soon after) or a timer firing again (the same firing id: an invoice overdue again
for the same due date) makes no second run: live, it would have the first's run ids.
Follow-on changes a version's actions would have made are not invented: the replay sees the
changes that happened.

Memory follows the result cap and the records that need a state: the changed list keeps the
``max_changed`` earliest within ``max_changed_bytes``; a record is followed only while a
version's timers need it (a stall version: every record of its type; an overdue version:
invoices with an open due date), at most ``max_records`` at once, and the result counts the
changes of records past that bound.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from processor.core.compiler import CompiledWorkflow
from processor.core.decide import Document, decide, run_guarded
from processor.core.records import apply_change, state_key
from processor.core.timer_rules import (
    INVOICE_OVERDUE,
    RECORD_STALLED,
    fired_event,
    invoice_timer,
    stall_timers,
)
from topics.backtests import (
    ActionOutline,
    BacktestResult,
    BacktestWindow,
    ChangedOutcome,
    Difference,
    ReplayedOutcome,
    SideSummary,
)
from topics.events import ChangeEvent, RecordRef
from topics.records import RecordState
from topics.runs import ConditionResult
from topics.timers import Timer

NOT_BACKTESTED: Mapping[str, str] = {
    "scheduled": "a scheduled workflow runs on the clock's ticks, not on record changes: "
    "there is no history of record changes to replay it over",
    "webhook_received": "a webhook workflow runs on deliveries to its inbound URL, not on "
    "record changes: there is no history of record changes to replay it over",
}
"""Trigger kinds a backtest cannot replay, with the reason the API gives."""

_NOT_EMBEDDED = orjson.Fragment(b"null")
"""What a replayed run record embeds instead of its event: nothing reads it."""

CANDIDATE, BASELINE = 0, 1

RECENT_IDS = 100_000
"""How many of the latest ids the fold remembers, of changes decided and of each version's
timer firings, to tell one that comes again: a change delivered again (a producer's retry,
written soon after the first), an invoice overdue again for the same due date. Live, its runs
have the first's run ids (from the workflow, its version and the event or firing id) and count
once; so they do here."""


class _Recent:
    """The latest ``RECENT_IDS`` ids seen."""

    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def first(self, name: str) -> bool:
        """Whether ``name`` is not among them (it is, from now on)."""
        if name in self._ids:
            return False
        self._ids.add(name)
        self._order.append(name)
        if len(self._order) > RECENT_IDS:
            self._ids.discard(self._order.popleft())
        return True


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    candidate: CompiledWorkflow
    candidate_version: int | None
    """``None``: an unsaved definition."""
    baseline: CompiledWorkflow | None
    baseline_version: int | None
    since: datetime
    until: datetime
    max_events: int
    max_changed: int
    max_records: int
    max_depth: int
    max_changed_bytes: int = 16 << 20
    """The kept changed events' outcomes, at most this many bytes as JSON: each keeps both
    versions' rendered parameters and the values their conditions saw, which the records'
    writers choose (fifty actions of 50,000 characters each would make ``max_changed`` of them
    gigabytes); the earliest that fit are kept, the rest counted."""


class _Outcome(NamedTuple):
    """One version's run for one event, as much of it as a comparison and the result need."""

    status: str
    actions: tuple[tuple[int, str], ...]
    params: tuple[Any, ...]
    document: Document

    @classmethod
    def of(cls, document: Document) -> _Outcome:
        actions = document["actions"]
        return cls(
            document["status"],
            tuple((a["step"], a["type"]) for a in actions),
            tuple(a["params"] for a in actions),
            document,
        )


def differences(candidate: _Outcome | None, baseline: _Outcome | None) -> list[Difference]:
    """How two outcomes of one event differ (empty: they do not)."""
    if candidate is None or baseline is None:
        return [] if candidate is baseline else ["started"]
    found: list[Difference] = []
    if candidate.status != baseline.status:
        found.append("status")
    if candidate.actions != baseline.actions:
        found.append("actions")
    elif candidate.params != baseline.params:
        found.append("params")
    return found


class _Changed(NamedTuple):
    occurred_at: datetime
    event_id: str
    record_type: str
    record_id: str
    candidate: _Outcome | None
    baseline: _Outcome | None
    differences: list[Difference]
    size: int
    """Its outcomes' bytes as JSON (``max_changed_bytes``)."""

    def order(self) -> tuple[datetime, str, str, str]:
        """Earliest first, in an order no interleaving of the partitions changes."""
        return (self.occurred_at, self.event_id, self.record_type, self.record_id)


class _Armed(NamedTuple):
    timer: Timer
    sides: tuple[int, ...]
    """The versions it fires for: an overdue timer, every version of that kind; a stall
    timer, the version whose parameters armed it."""
    fires_at: datetime
    """When the live timer service would fire it: its due time, or the change that armed it
    when that came later (an invoice created or moved to a due date long past fires at the
    next tick, not before it was armed)."""


@dataclass(slots=True)
class _Followed:
    """A record whose timers a version needs."""

    state: RecordState | None = None
    armed: dict[str, _Armed] = field(default_factory=dict)
    """By the version's index and the timer's key."""
    held: dict[str, tuple[int, _Outcome]] = field(default_factory=dict)
    """A timer run of one version whose other version has the same firing still armed (a
    stall whose other duration comes due later): kept until that one fires or is re-armed."""


@dataclass(slots=True)
class _Side:
    compiled: CompiledWorkflow | None
    version: int | None
    runs: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)

    def kind(self) -> str | None:
        return self.compiled.kind.name if self.compiled is not None else None

    def summary(self) -> SideSummary:
        return SideSummary(
            version=self.version,
            status=(  # an unsaved definition has no saved status
                self.compiled.workflow.status
                if self.compiled is not None and self.version is not None
                else None
            ),
            runs_total=sum(self.runs.values()),
            runs=dict(sorted(self.runs.items())),
            actions=dict(sorted(self.actions.items())),
        )


class Replay:
    """Feed the tenant's record changes in read order; ``result`` once at the end."""

    def __init__(self, spec: ReplaySpec) -> None:
        self.spec = spec
        self.tenant = spec.candidate.workflow.tenant_id
        self._sides = (
            _Side(spec.candidate, spec.candidate_version),
            _Side(spec.baseline, spec.baseline_version),
        )
        kinds = [side.kind() for side in self._sides]
        self._overdue = tuple(n for n, kind in enumerate(kinds) if kind == INVOICE_OVERDUE)
        self._stalls = tuple(n for n, kind in enumerate(kinds) if kind == RECORD_STALLED)
        self._stall_types = {self._compiled(n).trigger.record_type for n in self._stalls}
        """Every record of these types has a state."""
        self._decided_types = {
            side.compiled.trigger.record_type
            for side in self._sides
            if side.compiled is not None and side.compiled.kind.operations
        }
        self._followed: dict[str, _Followed] = {}
        self._decided = _Recent()
        self._fired = (_Recent(), _Recent())
        self._changed: list[_Changed] = []
        self._changed_bytes = 0
        self._dropped_from: tuple[datetime, str, str, str] | None = None
        """The earliest changed event left out of the kept list: none after it is kept."""
        self.changed_count = 0
        self.events_scanned = 0
        self.events_before_window = 0
        self.invalid_events = 0
        self.timers_fired = 0
        self.changes_untracked = 0
        self._seq = 0
        self._history_from: datetime | None = None
        self._first: datetime | None = None
        self._last: datetime | None = None
        self._stopped: str | None = None
        self._finished = False

    # -- feeding -------------------------------------------------------------------------

    def feed(self, event: ChangeEvent) -> bool:
        """Fold one change in; ``False`` once ``max_events`` changes inside the window have
        been scanned (the caller stops reading)."""
        if self._stopped is not None:
            return False
        if event.tenant_id != self.tenant:
            return True
        at = event.occurred_at
        if self._history_from is None or at < self._history_from:
            self._history_from = at
        if at > self.spec.until:
            return True
        self._seq += 1
        inside = at >= self.spec.since
        self._follow(event)
        decided = event.record_type in self._decided_types
        if not inside:
            self.events_before_window += 1
            if decided:  # live decided it before the window: a repeat inside is no new run
                self._decided.first(event.event_id)
            return True
        self.events_scanned += 1
        if self._first is None or at < self._first:
            self._first = at
        if self._last is None or at > self._last:
            self._last = at
        if decided and self._decided.first(event.event_id):
            self._decide(event)
        if self.events_scanned >= self.spec.max_events:
            self._stopped = (
                f"max_events ({self.spec.max_events:,}) reached: the scan stopped at a change "
                f"of {shown_time(at)}"
            )
            return False
        return True

    def skip_invalid(self) -> None:
        """A message of the tenant the live processor would dead-letter."""
        self.invalid_events += 1

    def stop(self, why: str) -> None:
        """End the scan from outside (the shell's time limit): ``feed`` takes no more, and the
        result says why and at which change, as at ``max_events``."""
        if self._stopped is None:
            where = "" if self._last is None else f" at a change of {shown_time(self._last)}"
            self._stopped = f"{why}: the scan stopped{where}"

    def _decide(self, event: ChangeEvent) -> None:
        found: list[_Outcome | None] = []
        for side in self._sides:
            runs = (
                decide(
                    event,
                    (side.compiled,),
                    max_depth=self.spec.max_depth,
                    source=None,
                    now=event.occurred_at,
                    embedded=_NOT_EMBEDDED,
                )
                if side.compiled is not None
                and side.compiled.trigger.record_type == event.record_type
                and event.operation in side.compiled.kind.operations
                else ()
            )
            found.append(self._counted(side, runs[0].document) if runs else None)
        self._compare(found[0], found[1])

    def _counted(self, side: _Side, document: Document) -> _Outcome:
        side.runs[document["status"]] += 1
        for action in document["actions"]:
            side.actions[action["type"]] += 1
        return _Outcome.of(document)

    def _compare(self, candidate: _Outcome | None, baseline: _Outcome | None) -> None:
        """Keep the event if its two outcomes differ; what it was is read off the run
        records (a fired timer's event id is its firing id, its time the due time)."""
        found = differences(candidate, baseline)
        if not found:
            return
        self.changed_count += 1
        document = (candidate or baseline or _NO_OUTCOME).document
        record = document["record"]
        order = (document["occurred_at"], document["event_id"], record["type"], record["id"])
        if self._dropped_from is not None and order >= self._dropped_from:
            return  # later than one already left out: it cannot be among the earliest kept
        changed = _Changed(*order, candidate, baseline, found, _size(candidate) + _size(baseline))
        self._changed.append(changed)
        self._changed_bytes += changed.size
        spec = self.spec
        if (
            len(self._changed) >= 2 * spec.max_changed
            or self._changed_bytes > 2 * spec.max_changed_bytes
        ):
            self._keep_earliest()

    def _keep_earliest(self) -> None:
        """Keep the earliest changed events within ``max_changed`` and ``max_changed_bytes``
        (a prefix of them in their order, whatever order they came in), and note where the
        rest begin. Called past twice the bounds, so its sort is paid once per many events."""
        spec, kept, size = self.spec, 0, 0
        ordered = sorted(self._changed, key=_Changed.order)
        for changed in ordered:
            if kept == spec.max_changed or size + changed.size > spec.max_changed_bytes:
                first = changed.order()
                if self._dropped_from is None or first < self._dropped_from:
                    self._dropped_from = first
                break
            kept, size = kept + 1, size + changed.size
        self._changed, self._changed_bytes = ordered[:kept], size

    # -- timers --------------------------------------------------------------------------

    def _follow(self, event: ChangeEvent) -> None:
        """Fire the record's timers due by this change, then fold the change into its state
        and its timers."""
        stall = event.record_type in self._stall_types
        overdue = bool(self._overdue) and event.record_type == "invoice"
        if not stall and not overdue:
            return
        key = state_key(event.tenant_id, event.record_type, event.record_id)
        followed = self._followed.get(key)
        if followed is None:
            if len(self._followed) >= self.spec.max_records:
                self.changes_untracked += 1
                return
            followed = self._followed[key] = _Followed()
        self._fire_due(followed, event.occurred_at)
        if overdue:
            change = invoice_timer(event)
            if change is not None:
                timer_key, timer = change
                self._arm(followed, f"overdue {timer_key}", timer, self._overdue, event)
        if stall:
            state = apply_change(followed.state, event, self._seq)
            if state is not None:
                followed.state = state.state
                for n in self._stalls:
                    compiled = self._compiled(n)
                    if compiled.trigger.record_type != event.record_type:
                        continue
                    for timer_key, timer in stall_timers(
                        event, state, (compiled,), event.occurred_at
                    ):
                        self._arm(followed, f"{n} {timer_key}", timer, (n,), event)
        self._settle(followed)
        if followed.state is None and not followed.armed and not followed.held:
            del self._followed[key]

    def _arm(
        self,
        followed: _Followed,
        key: str,
        timer: Timer | None,
        sides: tuple[int, ...],
        event: ChangeEvent,
    ) -> None:
        if timer is None:
            followed.armed.pop(key, None)
        else:
            followed.armed[key] = _Armed(timer, sides, max(timer.due_at, event.occurred_at))

    def _fire_due(self, followed: _Followed, until: datetime) -> None:
        """Fire, in the order they fire, the record's timers that fire at or before
        ``until``."""
        due = sorted(
            (k for k, armed in followed.armed.items() if armed.fires_at <= until),
            key=lambda k: (followed.armed[k].fires_at, k),
        )
        for key in due:
            self._fire(followed, followed.armed.pop(key))

    def _fire(self, followed: _Followed, armed: _Armed) -> None:
        timer = armed.timer
        sides = tuple(n for n in armed.sides if self._fired[n].first(timer.fire_id))
        if not sides:
            return  # fired for this firing id before: live, the same run ids again
        if armed.fires_at < self.spec.since:
            return  # fired before the window: its run is not the window's
        self.timers_fired += 1
        event = fired_event(timer)
        outcomes = {
            n: self._counted(
                self._sides[n],
                run_guarded(
                    self._compiled(n),
                    event,
                    max_depth=self.spec.max_depth,
                    source=None,
                    now=timer.due_at,
                ).document,
            )
            for n in sides
        }
        if len(outcomes) == 2:  # an overdue timer both versions wait for
            self._compare(outcomes[CANDIDATE], outcomes[BASELINE])
            return
        [(n, outcome)] = outcomes.items()
        held = followed.held.pop(timer.fire_id, None)
        if held is not None and held[0] != n:  # the other version fired it earlier
            self._compare(*_paired(n, outcome, held[1]))
        elif self._still_armed(followed, 1 - n, timer.fire_id):  # it fires it later
            followed.held[timer.fire_id] = (n, outcome)
        else:
            self._compare(*_paired(n, outcome, None))

    def _compiled(self, side: int) -> CompiledWorkflow:
        compiled = self._sides[side].compiled
        assert compiled is not None  # only a version's own timers fire for it
        return compiled

    def _still_armed(self, followed: _Followed, side: int, fire_id: str) -> bool:
        return any(
            side in armed.sides and armed.timer.fire_id == fire_id
            for armed in followed.armed.values()
        )

    def _settle(self, followed: _Followed) -> None:
        """Held runs whose other version will no longer fire the same timer (re-armed for
        another episode, or cancelled): compared with nothing."""
        for fire_id, (n, outcome) in list(followed.held.items()):
            if not self._still_armed(followed, 1 - n, fire_id):
                del followed.held[fire_id]
                self._compare(*_paired(n, outcome, None))

    # -- the end -------------------------------------------------------------------------

    def result(self) -> BacktestResult:
        """Fire what came due by ``until`` and not yet fired, then the result (once)."""
        if self._finished:
            raise RuntimeError("a replay's result is taken once")
        self._finished = True
        end = self.spec.until if self._stopped is None else (self._last or self.spec.until)
        for followed in self._followed.values():
            self._fire_due(followed, end)
            for n, outcome in followed.held.values():  # the other one came due too late
                self._compare(*_paired(n, outcome, None))
        self._followed.clear()
        self._keep_earliest()
        kept = self._changed
        return BacktestResult(
            events_scanned=self.events_scanned,
            events_before_window=self.events_before_window,
            invalid_events=self.invalid_events,
            timers_fired=self.timers_fired,
            window=self._window(),
            candidate=self._sides[CANDIDATE].summary(),
            baseline=self._sides[BASELINE].summary(),
            changed_count=self.changed_count,
            changed=[self._shown(c) for c in kept],
            changed_cap=self.spec.max_changed,
            changed_truncated=self.changed_count > len(kept),
            stopped_early=self._stopped,
            changes_untracked=self.changes_untracked,
        )

    def _window(self) -> BacktestWindow:
        notes = []
        if self._history_from is None:
            notes.append("no record change of this tenant is retained")
        elif self._history_from > self.spec.since:
            notes.append(
                "the retained record changes of this tenant begin at "
                f"{shown_time(self._history_from)}, after the window's start"
            )
        if self._stopped is not None:
            notes.append(self._stopped)
        return BacktestWindow(
            since=self.spec.since,
            until=self.spec.until,
            history_from=self._history_from,
            first_event_at=self._first,
            last_event_at=self._last,
            note="; ".join(notes) or None,
        )

    def _shown(self, changed: _Changed) -> ChangedOutcome:
        trigger = (changed.candidate or changed.baseline or _NO_OUTCOME).document["trigger"]
        return ChangedOutcome(
            record=RecordRef(type=changed.record_type, id=changed.record_id),
            event_id=changed.event_id,
            occurred_at=changed.occurred_at,
            trigger=trigger,
            candidate=_replayed(changed.candidate),
            baseline=_replayed(changed.baseline),
            differences=changed.differences,
        )


_NO_OUTCOME = _Outcome("", (), (), {"trigger": ""})


def shown_time(moment: datetime) -> str:
    """A time as a result's notes say it: UTC, to the second."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _paired(
    side: int, outcome: _Outcome, other: _Outcome | None
) -> tuple[_Outcome | None, _Outcome | None]:
    """(candidate, baseline) from one version's outcome and the other's."""
    return (outcome, other) if side == CANDIDATE else (other, outcome)


def _replayed(outcome: _Outcome | None) -> ReplayedOutcome | None:
    if outcome is None:
        return None
    document = outcome.document
    return ReplayedOutcome(
        status=document["status"],
        actions=[
            ActionOutline(step=a["step"], type=a["type"], params=a["params"])
            for a in document["actions"]
        ],
        conditions=[ConditionResult.model_validate(c) for c in document["conditions"]],
        error=document["error"],
    )


def _size(outcome: _Outcome | None) -> int:
    """An outcome's bytes as JSON, near enough to bound what a result holds."""
    if outcome is None:
        return 0
    try:
        return len(orjson.dumps(outcome.document, default=str))
    except TypeError:  # an integer past 64 bits, say: the long way
        return len(repr(outcome.document))


def replay(events: Iterable[ChangeEvent], spec: ReplaySpec) -> BacktestResult:
    """The whole fold over ``events`` (in read order)."""
    fold = Replay(spec)
    for event in events:
        if not fold.feed(event):
            break
    return fold.result()
