"""The workflow builder: ``/workflows/new`` and ``/workflows/{id}/edit``.

Server-rendered, and the form is the state: every button (add, remove, move, a trigger or an
action type changed) posts the whole form with an ``op``; the server applies the edit to the
workflow document the form describes (``forms.py``) and renders the builder again, whole for a
plain post, the form alone for htmx, which swaps it in place. So it works with the keyboard and
without any inline script; ``static/builder.js`` only inserts a merge field at the cursor and
moves the focus after a swap.

Saving, activating, testing and rotating call the admin API's own views (``calls.py``) with
the session's token: validation, permissions and tenant scoping stay in one place, and a
422's problems appear at their controls (``forms.problems_at_controls``), all at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from processor.web import backtest, forms, labels
from processor.web.calls import Answer
from processor.web.forms import Control, Form, document_to_form, form_to_document
from processor.web.pages import Page, PageError, Redirect, edit_url, page
from processor.web.sessions import CSRF_FIELD
from topics.types import MAX_NESTING, within_nesting

# --------------------------------------------------------------------------------------------
# Edits: pure functions over the workflow document, one per builder button

Document = dict[str, Any]
Edit = Callable[[Document, str, Form], Document]
"""``edit(document, argument, form)``: the document after the button; the argument is what
follows the ``:`` in the button's ``op`` (a position, a condition's path)."""

MAX_ACTIONS = 50
"""What a workflow may have (``topics.workflows.Workflow``): the builder offers no more."""
MAX_CHILDREN = 50
NEW_LEAF: Mapping[str, Any] = {"field": "", "op": "eq"}


def _position(argument: str, length: int) -> int | None:
    if not argument.isascii() or not argument.isdigit() or len(argument) > 6:
        return None
    at = int(argument)
    return at if at < length else None


def _add_action(document: Document, _argument: str, form: Form) -> Document:
    kind = form.get("new_action", "")
    if kind not in forms.ACTIONS or len(document["actions"]) >= MAX_ACTIONS:
        return document
    return {**document, "actions": [*document["actions"], {"type": kind}]}


def _remove_action(document: Document, argument: str, _form: Form) -> Document:
    actions = list(document["actions"])
    at = _position(argument, len(actions))
    if at is not None:
        del actions[at]
    return {**document, "actions": actions}


def _mover(step: int) -> Edit:
    def move(document: Document, argument: str, _form: Form) -> Document:
        actions = list(document["actions"])
        at = _position(argument, len(actions))
        if at is None or not 0 <= at + step < len(actions):
            return document
        actions[at], actions[at + step] = actions[at + step], actions[at]
        return {**document, "actions": actions}

    return move


_PATH = re.compile(r"conditions(\.[0-9]{1,4}){0,32}")


def _children(node: Any) -> list[Any] | None:
    """A group's children as a list to edit in place (a ``not`` has one)."""
    if not isinstance(node, dict):
        return None
    for group in ("all", "any"):
        if isinstance(node.get(group), list):
            children: list[Any] = node[group]
            return children
    return None


def _conditions_copy(document: Document) -> Any:
    return orjson.loads(orjson.dumps(document.get("conditions")))


def _node_at(root: Any, path: list[int]) -> tuple[Any, Any, int | None]:
    """(the node at ``path``, its parent, its position in the parent), or ``None``s."""
    parent, position, node = None, None, root
    for index in path:
        if isinstance(node, dict) and "not" in node:
            if index != 0:
                return None, None, None
            parent, position, node = node, 0, node["not"]
            continue
        children = _children(node)
        if children is None or index >= len(children):
            return None, None, None
        parent, position, node = node, index, children[index]
    return node, parent, position


def _path(argument: str) -> list[int] | None:
    if not _PATH.fullmatch(argument):
        return None
    return [int(p) for p in argument.split(".")[1:]]


def _adder(make: Callable[[], Any]) -> Edit:
    """Add a child to the group at the argument's path; with no conditions yet, the first
    one makes an "all" group holding it."""

    def add(document: Document, argument: str, _form: Form) -> Document:
        root = _conditions_copy(document)
        if root is None:
            return {**document, "conditions": {"all": [make()]}}
        path = _path(argument)
        if path is None:
            return document
        node, _, _ = _node_at(root, path)
        if isinstance(node, dict) and "not" in node:  # a not with more: not (all of them)
            node["not"] = {"all": [node["not"], make()]}
        elif (children := _children(node)) is not None and len(children) < MAX_CHILDREN:
            children.append(make())
        elif node is not None and path == [] and not _children(node):  # a leaf at the root
            root = {"all": [root, make()]}
        return {**document, "conditions": root}

    return add


