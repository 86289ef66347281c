from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import get_args

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coeflow.errors import InvalidInput
from processor.core.compiler import compile_workflow
from processor.core.decide import run_workflow
from processor.core.history import (
    HotIndexedRun,
    IndexedRun,
    RunHistory,
    index_fields,
    run_detail,
)
from processor.core.progress import track
from tests.factories import NOW, command_source, make_command, make_event, make_workflow
from topics import codec
from topics.outcomes import ActionOutcome, OutcomeStatus
from topics.runs import RunRecord, RunStatus

SEED = compile_workflow(make_workflow())


def a_run(score: int = 90, *, minutes: int = 0, record_id: str | None = None) -> RunRecord:
    """The seed workflow's run of one new lead, decided ``minutes`` after NOW."""
    extra = {"record_id": record_id} if record_id else {}
    lead = {"name": "Ada", "email": "a@example.com", "score": score, "owner_id": "u-7"}
    event = make_event(after=lead, **extra)
    run = run_workflow(SEED, event, max_depth=8, source=None, now=NOW + timedelta(minutes=minutes))
    return run.record


def history(per_workflow: int = 100, max_runs: int = 1000) -> RunHistory:
    return RunHistory(per_workflow=per_workflow, max_age=timedelta(days=1), max_runs=max_runs)


def add(runs: RunHistory, *records: RunRecord) -> None:
    for record in records:
        runs.add_run(codec.dumps(record))


def outcome(run: RunRecord, step: int, status: OutcomeStatus, attempt: int) -> ActionOutcome:
    command = make_command(
        run.actions[step].type,
        {},
        run_id=run.run_id,
        action_id=run.actions[step].action_id,
        step=step,
    )
    return ActionOutcome.of(
        command,
        source=command_source(run.actions[step].type),
        attempt=attempt,
        status=status,
        at=NOW + timedelta(seconds=attempt),
        error="HTTP 500" if status == "retrying" else None,
    )


def test_pages_go_newest_first_and_a_cursor_continues_where_the_last_page_ended() -> None:
    runs = history()
    made = [a_run(minutes=n) for n in range(5)]
    add(runs, *reversed(made))  # arrival order does not matter
    first = runs.page("wf-welcome", limit=2)
    assert [r.run_id for r in first.runs] == [made[4].run_id, made[3].run_id]
    second = runs.page("wf-welcome", limit=2, cursor=first.next_cursor)
    assert [r.run_id for r in second.runs] == [made[2].run_id, made[1].run_id]
    last = runs.page("wf-welcome", limit=2, cursor=second.next_cursor)
    assert [r.run_id for r in last.runs] == [made[0].run_id] and last.next_cursor is None
    assert runs.page("wf-other", limit=2).runs == []


def test_filters_by_status_and_time() -> None:
    runs = history()
    passed, failed, late = a_run(90, minutes=0), a_run(10, minutes=1), a_run(90, minutes=5)
    add(runs, passed, failed, late)
    by_status = runs.page("wf-welcome", limit=10, status="conditions_not_met")
    assert [r.run_id for r in by_status.runs] == [failed.run_id]
    window = runs.page(
        "wf-welcome",
        limit=10,
        since=NOW + timedelta(minutes=1),
        until=NOW + timedelta(minutes=5),
    )
    assert [r.run_id for r in window.runs] == [failed.run_id]


def test_retention_keeps_the_newest_per_workflow_in_all_and_by_age() -> None:
    runs = history(per_workflow=3, max_runs=1000)
    made = [a_run(minutes=n) for n in range(5)]
    add(runs, *made)
    assert [r.run_id for r in runs.page("wf-welcome", limit=10).runs] == [
        r.run_id for r in reversed(made[2:])
    ]
    assert runs.get(made[0].run_id) is None and len(runs) == 3
    completed = made[0].model_copy(update={"status": "succeeded", "completed_at": NOW})
    add(runs, completed)  # completed after it left: it does not push a newer run out
    assert runs.get(made[0].run_id) is None and runs.get(made[2].run_id) is not None

    capped = history(max_runs=2)
    add(capped, *made)
    assert len(capped) == 2 and capped.get(made[4].run_id) is not None

    aging = history()
    add(aging, *made)
    assert aging.expire(NOW + timedelta(days=1, minutes=2, seconds=30)) == 3
    assert [r.run_id for r in aging.page("wf-welcome", limit=10).runs] == [
        made[4].run_id,
        made[3].run_id,
    ]


