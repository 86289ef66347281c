"""The least Python that writes what the core writes where every event runs: a yardstick for
the pure core, not a second implementation of it.

``bare_every_event_runs`` does only what the every-event-runs workload needs (``bench/workload.py``:
a ``record_created`` lead workflow per tenant, its condition ``score >= 50``, one ``add_note``):
msgspec's typed decode, a dict lookup, the condition as a comparison, the two SHA-1 ids, the
run record and the command as dicts, orjson with the event embedded as its bytes. No operator
or trigger registry, no templates, no checks of parameters, no budget, no outcome objects.
Its outputs are the core's, message for message (``tests/bench/test_floor.py``): if the core's
documents change, that test says so, and this changes with them.

``bare_and_core`` times both over the same events, alternated in one process, as the bench's
stage profile does: what the core costs beyond the work itself, and what the work itself costs
in CPython on this machine, which bounds any core written in Python.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from bench.workload import EVERY_EVENT_TEMPLATE, core_outcomes, index_of
from coeflow.collector import as_in_a_worker
from coeflow.settings import Settings
from processor.core.ids import action_id, run_id_after, run_id_prefix
from topics import codec
from topics.catalog import RECORD_CHANGES, RUNS, action_topic
from topics.hot_events import HotChangeEvent
from topics.workflows import Workflow

Written = tuple[str, bytes, bytes]
"""(topic, key, value) of one message."""

_NOTE = action_topic("add_note")
_DECODE = msgspec.json.Decoder(HotChangeEvent).decode
_EXPECTED = Workflow.model_validate(
    {"id": "x", "tenant_id": "x", "name": "x", **EVERY_EVENT_TEMPLATE}
).model_dump(include={"trigger", "conditions", "actions"})
"""The one workflow shape whose trigger, condition and action ``bare_every_event_runs`` writes
out by hand: any other would make its outputs differ from the core's."""

BareIndex = dict[str, tuple[Workflow, bytes]]
"""Each tenant's workflow, with the part of its run ids made once (as the compiler makes it)."""


def bare_index(workflows: Iterable[Workflow]) -> BareIndex:
    """The every-event-runs workflows by tenant; ``ValueError`` for any other workflow, an
    inactive one (the core would run none) or a second of a tenant (the core would run both)."""
    by_tenant: BareIndex = {}
    for workflow in workflows:
        if workflow.model_dump(include={"trigger", "conditions", "actions"}) != _EXPECTED:
            raise ValueError(f"{workflow.id} is not a workflow of the every-event-runs workload")
        if workflow.status != "active" or workflow.tenant_id in by_tenant:
            raise ValueError(f"{workflow.id}: one active workflow a tenant, as the workload has")
        by_tenant[workflow.tenant_id] = (workflow, run_id_prefix(workflow.id, workflow.version))
    return by_tenant


def bare_every_event_runs(
    events: Iterable[tuple[bytes, bytes]], by_tenant: BareIndex, now: datetime
) -> Iterator[Written]:
    """What the core writes for ``events`` of the every-event-runs workload, written directly
    (the events at offsets 0, 1, … of partition 0, as ``core_outcomes`` reads them); an event
    with a causation, which ``CreatedLeads`` never makes, is a ``ValueError`` (its depth would
    be checked and written, as the core does)."""
    dumps = codec.dumps_outgoing
    for offset, (_, value) in enumerate(events):
        event = _DECODE(value)
        if event.causation is not None:
            raise ValueError(f"{event.event_id} has a causation")
        found = by_tenant.get(event.tenant_id)
        if found is None or event.record_type != "lead" or event.operation != "created":
            continue
        workflow, prefix = found
        run_id = run_id_after(prefix, event.event_id)
        record = {"type": event.record_type, "id": event.record_id}
        after = event.after or {}
        score: Any = after.get("score")
        passed = type(score) in (int, float) and score >= 50
        actions = []
        if passed:
            params = {"body": f"New lead {after.get('name', '')}, score {score}"}
            issued = action_id(run_id, 0)
            command = {
                "action_id": issued,
                "run_id": run_id,
                "tenant_id": workflow.tenant_id,
                "workflow_id": workflow.id,
                "workflow_version": workflow.version,
                "step": 0,
                "type": "add_note",
                "record": record,
                "params": params,
                "causation": {"run_id": run_id, "workflow_id": workflow.id, "depth": 1},
                "issued_at": now,
            }
            yield _NOTE, issued.encode(), dumps(command)
            actions.append(
                {
                    "step": 0,
                    "type": "add_note",
                    "action_id": issued,
                    "params": params,
                    "status": "pending",
                    "attempts": 0,
                    "detail": None,
                    "error": None,
                }
            )
        # written out, not made by the core's ``_run_document``: that call would time the core
        run = {
            "run_id": run_id,
            "tenant_id": workflow.tenant_id,
            "workflow_id": workflow.id,
            "workflow_version": workflow.version,
            "workflow_name": workflow.name,
            "event_id": event.event_id,
            "record": record,
            "trigger": "record_created",
            "status": "actions_issued" if passed else "conditions_not_met",
            "conditions": [
                {"field": "score", "op": "gte", "expected": 50, "actual": score, "passed": passed}
            ],
            "actions": actions,
            "error": None,
            "depth": 0,
            "source": {"topic": RECORD_CHANGES, "partition": 0, "offset": offset},
            "occurred_at": event.occurred_at,
            "decided_at": now,
            "completed_at": None,
            "note": None,
            "event": orjson.Fragment(value),
        }
        yield RUNS, run_id.encode(), dumps(run)


def bare_and_core(
    events: Sequence[tuple[bytes, bytes]], workflows: Sequence[Workflow], rounds: int = 5
) -> dict[str, float]:
    """µs of CPU an event, the median of ``rounds`` alternated passes over ``events``: "bare"
    (``bare_every_event_runs``) and "core" (the pure core, ``core_outcomes``, which also makes
    each event's position, as a consumer record is made for a worker), with the collector as a
    worker has it; nothing is kept, as a worker keeps nothing (``bench/stages.py``). Which goes
    first changes from round to round."""
    settings = Settings(_env_file=None, kafka_bootstrap="floor:0")
    by_tenant, index = bare_index(workflows), index_of(workflows)

    def bare() -> None:
        for _ in bare_every_event_runs(events, by_tenant, datetime.now(UTC)):
            pass

    def core() -> None:
        for _ in core_outcomes(events, index, settings):
            pass

    passes: dict[str, list[float]] = {"bare": [], "core": []}
    with as_in_a_worker():
        for n in range(rounds):
            for name, run in (("bare", bare), ("core", core))[:: 1 if n % 2 == 0 else -1]:
                began = time.process_time()
                run()
                passes[name].append(time.process_time() - began)
    return {
        name: round(statistics.median(seconds) / len(events) * 1e6, 2)
        for name, seconds in passes.items()
    }