def _remove_condition(document: Document, argument: str, _form: Form) -> Document:
    path = _path(argument)
    root = _conditions_copy(document)
    if path is None or root is None:
        return document
    if not path:
        return {k: v for k, v in document.items() if k != "conditions"}
    node, parent, position = _node_at(root, path)
    if node is None or parent is None or position is None:
        return document
    if "not" in parent:
        parent["not"] = {}
    else:
        children = _children(parent)
        if children is not None:
            del children[position]
    return {**document, "conditions": root}


def _same(document: Document, _argument: str, _form: Form) -> Document:
    return document


EDITS: Mapping[str, Edit] = {
    "refresh": _same,
    "add_action": _add_action,
    "remove_action": _remove_action,
    "move_up": _mover(-1),
    "move_down": _mover(1),
    "add_condition": _adder(lambda: dict(NEW_LEAF)),
    "add_all": _adder(lambda: {"all": [dict(NEW_LEAF)]}),
    "add_any": _adder(lambda: {"any": [dict(NEW_LEAF)]}),
    "add_not": _adder(lambda: {"not": dict(NEW_LEAF)}),
    "remove_condition": _remove_condition,
}
"""Every button of the builder that changes the form, by the name its ``op`` starts with."""

_MAX_OP = 200


def apply_edit(form: Form, op: str) -> Form | None:
    """The form after the button ``op`` (``remove_action:1``); ``None`` when ``op`` is no
    edit (save, test and the others that call the API)."""
    name, _, argument = op[:_MAX_OP].partition(":")
    edit = EDITS.get(name)
    if edit is None:
        return None
    document = form_to_document(form)
    edited = document_to_form(edit(document, argument, form))
    for kept in ("test.record", "test.before", "test.operation", *backtest.FIELDS):
        if kept in form:
            edited[kept] = form[kept]
    return edited


# --------------------------------------------------------------------------------------------
# What the template shows


@dataclass
class ShownControl:
    """One control with its value and problems, as the template draws it."""

    control: Control
    name: str
    value: str
    errors: list[str]

    @property
    def id(self) -> str:
        return "f-" + self.name

    @property
    def kind(self) -> forms.ControlKind:
        return self.control.control_kind


@dataclass
class ConditionNode:
    path: str
    kind: str
    depth: int
    errors: list[str]
    children: list[ConditionNode] = field(default_factory=list)
    field: ShownControl | None = None
    op: ShownControl | None = None
    value: ShownControl | None = None
    operators: tuple[forms.Choice, ...] = ()


@dataclass
class ActionBlock:
    position: int
    title: str
    prefix: str
    type: str
    type_errors: list[str]
    controls: list[ShownControl]
    summary: str
    last: bool


@dataclass
class Builder:
    """Everything the builder's template draws."""

    form: Form
    errors: dict[str, list[str]]
    trigger_controls: list[ShownControl]
    conditions: ConditionNode | None
    actions: list[ActionBlock]
    fields: list[str]
    merge_fields: list[str]
    timezones: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    """Control name → what a person calls it ("Action 1 · To"), for the list of problems."""

    def label(self, name: str) -> str:
        return self.labels.get(name, name)


_GROUP_LABELS = labels.GROUPS
_VALUE_HELP = forms.CONTROL_KINDS["value"].help
_LEAF_FIELD = Control("field", "Field", "field", True)
_LEAF_OP = Control("op", "Operator", "select", True)
_LEAF_VALUE = Control("value", "Value", "value", False, help=_VALUE_HELP)


def _shown(control: Control, name: str, form: Form, errors: dict[str, list[str]]) -> ShownControl:
    value = form.get(name)
    if value is None:
        value = control.default or ""
    return ShownControl(control, name, value, errors.get(name, []))


def _condition(
    form: Form,
    path: str,
    depth: int,
    errors: dict[str, list[str]],
    trigger: str,
    samples: Mapping[str, Any],
) -> ConditionNode | None:
    kind = form.get(f"{path}.kind")
    if kind is None or depth > forms.MAX_DEPTH:
        return None
    node = ConditionNode(path, kind, depth, errors.get(f"{path}.kind", []))
    if kind == "leaf":
        node.field = _shown(_LEAF_FIELD, f"{path}.field", form, errors)
        node.op = _shown(_LEAF_OP, f"{path}.op", form, errors)
        field_name = node.field.value
        node.operators = forms.operators_for(
            trigger, samples.get(field_name, forms.OMIT), current=node.op.value or None
        )
        if forms.takes_value(node.op.value):
            node.value = _shown(_LEAF_VALUE, f"{path}.value", form, errors)
        return node
    i = 0
    while i < forms.MAX_ITEMS:
        child = _condition(form, f"{path}.{i}", depth + 1, errors, trigger, samples)
        if child is None:
            break
        node.children.append(child)
        i += 1
    return node