def test_a_run_shows_each_attempt_and_then_its_completed_record() -> None:
    runs = history()
    run = a_run()
    early = outcome(run, 0, "retrying", 1)  # read before its run: another partition
    runs.add_outcome(early)
    add(runs, run)
    runs.add_outcome(outcome(run, 0, "succeeded", 2))
    runs.add_outcome(outcome(run, 0, "succeeded", 2))  # a repeat after a restart
    record, attempts = runs.get(run.run_id) or pytest.fail("run missing")
    detail = run_detail(record, attempts)
    email, task = detail.steps
    assert email.params and email.params["to"] == "a@example.com"
    assert [(a.attempt, a.status) for a in email.attempts] == [(1, "retrying"), (2, "succeeded")]
    assert email.status == "succeeded" and task.status == "pending" and task.attempts == []
    assert email.attempts[0].error == "HTTP 500"

    progress = None
    for item in (run, outcome(run, 0, "succeeded", 2), outcome(run, 1, "succeeded", 1)):
        progress, completed = track(progress, item, NOW)
    assert completed is not None
    add(runs, completed)
    record, _ = runs.get(run.run_id) or pytest.fail("run missing")
    assert record.status == "succeeded" and record.event is not None
    assert runs.page("wf-welcome", limit=5, status="succeeded").runs[0].run_id == run.run_id


@pytest.mark.parametrize("cursor", ["nonsense", "bm9uc2Vuc2U", "WzEsMl0"])
def test_a_foreign_cursor_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        history().page("wf-welcome", limit=1, cursor=cursor)


def test_a_run_is_indexed_from_a_few_fields_and_an_invalid_one_is_left_out_when_read() -> None:
    runs = history()
    with pytest.raises(ValueError, match="run_id"):
        runs.add_run(b'{"status": "succeeded"}')
    good = a_run(minutes=1)
    indexed_only = {**codec.loads(codec.dumps(a_run(record_id="L-2"))), "actions": "not a list"}
    runs.add_run(codec.dumps(indexed_only))
    add(runs, good)
    assert len(runs) == 2, "both indexed"
    page = runs.page(good.workflow_id, limit=10).runs
    assert [r.run_id for r in page] == [good.run_id], "the invalid one left out"
    assert runs.get(indexed_only["run_id"]) is None
    assert runs.of_record(("acme", "lead", "L-2")) == []


def tenant_run(tenant: str, n: int, *, pad: int = 0) -> RunRecord:
    run = a_run(minutes=n)
    return run.model_copy(
        update={
            "tenant_id": tenant,
            "workflow_id": f"wf-{tenant}-{n % 7}",
            "run_id": f"{tenant}-{n}",
            "note": "x" * pad if pad else None,
        }
    )


def test_a_tenants_flood_evicts_its_own_runs_never_anothers() -> None:
    runs = RunHistory(per_workflow=1000, max_age=timedelta(days=1), max_runs=1000, per_tenant=100)
    add(runs, *(tenant_run("acme", n) for n in range(20)))
    add(runs, *(tenant_run("evil", n) for n in range(5000)))
    assert all(runs.get(f"acme-{n}") is not None for n in range(20)), "acme keeps every run"
    assert len(runs) == 20 + 100 and runs.get("evil-4999") is not None
    assert runs.get("evil-0") is None, "the flood lost its own oldest"


def test_bytes_bound_the_history_per_tenant_and_in_all() -> None:
    one = len(codec.dumps(tenant_run("acme", 0, pad=10_000)))
    runs = RunHistory(
        per_workflow=1000,
        max_age=timedelta(days=1),
        max_runs=1000,
        max_bytes=one * 10,
        tenant_bytes=one * 4 + 500,  # run ids differ in length by a few bytes
    )
    add(runs, *(tenant_run("acme", n, pad=10_000) for n in range(3)))
    add(runs, *(tenant_run("evil", n, pad=10_000) for n in range(50)))
    assert all(runs.get(f"acme-{n}") is not None for n in range(3))
    assert sum(runs.get(f"evil-{n}") is not None for n in range(50)) == 4
    assert runs._bytes <= one * 10


def test_a_page_stops_at_its_size_and_its_cursor_goes_on() -> None:
    runs = history()
    big = [tenant_run("acme", n * 7, pad=3 << 20) for n in range(4)]  # one workflow, 3 MiB each
    add(runs, *big)
    first = runs.page("wf-acme-0", limit=100)
    assert len(first.runs) == 2 and first.next_cursor is not None  # 6 MiB, then the 8 MiB bound
    second = runs.page("wf-acme-0", limit=100, cursor=first.next_cursor)
    assert len(second.runs) == 2 and second.next_cursor is None
    assert {r.run_id for r in first.runs + second.runs} == {r.run_id for r in big}


