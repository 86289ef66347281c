from __future__ import annotations

from bench.workload import CreatedLeads, decided_runs, every_event_workflows, index_of


def test_every_event_of_the_every_event_workload_starts_a_run_and_about_half_issue_a_note() -> None:
    events = list(CreatedLeads(20).events(1000))
    decided = list(decided_runs(events, index_of(every_event_workflows(20))))
    assert all(len(runs) == 1 for runs in decided)
    issued = [run.command_documents for [run] in decided if run.command_documents]
    assert all([c["type"] for c in commands] == ["add_note"] for commands in issued)
    assert 0.4 < len(issued) / len(events) < 0.6
    assert len({key for key, _ in events}) == len(events)  # each a new record
