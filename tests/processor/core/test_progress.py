from __future__ import annotations

from datetime import timedelta

from processor.core.progress import track
from tests.factories import NOW, command_source, make_command
from topics.outcomes import ActionOutcome, OutcomeStatus
from topics.runs import IssuedAction, RunRecord


def issued_run(*steps: str) -> RunRecord:
    return RunRecord(
        run_id="run-1",
        tenant_id="acme",
        workflow_id="wf-welcome",
        workflow_version=1,
        workflow_name="New Lead → Welcome Email",
        event_id="evt-1",
        record={"type": "lead", "id": "L-1"},
        trigger="record_created",
        status="actions_issued",
        conditions=[],
        actions=[IssuedAction(step=n, type=t, action_id=f"act-{n}") for n, t in enumerate(steps)],
        depth=0,
        occurred_at=NOW,
        decided_at=NOW,
    )


def outcome(
    step: int, status: OutcomeStatus, attempt: int = 1, error: str | None = None
) -> ActionOutcome:
    command = make_command("send_email", {}, run_id="run-1", action_id=f"act-{step}", step=step)
    return ActionOutcome.of(
        command,
        source=command_source("send_email"),
        attempt=attempt,
        status=status,
        at=NOW + timedelta(seconds=attempt),
        error=error,
        detail="HTTP 200" if status == "succeeded" else None,
    )


def fold(*items: RunRecord | ActionOutcome) -> list[RunRecord]:
    progress, completed = None, []
    for item in items:
        progress, done = track(progress, item, NOW)
        if done is not None:
            completed.append(done)
    return completed


def test_a_run_completes_when_every_step_has_a_final_outcome_in_any_order() -> None:
    run = issued_run("send_email", "create_task")
    for order in [
        (run, outcome(0, "succeeded"), outcome(1, "succeeded")),
        (outcome(1, "succeeded"), run, outcome(0, "succeeded")),
        (outcome(0, "succeeded"), outcome(1, "succeeded"), run),
    ]:
        [done] = fold(*order)
        assert done.status == "succeeded"
        assert [(a.status, a.attempts, a.detail) for a in done.actions] == [
            ("succeeded", 1, "HTTP 200"),
            ("succeeded", 1, "HTTP 200"),
        ]
        assert done.completed_at == NOW + timedelta(seconds=1)


def test_retries_are_waited_for_and_the_final_status_summarises_the_steps() -> None:
    run = issued_run("send_email", "call_webhook")
    assert fold(run, outcome(0, "succeeded"), outcome(1, "retrying", error="HTTP 503")) == []
    [done] = fold(
        run,
        outcome(0, "succeeded"),
        outcome(1, "retrying", error="HTTP 503"),
        outcome(1, "failed", attempt=2, error="HTTP 400"),
    )
    assert done.status == "partially_failed"
    assert (done.actions[1].status, done.actions[1].attempts, done.actions[1].error) == (
        "failed",
        2,
        "HTTP 400",
    )
    [all_failed] = fold(run, outcome(0, "failed", error="x"), outcome(1, "failed", error="y"))
    assert all_failed.status == "failed"


def test_a_late_or_repeated_outcome_does_not_undo_a_final_one() -> None:
    run = issued_run("send_email", "call_webhook")
    [done] = fold(
        run,
        outcome(0, "succeeded", attempt=2),
        outcome(0, "retrying", attempt=1),
        outcome(1, "succeeded"),
    )
    assert done.actions[0].status == "succeeded" and done.actions[0].attempts == 2


def test_runs_decided_without_actions_and_final_records_are_ignored() -> None:
    run = issued_run("send_email")
    not_met = run.model_copy(update={"status": "conditions_not_met", "actions": []})
    assert track(None, not_met, NOW) == (None, None)
    [done] = fold(run, outcome(0, "succeeded"))
    assert track(None, done, NOW) == (None, None)  # the tracker reads its own output
