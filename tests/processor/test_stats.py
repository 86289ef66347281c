"""What the log says of runs; the counts run against the real broker in tests/integration."""

from __future__ import annotations

import logging

import pytest

from coeflow.settings import Settings
from processor.core.compiler import compile_workflow
from processor.core.decide import run_workflow
from processor.stats import RUN_LINES_PER_SECOND, RunLines, describe_run
from tests.factories import NOW, Factory


def test_run_lines_are_readable(event_factory: Factory, workflow_factory: Factory) -> None:
    compiled = compile_workflow(workflow_factory())
    issued = run_workflow(
        compiled, event_factory(record_id="L-9"), max_depth=8, source=None, now=NOW
    )
    assert describe_run(issued.record) == (
        "run wf-welcome v1 on lead L-9 (record_created): actions_issued → send_email, create_task"
    )
    not_met = run_workflow(
        compiled,
        event_factory(record_id="L-9", after={"score": 3}),
        max_depth=8,
        source=None,
        now=NOW,
    )
    assert describe_run(not_met.record).endswith("conditions_not_met: score gte 50 (was 3)")

    done = issued.record.model_copy(
        update={
            "status": "partially_failed",
            "completed_at": NOW,
            "actions": [
                issued.record.actions[0].model_copy(update={"status": "succeeded"}),
                issued.record.actions[1].model_copy(
                    update={"status": "failed", "error": "HTTP 400"}
                ),
            ],
        }
    )
    assert describe_run(done).endswith("partially_failed: send_email ✓, create_task ✗ HTTP 400")


def test_run_lines_carry_no_value_from_the_record(event_factory: Factory, workflow_factory) -> None:
    workflow = workflow_factory(
        conditions={"all": [{"field": "email", "op": "ends_with", "value": "@corp.example"}]}
    )
    not_met = run_workflow(
        compile_workflow(workflow),
        event_factory(after={"email": "ada.lovelace@example.com", "phone": "+4915112345678"}),
        max_depth=8,
        source=None,
        now=NOW,
    )
    line = describe_run(not_met.record)
    assert "ada.lovelace" not in line
    assert line.endswith("email ends_with '@corp.example' (was <text of 24 characters>)")
    failed = not_met.record.model_copy(
        update={"status": "failed", "error": "to: 'ada.lovelace@example.com' is not an email"}
    )
    assert describe_run(failed).endswith("failed: to: '…' is not an email")


def test_past_its_bound_a_second_the_run_log_counts_the_runs_it_does_not_show(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.2]
    lines = RunLines(per_second=2, clock=lambda: now[0])
    taken = [lines.take(status) for status in ("failed", "actions_issued", "failed", "failed")]
    assert taken == [True, True, False, False]
    with caplog.at_level(logging.INFO, logger="coeflow.runs"):
        lines.tick()  # the second is not over
        assert not caplog.records
        now[0] = 101.0
        assert lines.take("actions_issued")  # a new second: the count of the last one first
        lines.flush()  # nothing more to say
        assert lines.take("failed") and not lines.take("failed")
        lines.tick()
        now[0] = 102.5
        lines.tick()  # a second without runs after a burst: its count is said anyway
    assert [r.getMessage() for r in caplog.records] == [
        "2 more runs without a line of their own (2 failed): the log shows at most 2 a second; "
        "the Runs tab and GET /api/v1/runs have the runs the history keeps",
        "1 more run without a line of their own (1 failed): the log shows at most 2 a second; "
        "the Runs tab and GET /api/v1/runs have the runs the history keeps",
    ]


def test_the_settings_page_says_the_bound_the_run_log_keeps() -> None:
    described = Settings.model_fields["log_runs"].description or ""
    assert f"at most {RUN_LINES_PER_SECOND} a second" in described
