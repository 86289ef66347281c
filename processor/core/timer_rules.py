"""Which timers a record change arms or cancels (pure).

``record_stalled``: each workflow watching a record type keeps one timer per record, due when
the watched field has kept its value for the workflow's duration, counted from when the field
got that value (the record state knows). A new value starts a new episode and re-arms the timer;
a change of another field re-arms it with the new snapshot and the same due time, unless that
time has passed (the episode has fired, or is firing); deleting the record, or removing the
field, cancels it. One firing per record per episode: the ``fire_id`` names the moment the
episode began.

``invoice_overdue``: an invoice that is not ``paid`` or ``void`` and has a ``due_date`` arms a
timer for the moment the due date has passed (a date: the start of the next day, UTC; a date
and time: that instant). Paying or voiding it, deleting it or removing the due date cancels the
timer; moving the due date re-arms it for the new date. One firing per invoice per due date.

Times outside what the product handles (``topics.types``): a due date from year 3000 on never
comes due, so it arms nothing (and cancels a timer armed for an earlier date), and one before
1970 is overdue at once; a stall due from year 3000 on is not armed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from processor.core.compiler import CompiledWorkflow
from processor.core.records import StateChange
from processor.core.triggers import RecordStalledParams
from topics.events import ChangeEvent
from topics.records import changed_at
from topics.timers import Timer
from topics.types import EARLIEST_TIME, LATEST_TIME, in_time_range

INVOICE_OVERDUE = "invoice_overdue"
RECORD_STALLED = "record_stalled"
SETTLED = frozenset({"paid", "void"})


def overdue_from(due_date: Any) -> datetime | None:
    """When an invoice with this ``due_date`` becomes overdue, or ``None`` if it has none or
    it never does in the times we handle."""
    if not isinstance(due_date, str) or len(due_date) > _MAX_DATE_CHARS:
        return None
    try:
        if len(due_date) == 10:
            day = date.fromisoformat(due_date)
            if day >= LATEST_TIME.date():
                return None
            moment = datetime.combine(day + timedelta(days=1), time(), UTC)
        else:
            moment = datetime.fromisoformat(due_date)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    if not in_time_range(moment):
        return max(moment, EARLIEST_TIME) if _before_range(moment) else None
    return moment


_MAX_DATE_CHARS = 64


def _before_range(moment: datetime) -> bool:
    try:
        return moment < EARLIEST_TIME
    except OverflowError:
        return False


def _open_due(snapshot: dict[str, Any] | None) -> datetime | None:
    if snapshot is None:
        return None
    status = snapshot.get("status")
    if isinstance(status, str) and status in SETTLED:  # any JSON may stand there
        return None
    return overdue_from(snapshot.get("due_date"))


def invoice_timer(event: ChangeEvent) -> tuple[str, Timer | None] | None:
    """The change ``event`` makes to its invoice's overdue timer: ``(key, timer)`` arms (or
    re-arms), ``(key, None)`` cancels, ``None`` changes nothing."""
    if event.record_type != "invoice":
        return None
    before, after = _open_due(event.before), _open_due(event.after)
    if event.operation == "updated" and before == after:
        return None
    key = f"{event.tenant_id}/invoice/{event.record_id}/{INVOICE_OVERDUE}"
    if after is None:
        return (key, None) if event.operation != "created" else None
    assert event.after is not None
    return key, Timer(
        key=key,
        kind=INVOICE_OVERDUE,
        tenant_id=event.tenant_id,
        record_type="invoice",
        record_id=event.record_id,
        due_at=after,
        fire_id=f"{INVOICE_OVERDUE}:{event.tenant_id}:{event.record_id}:{after.isoformat()}",
        record=event.after,
    )


def stall_timers(
    event: ChangeEvent, change: StateChange, workflows: Iterable[CompiledWorkflow], now: datetime
) -> list[tuple[str, Timer | None]]:
    """The changes ``event``'s state ``change`` makes to the stall timers of ``workflows`` (each a
    ``record_stalled`` workflow of the record's tenant and type): ``(key, timer)`` arms or
    re-arms, ``(key, None)`` cancels."""
    changes: list[tuple[str, Timer | None]] = []
    prior, state = change.prior, change.state
    for compiled in workflows:
        params = cast(RecordStalledParams, compiled.trigger)
        since = changed_at(state, params.field) if state is not None else None
        key = f"{change.key}/{RECORD_STALLED}/{compiled.id}"
        if since is None:
            if prior is not None and params.field in prior["changed_at"]:
                changes.append((key, None))
            continue
        assert state is not None and event.after is not None
        if not in_time_range(since) or since >= LATEST_TIME - params.duration:
            continue  # would be due past the times we handle: it never fires
        due = since + params.duration
        begins = prior is None or changed_at(prior, params.field) != since
        if not begins and due <= now:
            continue  # this episode's timer has fired: arming it again would fire it twice
        changes.append(
            (
                key,
                Timer(
                    key=key,
                    kind=RECORD_STALLED,
                    tenant_id=event.tenant_id,
                    record_type=event.record_type,
                    record_id=event.record_id,
                    due_at=due,
                    fire_id=f"{RECORD_STALLED}:{compiled.id}:{change.key}:{since.isoformat()}",
                    record=event.after,
                    workflow_id=compiled.id,
                ),
            )
        )
    return changes


def fired_event(timer: Timer) -> ChangeEvent:
    """The event the waiting workflows see: the record as armed, at its due time."""
    return ChangeEvent(
        event_id=timer.fire_id,
        tenant_id=timer.tenant_id,
        record_type=timer.record_type,
        record_id=timer.record_id,
        operation="updated",
        occurred_at=timer.due_at,
        before=timer.record,
        after=timer.record,
    )
