"""Merge-field limits seen from a workflow: refused when saved, ``failed`` runs when rendered."""

from __future__ import annotations

import time

import pytest

from coeflow.errors import InvalidWorkflow
from processor.core.compiler import compile_workflow
from processor.core.decide import dry_run
from tests.factories import NOW, Factory


def note_workflow(workflow_factory: Factory, body: str) -> object:
    return workflow_factory(
        conditions=None, actions=[{"type": "add_note", "body": body}], status="active"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ '%999999999d'|format(1) }}", "format width 999,999,999 is above the limit of 1,000"),
        ("{{ 'a'|center(999999999) }}", "center width 999,999,999 is above the limit of 1,000"),
        ("{{ record.name|frobnicate }}", "unknown filter 'frobnicate'"),
        ("{{ record|attr('name') }}", "filter 'attr' is not allowed"),
        ("{% include 'x' %}", "{% include %} is not available in merge fields"),
        ("{% for x in record.items %}{{ x }}{% endfor %}", "{% for %} is not available"),
    ],
)
def test_a_template_mistake_is_refused_when_the_workflow_is_saved(
    workflow_factory: Factory, body: str, expected: str
) -> None:
    with pytest.raises(InvalidWorkflow) as refused:
        compile_workflow(note_workflow(workflow_factory, body))  # type: ignore[arg-type]
    messages = [str(p) for p in refused.value.problems]
    assert any(m.startswith("actions.0.body") and expected in m for m in messages), messages


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ({"fmt": "%999999999d"}, "format width 999,999,999 is above the limit of 1,000"),
        ({"fmt": "%.999999999f"}, "format precision 999,999,999 is above the limit of 100"),
        ({"fmt": "%s", "width": 999_999_999}, "center width 999,999,999"),
    ],
)
def test_a_dry_run_over_a_limit_fails_quickly_with_the_limit(
    workflow_factory: Factory, event_factory: Factory, after: dict[str, object], expected: str
) -> None:
    """What a read token can send through the dry-run endpoint: an event with its own values."""
    body = "{{ record.fmt|format(1.0) }}{{ 'a'|center(record.width|default(1)) }}"
    compiled = compile_workflow(note_workflow(workflow_factory, body))  # type: ignore[arg-type]
    started = time.perf_counter()
    decision = dry_run(compiled, event_factory(after=after), max_depth=8, now=NOW)
    assert time.perf_counter() - started < 2.0  # loose: the bombs took 20 s; no timing
    assert decision.run is not None
    record = decision.run.record
    assert record.status == "failed" and decision.run.commands == ()
    assert record.error is not None
    assert record.error.startswith("step 0 (add_note): merge field over a limit: ")
    assert expected in record.error
