"""The backtests' shell without a broker: the scan over fake messages and a fake fold, and the
manager over fake child processes that report through a real pipe."""

from __future__ import annotations

import asyncio
import multiprocessing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import pytest

from coeflow.settings import Settings
from processor.backtests import (
    BacktestJob,
    Backtests,
    Failed,
    Finished,
    Progress,
    Scan,
    TooManyBacktests,
    failure_reason,
    no_history,
)
from processor.core.backtest_versions import choose_versions
from tests.factories import NOW, make_event, make_workflow
from topics import codec
from topics.backtests import Backtest, BacktestResult, BacktestWindow, SideSummary
from topics.catalog import FENCE_KEY

SINCE, UNTIL = NOW - timedelta(days=7), NOW


# -- the scan ------------------------------------------------------------------------------


@dataclass
class Message:
    key: bytes | None
    value: bytes | None


@dataclass
class FakeFold:
    room: int = 1_000
    fed: list[Any] = field(default_factory=list)
    invalid: int = 0
    events_scanned: int = 0
    stopped: str | None = None

    def feed(self, event: Any) -> bool:
        self.fed.append(event)
        self.events_scanned += 1
        return len(self.fed) < self.room

    def skip_invalid(self) -> None:
        self.invalid += 1

    def stop(self, why: str) -> None:
        self.stopped = why

    def result(self) -> BacktestResult:
        return result(self.events_scanned)


def change(tenant_id: str, n: int) -> Message:
    event = make_event(tenant_id=tenant_id, record_id=f"L-{n}")
    return Message(f"L-{n}".encode(), codec.dumps(event))


def test_the_scan_decodes_only_messages_that_can_be_the_tenants() -> None:
    fold = FakeFold()
    escaped = codec.dumps(make_event(tenant_id="acme", record_id="L-4")).replace(
        b'"acme"', b'"\\u0061cme"'
    )
    messages = [
        Message(FENCE_KEY, None),  # a fence
        Message(b"L-0", None),  # a tombstone
        change("globex", 1),
        change("acme", 2),
        Message(b"L-3", b'{"tenant_id": "acme", not json'),
        Message(b"L-4", escaped),
        change("acmeish", 5),  # its bytes hold acme's: decoded, the fold checks the tenant
    ]
    scan = Scan(fold, "acme", max_event_bytes=1 << 20)
    assert scan.take(messages) is True
    assert scan.messages_read == len(messages) and fold.invalid == 1
    assert [(e.tenant_id, e.record_id) for e in fold.fed] == [
        ("acme", "L-2"),
        ("acme", "L-4"),  # the escape decoded
        ("acmeish", "L-5"),
    ]


def test_a_tenant_id_that_json_escapes_is_looked_for_as_json_writes_it() -> None:
    fold = FakeFold()
    Scan(fold, 'ac"me', max_event_bytes=1 << 20).take([change('ac"me', 1), change("acme", 2)])
    assert [e.tenant_id for e in fold.fed] == ['ac"me']


def test_the_scan_stops_once_the_fold_is_full() -> None:
    fold = FakeFold(room=2)
    scan = Scan(fold, "acme", max_event_bytes=1 << 20)
    assert scan.take([change("acme", n) for n in range(5)]) is False
    assert len(fold.fed) == 2 and scan.full and scan.messages_read == 2


def test_the_scan_stops_at_its_deadline_and_the_fold_says_why() -> None:
    """A definition may make each event cost its whole rendering budget: a backtest of a long
    history would then hold its slot for hours. Past its deadline the scan stops, as at
    ``max_events``, and the result says so."""
    fold = FakeFold()
    scan = Scan(fold, "acme", max_event_bytes=1 << 20, time_limit=3600)
    assert scan.take([change("acme", n) for n in range(3)]) is True and fold.stopped is None
    late = Scan(fold, "acme", max_event_bytes=1 << 20, time_limit=-1)
    assert late.take([change("acme", n) for n in range(3, 6)]) is False
    assert len(fold.fed) == 4 and late.full
    assert fold.stopped is not None and "time limit" in fold.stopped
    others = FakeFold()  # a batch of other tenants' messages only: stopped after it
    assert Scan(others, "acme", 1 << 20, time_limit=-1).take([change("globex", 1)]) is False
    assert others.stopped is not None and others.fed == []


