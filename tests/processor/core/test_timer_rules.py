from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processor.core.compiler import compile_workflow
from processor.core.index import WorkflowIndex
from processor.core.pipeline import process_change, process_timer
from processor.core.timer_rules import invoice_timer, overdue_from
from processor.timer_service import TimerReplica
from tests.factories import NOW, make_event, make_workflow, no_state, source
from topics import codec
from topics.records import RecordState
from topics.timers import Timer


def invoice(operation: str, before: Any = None, after: Any = None) -> Any:
    return make_event(
        record_type="invoice", record_id="I-1", operation=operation, before=before, after=after
    )


OPEN = {"status": "open", "due_date": "2026-12-01", "amount": 100}


def test_a_due_date_becomes_overdue_when_it_has_passed() -> None:
    assert overdue_from("2026-12-01") == datetime(2026, 12, 2, tzinfo=UTC)
    assert overdue_from("2026-12-01T17:00:00+01:00") == datetime(2026, 12, 1, 16, tzinfo=UTC)
    assert overdue_from("2026-12-01T17:00:00") == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert overdue_from("soon") is None and overdue_from(None) is None


def test_an_open_invoice_arms_its_timer_once_per_due_date() -> None:
    key, timer = invoice_timer(invoice("created", after=OPEN)) or ("", None)
    assert key == "acme/invoice/I-1/invoice_overdue" and timer is not None
    assert timer.due_at == datetime(2026, 12, 2, tzinfo=UTC) and timer.record == OPEN
    assert timer.fire_id == "invoice_overdue:acme:I-1:2026-12-02T00:00:00+00:00"
    same = invoice("updated", before=OPEN, after={**OPEN, "amount": 120})
    assert invoice_timer(same) is None  # nothing that matters changed


def test_paying_or_voiding_cancels_and_moving_the_due_date_re_arms() -> None:
    for settled in ("paid", "void"):
        change = invoice_timer(invoice("updated", before=OPEN, after={**OPEN, "status": settled}))
        assert change == ("acme/invoice/I-1/invoice_overdue", None)
    moved = invoice_timer(invoice("updated", before=OPEN, after={**OPEN, "due_date": "2026-12-15"}))
    assert moved is not None and moved[1] is not None
    assert moved[1].due_at == datetime(2026, 12, 16, tzinfo=UTC)
    assert invoice_timer(invoice("deleted", before=OPEN)) == (
        "acme/invoice/I-1/invoice_overdue",
        None,
    )
    assert invoice_timer(invoice("created", after={**OPEN, "status": "paid"})) is None
    assert invoice_timer(make_event()) is None  # not an invoice


def test_timers_are_armed_only_for_tenants_with_a_waiting_workflow(settings: Any) -> None:
    index = WorkflowIndex()
    event = codec.dumps(invoice("created", after=OPEN))
    assert process_change(b"I-1", event, source(), index, settings, NOW, no_state).messages == []
    index.put(
        compile_workflow(
            make_workflow(
                id="wf-overdue",
                status="active",
                trigger={"type": "invoice_overdue"},
                conditions=None,
                actions=[{"type": "add_note", "body": "Invoice {{record.amount}} overdue"}],
            )
        )
    )
    [armed] = process_change(b"I-1", event, source(), index, settings, NOW, no_state).messages
    assert armed.topic == "workflow.timers" and armed.key == b"acme/invoice/I-1/invoice_overdue"

    timer = codec.decode(armed.value or b"", Timer)
    fired = process_timer(b"I-1", codec.dumps(timer), source(), index, settings, NOW)
    [run] = fired.runs
    assert run.record.trigger == "invoice_overdue" and run.record.event_id == timer.fire_id
    assert run.record.occurred_at == timer.due_at
    assert run.commands[0].params == {"body": "Invoice 100 overdue"}


def test_the_replica_finds_due_timers_without_looking_at_the_others(settings: Any) -> None:
    replica = TimerReplica(settings)
    base = datetime(2026, 12, 1, tzinfo=UTC)
    for n in range(1000):
        timer = Timer(
            key=f"k{n}",
            kind="invoice_overdue",
            tenant_id="acme",
            record_type="invoice",
            record_id=f"I-{n}",
            due_at=base + timedelta(minutes=n),
            fire_id=f"f{n}",
            record={},
        )
        replica.apply(timer.key.encode(), codec.dumps(timer))
    replica.apply(b"k1", None)  # cancelled
    due = replica.due(base + timedelta(minutes=2))
    assert [t.key for t in due] == ["k0", "k2"]
    assert replica.queued == 997  # the rest was not touched