def build(
    form: Form,
    errors: dict[str, list[str]] | None = None,
    samples: Mapping[str, Any] | None = None,
) -> Builder:
    """The builder for ``form`` (already in the form ``document_to_form`` makes): each step's
    controls from the models, with the problems placed at them."""
    errors = errors or {}
    samples = samples or {}
    trigger = form.get("trigger.type", "")
    trigger_controls = [
        _shown(c, f"trigger.params.{c.key}", form, errors) for c in forms.trigger_controls(trigger)
    ]
    actions = []
    positions = forms.action_indices(form)
    for position, i in enumerate(positions):
        prefix = f"actions.{i}"
        kind = form.get(f"{prefix}.type", "")
        action = forms.ACTIONS.get(kind)
        actions.append(
            ActionBlock(
                position=position,
                title=f"Action {position + 1}",
                prefix=prefix,
                type=kind,
                type_errors=errors.get(f"{prefix}.type", []),
                controls=[
                    _shown(c, f"{prefix}.params.{c.key}", form, errors)
                    for c in forms.action_controls(kind)
                ],
                summary=action.description if action else "",
                last=position == len(positions) - 1,
            )
        )
    timezones = (
        sorted(zoneinfo.available_timezones())
        if any(c.control.kind == "timezone" for c in trigger_controls)
        else []
    )
    fields = sorted(samples)
    conditions = _condition(form, "conditions", 0, errors, trigger, samples)
    labels = {"name": "Name", "trigger.type": "Trigger", "actions": "Actions"}
    labels |= {c.name: f"Trigger · {c.control.label}" for c in trigger_controls}
    for a in actions:
        labels[f"{a.prefix}.type"] = f"{a.title} · Action type"
        labels |= {c.name: f"{a.title} · {c.control.label}" for c in a.controls}
    labels |= _condition_labels(conditions)
    return Builder(
        form=form,
        errors=errors,
        trigger_controls=trigger_controls,
        conditions=conditions,
        actions=actions,
        fields=fields,
        merge_fields=merge_fields(fields),
        timezones=timezones,
        labels=labels,
    )


def _condition_labels(node: ConditionNode | None, number: str = "") -> dict[str, str]:
    """``conditions.0.1.field`` → "Condition 1.2 · Field"."""
    if node is None:
        return {}
    title = f"Condition {number}" if number else "Condition"
    labels = {node.path: title, f"{node.path}.kind": title}
    for shown in (node.field, node.op, node.value):
        if shown is not None:
            labels[shown.name] = f"{title} · {shown.control.label}"
    for i, child in enumerate(node.children):
        labels |= _condition_labels(child, f"{number}.{i + 1}" if number else str(i + 1))
    return labels


_COMMON_FIELDS = ("name", "email", "owner_id", "score", "status")


def merge_fields(fields: list[str]) -> list[str]:
    """What the merge-field picker offers: ``{{record.…}}`` for each known field of the
    record type, and the event's and the workflow's own."""
    names = list(dict.fromkeys([*fields, *_COMMON_FIELDS]))
    return [
        *(f"{{{{record.{name}}}}}" for name in names),
        "{{event.record_id}}",
        "{{event.occurred_at}}",
        "{{workflow.name}}",
    ]


# --------------------------------------------------------------------------------------------
# Field suggestions and the test event


MAX_SAMPLED_RUNS = 50
_FIELD_NAME = re.compile(r"[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,4}")


def samples_from_runs(runs: list[Any], record_type: str, limit: int = 200) -> dict[str, Any]:
    """Field → a recent value, from recent runs on ``record_type``: the fields of their
    trigger events' records (when the run carries its event) and of their conditions."""
    found: dict[str, Any] = {}
    for run in runs[:MAX_SAMPLED_RUNS]:
        if not isinstance(run, dict):
            continue
        record = run.get("record") or {}
        if isinstance(record, dict) and record.get("type") not in (None, record_type):
            continue
        event = run.get("event")
        after = event.get("after") if isinstance(event, dict) else None
        if isinstance(after, dict):
            for name, value in list(after.items())[:limit]:
                if isinstance(name, str) and _FIELD_NAME.fullmatch(name):
                    found.setdefault(name, value)
        for result in run.get("conditions") or []:
            if not isinstance(result, dict):
                continue
            name, actual = result.get("field"), result.get("actual")
            if isinstance(name, str) and _FIELD_NAME.fullmatch(name) and actual is not None:
                found.setdefault(name, actual)
        if len(found) >= limit:
            break
    return found


