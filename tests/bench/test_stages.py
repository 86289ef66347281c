from __future__ import annotations

import pytest

from bench.stages import STAGES, core_stages, output_bytes
from bench.workload import CreatedLeads, EventSource, every_event_workflows, index_of, workflows


@pytest.mark.parametrize(
    ("events", "index"),
    [
        (list(CreatedLeads(20).events(300)), index_of(every_event_workflows(20))),
        (list(EventSource(20).events(300)), index_of(workflows(200, 20))),
    ],
    ids=["every event runs", "mixed"],
)
def test_the_stages_add_up_to_the_core_and_each_is_found_in_the_profile(
    events: list[tuple[bytes, bytes]], index: object
) -> None:
    figures = core_stages(events, index)  # type: ignore[arg-type]
    parts = [figures[stage] for stage in (*STAGES, "other")]
    assert sum(parts) == pytest.approx(figures["core"], abs=0.05)
    assert all(figures[stage] > 0 for stage in ("decode", "index"))  # every event has them


def test_deciding_and_encoding_show_where_every_event_runs() -> None:
    figures = core_stages(list(CreatedLeads(20).events(300)), index_of(every_event_workflows(20)))
    assert figures["decide"] > 0 and figures["encode"] > 0


def test_what_is_written_an_event_holds_each_run_with_its_event_and_nothing_for_no_match() -> None:
    events = list(CreatedLeads(20).events(200))
    written = output_bytes(events, index_of(every_event_workflows(20)))
    assert written > sum(len(v) for _, v in events) / len(events)  # the run embeds the event
    assert output_bytes(events, index_of(workflows(20, 20, first_tenant=500))) == 0
