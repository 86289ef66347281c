"""Compile a workflow once, when it changes, into what matching an event needs.

Compiling validates everything the schema cannot: the trigger kind and its parameters, every
condition's operator and value, every action's type and parameters (templates included). It
is what the API calls before saving, so a workflow that reaches the topic compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError

from actions.params import ActionType
from actions.registry import REGISTRY, resolve_action
from actions.templating import ROOTS, compile_tree, merge_roots
from coeflow.addresses import Allowlist, refused_url
from coeflow.errors import InvalidWorkflow, Problem, problems_from
from processor.core import ids
from processor.core.conditions import Evaluator, compile_condition
from processor.core.triggers import TriggerKind, TriggerParams, resolve_trigger
from topics.workflows import ActionSpec, Condition, TriggerSpec, Workflow


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
    merge_roots: frozenset[str] = ROOTS
    """The roots of the merge context its actions' templates can read: an event's context is
    built with these alone (``processor.core.decide.merge_context``)."""
    run_id_prefix: bytes = field(init=False)
    """What its run ids hash before the event's id (``ids.run_id_prefix``), made once."""

    def __post_init__(self) -> None:
        prefix = ids.run_id_prefix(self.workflow.id, self.workflow.version)
        object.__setattr__(self, "run_id_prefix", prefix)  # frozen: set once, here

    @property
    def id(self) -> str:
        return self.workflow.id

    @property
    def active(self) -> bool:
        return self.workflow.status == "active"


MAX_MERGE_FIELDS = 500
"""Merge fields (``{{ }}`` and ``{% %}``) in all of a workflow's actions: each is parsed and
compiled when the workflow is saved and when a worker loads it; 12,000 of them held the event
loop for 2.5 s."""


def compile_workflow(workflow: Workflow) -> CompiledWorkflow:
    """Compile ``workflow``; ``InvalidWorkflow`` lists every problem found, not just the first."""
    fields = sum(_merge_fields(spec.params) for spec in workflow.actions)
    if fields > MAX_MERGE_FIELDS:  # counted before any is parsed
        raise InvalidWorkflow(
            [
                Problem(
                    "actions",
                    f"{fields:,} merge fields in all; a workflow may have {MAX_MERGE_FIELDS:,}",
                )
            ]
        )
    problems: list[Problem] = []
    trigger = _trigger(workflow.trigger, problems)
    condition = _condition(workflow.conditions, problems)
    actions = [_action(step, spec, problems) for step, spec in enumerate(workflow.actions)]
    if problems or trigger is None:
        raise InvalidWorkflow(problems)
    kind, params = trigger
    compiled_actions = tuple(a for a in actions if a is not None)
    roots = frozenset().union(*(merge_roots(a.template) for a in compiled_actions))
    return CompiledWorkflow(workflow, kind, params, condition, compiled_actions, roots)


def validate_workflow(
    document: dict[str, Any], allowlist: Allowlist | None = None
) -> CompiledWorkflow:
    """The workflow a document (a request body, a file's entry) describes, compiled.

    ``InvalidWorkflow`` carries every problem at once: the schema's, and the compiler's for each
    part the schema accepted (a missing name does not hide a bad cron or template). With an
    ``allowlist``, a literal URL that outbound calls could never reach is a problem too."""
    try:
        workflow = Workflow.model_validate(document)
    except ValidationError as exc:
        schema = problems_from(exc)
        raise InvalidWorkflow([*schema, *_part_problems(document, schema, allowlist)]) from None
    problems: list[Problem] = []
    try:
        compiled = compile_workflow(workflow)
    except InvalidWorkflow as exc:
        problems += exc.problems
        compiled = None
    if allowlist is not None:
        for step, spec in enumerate(workflow.actions):
            _reachable(step, spec, allowlist, problems)
    if problems or compiled is None:
        raise InvalidWorkflow(problems)
    return compiled


def _reachable(step: int, spec: ActionSpec, allowlist: Allowlist, problems: list[Problem]) -> None:
    action = REGISTRY.get(spec.type)
    if action is None:
        return  # reported by compiling
    try:
        params = action.validate_definition(spec.params, f"actions.{step}")
    except InvalidWorkflow:
        return  # reported by compiling
    for name, url in params.outbound_urls():
        reason = refused_url(url, allowlist)
        if reason is not None:
            problems.append(
                Problem(
                    f"actions.{step}.{name}",
                    f"{reason}; if this address is meant, list it in COEFLOW_OUTBOUND_ALLOWLIST",
                )
            )


_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def _part_problems(
    document: dict[str, Any], schema: list[Problem], allowlist: Allowlist | None
) -> list[Problem]:
    """What compiling finds in the parts of ``document`` that have no schema problem."""

    def clean(loc: str) -> bool:
        return not any(p.loc == loc or p.loc.startswith(f"{loc}.") for p in schema)

    problems: list[Problem] = []
    parts: list[tuple[str, Any, Callable[[Any], object]]] = [
        ("trigger", TriggerSpec, lambda spec: _trigger(spec, problems)),
        ("conditions", _CONDITION, lambda tree: _condition(tree, problems)),
    ]
    actions = document.get("actions")
    for step, _ in enumerate(actions if isinstance(actions, list) else []):
        parts.append((f"actions.{step}", ActionSpec, partial(_action, step, problems=problems)))
    for loc, schema_of, compile_part in parts:
        value: Any = document
        for key in loc.split("."):
            value = value[int(key)] if isinstance(value, list) else value.get(key)
        if value is None or not clean(loc):
            continue
        try:
            validated = (
                schema_of.validate_python(value)
                if isinstance(schema_of, TypeAdapter)
                else schema_of.model_validate(value)
            )
        except ValidationError:
            continue  # reported by the schema already
        compile_part(validated)
        if allowlist is not None and isinstance(validated, ActionSpec):
            _reachable(int(loc.rsplit(".", 1)[1]), validated, allowlist, problems)
    return problems


def _merge_fields(value: Any) -> int:
    if isinstance(value, str):
        return value.count("{{") + value.count("{%")
    if isinstance(value, dict):
        return sum(_merge_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(_merge_fields(v) for v in value)
    return 0


def _trigger(
    spec: TriggerSpec, problems: list[Problem]
) -> tuple[TriggerKind[Any], TriggerParams] | None:
    try:
        return resolve_trigger(spec)
    except InvalidWorkflow as exc:
        problems.extend(exc.problems)
        return None


def _condition(tree: Condition | None, problems: list[Problem]) -> Evaluator | None:
    if tree is None:
        return None
    try:
        return compile_condition(tree)
    except InvalidWorkflow as exc:
        problems.extend(exc.problems)
        return None


def _action(step: int, spec: ActionSpec, problems: list[Problem]) -> CompiledAction | None:
    loc = f"actions.{step}"
    try:
        action = resolve_action(spec.type, f"{loc}.type")
        action.validate_definition(spec.params, loc)
    except InvalidWorkflow as exc:
        problems.extend(exc.problems)
        return None
    return CompiledAction(step, action, compile_tree(spec.params))
