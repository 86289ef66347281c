"""Decisions: runs, commands, ids, causation, loop protection, tenant isolation, dry runs."""

from __future__ import annotations

from datetime import UTC, datetime

from processor.core import ids
from processor.core.compiler import compile_workflow
from processor.core.decide import decide, dry_run
from processor.core.index import WorkflowIndex
from tests.factories import NOW, Factory, source


def run_all(*workflows: object, event: object, max_depth: int = 8) -> list:
    index = WorkflowIndex()
    for workflow in workflows:
        index.put(compile_workflow(workflow))  # type: ignore[arg-type]
    return decide(
        event,
        index.candidates(event),
        max_depth=max_depth,
        source=source(5),  # type: ignore[arg-type]
        now=NOW,
    )


def test_the_seed_workflow_issues_an_email_and_a_task(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    event = event_factory()
    [run] = run_all(workflow_factory(), event=event)
    record = run.record
    assert record.status == "actions_issued"
    assert record.workflow_version == 1 and record.event_id == event.event_id
    assert record.source is not None and record.source.offset == 5
    assert [(c.field, c.op, c.expected, c.actual, c.passed) for c in record.conditions] == [
        ("score", "gte", 50, 72, True)
    ]
    email, task = run.commands
    assert email.type == "send_email" and email.params == {
        "to": "ada@example.com",
        "subject": "Welcome — Thanks for your interest",
        "body": "Hi Ada,\n\nthanks for your interest in Coeffection. "
        "Your account manager will be in touch soon.",
        "cc": [],
    }
    assert task.params == {
        "title": "Follow-up call",
        "assignee": "u-7",
        "priority": "normal",
        "due_at": datetime(2026, 11, 27, 19, 0, tzinfo=UTC),
    }
    assert [(a.step, a.type, a.action_id) for a in record.actions] == [
        (0, "send_email", email.action_id),
        (1, "create_task", task.action_id),
    ]
    assert email.causation.depth == 1 and email.causation.run_id == record.run_id
    assert email.record.type == "lead" and email.record.id == event.record_id
    assert email.issued_at == NOW


def test_ids_are_deterministic_and_distinct(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    event = event_factory()
    first = run_all(workflow_factory(), event=event)[0]
    again = run_all(workflow_factory(), event=event)[0]
    assert first.record.run_id == again.record.run_id
    assert [c.action_id for c in first.commands] == [c.action_id for c in again.commands]
    assert len({c.action_id for c in first.commands}) == 2
    next_version = run_all(workflow_factory(version=2), event=event)[0]
    assert next_version.record.run_id != first.record.run_id
    other_event = run_all(workflow_factory(), event=event_factory())[0]
    assert other_event.record.run_id != first.record.run_id


def test_a_run_id_is_the_id_of_its_workflow_version_and_event(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    """The compiled workflow keeps its part of the name; the id is still ``ids.run_id``'s."""
    event = event_factory()
    workflow = workflow_factory(version=7)
    [run] = run_all(workflow, event=event)
    assert run.run_id == ids.run_id(workflow.id, 7, event.event_id)
    assert [c.action_id for c in run.commands] == [
        ids.action_id(run.run_id, step) for step in (0, 1)
    ]


def test_failed_conditions_give_a_run_with_the_actual_values_and_no_commands(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    [run] = run_all(
        workflow_factory(), event=event_factory(after={"score": 10, "email": "a@b.com"})
    )
    assert run.record.status == "conditions_not_met"
    assert run.commands == () and run.record.actions == []
    assert run.record.conditions[0].actual == 10 and not run.record.conditions[0].passed


def test_a_trigger_that_does_not_match_gives_no_run(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    assert run_all(workflow_factory(), event=event_factory(record_type="deal")) == []


def test_causation_depth_grows_by_one(event_factory: Factory, workflow_factory: Factory) -> None:
    [run] = run_all(workflow_factory(), event=event_factory(depth=3))
    assert run.record.depth == 3
    assert {c.causation.depth for c in run.commands} == {4}


def test_a_change_deeper_than_the_limit_is_loop_blocked(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    [at_limit] = run_all(workflow_factory(), event=event_factory(depth=8))
    assert at_limit.record.status == "actions_issued"
    [blocked] = run_all(workflow_factory(), event=event_factory(depth=9))
    assert blocked.record.status == "loop_blocked" and blocked.commands == ()
    assert "COEFLOW_MAX_CAUSATION_DEPTH" in (blocked.record.error or "")
    [strict] = run_all(workflow_factory(), event=event_factory(depth=1), max_depth=0)
    assert strict.record.status == "loop_blocked"


def test_a_rendering_failure_fails_the_run_and_issues_nothing(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    [run] = run_all(
        workflow_factory(), event=event_factory(after={"score": 90, "name": "No email"})
    )
    assert run.record.status == "failed" and run.commands == ()
    assert "step 0 (send_email)" in (run.record.error or "") and "to" in (run.record.error or "")


def test_a_workflow_never_sees_another_tenants_events(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    """Whatever the key or content: the index is per tenant, and decide checks again."""
    acme = compile_workflow(workflow_factory())
    event = event_factory(tenant_id="globex")
    assert decide(event, [acme], max_depth=8, source=None, now=NOW) == []
    decision = dry_run(acme, event, max_depth=8, now=NOW)
    assert not decision.tenant_matches and not decision.trigger_matches and decision.run is None


def test_dry_run_explains_everything_even_without_a_match(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    compiled = compile_workflow(workflow_factory(status="draft"))
    decision = dry_run(compiled, event_factory(), max_depth=8, now=NOW)
    assert decision.trigger_matches and decision.run is not None
    assert [c.type for c in decision.run.commands] == ["send_email", "create_task"]
    missed = dry_run(
        compiled, event_factory(record_type="deal", after={"score": 5}), max_depth=8, now=NOW
    )
    assert not missed.trigger_matches and missed.run is None
    assert missed.conditions[0].actual == 5


def test_the_merge_context_has_every_root_a_template_reads(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    """The context is built with the roots the workflow's templates read (merge_roots): plain
    reads of the event and the workflow, and a Jinja template, still find theirs."""
    event = event_factory()
    body = "{{event.occurred_at}} {{workflow.name}} {{ event.record_id | upper }} {{record.name}}"
    workflow = workflow_factory(actions=[{"type": "add_note", "body": body}])
    [plain] = run_all(
        workflow_factory(actions=[{"type": "add_note", "body": "{{event.operation}}"}]),
        event=event,
    )
    [jinja] = run_all(workflow, event=event)
    assert plain.commands[0].params == {"body": event.operation}
    assert jinja.commands[0].params == {
        "body": f"{event.occurred_at.isoformat()} {workflow.name} "
        f"{event.record_id.upper()} {event.record['name']}"
    }