_times = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    ).map(lambda at: at.isoformat()),
    st.datetimes().map(lambda at: at.isoformat()),  # no offset
    st.sampled_from(
        [
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00.9999995Z",  # a seventh digit: rounded, or dropped
            "2026-12-01 10:00:00+00:00",
            "2026-12-01",
            "",
        ]
    ),
    st.integers(0, 2**33),
    st.none(),
)
_texts = st.one_of(
    st.text(max_size=300), st.sampled_from(["", "x" * 256, "x" * 257]), st.integers(0, 9), st.none()
)
_fields = st.one_of(  # one indexed field replaced: the others stay as the processor wrote them
    st.fixed_dictionaries({}),
    *(st.fixed_dictionaries({name: _texts}) for name in ("run_id", "tenant_id", "workflow_id")),
    st.fixed_dictionaries(
        {"record": st.fixed_dictionaries({}, optional={"type": _texts, "id": _texts})}
    ),
    st.fixed_dictionaries(
        {"status": st.one_of(st.sampled_from(list(get_args(RunStatus))), _texts)}
    ),
    st.fixed_dictionaries({"decided_at": _times}),
)
_events = st.one_of(  # the embedded event's bytes, which the index passes over
    st.just(b"null"),
    st.integers(1, 1_200).map(lambda depth: b"[" * depth + b"]" * depth),
    st.sampled_from([b'{"name":"\xff\xfe"}', b'{"name":"caf\xc3\xa9"}', b"[1,2"]),
)


@given(_fields, st.sets(st.sampled_from(["run_id", "record", "status", "decided_at"])), _events)
@example({"decided_at": "2026-12-01T10:00:00.9999995Z"}, set(), b"null")
@example({}, set(), b"[" * 250 + b"]" * 250)
@example({}, set(), b"[" * 1_100 + b"]" * 1_100)
@example({"status": "done"}, set(), b"null")
@example({"record": {"type": "x" * 257, "id": "1"}}, set(), b"null")
@example({"record": {"type": "", "id": "1"}}, set(), b"null")
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_history_reads_a_run_as_its_model_does(
    replaced: dict[str, object], dropped: set[str], event: bytes
) -> None:
    """Whatever ``IndexedRun`` reads, the history reads with the same values (a time within the
    microsecond a seventh digit makes); whatever it refuses, the history refuses with its
    reasons (a ``ValueError``), but for bytes that are not UTF-8 in a field it passes over."""
    document = {**orjson.loads(codec.dumps(a_run())), **replaced}
    document.pop("event")
    kept = orjson.dumps({k: v for k, v in document.items() if k not in dropped})
    value = kept[:-1] + (b',"event":' if len(kept) > 2 else b'"event":') + event + b"}"
    try:
        expected = IndexedRun.model_validate_json(value)
    except ValidationError:
        expected = None
    if expected is None:
        try:
            index_fields(value)
        except ValueError:
            return
        assert b"\xff" in value, value  # passed over: the whole record is checked when asked for
        return
    read = index_fields(value)
    assert (read.run_id, read.tenant_id, read.workflow_id, read.status) == (
        expected.run_id,
        expected.tenant_id,
        expected.workflow_id,
        expected.status,
    )
    assert (read.record.type, read.record.id) == (expected.record.type, expected.record.id)
    assert abs(read.decided_at - expected.decided_at) <= timedelta(microseconds=1)
    assert read.decided_at.utcoffset() == expected.decided_at.utcoffset()


def test_a_run_record_as_the_processor_writes_it_is_read_by_msgspec() -> None:
    value = codec.dumps(a_run())
    hot = msgspec.json.decode(value, type=HotIndexedRun)  # not pydantic's fallback
    assert hot == index_fields(value)
    assert hot.decided_at == IndexedRun.model_validate_json(value).decided_at


def test_a_run_record_not_in_utf_8_where_the_history_reads_it_is_refused_with_reasons() -> None:
    value = codec.dumps(a_run()).replace(b'"run_id":"', b'"run_id":"\xff', 1)
    with pytest.raises(ValidationError):  # pydantic's reasons, not msgspec's codec error
        index_fields(value)
