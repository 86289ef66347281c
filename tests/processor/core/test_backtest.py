"""The backtest's fold: two versions over the same record changes, with an event-time clock."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from processor.core.backtest import NOT_BACKTESTED, Replay, ReplaySpec, differences, replay
from processor.core.compiler import CompiledWorkflow, compile_workflow
from processor.core.triggers import REGISTRY
from tests.factories import LEAD, make_event, make_workflow
from topics.backtests import BacktestResult
from topics.events import ChangeEvent

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 8, tzinfo=UTC)


def at(days: float) -> datetime:
    return SINCE + timedelta(days=days)


def compiled(version: int = 1, **overrides: Any) -> CompiledWorkflow:
    return compile_workflow(make_workflow(version=version, **overrides))


def spec(
    candidate: CompiledWorkflow,
    baseline: CompiledWorkflow | None,
    **overrides: Any,
) -> ReplaySpec:
    fields: dict[str, Any] = {
        "candidate": candidate,
        "candidate_version": candidate.workflow.version,
        "baseline": baseline,
        "baseline_version": baseline.workflow.version if baseline is not None else None,
        "since": SINCE,
        "until": UNTIL,
        "max_events": 1_000,
        "max_changed": 100,
        "max_records": 1_000,
        "max_depth": 8,
    }
    return ReplaySpec(**{**fields, **overrides})


def lead(days: float, score: int, **fields: Any) -> ChangeEvent:
    return make_event(occurred_at=at(days), after={**LEAD, "score": score}, **fields)


SCORE_80 = {"all": [{"field": "score", "op": "gte", "value": 80}]}


def test_the_same_version_on_both_sides_changes_nothing() -> None:
    workflow = compiled()
    events = [lead(n / 10, 40 + n) for n in range(60)]
    result = replay(events, spec(workflow, workflow))
    assert result.changed_count == 0 and result.changed == []
    assert result.candidate.runs == result.baseline.runs
    assert result.candidate.runs == {"actions_issued": 50, "conditions_not_met": 10}
    assert result.candidate.actions == {"create_task": 50, "send_email": 50}
    assert result.events_scanned == 60


def test_a_stricter_condition_moves_runs_from_issued_to_not_met_with_the_values_seen() -> None:
    baseline = compiled(version=1)
    candidate = compiled(version=2, conditions=SCORE_80)
    events = [lead(1, 72), lead(2, 90), lead(3, 30)]
    result = replay(events, spec(candidate, baseline))
    assert result.baseline.runs == {"actions_issued": 2, "conditions_not_met": 1}
    assert result.candidate.runs == {"actions_issued": 1, "conditions_not_met": 2}
    [changed] = result.changed
    assert changed.event_id == events[0].event_id and changed.occurred_at == at(1)
    assert changed.record.id == events[0].record_id and changed.trigger == "record_created"
    assert changed.differences == ["status", "actions"]
    assert changed.candidate is not None and changed.baseline is not None
    assert changed.candidate.status == "conditions_not_met" and changed.candidate.actions == []
    [condition] = changed.candidate.conditions
    assert (condition.field, condition.actual, condition.expected, condition.passed) == (
        "score",
        72,
        80,
        False,
    )
    assert [a.type for a in changed.baseline.actions] == ["send_email", "create_task"]


def test_a_changed_template_shows_as_other_rendered_parameters() -> None:
    baseline = compiled(version=1)
    document = make_workflow().model_dump(mode="json", by_alias=True)
    document["actions"][0]["subject"] = "Hello {{record.name}}"
    candidate = compile_workflow(make_workflow(**{**document, "version": 2}))
    result = replay([lead(1, 72)], spec(candidate, baseline))
    [changed] = result.changed
    assert changed.differences == ["params"]
    assert changed.candidate is not None and changed.baseline is not None
    assert changed.candidate.actions[0].params["subject"] == "Hello Ada"
    assert changed.baseline.actions[0].params["subject"].startswith("Welcome")


def test_no_baseline_makes_every_run_of_the_candidate_a_change() -> None:
    result = replay([lead(1, 72), lead(2, 10)], spec(compiled(), None))
    assert result.baseline.runs_total == 0 and result.baseline.version is None
    assert [c.differences for c in result.changed] == [["started"], ["started"]]
    assert [c.baseline for c in result.changed] == [None, None]


def test_the_window_warms_up_before_since_and_leaves_out_what_comes_after_until() -> None:
    events = [lead(-2, 72), lead(1, 72), lead(9, 72)]
    result = replay(events, spec(compiled(version=2, conditions=SCORE_80), compiled()))
    assert (result.events_before_window, result.events_scanned) == (1, 1)
    assert result.changed_count == 1
    window = result.window
    assert window.history_from == at(-2) and window.first_event_at == window.last_event_at
    assert window.note is None


def test_a_history_that_starts_after_since_is_said() -> None:
    result = replay([lead(3, 72)], spec(compiled(), compiled()))
    assert result.window.note is not None and "begin at 2026-11-04" in result.window.note
    empty = replay([], spec(compiled(), compiled()))
    assert empty.window.history_from is None
    assert empty.window.note == "no record change of this tenant is retained"


def test_another_tenants_events_are_not_replayed() -> None:
    result = replay([lead(1, 72, tenant_id="globex")], spec(compiled(), None))
    assert result.events_scanned == 0 and result.window.history_from is None


def test_loop_depth_is_the_events_own() -> None:
    events = [lead(1, 72, depth=9), lead(2, 72, depth=3)]
    result = replay(events, spec(compiled(), compiled()))
    assert result.candidate.runs == {"actions_issued": 1, "loop_blocked": 1}


def test_a_change_delivered_again_runs_once_as_live() -> None:
    """A producer that retries writes one change twice: live, both get the same run id (from
    the workflow, its version and the event id), so the run history and the executors see one
    run. A backtest counts it once too."""
    first, other = lead(1, 72), lead(2, 72)
    result = replay([first, first, other, first], spec(compiled(), None))
    assert result.candidate.runs == {"actions_issued": 2}
    assert [c.event_id for c in result.changed] == [first.event_id, other.event_id]
    assert result.events_scanned == 4


def test_max_events_stops_the_scan_and_says_where() -> None:
    events = [lead(n / 10, 72) for n in range(20)]
    fold = Replay(spec(compiled(), None, max_events=5))
    fed = list(itertools.takewhile(fold.feed, events))
    assert len(fed) == 4  # the fifth is folded in, then the fold says stop
    result = fold.result()
    assert result.events_scanned == 5 and result.changed_count == 5
    assert result.stopped_early is not None and "max_events (5)" in result.stopped_early
    assert result.window.note is not None and "max_events" in result.window.note


def test_a_fold_stopped_from_outside_says_why_and_where() -> None:
    events = [lead(n / 10, 72) for n in range(20)]
    fold = Replay(spec(compiled(), None))
    assert all(fold.feed(e) for e in events[:5])
    fold.stop("the time limit (30 min) reached")
    assert fold.feed(events[5]) is False
    result = fold.result()
    assert result.events_scanned == 5
    assert result.stopped_early is not None
    assert result.stopped_early.startswith("the time limit (30 min) reached")
    assert "at a change of 2026-11-01 09:36:00 UTC" in result.stopped_early
    assert result.window.note is not None and "time limit" in result.window.note


def test_the_changed_list_keeps_the_earliest_and_states_the_cap() -> None:
    events = [lead(n / 100, 72) for n in range(250)]
    random.Random(7).shuffle(events)  # the earliest are kept, whatever the read order
    result = replay(events, spec(compiled(), None, max_changed=10))
    assert result.changed_count == 250 and result.changed_truncated
    assert result.changed_cap == 10
    assert [c.occurred_at for c in result.changed] == [at(n / 100) for n in range(10)]


def test_the_changed_list_is_bounded_in_bytes_too_and_keeps_the_earliest() -> None:
    """Each changed event keeps both outcomes with their rendered parameters and the values
    their conditions saw, which the records' writers choose: a kept list bounded in number
    alone could hold gigabytes (50 actions of 50,000 characters each, a thousand times)."""
    big = compiled(
        conditions=None,
        actions=[{"type": "add_note", "body": "{{record.notes}}"} for _ in range(20)],
    )
    notes = "n" * 10_000
    events = [
        make_event(occurred_at=at(n / 100), after={**LEAD, "notes": notes}) for n in range(60)
    ]
    random.Random(3).shuffle(events)
    results = [
        replay(order, spec(big, None, max_changed_bytes=1_000_000))
        for order in (events, sorted(events, key=lambda e: e.occurred_at))
    ]
    result = results[0]
    assert result.changed_count == 60 and result.changed_truncated
    kept = len(result.changed)
    assert 0 < kept < 10  # each is over 200,000 bytes
    assert len(orjson.dumps([c.model_dump(mode="json") for c in result.changed])) < 2_000_000
    assert [c.occurred_at for c in result.changed] == [at(n / 100) for n in range(kept)]
    assert results[1].model_dump() == result.model_dump()  # whatever the read order


# -- invoice_overdue --------------------------------------------------------------------

OVERDUE = {"type": "invoice_overdue", "record_type": "invoice"}


def overdue(version: int = 1, **overrides: Any) -> CompiledWorkflow:
    return compiled(
        version=version,
        id="wf-overdue",
        trigger=OVERDUE,
        conditions=None,
        actions=[{"type": "add_note", "body": "overdue: {{record.number}}"}],
        **overrides,
    )


def invoice(days: float, number: str, due: str, status: str = "sent", **fields: Any) -> ChangeEvent:
    fields.setdefault("record_id", number)
    return make_event(
        record_type="invoice",
        occurred_at=at(days),
        after={"number": number, "due_date": due, "status": status},
        **fields,
    )


def updated(days: float, before: ChangeEvent, **changes: Any) -> ChangeEvent:
    """The record of ``before`` changed ``days`` in: its fields as ``changes`` say."""
    assert before.after is not None
    return make_event(
        record_type=before.record_type,
        record_id=before.record_id,
        operation="updated",
        occurred_at=at(days),
        before=before.after,
        after={**before.after, **changes},
    )


def paid(days: float, before: ChangeEvent) -> ChangeEvent:
    return updated(days, before, status="paid")


def test_overdue_timers_fire_where_they_come_due_inside_the_window() -> None:
    inside = invoice(0.5, "INV-1", "2026-11-03")  # overdue from 11-04 00:00
    late = invoice(1, "INV-2", "2026-11-20")  # after until: never fires
    early = invoice(-10, "INV-3", "2026-10-25")  # came due before since: not the window's
    settled = invoice(1, "INV-4", "2026-11-04")
    events = [inside, late, early, settled, paid(2, settled)]
    result = replay(events, spec(overdue(), None))
    assert result.timers_fired == 1
    [changed] = result.changed
    assert changed.record.id == "INV-1" and changed.trigger == "invoice_overdue"
    assert changed.occurred_at == datetime(2026, 11, 4, tzinfo=UTC)
    assert changed.candidate is not None
    assert changed.candidate.actions[0].params["body"] == "overdue: INV-1"


def test_an_overdue_timer_fires_before_a_later_change_of_its_invoice() -> None:
    created = invoice(0.5, "INV-1", "2026-11-02")  # due 11-03 00:00
    events = [created, paid(4, created)]  # paid a day after it came due
    result = replay(events, spec(overdue(), None))
    assert result.candidate.runs == {"actions_issued": 1}


def test_an_overdue_timer_both_versions_wait_for_is_compared_once() -> None:
    document = overdue(version=2).workflow.model_dump(mode="json", by_alias=True)
    document["actions"][0]["body"] = "late: {{record.number}}"
    candidate = compile_workflow(make_workflow(**document))
    result = replay([invoice(0.5, "INV-1", "2026-11-02")], spec(candidate, overdue()))
    [changed] = result.changed
    assert changed.differences == ["params"]
    assert result.candidate.runs_total == result.baseline.runs_total == 1


def test_an_invoice_overdue_already_when_the_window_sees_it_fires_then() -> None:
    """Live, a change that arms a timer due in the past has it fired at the timer service's
    next tick (every armed timer due by now fires): the run is the window's when the change
    is, however old the due date."""
    created = invoice(1, "INV-1", "2026-10-20")  # created on 11-02, overdue since 10-21
    sent = invoice(-3, "INV-2", "2026-11-20")
    moved = updated(2, sent, due_date="2026-10-01")  # moved back on 11-03 to one long past
    early = invoice(-2, "INV-3", "2026-10-20")  # fired on 10-30, before the window
    result = replay([created, sent, moved, early], spec(overdue(), None))
    assert result.timers_fired == 2
    assert result.candidate.runs == {"actions_issued": 2}
    assert sorted(c.record.id for c in result.changed) == ["INV-1", "INV-2"]


def test_an_invoice_due_again_on_the_same_date_fires_one_run_as_live() -> None:
    """One firing per invoice per due date: live, a second firing for the same date (voided,
    then sent again) has the first's fire id, so the same run id, and counts one run."""
    sent = invoice(0.5, "INV-1", "2026-11-02")  # overdue from 11-03
    voided = updated(3, sent, status="void")
    again = updated(4, voided, status="sent")
    result = replay([sent, voided, again], spec(overdue(), None))
    assert result.candidate.runs == {"actions_issued": 1}
    assert result.changed_count == 1


