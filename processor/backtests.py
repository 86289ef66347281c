"""Backtests of the api role: each runs the pure fold (``processor/core/backtest.py``) over the
tenant's retained ``crm.record-changes``, in a child process of its own, and its state lives in
the memory of the worker that runs it.

Why a child process: a backtest may fold a million events, and this worker's event loop also
serves the admin API and, in a worker with every role, the live processor. A process of its own
(``spawn``: a fresh interpreter, nothing of the worker's state or threads) at a lower CPU
priority (``nice`` 10) keeps that CPU off the loop and below live work in the kernel's
scheduler, and ``DELETE`` can end it at once.

What the child does (``run_child``): its own producer appends a fence to every partition of
``crm.record-changes`` (``processor/replica.py`` ``write_fences``: the embedded broker's end
offsets are not exact), and its own consumer, outside every group, reads each partition from
the beginning up to its fence. Only messages with the tenant id's bytes in them are decoded
(and any with a ``\\u`` or ``\\/`` escape, which could spell the id otherwise): the topic is not
split by tenant, and decoding every tenant's changes would cost most of the scan. It reports
progress and then the result, or why it failed, through a pipe.

The manager (``Backtests``) keys backtests by id, runs at most ``COEFLOW_BACKTEST_SLOTS`` at
once and queues the rest, refuses a tenant's one too many (``COEFLOW_BACKTEST_PER_TENANT``),
and forgets a finished one after ``COEFLOW_BACKTEST_KEEP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from mode import Service

from coeflow.clock import Clock
from coeflow.errors import CoeflowError, InvalidInput
from coeflow.redact import without_values
from coeflow.settings import Settings
from processor.core.backtest import Replay, ReplaySpec, shown_time
from processor.core.backtest_versions import ChosenVersions
from processor.core.compiler import compile_workflow
from processor.core.pipeline import decode_change
from processor.replica import write_fences
from topics import codec
from topics.backtests import Backtest, BacktestProgress, BacktestResult, BacktestState
from topics.catalog import RECORD_CHANGES
from topics.workflows import Workflow

log = logging.getLogger(__name__)

NICENESS = 10
"""How much lower than the worker a backtest's process runs (``os.nice``)."""

MAX_QUEUED = 100
"""Backtests waiting for a slot on one worker, every tenant's together."""

MAX_FINISHED_PER_TENANT = 20
"""Finished backtests one tenant keeps before ``COEFLOW_BACKTEST_KEEP`` is up (the oldest go):
each holds a result of up to ``COEFLOW_BACKTEST_MAX_CHANGED`` changed events."""

MAX_KEPT_BYTES = 256 << 20
"""Bytes of results one worker keeps in all, every tenant's (as the child sent them, and the
answer encoded once it is asked for): past it the oldest finished backtests go first, whatever
``COEFLOW_BACKTEST_KEEP`` says."""

_REPORT_EVERY = 0.25
"""Seconds between the child's progress reports."""

MAX_SECONDS = 1800.0
"""How long one backtest may scan before it stops where it is and answers with what it has
(``stopped_early`` says so): a definition may make each event cost its whole rendering budget,
and a backtest of a long history would then hold its slot, and every tenant's queue behind it,
for hours."""

SILENT_LIMIT = 300.0
"""Seconds a running backtest's child may go without a report before it is ended and the
backtest fails: it reports after every batch it reads, so one this quiet waits on a broker
that no longer answers, and would hold its slot for ever."""

_EXPIRE_EVERY = 30.0

_CHILD_GC_THRESHOLDS = (50_000, 20, 100)
"""The child's cyclic collector: a young collection every 50,000 allocations, not 700."""

FINISHED: frozenset[BacktestState] = frozenset({"done", "failed", "cancelled"})


class TooManyBacktests(CoeflowError):
    """A backtest refused for now: the tenant's limit, or the worker's queue, is full."""


# -- what the child is handed, and what it says -------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestJob:
    """Everything the child needs, picklable: the versions as documents (compiled again in the
    child: compiled conditions are closures)."""

    backtest_id: str
    tenant_id: str
    bootstrap: str
    candidate: dict[str, Any]
    candidate_version: int | None
    baseline: dict[str, Any] | None
    baseline_version: int | None
    since: datetime
    until: datetime
    max_events: int
    max_changed: int
    max_records: int
    max_depth: int
    max_event_bytes: int
    max_seconds: float = MAX_SECONDS

    def spec(self) -> ReplaySpec:
        candidate = compile_workflow(Workflow.model_validate(self.candidate))
        baseline = (
            compile_workflow(Workflow.model_validate(self.baseline))
            if self.baseline is not None
            else None
        )
        return ReplaySpec(
            candidate=candidate,
            candidate_version=self.candidate_version,
            baseline=baseline,
            baseline_version=self.baseline_version,
            since=self.since,
            until=self.until,
            max_events=self.max_events,
            max_changed=self.max_changed,
            max_records=self.max_records,
            max_depth=self.max_depth,
        )