def test_an_event_over_the_size_limit_is_invalid_as_live() -> None:
    fold = FakeFold()
    Scan(fold, "acme", max_event_bytes=1024).take(
        [Message(b"L-1", codec.dumps(make_event(tenant_id="acme", after={"x": "y" * 2000})))]
    )
    assert fold.fed == [] and fold.invalid == 1


# -- the manager -----------------------------------------------------------------------------


def result(events_scanned: int, history_from: datetime | None = SINCE) -> BacktestResult:
    return BacktestResult(
        events_scanned=events_scanned,
        window=BacktestWindow(since=SINCE, until=UNTIL, history_from=history_from),
        candidate=SideSummary(version=2),
        baseline=SideSummary(version=1),
        changed_count=0,
        changed=[],
        changed_cap=1_000,
        changed_truncated=False,
    )


class FakeChild:
    """A child process: the test speaks for it through ``sending``."""

    def __init__(self, job: BacktestJob) -> None:
        self.job = job
        receiving, self.sending = multiprocessing.Pipe(duplex=False)
        self.receiving: Connection = receiving
        self.terminated = False
        self.joined = False
        self.exitcode: int | None = None

    def terminate(self) -> None:
        self.terminated = True
        self.exitcode = -15

    def join(self, timeout: float | None = None) -> None:
        self.joined = True

    def report(self, report: Any) -> None:
        self.sending.send(report)

    def end(self, exitcode: int = 1) -> None:
        self.exitcode = exitcode
        self.sending.close()


class Launcher:
    def __init__(self) -> None:
        self.children: list[FakeChild] = []
        self.fail = False

    def __call__(self, job: BacktestJob) -> tuple[FakeChild, Connection]:
        if self.fail:
            raise OSError("no more processes")
        child = FakeChild(job)
        self.children.append(child)
        return child, child.receiving


def manager(launcher: Launcher, **settings: Any) -> Backtests:
    return Backtests(Settings(_env_file=None, **settings), lambda: NOW, launch=launcher)


CHOSEN = choose_versions(
    "wf-welcome", {1: make_workflow(version=1), 2: make_workflow(version=2, status="draft")}
)


def start(backtests: Backtests, tenant_id: str = "acme") -> str:
    return backtests.start_backtest(tenant_id, "wf-welcome", CHOSEN, SINCE, UNTIL, 500).backtest_id


async def until(check: Any, within: float = 2.0) -> None:
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time")


async def test_a_backtest_runs_reports_progress_and_ends_done_with_its_result() -> None:
    launcher = Launcher()
    backtests = manager(launcher, backtest_max_changed=7, max_causation_depth=3)
    backtest_id = start(backtests)
    state = backtests.get(backtest_id, "acme")
    assert state is not None and state.status == "running" and state.started_at == NOW
    (child,) = launcher.children
    job = child.job
    assert (job.tenant_id, job.candidate_version, job.baseline_version) == ("acme", 2, 1)
    assert (job.max_events, job.max_changed, job.max_depth) == (500, 7, 3)
    assert job.candidate["version"] == 2 and job.baseline is not None
    spec = job.spec()  # what the child compiles again from the documents
    assert spec.candidate.workflow == CHOSEN.candidate.workflow and spec.max_changed == 7

    child.report(Progress(40, 100, 3))
    await until(lambda: state.progress.messages_read == 40)
    assert (state.progress.messages_total, state.progress.events_scanned) == (100, 3)
    child.report(Finished(result(12).model_dump_json().encode()))
    await until(lambda: state.status == "done")
    assert state.result == result(12) and state.finished_at == NOW and state.error is None
    assert state.progress.events_scanned == 12
    await until(lambda: child.joined)
    assert not child.terminated


async def test_one_slot_queues_the_next_which_starts_when_the_first_ends() -> None:
    launcher = Launcher()
    backtests = manager(launcher, backtest_slots=1)
    first, second = start(backtests), start(backtests, "globex")
    assert backtests.get(second, None).status == "queued"  # type: ignore[union-attr]
    assert len(launcher.children) == 1
    launcher.children[0].report(Failed("boom"))
    await until(lambda: len(launcher.children) == 2)
    assert backtests.get(first, None).status == "failed"  # type: ignore[union-attr]
    assert backtests.get(first, None).error == "boom"  # type: ignore[union-attr]
    assert backtests.get(second, None).status == "running"  # type: ignore[union-attr]