def deleted(days: float, record: ChangeEvent) -> ChangeEvent:
    """The deletion of ``record`` (its last snapshot as ``before``)."""
    return make_event(
        record_type=record.record_type,
        record_id=record.record_id,
        operation="deleted",
        occurred_at=at(days),
        before=record.after,
        after=None,
    )


def test_a_deleted_invoice_never_comes_due() -> None:
    created = invoice(0.5, "INV-1", "2026-11-02")
    result = replay([created, deleted(1, created)], spec(overdue(), None))
    assert result.timers_fired == 0 and result.candidate.runs_total == 0


# -- record_stalled ---------------------------------------------------------------------


def stalled(version: int, duration: str) -> CompiledWorkflow:
    return compiled(
        version=version,
        id="wf-stall",
        trigger={
            "type": "record_stalled",
            "record_type": "deal",
            "field": "stage",
            "for": duration,
        },
        conditions=None,
        actions=[{"type": "add_note", "body": "stuck in {{record.stage}}"}],
    )


def deal(
    days: float, record_id: str, stage: str, before: dict[str, Any] | None = None
) -> ChangeEvent:
    return make_event(
        record_type="deal",
        record_id=record_id,
        operation="created" if before is None else "updated",
        occurred_at=at(days),
        before=before,
        after={"name": record_id, "stage": stage},
    )


