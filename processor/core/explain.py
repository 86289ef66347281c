"""Explanations that read right: a workflow's condition tree with each group's verdict, which
leaves decided it, and why a record's events did or did not run workflows. Pure.

The compiled conditions (``processor/core/conditions.py``) evaluate every leaf, with no
short-circuit, and append one result per leaf in the order of the tree; so the tree is
rebuilt from the workflow's ``conditions`` and those results, with no second evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from processor.core.compiler import CompiledWorkflow
from processor.core.operators import REGISTRY as OPERATORS
from processor.core.triggers import explain_trigger
from topics.api import (
    ConditionNode,
    EventDecisions,
    NotTriggered,
    RecordDecisions,
    WatchingWorkflow,
    WorkflowDecision,
)
from topics.events import ChangeEvent, RecordRef
from topics.runs import ConditionResult, RunRecord
from topics.workflows import AllOf, AnyOf, Condition, NotOf, Workflow


def condition_tree(
    condition: Condition | None, leaves: Sequence[ConditionResult | Mapping[str, Any]]
) -> ConditionNode | None:
    """``condition`` with the verdict of each group, its leaves' results taken in order;
    ``None`` without conditions, or when the results are not the tree's (a run of another
    version)."""
    if condition is None:
        return None
    results = iter([_result(leaf) for leaf in leaves])
    try:
        tree = _node(condition, "conditions", results)
    except _NotThisTree:
        return None
    if next(results, None) is not None:
        return None
    return tree


class _NotThisTree(Exception):
    """The results run out, or a leaf's result names another field or operator."""


def _result(leaf: ConditionResult | Mapping[str, Any]) -> ConditionResult:
    return leaf if isinstance(leaf, ConditionResult) else ConditionResult.model_validate(leaf)


def _node(node: Condition, loc: str, results: Iterator[ConditionResult]) -> ConditionNode:
    if isinstance(node, AllOf | AnyOf):
        kind, members = ("all", node.all) if isinstance(node, AllOf) else ("any", node.any)
        children = [_node(c, f"{loc}.{kind}.{i}", results) for i, c in enumerate(members)]
        verdicts = [c.passed for c in children]
        passed = all(verdicts) if kind == "all" else any(verdicts)
        return ConditionNode(kind=kind, loc=loc, passed=passed, children=children)
    if isinstance(node, NotOf):
        child = _node(node.not_, f"{loc}.not", results)
        return ConditionNode(kind="not", loc=loc, passed=not child.passed, children=[child])
    result = next(results, None)
    op = OPERATORS.get(node.op)
    if result is None or op is None or (result.field, result.op) != (node.field, op.name):
        raise _NotThisTree  # a result names the operator by its name, not an alias
    return ConditionNode(kind="leaf", loc=loc, passed=result.passed, result=result)


def deciding_leaves(node: ConditionNode) -> list[ConditionResult]:
    """The leaves whose results gave ``node`` its verdict: of an ``all`` that failed, its
    members that failed; of an ``any`` that held, those that held; of other groups all of
    them; of a ``not``, its condition's (so under a ``not`` that failed, a leaf that passed)."""
    if node.kind == "leaf":
        return [node.result] if node.result is not None else []
    if node.kind == "not":
        return deciding_leaves(node.children[0])
    chosen = node.children
    if node.kind == "all" and not node.passed:
        chosen = [c for c in node.children if not c.passed]
    elif node.kind == "any" and node.passed:
        chosen = [c for c in node.children if c.passed]
    return [leaf for child in chosen for leaf in deciding_leaves(child)]


MAX_EXPLAINED = 50
"""Workflows whose trigger an event's why-not explains (by id); the others are counted."""


def explain_record(
    tenant_id: str,
    record_type: str,
    record_id: str,
    runs: Sequence[RunRecord],
    watching: Sequence[CompiledWorkflow],
    version: Callable[[str, int], Workflow | None] = lambda _id, _v: None,
) -> RecordDecisions:
    """ "Why didn't it run?" for one record: its recent events that ran workflows, newest
    first, each run with the leaves that stopped it (and its condition tree, when ``version``
    knows the workflow version it ran); for each such event, every other workflow of
    ``watching`` (the tenant's active workflows on the record type) with why its trigger did
    not fire. The summary counts what the answer lists."""
    events: dict[str, EventDecisions] = {}
    known: dict[str, ChangeEvent] = {}
    for run in runs:
        event = events.get(run.event_id)
        if event is None:
            event = events[run.event_id] = EventDecisions(
                event_id=run.event_id,
                operation=run.event.operation if run.event is not None else None,
                occurred_at=run.occurred_at,
                runs=[],
            )
        if run.event is not None:
            known[run.event_id] = run.event
        saved = version(run.workflow_id, run.workflow_version)
        tree = condition_tree(saved.conditions, run.conditions) if saved is not None else None
        stopped: list[ConditionResult] = []
        if run.status == "conditions_not_met":
            # Without the tree, the leaves that failed (under a ``not`` that would mislead).
            stopped = deciding_leaves(tree) if tree else [c for c in run.conditions if not c.passed]
        event.runs.append(
            WorkflowDecision(
                run_id=run.run_id,
                workflow_id=run.workflow_id,
                workflow_version=run.workflow_version,
                workflow_name=run.workflow_name,
                status=run.status,
                stopped_by=stopped,
                condition_tree=tree,
                error=run.error,
            )
        )
    ordered = sorted(watching, key=lambda c: c.workflow.id)
    for event_id, decisions in events.items():
        change = known.get(event_id)
        ran = {r.workflow_id for r in decisions.runs}
        if change is not None:
            others = [c for c in ordered if c.workflow.id not in ran]
            decisions.not_triggered = [_not_triggered(c, change) for c in others[:MAX_EXPLAINED]]
            decisions.not_triggered_omitted = max(0, len(others) - MAX_EXPLAINED)
    listed = [
        WatchingWorkflow(workflow_id=c.workflow.id, name=c.workflow.name, trigger=c.kind.name)
        for c in ordered
    ]
    watch = (
        f"{_plural(len(listed), 'active workflow')} "
        f"{'watches' if len(listed) == 1 else 'watch'} {record_type} records"
    )
    if events:
        stopped_runs = sum(r.status == "conditions_not_met" for r in runs)
        ran_workflows = len({r.workflow_id for r in runs})
        summary = (
            f"{watch}; {_plural(len(runs), 'run')} of {_plural(ran_workflows, 'workflow')} "
            f"over {_plural(len(events), 'event')} of this {record_type}, {stopped_runs} "
            f"stopped by {'its' if stopped_runs == 1 else 'their'} conditions"
        )
    else:
        summary = (
            f"no workflow's trigger matched any event of {record_type} {record_id!r} in the "
            f"run history; {watch}"
        )
    return RecordDecisions(
        tenant_id=tenant_id,
        record=RecordRef(type=record_type, id=record_id),
        summary=summary,
        events=list(events.values()),
        active_workflows=listed,
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _not_triggered(compiled: CompiledWorkflow, event: ChangeEvent) -> NotTriggered:
    why = explain_trigger(compiled.kind, compiled.trigger, compiled.workflow.tenant_id, event)
    reason = why.reason
    if why.matched:  # it would fire now: it was not active then, or its run left the history
        reason = (
            f"its trigger matches this event ({reason}), but the history has no run of it for "
            "the event: it was not active when the event came, or the run has left the history"
        )
    return NotTriggered(
        workflow_id=compiled.workflow.id,
        workflow_name=compiled.workflow.name,
        trigger=compiled.kind.name,
        reason=reason,
        values=dict(why.values),
        matched=why.matched,
    )