class StallWorld:
    """Changes of one deal through ``process_change`` with a real record store, the timers
    they arm kept as the timer log would, and the due ones fired through ``process_timer``."""

    T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)

    def __init__(self, settings: Any, *workflows: dict[str, Any]) -> None:
        self.settings = settings
        self.index = WorkflowIndex()
        for workflow in workflows:
            self.index.put(compile_workflow(make_workflow(**workflow)))
        self.states: dict[str, RecordState] = {}
        self.timers: dict[bytes, Timer] = {}
        self.offset = 0
        self.runs: list[Any] = []

    def change(self, operation: str, day: float, before: Any = None, after: Any = None) -> None:
        at = self.T0 + timedelta(days=day)
        event = make_event(
            record_type="deal",
            record_id="D-1",
            operation=operation,
            before=before,
            after=after,
            occurred_at=at,
        )
        self.offset += 1
        self.fire_due(at)
        outcome = process_change(
            b"D-1",
            codec.dumps(event),
            source(self.offset),
            self.index,
            self.settings,
            at,
            self.states.get,
        )
        assert outcome.dead_letter is None
        if outcome.state is not None:
            if outcome.state.state is None:
                self.states.pop(outcome.state.key, None)
            else:
                self.states[outcome.state.key] = outcome.state.state
        for message in outcome.messages:
            if message.topic == "workflow.timers":
                assert message.key is not None
                if message.value is None:
                    self.timers.pop(message.key, None)
                else:
                    self.timers[message.key] = codec.decode(message.value, Timer)

    def fire_due(self, now: datetime) -> None:
        for key, timer in sorted(self.timers.items(), key=lambda item: item[1].due_at):
            if timer.due_at <= now:
                del self.timers[key]
                fired = process_timer(
                    key, codec.dumps(timer), source(), self.index, self.settings, now
                )
                self.runs.extend(run.record for run in fired.runs)


STALLED = {
    "id": "wf-stalled",
    "status": "active",
    "trigger": {"type": "record_stalled", "record_type": "deal", "field": "stage", "for": "7d"},
    "conditions": {"all": [{"field": "status", "op": "eq", "value": "open"}]},
    "actions": [{"type": "add_note", "body": "{{record.stage}} for a week at {{record.amount}}"}],
}
DEAL = {"stage": "proposal", "status": "open", "amount": 100}


def test_a_stalled_deal_fires_once_per_episode(settings: Any) -> None:
    world = StallWorld(settings, STALLED)
    world.change("created", 0, after=DEAL)
    richer = {**DEAL, "amount": 150}
    world.change("updated", 3, DEAL, richer)  # another field: same episode, same due time
    world.fire_due(world.T0 + timedelta(days=6, hours=23))
    assert world.runs == []
    world.fire_due(world.T0 + timedelta(days=7))
    [run] = world.runs
    assert run.trigger == "record_stalled" and run.status == "actions_issued"
    assert run.occurred_at == world.T0 + timedelta(days=7)
    assert run.conditions[0].actual == "open"

    world.change("updated", 9, richer, {**richer, "amount": 160})  # still stalled: no new episode
    world.fire_due(world.T0 + timedelta(days=30))
    assert len(world.runs) == 1, "one stall episode fired twice"

    moved = {**richer, "amount": 160, "stage": "negotiation"}
    world.change("updated", 31, {**richer, "amount": 160}, moved)
    world.fire_due(world.T0 + timedelta(days=38))
    assert len(world.runs) == 2 and world.runs[1].occurred_at == world.T0 + timedelta(days=38)
    assert world.runs[0].run_id != world.runs[1].run_id


def test_the_snapshot_a_stall_fires_with_is_the_latest_one(settings: Any) -> None:
    world = StallWorld(settings, STALLED)
    world.change("created", 0, after=DEAL)
    world.change("updated", 2, DEAL, {**DEAL, "status": "lost"})
    world.fire_due(world.T0 + timedelta(days=7))
    [run] = world.runs
    assert run.status == "conditions_not_met" and run.conditions[0].actual == "lost"


def test_deleting_the_record_or_removing_the_field_cancels_the_stall(settings: Any) -> None:
    world = StallWorld(settings, STALLED)
    world.change("created", 0, after=DEAL)
    world.change("deleted", 1, before=DEAL)
    assert world.timers == {} and world.states == {}
    world.change("created", 2, after=DEAL)
    world.change("updated", 3, DEAL, {"status": "open"})
    assert world.timers == {}
    world.fire_due(world.T0 + timedelta(days=60))
    assert world.runs == []


