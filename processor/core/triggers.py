"""The trigger kind registry: what each ``trigger.type`` means for a record change.

A kind declares its parameter model (validated when a workflow is saved), the operations it
can fire on (so the index skips it for the others), a pure ``matches`` test, and ``explain``:
why it did or did not fire for an event, in words and with the values it compared (the dry
run's and the why-not answer's; ``explain_trigger`` adds what every kind shares).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coeflow.errors import InvalidWorkflow, Problem, problems_from
from processor.core.operators import is_number, same
from processor.core.paths import MISSING, compile_path, lookup, plain
from topics.events import ChangeEvent, Operation
from topics.types import Duration, FieldPath, NonEmptyStr, parse_duration
from topics.workflows import TriggerSpec


class TriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str
    record_type: NonEmptyStr


class FieldChangeParams(TriggerParams):
    """``from``/``to`` narrow the change; leaving one out means "any value"."""

    field: FieldPath
    from_: Any = Field(default=None, alias="from")
    to: Any = None

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The field's path, split once rather than per event."""
        return compile_path(self.field)

    def wants(self, before: Any, after: Any) -> bool:
        if (type(before) is type(after) and before == after) or same(before, after):
            return False  # the usual change: of another field (the first test implies ``same``)
        if "from_" in self.model_fields_set and not same(before, self.from_):
            return False
        return "to" not in self.model_fields_set or same(after, self.to)


class StatusChangedParams(FieldChangeParams):
    field: Literal["status"] = "status"


class StageChangedParams(FieldChangeParams):
    field: Literal["stage"] = "stage"


class TaskCompletedParams(TriggerParams):
    record_type: Literal["task"] = "task"


class CaseEscalatedParams(TriggerParams):
    record_type: Literal["case"] = "case"


class ContractSignedParams(TriggerParams):
    record_type: Literal["contract"] = "contract"


class LeadScoreThresholdParams(TriggerParams):
    record_type: Literal["lead"] = "lead"
    threshold: float


class WebhookReceivedParams(TriggerParams):
    """Fired by a verified delivery to the workflow's own inbound URL, never by a record
    change; the payload is the run's record."""

    record_type: Literal["webhook"] = "webhook"


class InvoiceOverdueParams(TriggerParams):
    """Fired by a timer when an unpaid invoice's due date has passed
    (processor/core/timer_rules.py)."""

    record_type: Literal["invoice"] = "invoice"


class ScheduledParams(TriggerParams):
    """Fired by the clock: ``cron`` (5 fields) in the IANA ``timezone``, never by a change."""

    record_type: Literal["schedule"] = "schedule"
    cron: NonEmptyStr
    timezone: NonEmptyStr = "UTC"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(
                f"{value!r} is not a 5-field cron expression (minute hour day month weekday)"
            )
        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a valid cron expression: each of its five fields (minute "
                "0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6) takes numbers in its "
                "range, '*', lists, ranges and steps such as '*/15'"
            )
        try:
            croniter(value, datetime(2026, 1, 1)).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"{value!r} names no date that exists: it would never fire") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_TOP_LEVEL = re.compile(r"[A-Za-z0-9_$-]+")


class RecordStalledParams(TriggerParams):
    """Fired by a timer when ``field`` (a top-level field) has kept its value for ``for``:
    once per stall episode, which a new value of the field ends (processor/core/timer_rules.py).
    The workflow's conditions, such as "status is open", are checked when it fires."""

    field: NonEmptyStr = "stage"
    for_: Duration = Field(alias="for")

    @field_validator("field")
    @classmethod
    def _top_level(cls, value: str) -> str:
        if not _TOP_LEVEL.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a top-level field name; a stall is measured on a field of "
                "the record itself, such as 'stage'"
            )
        return value

    @field_validator("for_")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_duration(value) <= timedelta(0):
            raise ValueError(f"{value!r} is no time at all; a stall lasts at least a second")
        return value

    @cached_property
    def duration(self) -> timedelta:
        return parse_duration(self.for_)


