"""What one workflow does with one event: the run record and the commands to issue.

Pure: the caller passes the time and where the event was read; nothing here does IO.

What we build ourselves is not validated on the way out: a run record and its commands are
plain data in the shape of ``RunRecord`` and ``ActionCommand`` (``topics/runs.py``,
``topics/commands.py``), encoded once. The models stay the one schema:
``tests/processor/core/test_outputs.py`` shows, with generated workflows and events, that
every document validates as its topic's model. ``Run.record`` and ``Run.commands`` give the
models, validated, for what reads a run off the hot path (a dry run, the tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson

from actions.templating import Budget, render_tree
from coeflow.errors import ActionRenderError
from processor.core import ids
from processor.core.compiler import CompiledWorkflow
from processor.core.conditions import ConditionDoc
from topics import codec
from topics.commands import ActionCommand
from topics.events import ChangeEvent
from topics.hot_events import embeddable
from topics.runs import ConditionResult, RunRecord, RunStatus, SourcePosition

Document = dict[str, Any]
"""A message as plain data in the shape of its topic's model, encoded once."""


class Position(Protocol):
    """Where a message was read; Faust's messages have these attributes already."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


def source_of(position: Position) -> SourcePosition:
    """The position as the schema's model; built only for what is recorded (runs, letters)."""
    if isinstance(position, SourcePosition):
        return position
    return SourcePosition.model_construct(
        topic=position.topic, partition=position.partition, offset=position.offset
    )


class Run(NamedTuple):
    """One per run: a named tuple costs a third of a frozen dataclass to make."""

    document: Document
    """The run record as ``workflow.runs`` carries it (a ``RunRecord``); its ``event`` is the
    trigger event's original bytes (an ``orjson.Fragment``) when it was read from bytes."""
    command_documents: tuple[Document, ...] = ()
    """The ``ActionCommand`` of each action issued, in step order."""
    crash: BaseException | None = None
    """What made this run ``failed`` unexpectedly (a bug, or an input no check foresaw), for
    the worker's log; the run record says it in words."""

    @property
    def status(self) -> RunStatus:
        status: RunStatus = self.document["status"]
        return status

    @property
    def run_id(self) -> str:
        run_id: str = self.document["run_id"]
        return run_id

    @property
    def record(self) -> RunRecord:
        """The run record, validated."""
        event = self.document.get("event")
        if isinstance(event, orjson.Fragment):
            return RunRecord.model_validate(
                {**self.document, "event": codec.loads(codec.dumps(event))}
            )
        return RunRecord.model_validate(self.document)

    @property
    def commands(self) -> tuple[ActionCommand, ...]:
        """The commands, validated."""
        return tuple(ActionCommand.model_validate(c) for c in self.command_documents)


_new_run = tuple.__new__
"""``Run``'s own constructor is a Python function (its defaults): the hot path makes a run by
``tuple.__new__`` with every field given."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything the processor would decide for one workflow and event (the dry run)."""

    tenant_matches: bool
    trigger_matches: bool
    conditions: tuple[ConditionResult, ...]
    run: Run | None


def decide(
    event: ChangeEvent,
    candidates: Iterable[CompiledWorkflow],
    *,
    max_depth: int,
    source: Position | None,
    now: datetime,
    embedded: Any = None,
) -> list[Run]:
    """The runs that ``event`` starts among ``candidates`` (one per matching trigger), which
    ``WorkflowIndex.candidates`` chose: of the event's record type, of a trigger kind that
    fires on its operation. The tenant is checked again: no index bug may cross tenants.

    Never raises: a workflow that fails unexpectedly gets a ``failed`` run, and the others'
    runs go on. The runs share one rendering deadline: however many workflows a tenant gives
    one record type, an event's merge fields take at most that long. ``embedded`` is the event
    as the run records carry it (its original bytes as an ``orjson.Fragment``; ``None``: the
    event itself)."""
    runs = []
    budget = None  # one deadline for the merge fields of every run the event starts
    tenant = event.tenant_id
    for compiled in candidates:
        try:
            if compiled.workflow.tenant_id != tenant or not compiled.kind.matches(
                compiled.trigger, event
            ):
                continue  # most candidates: no run, and nothing made for one
            if budget is None:
                budget = Budget()
            run = run_workflow(
                compiled,
                event,
                max_depth=max_depth,
                source=source,
                now=now,
                budget=budget,
                embedded=embedded,
            )
        except Exception as exc:
            run = crashed_run(compiled, event, exc, source=source, now=now, embedded=embedded)
        runs.append(run)
    return runs