def recent_records(runs: list[Any], limit: int = 10) -> list[dict[str, Any]]:
    """Recent trigger events' records (id and snapshot) to test against, newest first."""
    seen: dict[str, dict[str, Any]] = {}
    for run in runs[:MAX_SAMPLED_RUNS]:
        event = run.get("event") if isinstance(run, dict) else None
        if not isinstance(event, dict) or not isinstance(event.get("after"), dict):
            continue
        record_id = str(event.get("record_id", ""))
        if record_id and record_id not in seen:
            seen[record_id] = event
        if len(seen) >= limit:
            break
    return list(seen.values())


class PastedRecordError(ValueError):
    """The pasted record is not a JSON object (the reason is shown at the field)."""


MAX_TEST_BYTES = 256 * 1024


def dry_run_event(
    form: Mapping[str, str], workflow: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The ChangeEvent a dry run is asked about: a pasted record (the ``after`` snapshot),
    optionally its ``before``, of the trigger's record type; a pasted whole event is taken
    as it is. Its tenant is the workflow's (the API refuses any other)."""
    record = _json_object(form.get("test.record", ""), "the record")
    trigger = workflow.get("trigger") or {}
    if "after" in record and "operation" in record:  # a whole ChangeEvent
        return {**record, "tenant_id": workflow.get("tenant_id")}
    before_text = form.get("test.before", "")
    before = _json_object(before_text, "the record before") if before_text.strip() else None
    kind = forms.trigger_kind(str(trigger.get("type", "")))
    operation = form.get("test.operation", "")
    if operation not in ("created", "updated"):
        updates_only = kind is not None and kind.operations == {"updated"}
        operation = "updated" if updates_only else "created"  # a delivery, tick or timer too
    if operation == "updated" and before is None:
        before = {}
    record_type = trigger.get("record_type")
    if not isinstance(record_type, str) and kind is not None:
        record_type = kind.params.model_fields["record_type"].default
    record_id = record.get("id")
    return {
        "event_id": f"dry-run-{uuid.uuid4().hex[:12]}",
        "tenant_id": workflow.get("tenant_id"),
        "record_type": record_type or "record",
        "record_id": str(record_id) if record_id not in (None, "") else "test-record",
        "operation": operation,
        "occurred_at": now.isoformat(),
        "before": before if operation == "updated" else None,
        "after": record,
        "actor_id": None,
    }


def _json_object(text: str, what: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_TEST_BYTES:
        raise PastedRecordError(f"{what} is larger than {MAX_TEST_BYTES // 1024} KiB")
    if not text.strip():
        raise PastedRecordError(f'paste {what} as a JSON object, such as {{"score": 72}}')
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PastedRecordError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PastedRecordError(
            f"{what} must be a JSON object ({{...}}), not a {type(value).__name__}"
        )
    if not within_nesting(value):  # past what a record may nest, or what orjson can write
        raise PastedRecordError(
            f"{what} nests objects and arrays more than {MAX_NESTING} levels deep"
        )
    return value


# --------------------------------------------------------------------------------------------
# The pages


NEW_FORM: Mapping[str, str] = {
    "name": "",
    "trigger.type": "record_created",
    "trigger.params.record_type": "lead",
}
_STATE_FIELDS = frozenset({CSRF_FIELD, "op"})


def _state(submitted: Mapping[str, str]) -> Form:
    """The builder's own fields of a submitted form, as ``document_to_form`` writes them
    (so a form that was edited by hand or by an old page is read the same way)."""
    form = {k: v for k, v in submitted.items() if k not in _STATE_FIELDS}
    extra: dict[str, str] = {
        k: form[k]
        for k in ("new_action", "test.record", "test.before", "test.operation", *backtest.FIELDS)
        if k in form
    }
    return {**document_to_form(form_to_document(form)), **extra}


@dataclass
class Outcome:
    """What a button did, for the page: a notice, the problems, a secret shown once, a test."""

    notice: str | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    secret: str | None = None
    test: Any = None
    test_error: str | None = None
    backtest_error: str | None = None
    backtest_field: str | None = None
    """The control ``backtest_error`` is about (a date of the window), if one."""
    focus: str | None = None


async def _samples(
    page: Page, form: Form, workflow_id: str | None
) -> tuple[dict[str, Any], list[Any]]:
    """Recent runs of the trigger's record type: the API's run search across the tenant's
    workflows, or this workflow's own runs when the search is not there."""
    kind = forms.trigger_kind(form.get("trigger.type", ""))
    record_type = form.get("trigger.params.record_type") or (
        kind.params.model_fields["record_type"].default if kind is not None else None
    )
    if not isinstance(record_type, str) or not record_type:
        return {}, []
    answer = await page.api.get(
        "/runs", record_type=record_type, limit=MAX_SAMPLED_RUNS, **page.tenant_query
    )
    if not answer.ok and workflow_id is not None:
        answer = await page.api.get(
            f"/workflows/{quote(workflow_id, safe='')}/runs", limit=MAX_SAMPLED_RUNS
        )
    runs = answer.body.get("runs", []) if answer.ok and isinstance(answer.body, dict) else []
    return samples_from_runs(runs, record_type), runs


async def _render(
    page: Page,
    form: Form,
    workflow: Mapping[str, Any] | None,
    outcome: Outcome | None = None,
    status: int = 200,
) -> web.StreamResponse:
    outcome = outcome or Outcome()
    workflow_id = str(workflow["id"]) if workflow else None
    problems = [forms.Problem(p.get("loc", ""), p.get("msg", "")) for p in outcome.problems]
    errors = forms.problems_at_controls(problems, forms.control_names(form))
    samples, runs = await _samples(page, form, workflow_id)
    builder = build(form, errors, samples)
    action = edit_url(workflow_id) if workflow_id else "/workflows/new"
    dirty = workflow is not None and _differs(form, workflow)
    panel = await _backtest_panel(page, form, workflow_id)
    context = {
        "b": builder,
        "workflow": workflow,
        "action": action,
        "outcome": outcome,
        "dirty": dirty,
        "trigger_choices": forms.trigger_choices(),
        "action_choices": forms.action_choices(),
        "group_labels": _GROUP_LABELS,
        "recent": recent_records(runs),
        "inbound_url": _inbound_url(page, workflow_id)
        if workflow and _is_webhook(workflow)
        else None,
        "problem_count": sum(len(v) for v in errors.values()),
        "panel": panel,
        "backtest_digest": backtest.digest_of(form),
        "windows": backtest.WINDOWS,
        "default_window": backtest.DEFAULT_WINDOW,
        "not_backtested": backtest.not_backtested(form),
        "title": f"Edit {workflow['name']}" if workflow else "+ New Workflow",
    }
    headers = {}
    if workflow_id and page.request.path == "/workflows/new":
        headers["HX-Push-Url"] = action
    if page.is_htmx:  # htmx swaps 2xx answers only: a refusal is shown in the fragment
        # the fragment's own <title>: htmx sets the tab's from it (the saved workflow's name)
        return page.render(
            "builder_form.html", status=200, headers=headers, fragment=True, **context
        )
    return page.render("builder.html", status=status, headers=headers, **context)


async def _backtest_panel(page: Page, form: Form, workflow_id: str | None) -> backtest.Panel | None:
    """The backtest the form names, as the API has it now (none once it is forgotten), and
    whether the form has changed since it was started (``Panel.stale``)."""
    shown = backtest.backtest_id(form)
    if workflow_id is None or shown is None:
        return None
    offset = backtest.offset_of(form.get("backtest.offset", ""))
    panel = await backtest.load(page, workflow_id, shown, offset)
    if panel is not None:
        panel.stale = backtest.is_stale(form, definition_digest(form))
    return panel


def _is_webhook(workflow: Mapping[str, Any]) -> bool:
    trigger = workflow.get("trigger")
    return isinstance(trigger, dict) and trigger.get("type") == "webhook_received"


def _inbound_url(page: Page, workflow_id: str | None) -> str:
    host = page.request.host
    return f"{page.request.scheme}://{host}/hooks/{quote(workflow_id or '', safe='')}"


_DEFINITION = ("name", "trigger", "conditions", "actions")
"""What a workflow does: what an edit changes and a backtest tries."""


def _differs(form: Form, workflow: Mapping[str, Any]) -> bool:
    """Whether the form has changes the saved version has not (a default the form shows,
    such as a task's priority, is no change)."""
    mine = _with_defaults(form_to_document(form))
    saved = _with_defaults(form_to_document(document_to_form(workflow)))
    return any(mine.get(k) != saved.get(k) for k in _DEFINITION)


def definition_digest(form: Form) -> str:
    """A digest of the workflow the form describes, the same for the same workflow however the
    form spells it (a default left out or shown): what a backtest was of, to tell later whether
    the form still describes it. ``json``, not orjson: a typed integer may be past 64 bits."""
    document = _with_defaults(form_to_document(form))
    shown = {k: document.get(k) for k in _DEFINITION}
    text = json.dumps(shown, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _with_defaults(document: Document) -> Document:
    """``document`` with every parameter left out at the default its control shows."""

    def filled(spec: Any, shown: tuple[Control, ...]) -> Any:
        if not isinstance(spec, dict):
            return spec
        defaults = {
            c.key: c.read(c.default) for c in shown if c.default is not None and c.key not in spec
        }
        return {**spec, **defaults}

    trigger = document.get("trigger") or {}
    actions = document.get("actions") or []
    return {
        **document,
        "trigger": filled(trigger, forms.trigger_controls(str(trigger.get("type", "")))),
        "actions": [
            filled(a, forms.action_controls(str(a.get("type", "")))) if isinstance(a, dict) else a
            for a in actions
        ],
    }


@page("/workflows/new")
async def new_workflow(page: Page) -> web.StreamResponse:
    return await _render(page, dict(NEW_FORM), None)


@page("/workflows/new", methods=("POST",))
async def edit_new_workflow(page: Page) -> web.StreamResponse:
    form, op, edited = await _submitted(page, None)
    if edited is not None:
        return edited
    if op not in ("save", "activate"):
        return await _render(page, form, None, Outcome(error="Save the draft first."))
    document = form_to_document(form)
    document.pop("version", None)
    document["status"] = "active" if op == "activate" else "draft"
    if page.tenant_id is not None:  # an operator's pick; a tenant's token names its own
        document["tenant_id"] = page.tenant_id
    answer = await page.api.post("/workflows", document)
    if answer.status == 422:
        return await _render(page, form, None, _refused(answer), status=422)
    body = _required(page, answer)
    notice = "Created and activated" if op == "activate" else "Saved as a draft"
    outcome = Outcome(
        notice=f"{notice}: version {body.get('version')}.", secret=body.get("inbound_secret")
    )
    return await _render(page, document_to_form(body), body, outcome, status=201)


async def _submitted(
    page: Page, workflow: Mapping[str, Any] | None
) -> tuple[Form, str, web.StreamResponse | None]:
    """The builder's submitted form and its button (``op``), and when the button is an edit
    of the form (``apply_edit``: no API call), the page with the edited form."""
    submitted = await page.form()
    form = _state(submitted)
    op = submitted.get("op", "refresh")
    edited = apply_edit(form, op)
    if edited is None:
        return form, op, None
    outcome = Outcome(focus=_focus_after(op, edited, _htmx_trigger(page)))
    return form, op, await _render(page, edited, workflow, outcome)


def _required(page: Page, answer: Answer) -> dict[str, Any]:
    if answer.status == 401:
        raise Redirect("/sign-in")
    if not answer.ok or not isinstance(answer.body, dict):
        raise PageError(answer.status, answer.error)
    return answer.body


def _refused(answer: Answer) -> Outcome:
    count = len(answer.problems)
    shown = (
        "1 problem, shown at its field"
        if count == 1
        else f"{count} problems, shown at their fields"
    )
    return Outcome(
        error=f"Not saved: {shown}." if count else answer.error,
        problems=answer.problems,
    )


async def _workflow(page: Page) -> dict[str, Any]:
    workflow_id = page.match["workflow_id"]
    return _required(page, await page.api.get(f"/workflows/{quote(workflow_id, safe='')}"))


@page("/workflows/{workflow_id}/edit")
async def edit_workflow(page: Page) -> web.StreamResponse:
    workflow = await _workflow(page)
    return await _render(page, document_to_form(workflow), workflow)


@page("/workflows/{workflow_id}/edit", methods=("POST",))
async def change_workflow(page: Page) -> web.StreamResponse:
    workflow = await _workflow(page)
    form, op, edited = await _submitted(page, workflow)
    if edited is not None:
        return edited
    name, _, argument = op.partition(":")
    if name == "use_record":
        _, runs = await _samples(page, form, str(workflow["id"]))
        return await _render(page, use_record(form, runs, argument), workflow)
    if name == "backtest_page":
        paged = {**form, "backtest.offset": str(backtest.offset_of(argument))}
        return await _render(page, paged, workflow, Outcome(focus="backtest"))
    if name == "backtest_panel":  # the panel's own poll, and after an edit typed
        panel = await _backtest_panel(page, form, str(workflow["id"]))
        return page.render("builder_backtest.html", panel=panel)
    if name == "backtest_intro":  # after an edit typed
        return page.render(
            "builder_backtest_intro.html",
            action=edit_url(str(workflow["id"])),
            workflow=workflow,
            dirty=_differs(form, workflow),
        )
    handler = BUTTONS.get(op)
    if handler is None:
        return await _render(page, form, workflow)
    return await handler(page, form, workflow)


def use_record(form: Form, runs: list[Any], record_id: str) -> Form:
    """The form with a recent trigger event's record (and its before) pasted for the test."""
    for event in recent_records(runs):
        if str(event.get("record_id")) == record_id:
            shown = {**form, "test.record": _pretty(event.get("after"))}
            shown["test.operation"] = str(event.get("operation", "created"))
            before = event.get("before")
            shown["test.before"] = _pretty(before) if isinstance(before, dict) else ""
            return shown
    return form


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _htmx_trigger(page: Page) -> str | None:
    """The id of the element whose change sent an htmx request (bounded: it is echoed)."""
    trigger = page.request.headers.get("HX-Trigger")
    return trigger if trigger and len(trigger) <= 200 else None


def _focus_after(op: str, form: Form, trigger: str | None = None) -> str | None:
    """The control to focus after an edit's swap, for keyboard users (the control they used
    was replaced): a changed select itself (htmx names it in ``HX-Trigger``), a new action's
    type, a new condition's field, a moved action's same button, and after a removal the
    control that adds one again."""
    name, _, argument = op.partition(":")
    if name == "refresh":
        return trigger if trigger and trigger != "builder" else None
    if name == "add_action":
        indices = forms.action_indices(form)
        return f"f-actions.{indices[-1]}.type" if indices else None
    if name in ("move_up", "move_down"):
        indices = forms.action_indices(form)
        moved = _position(argument, len(indices))  # "²".isdigit(), and int() refuses it
        position = -1 if moved is None else moved + (-1 if name == "move_up" else 1)
        if 0 <= position < len(indices):
            return f"move-{name}-{position}"
    if name == "remove_action":
        return "new-action"
    if name.startswith("add_") and _PATH.fullmatch(argument):
        return _newest_field(form, argument)
    if name == "remove_condition" and _PATH.fullmatch(argument):
        parent = argument.rpartition(".")[0]
        return f"f-{parent}.kind" if parent else "f-name"
    return None


def _newest_field(form: Form, path: str) -> str | None:
    """The field control of the condition last added under ``path`` (or of its first leaf)."""
    if f"{path}.kind" not in form:
        return "f-conditions.0.field" if "conditions.0.field" in form else None
    children = [int(n) for n in range(forms.MAX_ITEMS) if f"{path}.{n}.kind" in form]
    if not children:
        return None
    node = f"{path}.{children[-1]}"
    while form.get(f"{node}.kind") in forms.GROUPS and f"{node}.0.kind" in form:
        node = f"{node}.0"
    return f"f-{node}.field" if f"{node}.field" in form else None


Button = Callable[[Page, Form, dict[str, Any]], Any]


async def _save(page: Page, form: Form, workflow: dict[str, Any]) -> web.StreamResponse:
    saved, outcome = await _put(page, form, workflow)
    if saved is None:
        return await _render(page, form, workflow, outcome, status=422)
    return await _render(page, document_to_form(saved), saved, outcome)


async def _put(
    page: Page, form: Form, workflow: dict[str, Any]
) -> tuple[dict[str, Any] | None, Outcome]:
    document = form_to_document(form)
    document.setdefault("version", workflow.get("version"))
    path = f"/workflows/{quote(str(workflow['id']), safe='')}"
    answer = await page.api.put(path, document)
    if answer.status == 422:
        return None, _refused(answer)
    if answer.status == 409:
        return None, Outcome(error=f"Not saved: {answer.error}")
    saved = _required(page, answer)
    state = {"draft": "a draft", "active": "active", "inactive": "inactive"}.get(
        str(saved.get("status")), str(saved.get("status"))
    )
    return saved, Outcome(
        notice=f"Saved: version {saved.get('version')}, {state}.",
        secret=saved.get("inbound_secret"),
    )


def _status_changer(status: str) -> Button:
    async def change(page: Page, form: Form, workflow: dict[str, Any]) -> web.StreamResponse:
        secret = None
        if _differs(form, workflow):  # what is on the screen is what becomes active
            saved, outcome = await _put(page, form, workflow)
            if saved is None:
                return await _render(page, form, workflow, outcome, status=422)
            workflow, secret = saved, outcome.secret
        path = f"/workflows/{quote(str(workflow['id']), safe='')}/{status}"
        answer = await page.api.post(path)
        if answer.status == 422:
            return await _render(page, form, workflow, _refused(answer), status=422)
        changed = _required(page, answer)
        word = "Activated" if status == "activate" else "Deactivated"
        outcome = Outcome(
            notice=f"{word}: version {changed.get('version')}.",
            secret=secret or changed.get("inbound_secret"),
            focus=f"state-{'deactivate' if status == 'activate' else 'activate'}",
        )
        return await _render(page, document_to_form(changed), changed, outcome)

    return change


async def _rotate(page: Page, form: Form, workflow: dict[str, Any]) -> web.StreamResponse:
    path = f"/workflows/{quote(str(workflow['id']), safe='')}/webhook-secret"
    answer = await page.api.post(path)
    if not answer.ok:
        return await _render(page, form, workflow, Outcome(error=f"Not rotated: {answer.error}"))
    rotated = answer.body
    outcome = Outcome(
        notice="A new secret was made; the previous one keeps working for a day.",
        secret=rotated.get("inbound_secret"),
    )
    return await _render(page, form, rotated, outcome)


async def _test(page: Page, form: Form, workflow: dict[str, Any]) -> web.StreamResponse:
    try:
        event = dry_run_event(form, workflow, datetime.now(UTC))
    except PastedRecordError as exc:
        return await _render(
            page, form, workflow, Outcome(test_error=str(exc), focus="f-test.record"), status=422
        )
    path = f"/workflows/{quote(str(workflow['id']), safe='')}/test"
    answer = await page.api.post(path, event)
    if not answer.ok:
        reasons = "; ".join(f"{p.get('loc')}: {p.get('msg')}" for p in answer.problems)
        message = f"{answer.error}: {reasons}" if reasons else answer.error
        return await _render(
            page,
            form,
            workflow,
            Outcome(test_error=message, focus="f-test.record"),
            status=answer.status,
        )
    return await _render(page, form, workflow, Outcome(test=answer.body, focus="test-result"))


async def _backtest(page: Page, form: Form, workflow: dict[str, Any]) -> web.StreamResponse:
    """Start a backtest of what is on the screen: with unsaved changes, those (not saved: a
    draft saved over an active workflow would stop it); else the newest saved version."""
    shown = {k: v for k, v in form.items() if k not in backtest.SHOWN}
    try:
        body = backtest.request_body(form, datetime.now(UTC), _differs(form, workflow))
    except backtest.WindowError as exc:
        outcome = Outcome(backtest_error=str(exc), backtest_field=exc.field, focus=f"f-{exc.field}")
        return await _render(page, shown, workflow, outcome, status=422)
    path = f"/workflows/{quote(str(workflow['id']), safe='')}/backtest"
    answer = await page.api.post(path, body)
    if answer.status == 401:
        raise Redirect("/sign-in")
    if not answer.ok or not isinstance(answer.body, dict):
        reasons = _problems_in_words(shown, answer.problems)
        message = f"Not started: {answer.error}" + (f": {reasons}" if reasons else "")
        # a definition's problems are PUT's: shown at their fields as Save shows them
        outcome = Outcome(backtest_error=message, problems=answer.problems, focus="backtest-start")
        return await _render(page, shown, workflow, outcome, status=answer.status)
    started = {
        **shown,
        "backtest.id": str(answer.body.get("backtest_id", "")),
        "backtest.digest": definition_digest(form),
    }
    return await _render(page, started, workflow, Outcome(focus="backtest"))


def _problems_in_words(form: Form, problems: list[dict[str, str]]) -> str:
    """The API's problems as the builder's list at the top names them ("Condition 2 · Field:
    …"), not by the API's locations (``conditions.all.all.1.leaf.field``)."""
    found = [forms.Problem(p.get("loc", ""), p.get("msg", "")) for p in problems]
    placed = forms.problems_at_controls(found, forms.control_names(form))
    named = build(form, placed).labels
    return "; ".join(
        f"{named.get(name, name)}: {message}" if name else message
        for name, messages in placed.items()
        for message in messages
    )


async def _cancel_backtest(page: Page, form: Form, workflow: dict[str, Any]) -> web.StreamResponse:
    shown = backtest.backtest_id(form)
    if shown is not None:
        answer = await page.api.delete(f"/backtests/{quote(shown, safe='')}")
        if not answer.ok and answer.status != 404:
            outcome = Outcome(backtest_error=f"Not cancelled: {answer.error}", focus="backtest")
            return await _render(page, form, workflow, outcome, status=answer.status)
    return await _render(page, form, workflow, Outcome(focus="backtest"))


BUTTONS: Mapping[str, Button] = {
    "save": _save,
    "activate": _status_changer("activate"),
    "deactivate": _status_changer("deactivate"),
    "rotate": _rotate,
    "test": _test,
    "backtest": _backtest,
    "cancel_backtest": _cancel_backtest,
}
"""The builder's buttons that call the API, on a saved workflow."""