P = TypeVar("P", bound=TriggerParams)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a trigger did or did not fire for one event: a sentence, and the values it
    compared (the threshold and the score before and after, a field's from and to...)."""

    matched: bool
    reason: str
    values: Mapping[str, Any]


Explain = Callable[[P, ChangeEvent, bool], tuple[str, Mapping[str, Any]]]
"""``explain(params, event, matched)``: the reason and values, for an event of the kind's
record type and of an operation it fires on (``explain_trigger`` says why for the others)."""


@dataclass(frozen=True, slots=True)
class TriggerKind(Generic[P]):
    name: str
    params: type[P]
    operations: frozenset[Operation]
    matches: Callable[[P, ChangeEvent], bool]
    explain: Explain[P]


_STATUS, _ESCALATED, _SCORE = ("status",), ("escalated",), ("score",)


def _becomes(event: ChangeEvent, keys: tuple[str, ...], value: Any) -> bool:
    """The field at ``keys`` equals ``value`` after the change and did not before (a create
    counts)."""
    if not same(lookup(event.after, keys), value):
        return False
    return event.operation == "created" or not same(lookup(event.before, keys), value)


def _record_updated(_p: TriggerParams, event: ChangeEvent) -> bool:
    return event.before != event.after


def _field_changed(p: FieldChangeParams, event: ChangeEvent) -> bool:
    keys, before, after = p.keys, event.before, event.after
    if len(keys) == 1 and type(before) is dict and type(after) is dict:  # a field of the record
        key = keys[0]
        return p.wants(before.get(key, MISSING), after.get(key, MISSING))
    return p.wants(lookup(before, keys), lookup(after, keys))


def _score_crosses(p: LeadScoreThresholdParams, event: ChangeEvent) -> bool:
    after = lookup(event.after, _SCORE)
    if not is_number(after) or after < p.threshold:
        return False
    if event.operation == "created":
        return True
    before = lookup(event.before, _SCORE)
    return before is MISSING or before is None or (is_number(before) and before < p.threshold)


_SHOWN = 80
"""Characters of a value a reason quotes (the values themselves are in ``values``)."""


def quoted(value: Any) -> str:
    """A value as a reason quotes it: JSON-like, cut to ``_SHOWN`` characters."""
    if value is MISSING:
        return "missing"
    text = "null" if value is None else repr(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))  # a threshold of 80 is saved as 80.0
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _created_why(p: TriggerParams, e: ChangeEvent, matched: bool) -> tuple[str, dict[str, Any]]:
    return f"the {e.record_type} was created", {"operation": e.operation}


_CHANGED_SHOWN = 20
"""Changed fields an explanation lists (a record may have thousands)."""


def _updated_why(p: TriggerParams, e: ChangeEvent, matched: bool) -> tuple[str, dict[str, Any]]:
    before, after = e.before or {}, e.after or {}
    changed = [
        k for k in {**before, **after} if not same(before.get(k, MISSING), after.get(k, MISSING))
    ]
    values = {"changed_fields": changed[:_CHANGED_SHOWN], "changed_count": len(changed)}
    if not matched:
        return "the update changed nothing: the record is the same before and after", values
    more = f" and {len(changed) - _CHANGED_SHOWN} more" if len(changed) > _CHANGED_SHOWN else ""
    return f"the update changed {', '.join(changed[:_CHANGED_SHOWN])}{more}", values


def _field_why(p: FieldChangeParams, e: ChangeEvent, matched: bool) -> tuple[str, dict[str, Any]]:
    before, after = lookup(e.before, p.keys), lookup(e.after, p.keys)
    values: dict[str, Any] = {"field": p.field, "before": plain(before), "after": plain(after)}
    wants = []
    if "from_" in p.model_fields_set:
        values["from"] = p.from_
        wants.append(f"from {quoted(p.from_)}")
    if "to" in p.model_fields_set:
        values["to"] = p.to
        wants.append(f"to {quoted(p.to)}")
    went = f"{p.field} changed from {quoted(before)} to {quoted(after)}"
    if same(before, after):
        return f"{p.field} did not change (it is {quoted(after)})", values
    if matched:
        return went, values
    return f"{went}; the trigger wants a change {' '.join(wants)}", values


def _becomes_why(field: str, value: Any) -> Explain[TriggerParams]:
    keys = (field,)

    def explain(p: TriggerParams, e: ChangeEvent, matched: bool) -> tuple[str, dict[str, Any]]:
        before, after = lookup(e.before, keys), lookup(e.after, keys)
        values = {"field": field, "wants": value, "before": plain(before), "after": plain(after)}
        if matched:
            return f"{field} became {quoted(value)} (it was {quoted(before)})", values
        if not same(after, value):
            return f"{field} is {quoted(after)} after the change, not {quoted(value)}", values
        return f"{field} was {quoted(value)} already before the change", values

    return explain


def _score_why(
    p: LeadScoreThresholdParams, e: ChangeEvent, matched: bool
) -> tuple[str, dict[str, Any]]:
    before, after = lookup(e.before, _SCORE), lookup(e.after, _SCORE)
    values = {"threshold": p.threshold, "before": plain(before), "after": plain(after)}
    limit = quoted(p.threshold)
    if matched:
        if e.operation == "created":
            return f"the lead was created with score {quoted(after)}, at least {limit}", values
        return f"score went from {quoted(before)} to {quoted(after)}, reaching {limit}", values
    if not is_number(after):
        return f"score is {quoted(after)} after the change, not a number", values
    if after < p.threshold:
        return f"score {quoted(after)} is below the threshold {limit}", values
    if is_number(before):
        return (
            f"score was {quoted(before)} before the change, at least {limit} already: it fires "
            "when the score reaches the threshold from below",
            values,
        )
    return f"score was {quoted(before)} before the change, not a number", values


def _fired_by(what: str | Callable[[Any], str]) -> Explain[Any]:
    """The explanation of a kind fired by something other than a record change."""

    def explain(p: TriggerParams, e: ChangeEvent, matched: bool) -> tuple[str, dict[str, Any]]:
        return f"fired by {what(p) if callable(what) else what}, never by a record change", {}

    return explain


