"""Compile a workflow once, when it changes, into what matching an event needs.

Compiling validates everything the schema cannot: the trigger kind and its parameters, every
condition's operator and value, every action's type and parameters (templates included). It
is what the API calls before saving, so a workflow that reaches the topic compiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actions.base import ActionType
from actions.registry import resolve_action
from actions.templating import compile_tree
from coeflow.errors import InvalidWorkflow, Problem
from processor.core.conditions import Evaluator, compile_condition
from processor.core.triggers import TriggerKind, TriggerParams, resolve_trigger
from topics.workflows import Workflow


@dataclass(frozen=True, slots=True)
class CompiledAction:
    step: int
    action: ActionType
    template: Any
    """The action's parameters with merge-field strings marked for rendering."""


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    workflow: Workflow
    kind: TriggerKind[Any]
    trigger: TriggerParams
    condition: Evaluator | None
    actions: tuple[CompiledAction, ...]

    @property
    def id(self) -> str:
        return self.workflow.id

    @property
    def active(self) -> bool:
        return self.workflow.status == "active"


def compile_workflow(workflow: Workflow) -> CompiledWorkflow:
    """Compile ``workflow``; ``InvalidWorkflow`` lists every problem found, not just the first."""
    problems: list[Problem] = []
    trigger: tuple[TriggerKind[Any], TriggerParams] | None = None
    condition: Evaluator | None = None
    try:
        trigger = resolve_trigger(workflow.trigger)
    except InvalidWorkflow as exc:
        problems.extend(exc.problems)
    if workflow.conditions is not None:
        try:
            condition = compile_condition(workflow.conditions)
        except InvalidWorkflow as exc:
            problems.extend(exc.problems)
    actions = []
    for step, spec in enumerate(workflow.actions):
        loc = f"actions.{step}"
        try:
            action = resolve_action(spec.type, f"{loc}.type")
            action.validate_definition(spec.params, loc)
        except InvalidWorkflow as exc:
            problems.extend(exc.problems)
            continue
        actions.append(CompiledAction(step, action, compile_tree(spec.params)))
    if problems or trigger is None:
        raise InvalidWorkflow(problems)
    kind, params = trigger
    return CompiledWorkflow(workflow, kind, params, condition, tuple(actions))