def run_guarded(
    compiled: CompiledWorkflow,
    event: ChangeEvent,
    *,
    max_depth: int,
    source: Position | None,
    now: datetime,
) -> Run:
    """``run_workflow``, with an unexpected failure as the workflow's ``failed`` run."""
    try:
        return run_workflow(compiled, event, max_depth=max_depth, source=source, now=now)
    except Exception as exc:
        return crashed_run(compiled, event, exc, source=source, now=now)


def crashed_run(
    compiled: CompiledWorkflow,
    event: ChangeEvent,
    exc: BaseException,
    *,
    source: Position | None,
    now: datetime,
    embedded: Any = None,
) -> Run:
    """The ``failed`` run of a workflow whose decision raised: it says so, and issues nothing."""
    reason = (
        f"the run could not be decided ({type(exc).__name__}: {exc}); nothing was issued, "
        "and the worker log has the details"
    )
    run_id = ids.run_id_after(compiled.run_id_prefix, event.event_id)
    document = _run_document(
        compiled, event, run_id, event.depth, "failed", source, now, error=reason
    )
    document["event"] = embeddable(event) if embedded is None else embedded
    return Run(document, (), exc)


def _triggered(compiled: CompiledWorkflow, event: ChangeEvent) -> bool:
    return (
        compiled.workflow.tenant_id == event.tenant_id
        and compiled.trigger.record_type == event.record_type
        and event.operation in compiled.kind.operations
        and compiled.kind.matches(compiled.trigger, event)
    )


def dry_run(
    compiled: CompiledWorkflow, event: ChangeEvent, *, max_depth: int, now: datetime
) -> Decision:
    """The full decision for one workflow, conditions included even when the trigger missed."""
    conditions: list[ConditionDoc] = []
    if compiled.condition is not None:
        compiled.condition(event.before, event.record, conditions)
    triggered = _triggered(compiled, event)
    run = (
        run_workflow(compiled, event, max_depth=max_depth, source=None, now=now)
        if triggered
        else None
    )
    return Decision(
        tenant_matches=compiled.workflow.tenant_id == event.tenant_id,
        trigger_matches=triggered,
        conditions=tuple(ConditionResult.model_validate(c) for c in conditions),
        run=run,
    )


def run_workflow(
    compiled: CompiledWorkflow,
    event: ChangeEvent,
    *,
    max_depth: int,
    source: Position | None,
    now: datetime,
    budget: Budget | None = None,
    embedded: Any = None,
) -> Run:
    """The run of a workflow whose trigger matched ``event``; its merge fields render within
    ``budget`` (a deadline of its own if none is given). ``embedded``: as in ``decide``."""
    run_id = ids.run_id_after(compiled.run_id_prefix, event.event_id)
    depth = event.depth  # a property: read once
    conditions: list[ConditionDoc] = []
    commands: tuple[Document, ...] = ()
    error = None
    status: RunStatus
    if depth > max_depth:
        status = "loop_blocked"
        error = (
            f"causation depth {depth} exceeds the limit of {max_depth} "
            "(COEFLOW_MAX_CAUSATION_DEPTH): workflows are triggering each other in a loop"
        )
    elif compiled.condition is not None and not compiled.condition(
        event.before, event.record, conditions
    ):
        status = "conditions_not_met"
    else:
        try:
            commands = build_commands(compiled, event, run_id, depth, now, budget or Budget())
            status = "actions_issued"
        except ActionRenderError as exc:
            status, error = "failed", str(exc)
    document = _run_document(
        compiled, event, run_id, depth, status, source, now, conditions, commands, error
    )
    document["event"] = embeddable(event) if embedded is None else embedded
    return _new_run(Run, (document, commands, None))


