"""The run history: what the API shows of past runs, folded from ``workflow.runs`` and
``workflow.action-outcomes``. Pure: the replicas feed it, the API reads it.

Bounded three ways, all settings: runs per workflow, age, and runs in all (the oldest go
first). Each run is kept as the bytes of its latest record (the decided one, then the one the
run tracker publishes once its actions finished) plus every attempt of each action, so a
run in flight already shows its retries. Only what the history is indexed by is read when a
run comes in (a quarter of the cost of decoding it all); the whole record is decoded when it
is asked for.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from pydantic import BaseModel, ValidationError

from coeflow.errors import InvalidInput, Problem
from topics import codec
from topics.api import (
    Attempt,
    RunDetail,
    StepHistory,
)
from topics.events import RecordRef
from topics.outcomes import ActionOutcome
from topics.runs import RunRecord, RunStatus, StepStatus

log = logging.getLogger(__name__)

RecordKey = tuple[str, str, str]
"""(tenant id, record type, record id)."""

_PENDING_RUNS = 10_000
"""Outcomes read before their run (they sit on another partition): kept for this many runs."""


class IndexedRun(BaseModel):
    """The fields of a run record the history is indexed by."""

    run_id: str
    tenant_id: str
    workflow_id: str
    record: RecordRef
    status: RunStatus
    decided_at: datetime


_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _HotRecordRef(msgspec.Struct, frozen=True):
    type: _Text
    id: _Text


class HotIndexedRun(msgspec.Struct, frozen=True):
    """The indexed fields of a run as the history keeps them, read by msgspec where it can
    (``index_fields``; ``IndexedRun`` reads the rest and its answer is given in this shape).
    Every worker serving the API reads every run record for these fields, and msgspec passes
    over the fields it does not want (the embedded event, the conditions, the actions) at a
    third of pydantic's cost. ``tests/processor/core/test_history.py`` shows that what msgspec
    reads ``IndexedRun`` reads with the same values, but for two things: a time's seventh
    fractional digit, which msgspec rounds and pydantic drops (a microsecond, which only orders
    runs), and the fields passed over, which msgspec does not check (invalid UTF-8 in them,
    say). A run whose whole record does not decode is left out when it is asked for, as
    before (``_decoded``)."""

    run_id: str
    tenant_id: str
    workflow_id: str
    record: _HotRecordRef
    status: RunStatus
    decided_at: datetime


_HOT_INDEXED = msgspec.json.Decoder(HotIndexedRun)
_BRACKETS = 128
"""More ``[`` and ``{`` than this in a run record and pydantic reads it: msgspec reads arrays
nested 200 to 1,000 deep, which pydantic refuses, and raises ``RecursionError`` deeper still.
A run record as the processor writes it has a few dozen."""


def index_fields(value: bytes) -> HotIndexedRun:
    """What the history is indexed by in the run record ``value``; ``ValueError`` (pydantic's
    ``ValidationError``, with the reasons) if it is not a run record."""
    try:
        if value.count(b"[") + value.count(b"{") <= _BRACKETS:
            return _HOT_INDEXED.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError):  # the careful way reads it, or says why
        pass
    run = IndexedRun.model_validate_json(value)
    record = _HotRecordRef(run.record.type, run.record.id)
    return HotIndexedRun(
        run.run_id, run.tenant_id, run.workflow_id, record, run.status, run.decided_at
    )


PAGE_MAX_EXAMINED = 2_000
"""A page looks at this many runs at most: a filter that few runs pass answers fewer than its
limit (none, even) with a cursor that goes on, rather than holding the event loop while it
reads the whole history (100,000 runs took 0.2 s to 0.4 s)."""

PAGE_MAX_BYTES = 8 << 20
"""A page of runs holds at most this many bytes of run records (at least one run): runs embed
their events, up to 1 MiB each, and a page of 200 of those was 200 MB in one answer."""


@dataclass(slots=True)
class _Entry:
    value: bytes
    tenant_id: str
    workflow_id: str
    record: RecordKey
    status: str
    position: tuple[float, str]
    """(decided at, run id): the order of a workflow's runs."""
    attempts: dict[int, list[ActionOutcome]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunCounts:
    by_status: dict[str, int]
    last_run_id: str | None
    last_status: str | None
    last_decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunRecord]
    next_cursor: str | None


class RunHistory:
    """The runs the admin API shows, bounded per workflow, per record, per tenant (runs and
    bytes: one tenant's flood evicts its own runs, never another's) and in all (runs and
    bytes, the oldest first)."""

    def __init__(
        self,
        per_workflow: int,
        max_age: timedelta,
        max_runs: int,
        per_record: int = 50,
        *,
        per_tenant: int | None = None,
        max_bytes: int | None = None,
        tenant_bytes: int | None = None,
    ) -> None:
        self.per_workflow, self.max_age, self.max_runs = per_workflow, max_age, max_runs
        self.per_record = per_record
        self.per_tenant = per_tenant or max_runs
        self.max_bytes = max_bytes or 1 << 62
        self.tenant_bytes = tenant_bytes or self.max_bytes
        self._bytes = 0
        # Ordered dicts, not dicts, for what is evicted oldest first: a dict keeps the slots of
        # the entries deleted at its front until it is resized, so its first key is found by
        # stepping over all of them, and at the bound every run added evicted one (a run cost
        # 4 µs while the history filled and 39 µs once full).
        self._tenants: dict[str, OrderedDict[str, None]] = {}
        """Each tenant's run ids in the order they arrived, and (``_tenant_size``) their bytes."""
        self._tenant_size: dict[str, int] = {}
        self._runs: OrderedDict[str, _Entry] = OrderedDict()
        """Every run, in the order they arrived: the global bound."""
        self._by_workflow: dict[str, list[tuple[float, str]]] = {}
        self._by_record: dict[RecordKey, list[str]] = {}  # lists: a deque costs 600 bytes
        self._pending: OrderedDict[str, dict[int, list[ActionOutcome]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def add_run(self, value: bytes, run: HotIndexedRun | None = None) -> None:
        """Keep the run record ``value`` (``run``: its indexed fields, if already read);
        ``ValueError`` (a ``ValidationError`` among them) if it is not one."""
        if run is None:
            run = index_fields(value)
        entry = self._runs.get(run.run_id)
        if entry is not None:  # the run again: completed, or read twice
            self._count(entry.tenant_id, len(value) - len(entry.value))
            entry.value, entry.status = value, run.status
            self._bound(entry.tenant_id)
            return
        position = (run.decided_at.timestamp(), run.run_id)
        runs = self._by_workflow.get(run.workflow_id, [])
        if len(runs) >= self.per_workflow and position < runs[0]:
            return  # completed after it left the history: it would be the first to go
        own = self._tenants.get(run.tenant_id)
        if own and len(own) >= self.per_tenant and position < self._runs[next(iter(own))].position:
            return  # likewise past the tenant's bound: it would push out a newer run
        record = (run.tenant_id, run.record.type, run.record.id)
        entry = _Entry(value, run.tenant_id, run.workflow_id, record, run.status, position)
        entry.attempts = self._pending.pop(run.run_id, {})
        self._runs[run.run_id] = entry
        self._tenants.setdefault(run.tenant_id, OrderedDict())[run.run_id] = None
        self._count(run.tenant_id, len(value))
        runs = self._by_workflow.setdefault(run.workflow_id, runs)
        if not runs or runs[-1] < position:
            runs.append(position)  # the usual order: a run decided after the workflow's others
        else:
            bisect.insort(runs, position)
        of_record = self._by_record.setdefault(record, [])
        of_record.append(run.run_id)
        if len(of_record) > self.per_record:
            del of_record[0]
        while len(runs) > self.per_workflow:
            self._evict(runs[0][1])
        self._bound(run.tenant_id)

    def _count(self, tenant_id: str, size: int) -> None:
        self._bytes += size
        self._tenant_size[tenant_id] = self._tenant_size.get(tenant_id, 0) + size

    def _bound(self, tenant_id: str) -> None:
        """Evict the tenant's oldest runs past its bounds, then the oldest of all past the
        history's (kept apart, a tenant's flood takes none of another's runs until the whole
        history is full)."""
        own = self._tenants.get(tenant_id)
        while own and (
            len(own) > self.per_tenant or self._tenant_size[tenant_id] > self.tenant_bytes
        ):
            self._evict(next(iter(own)))
        while self._runs and (len(self._runs) > self.max_runs or self._bytes > self.max_bytes):
            self._evict(next(iter(self._runs)))

    def add_outcome(self, outcome: ActionOutcome) -> None:
        entry = self._runs.get(outcome.run_id)
        if entry is not None:
            attempts = entry.attempts
        else:
            attempts = self._pending.setdefault(outcome.run_id, {})
            if len(self._pending) > _PENDING_RUNS:
                self._pending.popitem(last=False)
        known = attempts.setdefault(outcome.step, [])
        if all(a.attempt != outcome.attempt or a.status != outcome.status for a in known):
            known.append(outcome)
            known.sort(key=lambda a: (a.attempt, a.final))

    def expire(self, now: datetime) -> int:
        """Forget runs decided longer than ``max_age`` ago; how many went."""
        cutoff = (now - self.max_age).timestamp()
        old = [
            run_id
            for runs in self._by_workflow.values()
            for _, run_id in runs[: bisect.bisect_left(runs, (cutoff, ""))]
        ]
        for run_id in old:
            self._evict(run_id)
        return len(old)

    def get(self, run_id: str) -> tuple[RunRecord, dict[int, list[ActionOutcome]]] | None:
        entry = self._runs.get(run_id)
        if entry is None:
            return None
        run = _decoded(entry)
        return (run, entry.attempts) if run is not None else None

    def page(
        self,
        workflow_id: str,
        *,
        limit: int,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs of a workflow, newest first: those decided at or after ``since`` and before
        ``until``, after ``cursor`` (the previous page's ``next_cursor``)."""
        return self.search(
            [workflow_id], limit=limit, status=status, since=since, until=until, cursor=cursor
        )

    def workflows_of(self, tenant_id: str | None) -> list[str]:
        """The workflows with kept runs of ``tenant_id`` (``None``: of every tenant)."""
        return [
            workflow_id
            for workflow_id, runs in self._by_workflow.items()
            if tenant_id is None or self._runs[runs[0][1]].tenant_id == tenant_id
        ]

    def search(
        self,
        workflow_ids: Iterable[str],
        *,
        limit: int,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        record: tuple[str | None, str | None] | None = None,
    ) -> RunPage:
        """Runs of any of ``workflow_ids``, newest first, as ``page`` filters them, and of
        ``record`` ((record type or ``None`` for any, record id or ``None`` for any record of
        that type)) when it is given. Each
        workflow's runs are already in order; their merge is read from the newest down and
        stops at the page's end (or after ``PAGE_MAX_EXAMINED`` runs), decoding only the runs
        it returns."""
        floor = since.timestamp() if since is not None else float("-inf")
        ceiling = (until.timestamp(), "") if until is not None else None
        after = decode_cursor(cursor) if cursor is not None else None
        heads: list[tuple[tuple[float, str], list[tuple[float, str]], int]] = []
        for workflow_id in workflow_ids:
            runs = self._by_workflow.get(workflow_id, [])
            end = len(runs)
            if ceiling is not None:
                end = bisect.bisect_left(runs, ceiling)
            if after is not None:
                end = min(end, bisect.bisect_left(runs, after))
            if end > 0 and runs[end - 1][0] >= floor:
                heads.append((runs[end - 1], runs, end))
        # The page looks at PAGE_MAX_EXAMINED runs at most, and each comes from a workflow
        # whose newest run is among that many newest: only those workflows are merged.
        heads.sort(key=lambda head: head[0], reverse=True)
        lanes = [_newest_first(runs, end) for _, runs, end in heads[: PAGE_MAX_EXAMINED + 1]]
        found: list[RunRecord] = []
        size = 0
        last: tuple[float, str] | None = None  # the last run looked at: the cursor's place
        for examined, position in enumerate(heapq.merge(*lanes, reverse=True)):
            if position[0] < floor:
                break
            entry = self._runs[position[1]]
            if (
                len(found) >= limit
                or (found and size + len(entry.value) > PAGE_MAX_BYTES)
                or examined >= PAGE_MAX_EXAMINED
            ):
                # full by count, size or work done: the cursor goes on from this run
                return RunPage(found, encode_cursor(last) if last is not None else None)
            last = position
            if (
                (status is None or entry.status == status)
                and (record is None or _of_record(entry.record, record))
                and (run := _decoded(entry)) is not None
            ):
                found.append(run)
                size += len(entry.value)
        return RunPage(found, None)

    def counts(self, workflow_id: str, since: datetime) -> RunCounts:
        """A workflow's runs decided at or after ``since``, by status, and its newest run of
        all: read from the index, without decoding a run."""
        runs = self._by_workflow.get(workflow_id, [])
        start = bisect.bisect_left(runs, (since.timestamp(), ""))
        by_status: dict[str, int] = {}
        for _, run_id in runs[start:]:
            status = self._runs[run_id].status
            by_status[status] = by_status.get(status, 0) + 1
        if not runs:
            return RunCounts(by_status, None, None, None)
        decided_at, run_id = runs[-1]
        newest = datetime.fromtimestamp(decided_at, UTC)
        return RunCounts(by_status, run_id, self._runs[run_id].status, newest)

    def of_record(self, record: RecordKey) -> list[RunRecord]:
        """The kept runs of one record's events, newest first."""
        run_ids = self._by_record.get(record, ())
        runs = [
            run for r in run_ids if r in self._runs and (run := _decoded(self._runs[r])) is not None
        ]
        return sorted(runs, key=lambda r: (r.occurred_at, r.decided_at), reverse=True)

    def _evict(self, run_id: str) -> None:
        entry = self._runs.pop(run_id)
        own = self._tenants[entry.tenant_id]
        del own[run_id]
        self._count(entry.tenant_id, -len(entry.value))
        if not own:
            del self._tenants[entry.tenant_id], self._tenant_size[entry.tenant_id]
        runs = self._by_workflow[entry.workflow_id]
        if runs[0] == entry.position:
            del runs[0]  # the usual eviction: the workflow's oldest
        else:
            del runs[bisect.bisect_left(runs, entry.position)]
        if not runs:
            del self._by_workflow[entry.workflow_id]
        of_record = self._by_record.get(entry.record)
        if of_record is not None:
            if run_id in of_record:
                of_record.remove(run_id)
            if not of_record:
                del self._by_record[entry.record]


def _decoded(entry: _Entry) -> RunRecord | None:
    """The whole run; ``None`` (logged) if its record was indexed but is not a valid run."""
    try:
        return codec.decode(entry.value, RunRecord)
    except (ValueError, ValidationError) as exc:
        log.warning("run history: leaving out an undecodable run: %s", exc)
        return None


def _newest_first(runs: list[tuple[float, str]], end: int) -> Iterator[tuple[float, str]]:
    """``runs[:end]`` from the last, read lazily: a page reads only the runs it shows."""
    return (runs[i] for i in range(end - 1, -1, -1))


def _of_record(key: RecordKey, wanted: tuple[str | None, str | None]) -> bool:
    record_type, record_id = wanted
    return (record_id is None or key[2] == record_id) and (
        record_type is None or key[1] == record_type
    )


def encode_cursor(position: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(codec.dumps(list(position))).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decided_at, run_id = codec.loads(raw)
        if isinstance(decided_at, int | float) and isinstance(run_id, str):
            return float(decided_at), run_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidInput([Problem("cursor", "not a cursor this API gave out")])


def run_detail(run: RunRecord, attempts: dict[int, list[ActionOutcome]]) -> RunDetail:
    """A run with each step's attempts; a step still in flight shows its latest attempt's
    status (``pending`` before any)."""
    steps = []
    for action in run.actions:
        tried = attempts.get(action.step, [])
        status: StepStatus = action.status
        if status == "pending" and tried:
            status = tried[-1].status
        steps.append(
            StepHistory(
                step=action.step,
                type=action.type,
                action_id=action.action_id,
                params=action.params,
                status=status,
                attempts=[
                    Attempt(
                        attempt=a.attempt,
                        status=a.status,
                        detail=a.detail,
                        error=a.error,
                        at=a.at,
                        next_attempt_at=a.next_attempt_at,
                    )
                    for a in tried
                ],
            )
        )
    return RunDetail(run=run, steps=steps)