async def test_cancel_terminates_a_running_child_and_drops_a_queued_one() -> None:
    launcher = Launcher()
    backtests = manager(launcher, backtest_slots=1)
    running, queued = start(backtests), start(backtests)
    assert backtests.cancel(queued).status == "cancelled"  # type: ignore[union-attr]
    assert len(launcher.children) == 1, "a cancelled queued backtest never starts"
    assert backtests.cancel(running).status == "cancelled"  # type: ignore[union-attr]
    assert launcher.children[0].terminated
    # Cancelling again changes nothing.
    assert backtests.cancel(running).status == "cancelled"  # type: ignore[union-attr]
    assert backtests.cancel("bt-nothing") is None


async def test_a_child_that_dies_without_a_result_fails_the_backtest() -> None:
    launcher = Launcher()
    backtests = manager(launcher)
    backtest_id = start(backtests)
    launcher.children[0].end(exitcode=-9)
    await until(lambda: backtests.get(backtest_id, None).status == "failed")  # type: ignore[union-attr]
    error = backtests.get(backtest_id, None).error  # type: ignore[union-attr]
    assert error is not None and "without a result (exit code -9)" in error


async def test_a_child_that_cannot_start_fails_the_backtest() -> None:
    launcher = Launcher()
    launcher.fail = True
    backtests = manager(launcher)
    state = backtests.get(start(backtests), None)
    assert state is not None and state.status == "failed" and "did not start" in (state.error or "")


async def test_a_scan_of_no_history_ends_failed_with_why_and_the_result() -> None:
    launcher = Launcher()
    backtests = manager(launcher)
    backtest_id = start(backtests)
    launcher.children[0].report(Finished(result(0, history_from=None).model_dump_json().encode()))
    await until(lambda: backtests.get(backtest_id, None).status == "failed")  # type: ignore[union-attr]
    state = backtests.get(backtest_id, None)
    assert state is not None and state.result is not None
    assert "no record change of this tenant is retained" in (state.error or "")


def test_why_an_empty_scan_cannot_answer() -> None:
    assert no_history(result(5)) is None
    assert "after the window's end" in (no_history(result(0, UNTIL + timedelta(days=1))) or "")
    assert "inside the window" in (no_history(result(0, SINCE - timedelta(days=1))) or "")


async def test_a_tenant_past_its_limit_is_refused_and_others_are_not() -> None:
    launcher = Launcher()
    backtests = manager(launcher, backtest_per_tenant=2)
    start(backtests), start(backtests)
    with pytest.raises(TooManyBacktests, match="COEFLOW_BACKTEST_PER_TENANT"):
        start(backtests)
    start(backtests, "globex")
    backtests.cancel(launcher.children[0].job.backtest_id)
    start(backtests)  # a finished one no longer counts


async def test_a_tenant_sees_its_own_backtests_the_operator_every_one() -> None:
    backtests = manager(Launcher())
    backtest_id = start(backtests)
    assert backtests.get(backtest_id, "acme") is not None
    assert backtests.get(backtest_id, None) is not None
    assert backtests.get(backtest_id, "globex") is None


async def test_finished_backtests_are_forgotten_after_the_keep_time() -> None:
    launcher = Launcher()
    backtests = manager(launcher, backtest_keep=60.0)
    done, running = start(backtests), start(backtests)
    backtests.cancel(done)
    finished_at = backtests.entries[done].finished_at
    assert finished_at is not None
    backtests.expire(finished_at + 30)
    assert backtests.get(done, None) is not None
    backtests.expire(finished_at + 61)
    assert backtests.get(done, None) is None and backtests.get(running, None) is not None


