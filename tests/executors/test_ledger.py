from __future__ import annotations

from datetime import timedelta

from executors.ledger import ActionLedger
from tests.factories import NOW, command_source, make_command
from topics.commands import ActionCommand
from topics.outcomes import ActionOutcome, OutcomeStatus


def outcome(
    command: ActionCommand, status: OutcomeStatus, attempt: int = 1, minutes: int = 0
) -> ActionOutcome:
    return ActionOutcome.of(
        command,
        source=command_source(command.type),
        attempt=attempt,
        status=status,
        at=NOW + timedelta(minutes=minutes),
        next_attempt_at=NOW if status == "retrying" else None,
    )


def test_a_final_outcome_makes_the_action_done() -> None:
    ledger, command = ActionLedger(), make_command("send_email", {})
    ledger.apply(outcome(command, "retrying"))
    assert not ledger.is_done(command.action_id)
    ledger.apply(outcome(command, "succeeded", attempt=2))
    assert ledger.is_done(command.action_id)
    assert ledger.waiting(lambda o: True) == []


def test_a_late_retrying_outcome_does_not_reopen_a_done_action() -> None:
    ledger, command = ActionLedger(), make_command("send_email", {})
    ledger.apply(outcome(command, "failed", attempt=3))
    ledger.apply(outcome(command, "retrying", attempt=2))
    assert ledger.is_done(command.action_id) and ledger.waiting(lambda o: True) == []


def test_waiting_actions_keep_their_latest_attempt_and_are_filtered_by_owner() -> None:
    ledger = ActionLedger()
    first, second = make_command("send_email", {}), make_command("send_sms", {})
    ledger.apply(outcome(first, "retrying", attempt=2))
    ledger.apply(outcome(first, "retrying", attempt=1))  # a repeat of an older outcome
    ledger.apply(outcome(second, "retrying"))
    waiting = ledger.waiting(lambda o: o.type == "send_email")
    assert [(o.action_id, o.attempt) for o in waiting] == [(first.action_id, 2)]
    assert waiting[0].command == first


def test_forgetting_drops_only_actions_that_ended_before_the_cutoff() -> None:
    ledger = ActionLedger()
    old, new = make_command("send_email", {}), make_command("send_email", {})
    ledger.apply(outcome(old, "succeeded", minutes=0))
    ledger.apply(outcome(new, "succeeded", minutes=10))
    assert ledger.forget_before(NOW + timedelta(minutes=5)) == 1
    assert not ledger.is_done(old.action_id) and ledger.is_done(new.action_id)
