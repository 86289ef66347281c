"""The run history searched across workflows (``GET /api/v1/runs``): newest first over every
workflow given, filtered by status, time and record, paged with a cursor that loses and
repeats nothing."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.compiler import compile_workflow
from processor.core.decide import run_workflow
from processor.core.history import PAGE_MAX_EXAMINED, RunHistory
from tests.factories import NOW, make_event, make_workflow
from topics import codec
from topics.runs import RunRecord

WORKFLOWS = [compile_workflow(make_workflow(id=f"wf-{n}")) for n in range(3)]
OTHER = compile_workflow(make_workflow(id="wf-other", tenant_id="globex"))


def a_run(workflow: int, minutes: int, score: int = 90, record_id: str = "L-1") -> RunRecord:
    lead = {"name": "Ada", "email": "a@example.com", "score": score, "owner_id": "u-7"}
    event = make_event(after=lead, record_id=record_id)
    when = NOW + timedelta(minutes=minutes)
    return run_workflow(WORKFLOWS[workflow], event, max_depth=8, source=None, now=when).record


def kept(*records: RunRecord, per_workflow: int = 100) -> RunHistory:
    runs = RunHistory(per_workflow=per_workflow, max_age=timedelta(days=9), max_runs=10_000)
    for record in records:
        runs.add_run(codec.dumps(record))
    return runs


def test_runs_of_every_workflow_merge_newest_first() -> None:
    made = [a_run(n % 3, minutes=n) for n in range(7)]
    runs = kept(*made)
    page = runs.search(runs.workflows_of("acme"), limit=10)
    assert [r.run_id for r in page.runs] == [r.run_id for r in reversed(made)]
    assert page.next_cursor is None


def test_a_tenant_has_only_its_own_workflows() -> None:
    theirs = run_workflow(OTHER, make_event(tenant_id="globex"), max_depth=8, source=None, now=NOW)
    runs = kept(a_run(0, 1), theirs.record)
    assert runs.workflows_of("acme") == ["wf-0"]
    assert runs.workflows_of("globex") == ["wf-other"]
    assert sorted(runs.workflows_of(None)) == ["wf-0", "wf-other"]
    assert runs.workflows_of("initech") == []


def test_filters_by_status_time_and_record() -> None:
    passed, stopped = a_run(0, 1, score=90, record_id="L-1"), a_run(1, 2, score=10, record_id="L-2")
    late = a_run(2, 30, record_id="L-2")
    runs = kept(passed, stopped, late)
    every = runs.workflows_of("acme")
    assert [r.run_id for r in runs.search(every, limit=9, status="conditions_not_met").runs] == [
        stopped.run_id
    ]
    window = runs.search(every, limit=9, since=NOW + timedelta(minutes=2), until=late.decided_at)
    assert [r.run_id for r in window.runs] == [stopped.run_id]
    of_l2 = runs.search(every, limit=9, record=("lead", "L-2"))
    assert [r.run_id for r in of_l2.runs] == [late.run_id, stopped.run_id]
    assert [r.run_id for r in runs.search(every, limit=9, record=(None, "L-1")).runs] == [
        passed.run_id
    ]
    assert runs.search(every, limit=9, record=("contact", "L-1")).runs == []
    # A record type alone: every record of it (the builder's recent records and fields).
    of_leads = runs.search(every, limit=9, record=("lead", None))
    assert len(of_leads.runs) == 3 and {r.record.id for r in of_leads.runs} == {"L-1", "L-2"}
    assert runs.search(every, limit=9, record=("deal", None)).runs == []


@settings(max_examples=40, deadline=None)
@given(
    placed=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5)), min_size=1, max_size=12),
    limit=st.integers(1, 4),
    status=st.sampled_from([None, "actions_issued"]),
)
def test_paging_shows_each_run_once_in_order(
    placed: list[tuple[int, int]], limit: int, status: str | None
) -> None:
    made = [
        a_run(w, minutes, record_id=f"L-{n}") for n, (w, minutes) in enumerate(placed)
    ]  # minutes repeat: runs decided at the same time are ordered by their ids
    runs = kept(*made)
    every = runs.workflows_of("acme")
    whole = runs.search(every, limit=1000, status=status).runs
    paged, cursor = [], None
    while True:
        page = runs.search(every, limit=limit, status=status, cursor=cursor)
        assert len(page.runs) <= limit
        paged += page.runs
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [r.run_id for r in paged] == [r.run_id for r in whole]
    assert sorted(r.run_id for r in whole) == sorted({r.run_id for r in made})
    positions = [(r.decided_at, r.run_id) for r in whole]
    assert positions == sorted(positions, reverse=True)


def test_counts_by_status_since_a_time_and_the_newest_run_however_old() -> None:
    old, stopped, newest = a_run(0, 1), a_run(0, 5, score=10), a_run(0, 9)
    runs = kept(old, stopped, newest)
    counts = runs.counts("wf-0", NOW + timedelta(minutes=2))
    assert counts.by_status == {"conditions_not_met": 1, "actions_issued": 1}
    assert counts.last_run_id == newest.run_id and counts.last_status == "actions_issued"
    assert counts.last_decided_at == newest.decided_at
    later = runs.counts("wf-0", NOW + timedelta(days=1))
    assert later.by_status == {} and later.last_run_id == newest.run_id
    assert runs.counts("wf-none", NOW).last_run_id is None


def test_a_filter_few_runs_pass_answers_within_bounded_work_and_pages_on() -> None:
    made = [
        a_run(n % 3, minutes=n, score=10 if n == 0 else 90) for n in range(PAGE_MAX_EXAMINED + 10)
    ]
    runs = kept(*made, per_workflow=PAGE_MAX_EXAMINED)
    every = runs.workflows_of("acme")
    first = runs.search(every, limit=5, status="conditions_not_met")
    assert first.runs == [] and first.next_cursor is not None
    second = runs.search(every, limit=5, status="conditions_not_met", cursor=first.next_cursor)
    assert [r.run_id for r in second.runs] == [made[0].run_id] and second.next_cursor is None
