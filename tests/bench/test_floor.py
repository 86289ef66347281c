from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bench.floor import bare_and_core, bare_every_event_runs, bare_index
from bench.workload import CreatedLeads, core_outcomes, every_event_workflows, index_of, workflows
from coeflow.settings import Settings

_TIMES = re.compile(rb'"(decided_at|issued_at)":"[^"]*"')
"""The times of deciding, which the core takes from its clock."""


def _comparable(value: bytes) -> bytes:
    return _TIMES.sub(rb'"\1":""', value)


def test_the_bare_work_writes_what_the_core_writes_message_for_message() -> None:
    events = list(CreatedLeads(30).events(600))
    made = every_event_workflows(30)
    settings = Settings(_env_file=None, kafka_bootstrap="floor:0")
    core = [m for o in core_outcomes(events, index_of(made), settings) for m in o.messages]
    bare = list(bare_every_event_runs(events, bare_index(made), datetime.now(UTC)))
    assert len(bare) == len(core) > len(events)  # a run each, and a command for about half
    for (topic, key, value), message in zip(bare, core, strict=True):
        assert (topic, key) == (message.topic, message.key)
        assert message.value is not None and _TIMES.search(value)
        assert _comparable(value) == _comparable(message.value)  # byte for byte


def test_the_bare_work_refuses_workflows_it_does_not_do() -> None:
    with pytest.raises(ValueError, match="not a workflow of the every-event-runs workload"):
        bare_index(workflows(10, 10))
    one = every_event_workflows(1)[0]
    with pytest.raises(ValueError, match="one active workflow a tenant"):
        bare_index([one, one.model_copy(update={"id": "wf-second"})])
    with pytest.raises(ValueError, match="one active workflow a tenant"):
        bare_index([one.model_copy(update={"status": "inactive"})])


def test_the_bare_work_and_the_core_are_both_timed() -> None:
    figures = bare_and_core(list(CreatedLeads(10).events(200)), every_event_workflows(10), rounds=2)
    assert set(figures) == {"bare", "core"} and all(us > 0 for us in figures.values())