@dataclass(frozen=True, slots=True)
class Progress:
    messages_read: int
    messages_total: int | None
    events_scanned: int


@dataclass(frozen=True, slots=True)
class Finished:
    result: bytes
    """The ``BacktestResult`` as JSON (``topics/codec.py`` of the model)."""


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Report = Progress | Finished | Failed


# -- the child ----------------------------------------------------------------------------


class Fold(Protocol):
    """What the scan feeds (``processor.core.backtest.Replay``)."""

    events_scanned: int

    def feed(self, event: Any) -> bool: ...

    def skip_invalid(self) -> None: ...

    def stop(self, why: str) -> None: ...

    def result(self) -> BacktestResult: ...


class Record(Protocol):
    """What the scan reads of a consumed message (aiokafka's ``ConsumerRecord``)."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def tenant_needles(tenant_id: str) -> tuple[bytes, ...]:
    """Bytes one of which a JSON message naming ``tenant_id`` must contain: the id as JSON
    writes it (without its quotes), or an escape that could spell it otherwise."""
    return (orjson.dumps(tenant_id)[1:-1], b"\\u", b"\\/")


class Scan:
    """Feeds a fold from consumed messages: the fence and other nulls skipped, other tenants'
    messages skipped by their bytes, the rest decoded as the live processor decodes them."""

    def __init__(
        self,
        fold: Fold,
        tenant_id: str,
        max_event_bytes: int,
        time_limit: float | None = None,
    ) -> None:
        self.fold = fold
        self.needles = tenant_needles(tenant_id)
        self.max_event_bytes = max_event_bytes
        self.time_limit = time_limit
        self.deadline = None if time_limit is None else time.monotonic() + time_limit
        self.messages_read = 0
        self.full = False

    def take(self, records: Sequence[Record]) -> bool:
        """Fold ``records`` in; ``False`` once the fold wants no more (``max_events``), or
        past the time limit (checked at each of the tenant's changes, whose rendering may be
        slow, and after each batch)."""
        fold, needles, limit, deadline = (
            self.fold,
            self.needles,
            self.max_event_bytes,
            self.deadline,
        )
        for record in records:
            self.messages_read += 1
            value = record.value
            if value is None or not any(n in value for n in needles):
                continue  # a fence, a tombstone, another tenant's change
            try:
                event = decode_change(value, limit)
            except InvalidInput:
                fold.skip_invalid()  # the live processor dead-letters it
                continue
            if not fold.feed(event):
                self.full = True
                return False
            if deadline is not None and time.monotonic() > deadline:
                return self._out_of_time()
        if deadline is not None and time.monotonic() > deadline:  # other tenants' messages
            return self._out_of_time()
        return True

    def _out_of_time(self) -> bool:
        self.fold.stop(f"the time limit ({self.time_limit:g} s a backtest may scan) reached")
        self.full = True
        return False


async def fenced_history(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str = RECORD_CHANGES
) -> tuple[int, AsyncIterator[Sequence[Any]]]:
    """An estimate of the messages to read, and the batches of every partition of ``topic``
    from the beginning up to a fence written now (in each partition's order)."""
    known = consumer.partitions_for_topic(topic)
    if not known:
        await consumer.topics()  # refreshes the metadata
        known = consumer.partitions_for_topic(topic)
    if not known:
        raise RuntimeError(f"the topic {topic} has no partitions")
    partitions = [TopicPartition(topic, p) for p in sorted(known)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    fences = await write_fences(producer, partitions)
    first = await consumer.beginning_offsets(partitions)
    total = sum(max(fences[tp] - first.get(tp, 0), 0) for tp in partitions)

    async def batches() -> AsyncIterator[Sequence[Any]]:
        left = {tp for tp in partitions if fences[tp] > first.get(tp, 0)}
        consumer.pause(*(set(partitions) - left))
        while left:
            fetched = await consumer.getmany(*left, timeout_ms=500, max_records=2000)
            for tp, records in fetched.items():
                fence = fences[tp]
                before = [r for r in records if r.offset < fence]
                if len(before) < len(records) or (records and records[-1].offset + 1 >= fence):
                    left.discard(tp)
                    consumer.pause(tp)
                if before:
                    yield before

    return total, batches()


async def scan_history(job: BacktestJob, report: Callable[[Report], None]) -> BacktestResult:
    """The backtest itself: fence, read, fold, with progress reports."""
    fold = Replay(job.spec())
    scan = Scan(fold, job.tenant_id, job.max_event_bytes, job.max_seconds)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=job.bootstrap,
        client_id=f"backtest-{job.backtest_id}",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    producer = AIOKafkaProducer(bootstrap_servers=job.bootstrap, acks=-1)
    await consumer.start()
    try:
        await producer.start()
        try:
            total, batches = await fenced_history(consumer, producer)
        finally:
            await producer.stop()
        report(Progress(0, total, 0))
        reported = time.monotonic()
        async for batch in batches:
            going = scan.take(batch)
            now = time.monotonic()
            if now - reported >= _REPORT_EVERY:
                report(Progress(scan.messages_read, total, fold.events_scanned))
                reported = now
            if not going:
                break
        report(Progress(scan.messages_read, total, fold.events_scanned))
    finally:
        await consumer.stop()
    return fold.result()


def run_child(job: BacktestJob, connection: Connection) -> None:
    """The child process's entry point: lower its priority, scan, send the result."""
    with contextlib.suppress(OSError):  # a platform or sandbox without it: run anyway
        os.nice(NICENESS)
    # What this process imported and compiled lives until it ends, and the fold allocates
    # an object or more per event: keep the cyclic collector off the first, and from running
    # every few hundred allocations, which costs the scan much of its speed.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_CHILD_GC_THRESHOLDS)
    try:
        result = asyncio.run(scan_history(job, connection.send))
        connection.send(Finished(result.model_dump_json().encode()))
    except Exception as exc:  # whatever it is, the parent must hear why
        connection.send(Failed(failure_reason(exc)))
    finally:
        connection.close()


def failure_reason(exc: BaseException) -> str:
    """What a failed backtest says: the error's kind and message, without values pydantic
    quotes from the data (which may be personal)."""
    text = without_values(str(exc)).strip()
    return f"{type(exc).__name__}: {text[:500]}" if text else type(exc).__name__


# -- the parent ---------------------------------------------------------------------------


class Child(Protocol):
    """A started backtest process (``multiprocessing.Process`` as far as the manager uses it)."""

    @property
    def exitcode(self) -> int | None: ...

    def terminate(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


Launch = Callable[[BacktestJob], tuple[Child, Connection]]
"""Start a job: its process, and the end of the pipe its reports arrive on."""


def spawn_child(job: BacktestJob) -> tuple[Child, Connection]:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=run_child, args=(job, sending), name=f"backtest-{job.backtest_id}", daemon=True
    )
    process.start()
    sending.close()  # the child holds its copy: EOF here once it ends
    return process, receiving


@dataclass
class _Entry:
    state: Backtest
    job: BacktestJob
    child: Child | None = None
    connection: Connection | None = None
    finished_at: float | None = None
    """Monotonic time it finished (for ``COEFLOW_BACKTEST_KEEP``)."""
    size: int = 0
    """Bytes of its result as the child sent it, and of ``encoded`` once made (for
    ``MAX_KEPT_BYTES``)."""
    reported_at: float | None = None
    """Monotonic time its child started or last reported (for ``SILENT_LIMIT``)."""
    encoded: bytes | None = None
    """A finished backtest as the API answers it, encoded once: a result can be megabytes,
    and clients poll."""


class Backtests(Service):
    """The backtests of this worker, by id; each tenant sees its own (``get``)."""

    def __init__(
        self, settings: Settings, clock: Clock, launch: Launch = spawn_child, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings, self.clock, self.launch = settings, clock, launch
        self.entries: dict[str, _Entry] = {}
        self.waiting: deque[str] = deque()
        self.running: set[str] = set()

    # -- what the API calls -----------------------------------------------------------

    def start_backtest(
        self,
        tenant_id: str,
        workflow_id: str,
        chosen: ChosenVersions,
        since: datetime,
        until: datetime,
        max_events: int,
    ) -> Backtest:
        """Run (or queue) a backtest; ``TooManyBacktests`` when the tenant or the worker has
        too many waiting or running."""
        settings = self.settings
        busy = sum(
            1
            for e in self.entries.values()
            if e.state.tenant_id == tenant_id and e.state.status not in FINISHED
        )
        if busy >= settings.backtest_per_tenant:
            raise TooManyBacktests(
                f"this tenant has {busy} backtests queued or running on this worker, the most "
                f"it may (COEFLOW_BACKTEST_PER_TENANT); wait for one to finish or cancel one"
            )
        if len(self.waiting) >= MAX_QUEUED:
            raise TooManyBacktests(
                f"{len(self.waiting)} backtests are waiting on this worker already; retry later"
            )
        backtest_id = f"bt-{uuid.uuid4().hex}"
        job = BacktestJob(
            backtest_id=backtest_id,
            tenant_id=tenant_id,
            bootstrap=settings.bootstrap,
            candidate=chosen.candidate.workflow.model_dump(mode="json", by_alias=True),
            candidate_version=chosen.candidate_version,
            baseline=(
                chosen.baseline.workflow.model_dump(mode="json", by_alias=True)
                if chosen.baseline is not None
                else None
            ),
            baseline_version=chosen.baseline_version,
            since=since,
            until=until,
            max_events=max_events,
            max_changed=settings.backtest_max_changed,
            max_records=settings.backtest_max_records,
            max_depth=settings.max_causation_depth,
            max_event_bytes=settings.max_event_bytes,
        )
        state = Backtest(
            backtest_id=backtest_id,
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            status="queued",
            candidate_version=chosen.candidate_version,
            baseline_version=chosen.baseline_version,
            since=since,
            until=until,
            max_events=max_events,
            created_at=self.clock(),
        )
        self.entries[backtest_id] = _Entry(state, job)
        self.waiting.append(backtest_id)
        self._start_waiting()
        return state

    def get(self, backtest_id: str, tenant_id: str | None) -> Backtest | None:
        """The backtest, if ``tenant_id`` may see it (``None``: the operator, every tenant)."""
        entry = self.entries.get(backtest_id)
        if entry is None or (tenant_id is not None and entry.state.tenant_id != tenant_id):
            return None
        return entry.state

    def encoded(self, backtest_id: str) -> bytes | None:
        """A finished backtest's whole answer, encoded once (``None``: not finished, or not
        known); ``get`` says first whether the caller may see it."""
        entry = self.entries.get(backtest_id)
        if entry is None or entry.state.status not in FINISHED:
            return None
        encoded = entry.encoded
        if encoded is None:
            encoded = entry.encoded = codec.dumps(entry.state)
            entry.size += len(encoded)  # a second copy of the result: within the same bound
            self._bound_finished(entry.state.tenant_id)
        return encoded

    def cancel(self, backtest_id: str, why: str = "cancelled (DELETE)") -> Backtest | None:
        """Stop a queued or running backtest (its process is terminated); a finished one stays
        as it is."""
        entry = self.entries.get(backtest_id)
        if entry is None:
            return None
        if entry.state.status in FINISHED:
            return entry.state
        if backtest_id in self.waiting:
            self.waiting.remove(backtest_id)
        self._finish(entry, "cancelled", error=why)
        self._start_waiting()
        return entry.state

    # -- running ----------------------------------------------------------------------

    def _start_waiting(self) -> None:
        while self.waiting and len(self.running) < self.settings.backtest_slots:
            entry = self.entries[self.waiting.popleft()]
            try:
                child, connection = self.launch(entry.job)
            except Exception as exc:
                log.exception("backtest %s: its process did not start", entry.job.backtest_id)
                self._finish(entry, "failed", error=f"its process did not start: {exc}")
                continue
            entry.child, entry.connection = child, connection
            entry.reported_at = time.monotonic()
            entry.state.status = "running"
            log.info(
                "backtest %s of %s (tenant %s) started",
                entry.job.backtest_id,
                entry.state.workflow_id,
                entry.state.tenant_id,
            )
            entry.state.started_at = self.clock()
            self.running.add(entry.job.backtest_id)
            asyncio.get_running_loop().add_reader(
                connection.fileno(), self._on_report, entry.job.backtest_id
            )

    def _on_report(self, backtest_id: str) -> None:
        """The child's pipe is readable: a report, or its end."""
        entry = self.entries.get(backtest_id)
        if entry is None or entry.connection is None:
            return
        connection = entry.connection
        try:
            while connection.poll():
                report = connection.recv()
                entry.reported_at = time.monotonic()
                self._apply(entry, report)
                if entry.state.status in FINISHED:
                    return
        except (EOFError, OSError):
            code = entry.child.exitcode if entry.child is not None else None
            self._finish(
                entry,
                "failed",
                error="the backtest's process ended without a result"
                + (f" (exit code {code})" if code is not None else ""),
            )
            self._start_waiting()
        except Exception:  # a report this worker cannot read (a bug): fail it, not the loop
            log.exception("backtest %s: its report could not be read", backtest_id)
            if entry.state.status not in FINISHED:
                if entry.child is not None:
                    entry.child.terminate()
                self._finish(entry, "failed", error="internal error; the worker log has it")
                self._start_waiting()

    def _apply(self, entry: _Entry, report: Report) -> None:
        state = entry.state
        if isinstance(report, Progress):
            state.progress = BacktestProgress(
                messages_read=report.messages_read,
                messages_total=report.messages_total,
                events_scanned=report.events_scanned,
            )
        elif isinstance(report, Finished):
            result = BacktestResult.model_validate_json(report.result)
            entry.size = len(report.result)
            state.progress = BacktestProgress(
                messages_read=state.progress.messages_read,
                messages_total=state.progress.messages_total,
                events_scanned=result.events_scanned,
            )
            empty = no_history(result)
            self._finish(entry, "failed" if empty else "done", error=empty, result=result)
            self._start_waiting()
        else:
            self._finish(entry, "failed", error=report.reason)
            self._start_waiting()

    def _finish(
        self,
        entry: _Entry,
        status: BacktestState,
        *,
        error: str | None = None,
        result: BacktestResult | None = None,
    ) -> None:
        backtest_id = entry.job.backtest_id
        self.running.discard(backtest_id)
        if entry.connection is not None:
            connection, entry.connection = entry.connection, None
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(connection.fileno())
            connection.close()
        if entry.child is not None:
            child, entry.child = entry.child, None
            if status == "cancelled":
                child.terminate()
            # Reaped off the loop: a child that does not end at once must not hold it.
            asyncio.get_running_loop().run_in_executor(None, child.join, 10.0)
        entry.state.status = status
        entry.state.error = error
        entry.state.result = result
        entry.state.finished_at = self.clock()
        entry.finished_at = time.monotonic()
        log.info(  # ids and counts only: the error may quote the tenant's workflow
            "backtest %s %s: %d record changes scanned",
            backtest_id,
            status,
            entry.state.progress.events_scanned,
        )
        self._bound_finished(entry.state.tenant_id)

    def _bound_finished(self, tenant_id: str) -> None:
        """The tenant's newest ``MAX_FINISHED_PER_TENANT`` finished backtests stay, and the
        newest results within ``MAX_KEPT_BYTES`` of every tenant's."""
        finished = sorted(
            (e for e in self.entries.values() if e.finished_at is not None),
            key=lambda e: e.finished_at or 0.0,
            reverse=True,
        )
        kept_of_tenant = kept_bytes = 0
        for entry in finished:
            kept_bytes += entry.size
            past_count = False  # only the tenant's own older ones go for its count
            if entry.state.tenant_id == tenant_id:
                kept_of_tenant += 1
                past_count = kept_of_tenant > MAX_FINISHED_PER_TENANT
            if kept_bytes > MAX_KEPT_BYTES or past_count:
                del self.entries[entry.job.backtest_id]
                kept_bytes -= entry.size

    def expire(self, now: float) -> None:
        """Forget backtests finished more than ``COEFLOW_BACKTEST_KEEP`` before ``now``
        (monotonic), and fail running ones silent for ``SILENT_LIMIT``."""
        keep = self.settings.backtest_keep
        for backtest_id, entry in list(self.entries.items()):
            if entry.finished_at is not None and now - entry.finished_at > keep:
                del self.entries[backtest_id]
            elif (
                entry.child is not None
                and entry.reported_at is not None
                and now - entry.reported_at > SILENT_LIMIT
            ):
                entry.child.terminate()
                self._finish(
                    entry,
                    "failed",
                    error=f"its process reported nothing for {SILENT_LIMIT:g} s (is the broker "
                    "answering?); it was stopped",
                )
        self._start_waiting()

    @Service.timer(_EXPIRE_EVERY)
    async def _expire(self) -> None:
        self.expire(time.monotonic())

    async def on_stop(self) -> None:
        waiting, self.waiting = list(self.waiting), deque()  # none starts as others end
        for backtest_id in waiting + list(self.running):
            self.cancel(backtest_id, "the worker stopped")


def no_history(result: BacktestResult) -> str | None:
    """Why a backtest that scanned nothing cannot answer, or ``None`` when it scanned some:
    the window holds none of the tenant's retained record changes. Told once the scan is done,
    not at ``POST``: only reading the topic knows a tenant's history."""
    if result.events_scanned > 0 or result.timers_fired > 0:
        return None
    window = result.window
    if window.history_from is None:
        return "no record change of this tenant is retained: there is no history to replay"
    if window.history_from > window.until:
        return (
            "the retained record changes of this tenant begin at "
            f"{shown_time(window.history_from)}, after the window's end"
        )
    return "no record change of this tenant happened inside the window"