CREATED: frozenset[Operation] = frozenset({"created"})
UPDATED: frozenset[Operation] = frozenset({"updated"})
SAVED: frozenset[Operation] = frozenset({"created", "updated"})

KINDS: tuple[TriggerKind[Any], ...] = (
    TriggerKind("record_created", TriggerParams, CREATED, lambda p, e: True, _created_why),
    TriggerKind("record_updated", TriggerParams, UPDATED, _record_updated, _updated_why),
    TriggerKind("field_value_changed", FieldChangeParams, UPDATED, _field_changed, _field_why),
    TriggerKind("status_changed", StatusChangedParams, UPDATED, _field_changed, _field_why),
    TriggerKind("pipeline_stage_changed", StageChangedParams, UPDATED, _field_changed, _field_why),
    TriggerKind(
        "task_completed",
        TaskCompletedParams,
        UPDATED,
        lambda p, e: _becomes(e, _STATUS, "completed"),
        _becomes_why("status", "completed"),
    ),
    TriggerKind(
        "case_escalated",
        CaseEscalatedParams,
        UPDATED,
        lambda p, e: _becomes(e, _ESCALATED, True),
        _becomes_why("escalated", True),
    ),
    TriggerKind(
        "contract_signed",
        ContractSignedParams,
        SAVED,
        lambda p, e: _becomes(e, _STATUS, "signed"),
        _becomes_why("status", "signed"),
    ),
    TriggerKind(
        "lead_score_threshold", LeadScoreThresholdParams, SAVED, _score_crosses, _score_why
    ),
    TriggerKind(
        "webhook_received",
        WebhookReceivedParams,
        frozenset(),
        lambda p, e: True,
        _fired_by("a signed delivery to the workflow's inbound webhook URL"),
    ),
    TriggerKind(
        "scheduled",
        ScheduledParams,
        frozenset(),
        lambda p, e: True,
        _fired_by(lambda p: f"the clock (cron {p.cron!r} in {p.timezone})"),
    ),
    TriggerKind(
        "invoice_overdue",
        InvoiceOverdueParams,
        frozenset(),
        lambda p, e: True,
        _fired_by("a timer once an unpaid invoice's due date has passed"),
    ),
    TriggerKind(
        "record_stalled",
        RecordStalledParams,
        frozenset(),
        lambda p, e: True,
        _fired_by(
            lambda p: f"a timer once a {p.record_type}'s {p.field} has kept its value for {p.for_}"
        ),
    ),
)

REGISTRY: Mapping[str, TriggerKind[Any]] = {kind.name: kind for kind in KINDS}

NOT_YET_AVAILABLE: frozenset[str] = frozenset()
"""Kinds of the contract not available in this release."""

KINDS_BY_OPERATION: Mapping[str, tuple[str, ...]] = {
    op: tuple(k.name for k in KINDS if op in k.operations)
    for op in ("created", "updated", "deleted")
}


def explain_trigger(
    kind: TriggerKind[Any], params: TriggerParams, tenant_id: str, event: ChangeEvent
) -> Explanation:
    """Whether a workflow of ``tenant_id`` with this trigger fires for ``event``, and why: the
    checks the processor makes (``decide``: the tenant, the record type, the operation, then
    the kind's test), the first that fails named, or the kind's own explanation."""
    if event.tenant_id != tenant_id:
        return Explanation(False, "the event belongs to another tenant", {})
    if not kind.operations:
        reason, values = kind.explain(params, event, False)
        return Explanation(False, reason, values)
    if event.record_type != params.record_type:
        return Explanation(
            False,
            f"it watches {params.record_type} records; this event is of a "
            f"{quoted(event.record_type)}",
            {"record_type": params.record_type},
        )
    if event.operation not in kind.operations:
        fires = " or ".join(sorted(kind.operations))
        return Explanation(
            False,
            f"it fires when a {params.record_type} is {fires}; this event is "
            f"{quoted(event.operation)}",
            {"operation": event.operation},
        )
    matched = kind.matches(params, event)
    reason, values = kind.explain(params, event, matched)
    return Explanation(matched, reason, values)


def resolve_trigger(spec: TriggerSpec) -> tuple[TriggerKind[Any], TriggerParams]:
    """Validate a workflow's trigger; ``InvalidWorkflow`` names every bad parameter."""
    kind = REGISTRY.get(spec.type)
    if kind is None:
        valid = ", ".join(REGISTRY)
        if spec.type in NOT_YET_AVAILABLE:
            msg = (
                f"trigger type {spec.type!r} is not available in this release yet; "
                f"use one of: {valid}"
            )
        else:
            msg = f"unknown trigger type {spec.type!r}; valid trigger types: {valid}"
        raise InvalidWorkflow([Problem("trigger.type", msg)])
    try:
        params = kind.params.model_validate(spec.model_dump(by_alias=True))
    except ValidationError as exc:
        raise InvalidWorkflow(problems_from(exc, "trigger")) from None
    return kind, params
