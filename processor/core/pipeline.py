"""One message in (a record change, an inbound webhook delivery), the messages to produce
out: decode, decide, encode.

Nothing a message contains can make this raise: bad input and failures while deciding become
a dead letter with the reason, so the agent around it only sends and acknowledges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, NamedTuple, Protocol, TypeVar, cast

import orjson
from pydantic import BaseModel, ValidationError

from coeflow.errors import InvalidEvent, Problem, problems_from
from coeflow.settings import Settings
from processor.core.compiler import CompiledWorkflow
from processor.core.decide import Position, Run, decide, run_guarded, source_of
from processor.core.deliveries import delivery_event
from processor.core.index import WorkflowIndex
from processor.core.records import StateChange, apply_change, state_key, watch_of
from processor.core.schedule import late_note, tick_event
from processor.core.timer_rules import (
    INVOICE_OVERDUE,
    RECORD_STALLED,
    fired_event,
    invoice_timer,
    stall_timers,
)
from topics import codec
from topics.catalog import DEAD_LETTER, FENCE_KEY, RUNS, TIMERS, action_topic
from topics.dead_letter import DeadLetter
from topics.events import ChangeEvent
from topics.hot_events import fast_change
from topics.inbound import InboundDelivery
from topics.records import RecordState
from topics.runs import SourcePosition
from topics.schedule import ScheduledTick
from topics.timers import Timer
from topics.types import MAX_NESTING, within_nesting


class Outbound(NamedTuple):
    """One message to produce (a named tuple: made for every output, at the cost of a tuple)."""

    topic: str
    key: bytes | None
    value: bytes | None
    """``None`` is a tombstone (a cancelled timer)."""
    partition: int | None = None
    """Where it must go (a record state goes to its change's partition); ``None``: by key."""


@dataclass(slots=True)
class Outcome:
    messages: list[Outbound] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    state: StateChange | None = None
    """The record's new state, for the record-change processor to keep (``None``: a change
    read again, which changes nothing)."""
    error: BaseException | None = None
    """An unexpected exception while deciding (a bug): dead-lettered, and worth a traceback."""


StateOf = Callable[[str], RecordState | None]
"""A record's stored state by its ``state_key``."""


def process_change(
    key: bytes | None,
    value: bytes | None,
    position: Position,
    index: WorkflowIndex,
    settings: Settings,
    now: datetime,
    state_of: StateOf,
) -> Outcome:
    if value is None and key == FENCE_KEY:  # a backtest's fence: no change of any record
        return Outcome()
    try:
        event = decode_change(value, settings.max_event_bytes)
    except InvalidEvent as exc:
        return dead_letter(key, value, source_of(position), str(exc), settings, now)
    try:
        watching = index.watching(event.tenant_id, event.record_type)
        if watching is None:  # most events: nothing of this tenant watches this record type
            return Outcome()
        kinds = watching.kinds
        waiting = kinds.get(RECORD_STALLED, ())
        state = (  # a record state only where a stall workflow needs it
            apply_change(
                state_of(state_key(event.tenant_id, event.record_type, event.record_id)),
                event,
                position.offset,
                watch_of(waiting),
            )
            if waiting
            else None
        )
        candidates = watching.by_operation.get(event.operation, ())
        runs = (  # the source is made a SourcePosition only for the runs it starts
            decide(
                event,
                candidates,
                max_depth=settings.max_causation_depth,
                source=position,
                now=now,
                embedded=orjson.Fragment(value),  # type: ignore[arg-type]  # decoded: bytes
            )
            if candidates
            else []
        )
        outcome = Outcome(encode_runs(runs), runs, None, state) if runs else Outcome(state=state)
    except Exception as exc:  # a bug or a pathological event: never lose it, never stop
        return crashed(key, value, position, exc, settings, now)
    try:
        if INVOICE_OVERDUE in kinds:
            outcome.messages += timer_change(event, index)
        if state is not None:
            outcome.messages += stall_change(event, state, index, now)
    except Exception as exc:  # the runs go out; the letter says which timers could not be set
        letter = crashed(key, value, position, exc, settings, now, what="arming its timers")
        outcome.messages += letter.messages
        outcome.dead_letter, outcome.error = letter.dead_letter, letter.error
    return outcome


def crashed(
    key: bytes | None,
    value: bytes | None,
    position: Position,
    exc: BaseException,
    settings: Settings,
    now: datetime,
    what: str = "processing",
) -> Outcome:
    """The dead letter of a message whose processing raised: the reason, and the exception for
    the worker's log."""
    reason = f"{what} failed: {type(exc).__name__}: {exc}"
    outcome = dead_letter(key, value, source_of(position), reason, settings, now)
    outcome.error = exc
    return outcome


class NamesOneWorkflow(Protocol):
    """What runs one named workflow rather than every matching one: an inbound delivery, a
    scheduled tick."""

    @property
    def workflow_id(self) -> str: ...


MessageT = TypeVar("MessageT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class NamedWorkflowRunner(Generic[MessageT]):
    """How messages of one topic run the single workflow they name."""

    kind: str
    model: type[MessageT]
    event: Callable[[MessageT], ChangeEvent]
    note: Callable[[MessageT], str | None] = lambda message: None

    def process(
        self,
        key: bytes | None,
        value: bytes | None,
        position: Position,
        compiled_of: Callable[[str], CompiledWorkflow | None],
        settings: Settings,
        now: datetime,
    ) -> Outcome:
        """A run of the named workflow, if it is still an active workflow of this trigger
        kind (it may have changed since the message was written); a bad message is a dead
        letter."""
        source = source_of(position)
        try:
            message = self.model.model_validate(codec.loads(value or b"null"))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            reason = f"not a valid {self.model.__name__}: {exc}"
            return dead_letter(key, value, source, reason, settings, now)
        try:
            compiled = compiled_of(cast(NamesOneWorkflow, message).workflow_id)
            if compiled is None or compiled.kind.name != self.kind or not compiled.active:
                return Outcome()
            event = self.event(message)
            run = run_guarded(
                compiled, event, max_depth=settings.max_causation_depth, source=source, now=now
            )
            note = self.note(message)
            if note is not None:
                run = Run({**run.document, "note": note}, run.command_documents, run.crash)
            runs = [run]
            return Outcome(messages=encode_runs(runs), runs=runs)
        except Exception as exc:  # a bug or a message no check foresaw: never stop
            return crashed(key, value, position, exc, settings, now)


RUN_BY_DELIVERY = NamedWorkflowRunner("webhook_received", InboundDelivery, delivery_event)
RUN_BY_TICK = NamedWorkflowRunner("scheduled", ScheduledTick, tick_event, late_note)


def timer_change(event: ChangeEvent, index: WorkflowIndex) -> list[Outbound]:
    """The timer message an event makes, if a workflow of its tenant waits for that timer."""
    if event.record_type != "invoice" or not index.of_kind(
        event.tenant_id, "invoice", INVOICE_OVERDUE
    ):
        return []
    change = invoice_timer(event)
    if change is None:
        return []
    return [_timer_message(*change)]


def stall_change(
    event: ChangeEvent, state: StateChange, index: WorkflowIndex, now: datetime
) -> list[Outbound]:
    """The stall timers a record's new state arms, re-arms or cancels (a replay has no new
    state, and no call)."""
    waiting = index.of_kind(event.tenant_id, event.record_type, RECORD_STALLED)
    return [_timer_message(*change) for change in stall_timers(event, state, waiting, now)]


def _timer_message(key: str, timer: Timer | None) -> Outbound:
    return Outbound(TIMERS, key.encode(), codec.dumps(timer) if timer is not None else None)


def process_timer(
    key: bytes | None,
    value: bytes | None,
    position: Position,
    index: WorkflowIndex,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """A fired timer: a run of the workflow it names, or else of every active workflow of its
    tenant waiting for its kind."""
    source = source_of(position)
    try:
        timer = Timer.model_validate(codec.loads(value or b"null"))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        return dead_letter(key, value, source, f"not a valid Timer: {exc}", settings, now)
    try:
        event = fired_event(timer)
        runs = [
            run_guarded(
                compiled, event, max_depth=settings.max_causation_depth, source=source, now=now
            )
            for compiled in index.of_kind(timer.tenant_id, timer.record_type, timer.kind)
            if timer.workflow_id is None or compiled.id == timer.workflow_id
        ]
        return Outcome(messages=encode_runs(runs), runs=runs)
    except Exception as exc:  # a bug or a timer no check foresaw: never stop
        return crashed(key, value, position, exc, settings, now)


def decode_change(value: bytes | None, max_bytes: int) -> ChangeEvent:
    """The ChangeEvent in ``value``; ``InvalidEvent`` with reasons a person can act on.

    Most events are read by msgspec's typed decoder (``topics/hot_events.py``), whose
    ``HotChangeEvent`` has every field and property of a ``ChangeEvent`` the core reads; what it
    leaves (rare shapes, and every invalid event) is decoded the careful way below, which says
    why an event is refused. ``tests/topics/test_hot_events.py`` shows both ways accept and
    refuse the same events, with equal values.

    The careful way: orjson reads the bytes as strictly as the admin API does: ``NaN``,
    ``Infinity`` and numbers too large for a double are refused, and an integer beyond 64 bits
    is read as a double. A snapshot deeper than ``MAX_NESTING`` is refused (measured only when
    the value has that many brackets at all, by orjson: ``within_nesting``)."""
    if value is None:
        raise InvalidEvent(
            [], "tombstone (null value): crm.record-changes carries ChangeEvents only"
        )
    if len(value) > max_bytes:
        raise InvalidEvent(
            [],
            f"value of {len(value)} bytes exceeds the limit of {max_bytes} bytes "
            "(COEFLOW_MAX_EVENT_BYTES)",
        )
    try:
        fast = fast_change(value)
    except Exception:  # nothing in the bytes may make this raise: the careful way says why
        fast = None
    if fast is not None:
        return fast  # type: ignore[return-value]  # duck-typed: the same fields and properties
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([], f"not valid UTF-8 JSON: {exc}") from None
    if value.count(b"{") + value.count(b"[") > MAX_NESTING and isinstance(document, dict):
        for name in ("before", "after"):
            if not within_nesting(document.get(name)):
                raise InvalidEvent(
                    [Problem(name, f"nests objects and arrays more than {MAX_NESTING} levels")]
                )
    try:
        return ChangeEvent.model_validate(document)
    except ValidationError as exc:
        raise InvalidEvent(problems_from(exc)) from None


def encode_runs(runs: list[Run]) -> list[Outbound]:
    """The messages of ``runs``: each run's commands, then its record. A run that cannot be
    encoded (a bug) is replaced, in ``runs`` too, by its ``failed`` run without commands."""
    messages: list[Outbound] = []
    for n, run in enumerate(runs):
        try:
            messages += _encoded(run)
        except Exception as exc:
            runs[n] = run = Run(
                {
                    **run.document,
                    "status": "failed",
                    "actions": [],
                    "event": None,
                    "error": f"the run could not be encoded ({type(exc).__name__}: {exc}); "
                    "nothing was issued",
                },
                (),
                exc,
            )
            messages += _encoded(run)
    return messages


_new = tuple.__new__
"""``Outbound``'s own constructor is a Python function (its default): a run's messages are made
by ``tuple.__new__`` with every field given, a third of the cost."""


def _encoded(run: Run) -> list[Outbound]:
    dumps = codec.dumps_outgoing
    messages = []
    for command in run.command_documents:  # a loop: most runs have none or one
        key = command["action_id"].encode()
        messages.append(_new(Outbound, (action_topic(command["type"]), key, dumps(command), None)))
    document = run.document
    messages.append(_new(Outbound, (RUNS, document["run_id"].encode(), dumps(document), None)))
    return messages


def dead_letter(
    key: bytes | None,
    value: bytes | None,
    source: SourcePosition,
    reason: str,
    settings: Settings,
    now: datetime,
) -> Outcome:
    letter = DeadLetter.of(
        key=key,
        value=value,
        source=source,
        error=reason,
        failed_at=now,
        max_value_bytes=settings.dead_letter_max_bytes,
    )
    return Outcome(messages=[Outbound(DEAD_LETTER, key, codec.dumps(letter))], dead_letter=letter)