def test_stalls_fire_inside_the_window_and_a_new_value_ends_the_episode() -> None:
    stuck = deal(0, "D-1", "proposal")  # stalls at day 2
    moving = deal(0, "D-2", "proposal")
    moved = deal(1, "D-2", "negotiation", before=moving.after)  # day 1: a new episode → day 3
    again = deal(2.5, "D-2", "won", before=moved.after)  # ends it before day 3 → day 4.5
    late = deal(6.5, "D-3", "proposal")  # would stall at day 8.5, after until
    result = replay([stuck, moving, moved, again, late], spec(stalled(1, "2d"), None))
    fired = sorted((c.record.id, c.occurred_at) for c in result.changed)
    assert fired == [("D-1", at(2)), ("D-2", at(4.5))]
    assert result.timers_fired == 2


def test_a_longer_stall_moves_firings_and_drops_the_ones_a_change_ends() -> None:
    baseline, candidate = stalled(1, "2d"), stalled(2, "3d")
    steady = deal(0, "D-1", "proposal")  # both fire: day 2 and day 3, the same episode
    moving = deal(0, "D-2", "proposal")
    moved = deal(2.5, "D-2", "won", before=moving.after)  # only the 2-day version fired
    result = replay([steady, moving, moved], spec(candidate, baseline))
    assert result.baseline.runs_total == 3  # D-1, D-2, and D-2's new episode at day 4.5
    assert result.candidate.runs_total == 2  # D-1 at day 3, D-2's new episode at day 5.5
    # D-1 (days 2 and 3) and D-2's new episode (days 4.5 and 5.5) fire in both, the same
    # episode with the same note: no change. D-2's first episode fired in the baseline only.
    [changed] = result.changed
    assert (changed.record.id, changed.occurred_at) == ("D-2", at(2))
    assert changed.candidate is None and changed.differences == ["started"]