def test_each_stall_workflow_fires_on_its_own_time_and_alone(settings: Any) -> None:
    short = {**STALLED, "id": "wf-short", "trigger": {**STALLED["trigger"], "for": "2d"}}
    world = StallWorld(settings, STALLED, short)
    world.change("created", 0, after=DEAL)
    world.fire_due(world.T0 + timedelta(days=2))
    assert [r.workflow_id for r in world.runs] == ["wf-short"]
    world.fire_due(world.T0 + timedelta(days=7))
    assert [r.workflow_id for r in world.runs] == ["wf-short", "wf-stalled"]


def test_a_replayed_change_changes_no_state_and_arms_nothing(settings: Any) -> None:
    world = StallWorld(settings, STALLED)
    world.change("created", 0, after=DEAL)
    key, timer = next(iter(world.timers.items()))
    state = world.states["acme/deal/D-1"]
    again = process_change(
        b"D-1",
        codec.dumps(make_event(record_type="deal", record_id="D-1", after=DEAL)),
        source(world.offset),  # read again at the offset already applied
        world.index,
        settings,
        world.T0 + timedelta(days=8),
        world.states.get,
    )
    assert again.state is None and again.messages == []
    assert world.states["acme/deal/D-1"] == state and world.timers[key] == timer


def test_records_are_kept_only_where_a_stall_workflow_watches(settings: Any) -> None:
    world = StallWorld(settings, {**STALLED, "id": "wf-other", "tenant_id": "globex"})
    world.change("created", 0, after=DEAL)
    world.change("updated", 1, before=DEAL, after={**DEAL, "stage": "won"})
    assert world.timers == {} and world.states == {}


def _stage_timer_due(world: StallWorld) -> datetime:
    [timer] = world.timers.values()
    return timer.due_at


def test_a_stall_workflow_activated_later_counts_from_the_next_change(settings: Any) -> None:
    world = StallWorld(settings)
    world.change("created", 0, after=DEAL)
    world.change("updated", 1, before=DEAL, after={**DEAL, "amount": 200})
    world.index.put(compile_workflow(make_workflow(**STALLED)))
    world.change("updated", 3, before={**DEAL, "amount": 200}, after={**DEAL, "amount": 300})
    assert _stage_timer_due(world) == world.T0 + timedelta(days=3 + 7)


def test_a_state_kept_before_a_gap_in_watching_counts_as_none(settings: Any) -> None:
    world = StallWorld(settings, STALLED)
    world.change("created", 0, after=DEAL)
    assert _stage_timer_due(world) == world.T0 + timedelta(days=7)
    world.index.remove("wf-stalled")  # nobody watches: the stage's change below is not kept
    moved = {**DEAL, "stage": "negotiation"}
    world.change("updated", 2, before=DEAL, after=moved)
    world.index.put(compile_workflow(make_workflow(**STALLED, version=2)))
    world.change("updated", 4, before=moved, after={**moved, "amount": 300})
    due = [t.due_at for t in world.timers.values() if t.workflow_id == "wf-stalled"]
    assert due == [world.T0 + timedelta(days=4 + 7)]  # not day 7, from the stale state's stage
    assert world.states["acme/deal/D-1"]["watch"] == "wf-stalled@2"


@pytest.mark.parametrize(
    ("due_date", "due_at"),
    [
        ("9999-12-31", None),  # never comes due in the times we handle
        ("2999-12-31", None),
        ("9999-12-31T23:59:59-23:59", None),
        ("0001-01-01", datetime(1970, 1, 1, tzinfo=UTC)),  # long overdue: at once
        ("2" * 5000, None),
    ],
)
def test_a_due_date_out_of_range_never_overflows(due_date: str, due_at: datetime | None) -> None:
    assert overdue_from(due_date) == due_at


def test_an_invoice_moved_to_year_9999_cancels_its_timer() -> None:
    moved = invoice("updated", before=OPEN, after={**OPEN, "due_date": "9999-12-31"})
    assert invoice_timer(moved) == ("acme/invoice/I-1/invoice_overdue", None)
    assert invoice_timer(invoice("created", after={**OPEN, "due_date": "9999-12-31"})) is None


def test_a_far_future_invoice_with_an_overdue_workflow_is_processed(settings) -> None:
    index = WorkflowIndex()
    index.put(compile_workflow(make_workflow(trigger={"type": "invoice_overdue"})))
    event = invoice("created", after={**OPEN, "due_date": "9999-12-31"})
    outcome = process_change(b"I-1", codec.dumps(event), source(), index, settings, NOW, no_state)
    assert outcome.dead_letter is None and outcome.messages == []