def _run_document(
    compiled: CompiledWorkflow,
    event: ChangeEvent,
    run_id: str,
    depth: int,
    status: RunStatus,
    source: Position | None,
    now: datetime,
    conditions: list[ConditionDoc] | tuple[()] = (),
    commands: tuple[Document, ...] = (),
    error: str | None = None,
) -> Document:
    """A ``RunRecord`` as plain data, every field written (its ``event`` is the caller's)."""
    workflow = compiled.workflow
    return {
        "run_id": run_id,
        "tenant_id": workflow.tenant_id,
        "workflow_id": workflow.id,
        "workflow_version": workflow.version,
        "workflow_name": workflow.name,
        "event_id": event.event_id,
        "record": {"type": event.record_type, "id": event.record_id},
        "trigger": compiled.kind.name,
        "status": status,
        "conditions": conditions if type(conditions) is list else list(conditions),
        "actions": [
            {
                "step": c["step"],
                "type": c["type"],
                "action_id": c["action_id"],
                "params": c["params"],
                "status": "pending",
                "attempts": 0,
                "detail": None,
                "error": None,
            }
            for c in commands
        ]
        if commands
        else [],
        "error": error,
        "depth": depth,
        "source": (
            None
            if source is None
            else {"topic": source.topic, "partition": source.partition, "offset": source.offset}
        ),
        "occurred_at": event.occurred_at,
        "decided_at": now,
        "completed_at": None,
        "note": None,
    }


def build_commands(
    compiled: CompiledWorkflow,
    event: ChangeEvent,
    run_id: str,
    depth: int,
    now: datetime,
    budget: Budget,
) -> tuple[Document, ...]:
    """Render every action for ``event`` (whose causation ``depth`` is given); all or nothing
    (``ActionRenderError`` names the step). Each is an ``ActionCommand`` as plain data."""
    workflow = compiled.workflow
    context = merge_context(compiled, event)
    causation = {"run_id": run_id, "workflow_id": workflow.id, "depth": depth + 1}
    record = {"type": event.record_type, "id": event.record_id}
    commands = []
    for step in compiled.actions:
        try:
            params = step.action.command_params(
                render_tree(step.template, context, budget), event.occurred_at
            )
        except ActionRenderError as exc:
            raise ActionRenderError(f"step {step.step} ({step.action.name}): {exc}") from None
        commands.append(
            {
                "action_id": ids.action_id(run_id, step.step),
                "run_id": run_id,
                "tenant_id": workflow.tenant_id,
                "workflow_id": workflow.id,
                "workflow_version": workflow.version,
                "step": step.step,
                "type": step.action.name,
                "record": record,
                "params": params,
                "causation": causation,
                "issued_at": now,
            }
        )
    return tuple(commands)


def merge_context(compiled: CompiledWorkflow, event: ChangeEvent) -> dict[str, Any]:
    """What merge fields can read: ``record``, ``before``, ``event`` and ``workflow``; the last
    two only when the workflow's templates read them (``CompiledWorkflow.merge_roots``), since
    most read the record alone and the event's time as text costs more than the render."""
    roots = compiled.merge_roots
    context: dict[str, Any] = {"record": event.record, "before": event.before or {}}
    if "event" in roots:
        context["event"] = {
            "event_id": event.event_id,
            "tenant_id": event.tenant_id,
            "record_type": event.record_type,
            "record_id": event.record_id,
            "operation": event.operation,
            "occurred_at": event.occurred_at.isoformat(),
            "actor_id": event.actor_id,
        }
    if "workflow" in roots:
        workflow = compiled.workflow
        context["workflow"] = {
            "id": workflow.id,
            "name": workflow.name,
            "version": workflow.version,
        }
    return context