def test_the_same_stall_in_both_versions_is_no_change() -> None:
    events = [deal(0, f"D-{n}", "proposal") for n in range(5)]
    result = replay(events, spec(stalled(2, "2d"), stalled(1, "2d")))
    assert result.changed_count == 0 and result.candidate.runs_total == 5


def test_records_past_the_bound_are_counted_not_followed() -> None:
    events = [deal(0, f"D-{n}", "proposal") for n in range(5)]
    result = replay(events, spec(stalled(1, "2d"), None, max_records=3))
    assert result.candidate.runs_total == 3 and result.changes_untracked == 2


def test_the_read_order_of_other_records_changes_nothing() -> None:
    """Records are independent: any interleaving that keeps each record's own order gives the
    same result (the partitions of a topic interleave arbitrarily)."""
    baseline, candidate = stalled(1, "2d"), stalled(2, "3d")
    by_record: list[list[ChangeEvent]] = []
    for n in range(12):
        first = deal(n / 4, f"D-{n}", "proposal")
        events = [first]
        if n % 3:
            events.append(deal(n / 4 + 1 + n % 2 * 1.5, f"D-{n}", "won", before=first.after))
        by_record.append(events)

    def interleaved(seed: int) -> list[ChangeEvent]:
        rng, queues, order = random.Random(seed), [list(q) for q in by_record], []
        while any(queues):
            queue = rng.choice([q for q in queues if q])
            order.append(queue.pop(0))
        return order

    results = [
        replay(interleaved(seed), spec(candidate, baseline)).model_dump() for seed in range(6)
    ]
    assert all(r == results[0] for r in results[1:])
    assert BacktestResult.model_validate(results[0]).changed_count > 0


def test_differences() -> None:
    assert differences(None, None) == []


def test_the_kinds_a_backtest_cannot_replay_exist_and_are_few() -> None:
    assert set(NOT_BACKTESTED) <= set(REGISTRY)
    assert set(NOT_BACKTESTED) == {"scheduled", "webhook_received"}


def test_a_result_is_taken_once() -> None:
    fold = Replay(spec(compiled(), None))
    fold.result()
    with pytest.raises(RuntimeError):
        fold.result()


def test_a_deleted_record_stops_stalling() -> None:
    created = deal(0, "D-1", "proposal")
    result = replay([created, deleted(1, created)], spec(stalled(1, "2d"), None))
    assert result.timers_fired == 0 and result.candidate.runs_total == 0


def test_a_stage_trigger_is_replayed_on_updates_only() -> None:
    won = compiled(
        trigger={"type": "pipeline_stage_changed", "record_type": "deal", "to": "won"},
        conditions=None,
        actions=[{"type": "add_note", "body": "won"}],
    )
    created = deal(0, "D-1", "proposal")
    events = [created, deal(1, "D-1", "won", before=created.after), deal(2, "D-2", "won")]
    result = replay(events, spec(won, None))
    assert result.candidate.runs == {"actions_issued": 1}
