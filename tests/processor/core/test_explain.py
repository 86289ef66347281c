"""Explanations that read right: each group's verdict over its leaves (a ``not`` reads right),
the leaves that decided a run, and "why didn't it run?" for a record, its counts equal to
what it lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from processor.core.compiler import compile_workflow
from processor.core.decide import dry_run, run_workflow
from processor.core.explain import MAX_EXPLAINED, condition_tree, deciding_leaves, explain_record
from processor.core.history import RunHistory
from tests.factories import NOW, make_event, make_workflow
from topics import codec
from topics.runs import ConditionResult, RunRecord
from topics.workflows import Workflow

LEAD = {"name": "Ada", "email": "a@example.com", "score": 72, "owner_id": "u-7", "country": "ZZ"}


def decided(conditions: Any, after: dict[str, Any]) -> tuple[Workflow, list[ConditionResult]]:
    workflow = make_workflow(conditions=conditions)
    decision = dry_run(compile_workflow(workflow), make_event(after=after), max_depth=8, now=NOW)
    return workflow, [ConditionResult.model_validate(c) for c in decision.conditions]


def test_a_not_reads_right_the_group_passes_over_the_leaf_that_did_not() -> None:
    conditions = {"not": {"field": "country", "op": "in", "value": ["ZZ"]}}
    workflow, leaves = decided(conditions, {**LEAD, "country": "DE"})
    tree = condition_tree(workflow.conditions, leaves)
    assert tree is not None and tree.kind == "not" and tree.passed is True
    (leaf,) = tree.children
    assert leaf.kind == "leaf" and leaf.passed is False and leaf.loc == "conditions.not"
    assert leaf.result is not None and leaf.result.actual == "DE"


def test_the_leaves_that_stopped_a_run_under_a_not_are_those_that_passed() -> None:
    conditions = {
        "all": [
            {"field": "score", "op": "gte", "value": 50},
            {"not": {"field": "country", "op": "in", "value": ["ZZ"]}},
        ]
    }
    workflow, leaves = decided(conditions, LEAD)
    tree = condition_tree(workflow.conditions, leaves)
    assert tree is not None and tree.passed is False
    assert [c.passed for c in tree.children] == [True, False]
    assert [(c.field, c.passed) for c in deciding_leaves(tree)] == [("country", True)]


def test_any_and_all_name_the_leaves_that_decided() -> None:
    conditions = {
        "any": [
            {"field": "score", "op": "gte", "value": 90},
            {
                "all": [
                    {"field": "country", "op": "eq", "value": "ZZ"},
                    {"field": "x", "op": "empty"},
                ]
            },
        ]
    }
    workflow, leaves = decided(conditions, LEAD)
    tree = condition_tree(workflow.conditions, leaves)
    assert tree is not None and tree.passed is True
    assert [c.field for c in deciding_leaves(tree)] == ["country", "x"]
    assert tree.children[1].children[1].loc == "conditions.any.1.all.1"
    workflow, leaves = decided(conditions, {**LEAD, "country": "DE", "x": "set"})
    tree = condition_tree(workflow.conditions, leaves)
    assert tree is not None and tree.passed is False
    assert [c.field for c in deciding_leaves(tree)] == ["score", "country", "x"]


def test_results_of_another_tree_give_no_tree() -> None:
    workflow, leaves = decided({"field": "score", "op": "gte", "value": 50}, LEAD)
    assert condition_tree(workflow.conditions, leaves) is not None
    assert condition_tree(workflow.conditions, leaves * 2) is None
    assert condition_tree(workflow.conditions, []) is None
    other = make_workflow(conditions={"field": "name", "op": "eq", "value": "x"})
    assert condition_tree(other.conditions, leaves) is None
    assert condition_tree(None, leaves) is None


LEAF = st.fixed_dictionaries(
    {
        "field": st.sampled_from(["score", "country", "missing"]),
        "op": st.sampled_from(["gte", "==", "in", "is_empty", "changed"]),
    }
).map(
    lambda leaf: {
        **leaf,
        "value": {"gte": 50, "==": "ZZ", "in": ["ZZ", 1]}.get(leaf["op"]),
    }
)
TREES = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
        inner.map(lambda c: {"not": c}),
    ),
    max_leaves=8,
)


@given(conditions=TREES, score=st.integers(0, 100), country=st.sampled_from(["ZZ", "DE"]))
def test_the_trees_verdict_is_the_runs(conditions: Any, score: int, country: str) -> None:
    lead = {**LEAD, "score": score, "country": country}
    workflow = make_workflow(conditions=conditions)
    compiled = compile_workflow(workflow)
    decision = dry_run(compiled, make_event(after=lead), max_depth=8, now=NOW)
    tree = condition_tree(workflow.conditions, list(decision.conditions))
    assert tree is not None
    assert tree.passed is (
        decision.run is not None and decision.run.record.status != "conditions_not_met"
    )
    deciding = deciding_leaves(tree)
    assert deciding, "a verdict always has leaves that gave it"


def a_run(workflow: Workflow, score: int, record_id: str = "L-9", minutes: int = 0) -> RunRecord:
    event = make_event(after={**LEAD, "score": score}, record_id=record_id)
    when = NOW + timedelta(minutes=minutes)
    return run_workflow(
        compile_workflow(workflow), event, max_depth=8, source=None, now=when
    ).record


def test_a_record_explains_which_workflows_ran_and_which_condition_stopped_them() -> None:
    seed = make_workflow()
    runs = RunHistory(per_workflow=100, max_age=timedelta(days=1), max_runs=1000)
    stopped, passed = a_run(seed, 10), a_run(seed, 90, minutes=1)
    for record in (stopped, passed, a_run(seed, 90, record_id="L-10")):
        runs.add_run(codec.dumps(record))
    kept = runs.of_record(("acme", "lead", "L-9"))
    explained = explain_record("acme", "lead", "L-9", kept, [compile_workflow(seed)])
    assert [e.event_id for e in explained.events] == [passed.event_id, stopped.event_id]
    newest, oldest = explained.events
    assert newest.runs[0].status == "actions_issued" and newest.runs[0].stopped_by == []
    assert oldest.runs[0].status == "conditions_not_met"
    assert [(c.field, c.actual) for c in oldest.runs[0].stopped_by] == [("score", 10)]
    assert oldest.runs[0].condition_tree is None  # no version given: no tree
    assert oldest.operation == "created"
    assert "2 runs of 1 workflow over 2 events" in explained.summary
    assert "1 stopped by its conditions" in explained.summary
    assert "1 active workflow watches lead records" in explained.summary


def test_the_summary_counts_the_workflows_it_lists_and_says_why_the_others_did_not_run() -> None:
    welcome = make_workflow()
    threshold = make_workflow(
        id="wf-hot", name="Hot lead", trigger={"type": "lead_score_threshold", "threshold": 80}
    )
    run = a_run(welcome, 72)
    watching = [compile_workflow(welcome), compile_workflow(threshold)]
    explained = explain_record("acme", "lead", "L-9", [run], watching)
    assert "2 active workflows watch lead records" in explained.summary
    assert [w.workflow_id for w in explained.active_workflows] == ["wf-hot", "wf-welcome"]
    (event,) = explained.events
    (other,) = event.not_triggered
    assert other.workflow_id == "wf-hot" and other.trigger == "lead_score_threshold"
    assert other.reason == "score 72 is below the threshold 80"
    assert other.values == {"threshold": 80.0, "before": None, "after": 72}

    nothing = explain_record("acme", "lead", "L-404", [], watching)
    assert nothing.events == []
    assert "no workflow's trigger matched any event of lead 'L-404'" in nothing.summary
    assert "2 active workflows watch lead records" in nothing.summary
    assert [(w.workflow_id, w.trigger) for w in nothing.active_workflows] == [
        ("wf-hot", "lead_score_threshold"),
        ("wf-welcome", "record_created"),
    ]


def test_with_the_version_a_stopped_run_shows_its_tree_and_the_leaf_under_the_not() -> None:
    guarded = make_workflow(conditions={"not": {"field": "country", "op": "in", "value": ["ZZ"]}})
    run = a_run(guarded, 72)
    assert run.status == "conditions_not_met"
    explained = explain_record(
        "acme",
        "lead",
        "L-9",
        [run],
        [],
        lambda w, v: guarded if (w, v) == (guarded.id, 1) else None,
    )
    decision = explained.events[0].runs[0]
    assert decision.condition_tree is not None and decision.condition_tree.kind == "not"
    assert [(c.field, c.passed) for c in decision.stopped_by] == [("country", True)]


def test_an_event_explains_a_bounded_number_of_other_workflows_and_counts_the_rest() -> None:
    seed = make_workflow()
    others = [
        compile_workflow(
            make_workflow(
                id=f"wf-{n:03}", trigger={"type": "record_updated", "record_type": "lead"}
            )
        )
        for n in range(MAX_EXPLAINED + 7)
    ]
    explained = explain_record("acme", "lead", "L-9", [a_run(seed, 72)], others)
    (event,) = explained.events
    assert len(event.not_triggered) == MAX_EXPLAINED and event.not_triggered_omitted == 7
    assert (
        event.not_triggered[0].reason == "it fires when a lead is updated; this event is 'created'"
    )
    assert f"{MAX_EXPLAINED + 7} active workflows watch lead records" in explained.summary
