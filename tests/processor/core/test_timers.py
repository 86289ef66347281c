from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from processor.core.compiler import compile_workflow
from processor.core.index import WorkflowIndex
from processor.core.pipeline import process_change, process_timer
from processor.core.timers import invoice_timer, overdue_from
from processor.timers import TimerReplica
from tests.factories import NOW, make_event, make_workflow, source
from topics import codec
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
    assert process_change(b"I-1", event, source(), index, settings, NOW).messages == []
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
    [armed] = process_change(b"I-1", event, source(), index, settings, NOW).messages
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