async def test_a_child_that_reports_nothing_for_long_is_stopped_and_fails_the_backtest() -> None:
    """A scan whose broker stops answering would wait for ever, holding its slot: a child
    silent for ``SILENT_LIMIT`` is ended, and the next one starts."""
    from processor.backtests import SILENT_LIMIT

    launcher = Launcher()
    backtests = manager(launcher)
    stuck, waiting = start(backtests), start(backtests)
    child = launcher.children[0]
    started = backtests.entries[stuck].reported_at
    assert started is not None
    child.report(Progress(10, 100, 1))
    await until(lambda: backtests.entries[stuck].state.progress.messages_read == 10)
    heard = backtests.entries[stuck].reported_at
    assert heard is not None and heard >= started
    backtests.expire(heard + SILENT_LIMIT - 1)
    assert backtests.entries[stuck].state.status == "running"
    backtests.expire(heard + SILENT_LIMIT + 1)
    state = backtests.entries[stuck].state
    assert state.status == "failed" and child.terminated
    assert "reported nothing" in (state.error or "")
    assert backtests.entries[waiting].state.status == "running"


async def test_stopping_the_service_ends_every_child() -> None:
    launcher = Launcher()
    backtests = manager(launcher, backtest_slots=2)
    start(backtests), start(backtests), start(backtests)
    await backtests.on_stop()
    assert all(c.terminated for c in launcher.children) and len(launcher.children) == 2
    assert all(e.state.status == "cancelled" for e in backtests.entries.values())


def test_a_failure_says_its_kind_without_the_values_pydantic_quotes() -> None:
    from pydantic import BaseModel, ValidationError

    class Model(BaseModel):
        n: int

    try:
        Model.model_validate({"n": "ada@example.com"})
    except ValidationError as exc:
        reason = failure_reason(exc)
    assert reason.startswith("ValidationError") and "ada@example.com" not in reason
    assert failure_reason(RuntimeError()) == "RuntimeError"


# -- reading up to the fences ----------------------------------------------------------------


@dataclass
class Stored:
    offset: int
    key: bytes | None
    value: bytes | None


class FakeTopic:
    """Partitions of a topic; a send appends (and says where), like the broker."""

    def __init__(self, partitions: int) -> None:
        self.logs: dict[int, list[Stored]] = {p: [] for p in range(partitions)}

    def append(self, partition: int, key: bytes | None, value: bytes | None) -> int:
        log = self.logs[partition]
        log.append(Stored(len(log), key, value))
        return len(log) - 1


class FakeProducer:
    def __init__(self, topic: FakeTopic) -> None:
        self.topic = topic

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes, partition: int
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        offset = self.topic.append(partition, key, value)
        future.set_result(type("Meta", (), {"offset": offset})())
        return future


class FakeConsumer:
    """Hands out at most ``batch`` records of a partition a fetch; meanwhile others write."""

    def __init__(self, topic: FakeTopic, batch: int, write_meanwhile: Any) -> None:
        self.topic, self.batch, self.write_meanwhile = topic, batch, write_meanwhile
        self.positions: dict[Any, int] = {}
        self.paused: set[Any] = set()

    def partitions_for_topic(self, name: str) -> set[int]:
        return set(self.topic.logs)

    async def topics(self) -> None: ...

    def assign(self, partitions: list[Any]) -> None:
        self.positions = dict.fromkeys(partitions, 0)

    async def seek_to_beginning(self, *partitions: Any) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    async def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return dict.fromkeys(partitions, 0)

    def pause(self, *partitions: Any) -> None:
        self.paused |= set(partitions)

    async def getmany(self, *partitions: Any, timeout_ms: int, max_records: int) -> Any:
        self.write_meanwhile()
        fetched = {}
        for tp in partitions:
            if tp in self.paused:
                continue
            log = self.topic.logs[tp.partition]
            start = self.positions[tp]
            records = log[start : start + self.batch]
            if records:
                fetched[tp] = records
                self.positions[tp] = start + len(records)
        return fetched


async def test_each_partition_is_read_from_the_beginning_up_to_a_fence_written_at_start() -> None:
    from processor.backtests import fenced_history

    topic = FakeTopic(3)
    for n in range(10):
        topic.append(n % 2, b"k", f"old-{n}".encode())  # partition 2 stays empty
    later = iter(range(1_000))
    consumer = FakeConsumer(
        topic, batch=2, write_meanwhile=lambda: topic.append(0, b"k", f"new-{next(later)}".encode())
    )
    total, batches = await fenced_history(consumer, FakeProducer(topic), "crm.record-changes")
    assert total == 10
    read = [r.value for batch in [b async for b in batches] for r in batch]
    assert sorted(read) == sorted(f"old-{n}".encode() for n in range(10))
    assert all(tp in consumer.paused for tp in consumer.positions), "each stopped at its fence"


async def all_done(launcher: Launcher, backtests: Backtests) -> None:
    """Each started child reports a result of one changed event, in the order started."""
    for child in launcher.children:
        child.report(Finished(result(1).model_dump_json().encode()))
        await until(lambda c=child: backtests.entries[c.job.backtest_id].state.status == "done")


async def finished_within(
    monkeypatch: pytest.MonkeyPatch, results: float, tenants: tuple[str, ...]
) -> tuple[Backtests, list[str]]:
    """A backtest of each of ``tenants``, all run at once and finished with one changed event
    each, in a worker that keeps ``results`` times one such result's bytes."""
    import processor.backtests

    size = len(result(1).model_dump_json())
    monkeypatch.setattr(processor.backtests, "MAX_KEPT_BYTES", int(size * results))
    launcher = Launcher()
    backtests = manager(launcher, backtest_slots=len(tenants))
    ids = [start(backtests, tenant) for tenant in tenants]
    await all_done(launcher, backtests)
    return backtests, ids


async def test_results_are_kept_within_a_bound_of_bytes_the_oldest_going_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backtests, ids = await finished_within(monkeypatch, 2.5, ("acme", "globex", "initech"))
    assert [backtests.get(i, None) is not None for i in ids] == [False, True, True]


async def test_a_tenant_keeps_its_newest_finished_backtests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import processor.backtests

    monkeypatch.setattr(processor.backtests, "MAX_FINISHED_PER_TENANT", 2)
    backtests = manager(Launcher())
    ids = [start(backtests) for _ in range(3)]
    other = start(backtests, "globex")
    for backtest_id in [*ids, other]:
        backtests.cancel(backtest_id)
    assert [backtests.get(i, None) is not None for i in [*ids, other]] == [False, True, True, True]


async def test_a_tenant_past_its_count_of_finished_ones_evicts_none_of_another_tenants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import processor.backtests

    monkeypatch.setattr(processor.backtests, "MAX_FINISHED_PER_TENANT", 2)
    backtests = manager(Launcher())
    other = start(backtests, "globex")  # finished before the tenant's: older than each of them
    ids = [start(backtests) for _ in range(3)]
    for backtest_id in [other, *ids]:
        backtests.cancel(backtest_id)
    assert [backtests.get(i, None) is not None for i in [other, *ids]] == [True, False, True, True]


async def test_a_report_the_worker_cannot_read_fails_the_backtest_not_the_loop() -> None:
    launcher = Launcher()
    backtests = manager(launcher)
    backtest_id = start(backtests)
    launcher.children[0].report(Finished(b"{not a result"))
    await until(lambda: backtests.get(backtest_id, None).status == "failed")  # type: ignore[union-attr]
    assert "internal error" in (backtests.get(backtest_id, None).error or "")  # type: ignore[union-attr]
    assert launcher.children[0].terminated


async def test_a_finished_backtest_is_encoded_once_and_a_running_one_not_at_all() -> None:
    launcher = Launcher()
    backtests = manager(launcher)
    backtest_id = start(backtests)
    assert backtests.encoded(backtest_id) is None and backtests.encoded("bt-unknown") is None
    (child,) = launcher.children
    child.report(Finished(result(3).model_dump_json().encode()))
    state = backtests.get(backtest_id, "acme")
    assert state is not None
    await until(lambda: state.status == "done")
    encoded = backtests.encoded(backtest_id)
    assert encoded is not None and Backtest.model_validate_json(encoded) == state
    assert backtests.encoded(backtest_id) is encoded  # the same bytes, not encoded again


async def test_an_encoded_answer_counts_toward_the_bound_of_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backtests, ids = await finished_within(monkeypatch, 3.5, ("acme", "globex"))
    assert all(backtests.get(i, None) is not None for i in ids)  # two results: within the bound
    assert backtests.encoded(ids[1]) is not None  # the newest encoded: its copy past the bound
    assert [backtests.get(i, None) is not None for i in ids] == [False, True]
