"""The workflow builder's form, generated from the pydantic models that validate workflows.

Three jobs, all pure: a parameter model (a trigger kind's, ``processor/core/triggers.py``; an
action type's, ``actions/``) becomes the list of its form controls, so no template lists a
field a second time; a workflow document (what the admin API takes) becomes flat form values;
and a submitted form becomes that document again, which the API's own validation then judges.
The API's problems (``actions.1.subject``) are mapped back to the controls that show them.

Flat names: ``name``; ``trigger.type`` and ``trigger.params.<parameter>``;
``actions.<n>.type`` and ``actions.<n>.params.<parameter>``; a condition node at a path ``P``
(the root is ``conditions``) has ``P.kind`` (``all``, ``any``, ``not`` or ``leaf``), its
children at ``P.0``, ``P.1``… (a ``not`` has one, ``P.0``), and a leaf ``P.field``, ``P.op``,
``P.value``. Children are named by position, not by their group's kind, so changing a group
from "all" to "any" keeps its children's names.

The builder's structure is a step list (``flow``): Trigger ↓ Condition ↓ Action 1 ↓ … ↓ End,
each step naming the form prefix it edits; a branch would be a step holding step lists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from actions.params import ActionParams, templated
from actions.registry import REGISTRY as ACTIONS
from coeflow.errors import Problem
from processor.core.operators import OPERATORS, Operator, ValueShape, field_type
from processor.core.operators import REGISTRY as OPERATOR_NAMES
from processor.core.triggers import KINDS, TriggerKind, TriggerParams
from processor.core.triggers import REGISTRY as TRIGGERS
from topics.types import MAX_NESTING, Duration, FieldPath, nesting, within_nesting

# --------------------------------------------------------------------------------------------
# Values as form text


class _Omit:
    """A form control left empty: the parameter is left out of the document."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()


def show_value(value: Any) -> str:
    """A JSON value as the text of a "value" control: a string as itself when reading it back
    gives the same string, anything else as JSON (``50``, ``true``, ``"50"``, ``["a"]``)."""
    if isinstance(value, str) and read_value(value) == value:
        return value
    return orjson.dumps(value).decode()


def read_value(text: str) -> Any:
    """A "value" control's text: JSON when it is JSON (``50``, ``true``, ``null``, ``[1]``,
    ``"50"``), else the text itself; empty text is ``OMIT``."""
    if not text.strip():
        return OMIT
    value = _loads(text)
    if value is OMIT or (isinstance(value, float) and not math.isfinite(value)):
        return text
    return value


READ_NESTING = 2 * MAX_NESTING
"""Levels of JSON a control's text is read as: deeper text goes as typed. orjson reads 1024
levels but writes only 254, so a value much deeper could not be shown again nor sent, inside
its conditions, to the API; one past ``MAX_NESTING`` but within this is sent, and the API
says it nests too deep."""


def _loads(text: str) -> Any:
    """The JSON ``text`` is, or ``OMIT`` when it is not JSON or nests deeper than
    ``READ_NESTING``."""
    if text.lstrip()[:1] not in _JSON_STARTS:  # not JSON: no parse (nor its exception)
        return OMIT
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return OMIT
    if within_nesting(value) or nesting(value, READ_NESTING) <= READ_NESTING:
        return value
    return OMIT


_JSON_STARTS = frozenset('{["-0123456789tfn')
"""What JSON text can start with (after its whitespace, which ``str.lstrip`` also strips)."""

MAX_LIST_ITEMS = 200
"""Items a list value is read from or shown as ``a, b, c``; a longer list is JSON
(``["a", "b"]``), read in one parse. Without a bound a 1 MiB form of ``1x,1x,…`` made half a
million items, each parsed a few times over: seconds of the worker's event loop."""

_JSON_SCALAR = re.compile(
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null"
    r'|"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4})*"'
)
"""A JSON number, literal or string (no surrogate escapes): text orjson surely reads."""


def _read_item(text: str) -> Any:
    """One item of ``a, b, c``: a JSON scalar (``50``, ``true``, ``"50"``) or the text;
    never a parse that fails, so a hostile list costs a regular expression per item."""
    if not text:
        return OMIT
    if not _JSON_SCALAR.fullmatch(text):
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:  # a lone surrogate in the text itself
        return text
    return text if isinstance(value, float) and not math.isfinite(value) else value


def _show_list_value(value: Any) -> str:
    """A condition's list value (``in``, ``not_in``) as ``a, b, c`` when that reads back to
    the same list, else as JSON."""
    if isinstance(value, list) and 0 < len(value) <= MAX_LIST_ITEMS:
        items = [v if isinstance(v, str) and _read_item(v) == v else show_value(v) for v in value]
        text = ", ".join(items)
        if all("," not in i and i == i.strip() and i for i in items) and (
            _read_list_value(text) == value
        ):
            return text
    return show_value(value)


def _read_list_value(text: str) -> Any:
    """``a, b, c`` (each item read as a value) or a JSON list."""
    value = read_value(text)
    if value is OMIT or isinstance(value, list):
        return value
    parts = text.split(",", MAX_LIST_ITEMS)
    if len(parts) > MAX_LIST_ITEMS:
        return text  # as typed: the API says it is not a list
    items = [_read_item(part.strip()) for part in parts]
    return [None if item is OMIT else item for item in items]


def _show_text(value: Any) -> str:
    return value if isinstance(value, str) else show_value(value)


def _read_text(text: str) -> Any:
    return text if text != "" else OMIT


def _read_line(text: str) -> Any:
    """One line; the browser may send a pasted line break, which validation then reports."""
    return text if text != "" else OMIT


_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")


def _read_number(text: str) -> Any:
    """A number, or the text as typed for the API to report at its field."""
    stripped = text.strip()
    if not stripped:
        return OMIT
    if _INTEGER.fullmatch(stripped):
        return int(stripped)
    try:
        number = float(stripped)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _show_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _show_text(value)
    return repr(value)


def _read_choice(text: str) -> Any:
    return text if text != "" else OMIT


def _read_bool(text: str) -> Any:
    return {"true": True, "false": False}.get(text, OMIT if text == "" else text)


def _show_bool(value: Any) -> str:
    return (
        {True: "true", False: "false"}.get(value, _show_text(value))
        if isinstance(value, bool)
        else _show_text(value)
    )


def _read_lines(text: str) -> Any:
    """One item a line (blank lines skipped)."""
    items = [line.strip() for line in text.splitlines() if line.strip()]
    return items or OMIT


def _show_lines(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) and "\n" not in v for v in value):
        return "\n".join(value)
    return show_value(value)


def _read_json(text: str) -> Any:
    """JSON (an object, a list); text that is not JSON goes as typed, for the API to report."""
    if not text.strip():
        return OMIT
    value = _loads(text)
    return text if value is OMIT else value


def _show_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


# --------------------------------------------------------------------------------------------
# Control kinds: how a parameter is shown and read back


@dataclass(frozen=True, slots=True)
class ControlKind:
    """One way of showing a parameter: the widget, how its value becomes form text and back,
    and the help every control of the kind carries."""

    name: str
    widget: Literal["input", "textarea", "select", "fixed"]
    read: Callable[[str], Any]
    show: Callable[[Any], str]
    help: str = ""
    input_type: str = "text"
    input_mode: str | None = None


_DURATION_HELP = "a number and a unit (s, m, h, d, w), such as 30m, 2d or 1d12h"

CONTROL_KINDS: Mapping[str, ControlKind] = {
    kind.name: kind
    for kind in (
        ControlKind("text", "input", _read_text, _show_text),
        ControlKind("line", "input", _read_line, _show_text),
        ControlKind("template", "textarea", _read_text, _show_text),
        ControlKind(
            "number", "input", _read_number, _show_number, input_type="text", input_mode="decimal"
        ),
        ControlKind("select", "select", _read_choice, _show_text),
        ControlKind("boolean", "select", _read_bool, _show_bool),
        ControlKind("fixed", "fixed", _read_choice, _show_text),
        ControlKind("duration", "input", _read_text, _show_text, help=_DURATION_HELP),
        ControlKind(
            "field", "input", _read_text, _show_text, help="a field of the record, such as score"
        ),
        ControlKind(
            "cron",
            "input",
            _read_text,
            _show_text,
            help="5 fields: minute hour day month weekday, such as 0 9 * * 1-5",
        ),
        ControlKind(
            "timezone", "input", _read_text, _show_text, help="an IANA time zone: Europe/Berlin"
        ),
        ControlKind(
            "value",
            "input",
            read_value,
            show_value,
            help='a number, true/false, text; "50" in quotes is the text 50',
        ),
        ControlKind("lines", "textarea", _read_lines, _show_lines, help="one per line"),
        ControlKind("json", "textarea", _read_json, _show_json, help="JSON"),
    )
}

_BY_FIELD_NAME: Mapping[str, str] = {"cron": "cron", "timezone": "timezone", "field": "field"}
"""Parameters whose meaning their type does not say (a cron expression is a string; a
stall's ``field`` is a plain name, checked by its model's own validator)."""

_TEMPLATED_CODE = templated().func.__code__
"""Every merge-field string type (``Text``, ``Line``, ``Ref``…) is checked by a closure of
``templated``: sharing its code object is how a parameter says it takes ``{{record.…}}``."""
_DURATION_CHECKS = get_args(Duration)[1:]
_FIELD_PATH_CHECKS = get_args(FieldPath)[1:]
_MULTILINE = 10_000
"""A string this long or longer is free text (a body): a textarea rather than a line."""


@dataclass(frozen=True, slots=True)
class Control:
    """One parameter of a model as the builder shows it."""

    key: str
    """The parameter as the API names it (its alias: ``for``, ``from``)."""
    label: str
    kind: str
    required: bool
    choices: tuple[str, ...] = ()
    default: str | None = None
    """The default as form text (what an empty control means)."""
    help: str = ""
    merge_fields: bool = False
    """Takes merge fields such as ``{{record.name}}`` (the picker is offered)."""

    @property
    def control_kind(self) -> ControlKind:
        return CONTROL_KINDS[self.kind]

    def read(self, text: str) -> Any:
        return self.control_kind.read(text)

    def show(self, value: Any) -> str:
        return self.control_kind.show(value)


def _unwrap(annotation: Any, metadata: Sequence[Any]) -> tuple[Any, tuple[Any, ...], bool]:
    """(the type, its metadata, whether ``None`` is allowed) of an annotation such as
    ``Optional[Annotated[str, ...]]``."""
    optional = False
    meta = tuple(metadata)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        optional = len(args) < len(get_args(annotation))
        if len(args) == 1:
            annotation = args[0]
            origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return base, (*extra, *meta), optional
    return annotation, meta, optional


def _has_checks(metadata: tuple[Any, ...], checks: tuple[Any, ...]) -> bool:
    return bool(checks) and all(any(m is c for m in metadata) for c in checks)


def _templated(metadata: Iterable[Any]) -> bool:
    return any(
        getattr(getattr(m, "func", None), "__code__", None) is _TEMPLATED_CODE for m in metadata
    )


def _max_length(metadata: Iterable[Any]) -> int | None:
    for m in metadata:
        length = getattr(m, "max_length", None)
        if isinstance(length, int):
            return length
    return None


def _kind_of(name: str, base: Any, metadata: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
    """The control kind for a parameter's type, and the choices of a select."""
    origin = get_origin(base)
    if origin is Literal:
        choices = tuple(str(c) for c in get_args(base))
        return ("fixed" if len(choices) == 1 else "select"), choices
    if name in _BY_FIELD_NAME:
        return _BY_FIELD_NAME[name], ()
    if base is bool:
        return "boolean", ("true", "false")
    if base in (int, float):
        return "number", ()
    if origin is list:
        return "lines", ()
    if origin is dict or base is dict:
        return "json", ()
    if base is str:
        if _has_checks(metadata, _DURATION_CHECKS):
            return "duration", ()
        if _has_checks(metadata, _FIELD_PATH_CHECKS):
            return "field", ()
        length = _max_length(metadata)
        if _templated(metadata) and (length is None or length >= _MULTILINE):
            return "template", ()
        return ("text" if _templated(metadata) else "line"), ()
    return "value", ()


_WORDS = {"id": "ID", "url": "URL", "sms": "SMS", "cc": "Cc", "in": "in"}


def label_of(name: str) -> str:
    """``due_in`` → "Due in", ``owner_id`` → "Owner ID", ``send_sms`` → "Send SMS"."""
    words = [w for w in name.strip("_").split("_") if w]
    shown = [_WORDS.get(w, w) for w in words]
    if shown:
        shown[0] = shown[0][:1].upper() + shown[0][1:]
    return " ".join(shown)


_SMALL_WORDS = frozenset({"to", "in", "of", "a"})


def _title(name: str) -> str:
    """``record_created`` → "Record Created", ``add_to_sequence`` → "Add to Sequence": the
    customer page's words for kinds and types."""
    words = name.split("_")
    return " ".join(
        w if i and w in _SMALL_WORDS else _WORDS.get(w, w.capitalize()) for i, w in enumerate(words)
    )


def _control(name: str, info: FieldInfo) -> Control:
    base, metadata, optional = _unwrap(info.annotation, info.metadata)
    kind, choices = _kind_of(name, base, metadata)
    default = info.get_default(call_default_factory=True) if not info.is_required() else None
    shown_default = None
    if default is not None and default != [] and default != {}:
        shown_default = CONTROL_KINDS[kind].show(default)
    if kind == "select" and optional:
        choices = ("", *choices)
    return Control(
        key=info.alias or name,
        label=label_of(info.alias or name),
        kind=kind,
        required=info.is_required(),
        choices=choices,
        default=shown_default,
        help=CONTROL_KINDS[kind].help,
        merge_fields=_templated(metadata) or _templated_items(base),
    )


def _templated_items(base: Any) -> bool:
    """A list or mapping of merge-field strings (``cc``, ``headers``)."""
    args = get_args(base) if get_origin(base) in (list, dict) else ()
    return any(_templated(_unwrap(a, ())[1]) for a in args)


_NOT_PARAMETERS = frozenset({"type"})


_CONTROLS: dict[type[BaseModel], tuple[Control, ...]] = {}


def controls(model: type[BaseModel]) -> tuple[Control, ...]:
    """The form controls of a parameter model, in its field order (``type`` is the step's
    own select, not a parameter). Made once per model."""
    made = _CONTROLS.get(model)
    if made is None:
        made = _CONTROLS[model] = tuple(
            _control(name, info)
            for name, info in model.model_fields.items()
            if name not in _NOT_PARAMETERS
        )
    return made


# --------------------------------------------------------------------------------------------
# What the builder offers: trigger kinds, action types, operators


_KIND_LABELS = {"scheduled": "Scheduled (Recurring)"}
"""Where the customer page's name is not the kind's name in title case."""


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str
    help: str = ""


def trigger_choices() -> tuple[Choice, ...]:
    """Every trigger kind, in registry order, in the customer page's words."""
    return tuple(
        Choice(k.name, _KIND_LABELS.get(k.name, _title(k.name)), _summary(k.params.__doc__))
        for k in KINDS
    )


def action_choices() -> tuple[Choice, ...]:
    return tuple(Choice(a.name, _title(a.name), a.description) for a in ACTIONS.values())


def trigger_kind(name: str) -> TriggerKind[Any] | None:
    return TRIGGERS.get(name)


def trigger_controls(name: str) -> tuple[Control, ...]:
    kind = trigger_kind(name)
    return controls(kind.params) if kind is not None else ()


def action_controls(name: str) -> tuple[Control, ...]:
    action = ACTIONS.get(name)
    return controls(action.params) if action is not None else ()


_SOURCE_REFERENCE = re.compile(r"\s*\([^()]*\.py\)")


def _summary(doc: str | None) -> str:
    """A model's first paragraph for an admin: without code quotes or source file names."""
    if not doc or doc is TriggerParams.__doc__ or doc is ActionParams.__doc__:
        return ""
    text = " ".join(doc.strip().split("\n\n", 1)[0].split())
    return _SOURCE_REFERENCE.sub("", text).replace("``", "")


_OPERATOR_LABELS = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of",
    "not_in": "is none of",
}


def operator_label(op: Operator) -> str:
    return _OPERATOR_LABELS.get(op.name, label_of(op.name).lower())


def operators_for(
    trigger: str | None, sample: Any = OMIT, current: str | None = None
) -> tuple[Choice, ...]:
    """The operators that fit a leaf: those comparing before and after only when the trigger
    can fire on an update (a create, a delivery, a tick or a timer has no before); for a
    field whose recent value is known, only those whose test can pass on its type
    (``Operator.fits``); and the leaf's own operator always, so the form shows what is
    saved."""
    kind = trigger_kind(trigger) if trigger else None
    has_before = kind is None or "updated" in kind.operations
    typed = field_type(sample) if sample is not OMIT else None
    fits = []
    for op in OPERATORS:
        own = current is not None and OPERATOR_NAMES.get(current) is op
        if not own:
            if op.uses_before and not has_before:
                continue
            if typed is not None and typed not in op.fits:
                continue
        fits.append(Choice(op.name, operator_label(op), op.value.value))
    return tuple(fits)


def takes_value(op_name: str) -> bool:
    """Whether a leaf with this operator shows a value control (unknown operators do, so
    whatever was written stays visible)."""
    op = OPERATOR_NAMES.get(op_name)
    return op is None or op.value is not ValueShape.NONE


# --------------------------------------------------------------------------------------------
# A workflow document → form values


Form = dict[str, str]
GROUPS = ("all", "any", "not")
MAX_DEPTH = MAX_NESTING // 2
"""Condition groups the form reads, nested: the workflow's own depth bound is about this."""
MAX_ITEMS = 200
"""Children a group, or actions a workflow, that the form reads (the API allows 50 actions)."""


def document_to_form(document: Mapping[str, Any]) -> Form:
    """The form values that show ``document`` (a workflow as the API takes or answers it)."""
    form: Form = {}
    name = document.get("name")
    if name is not None:
        form["name"] = _show_text(name)
    version = document.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        form["version"] = str(version)
    trigger = document.get("trigger")
    if isinstance(trigger, Mapping):
        kind = str(trigger.get("type", ""))
        form["trigger.type"] = kind
        _params_to_form(form, "trigger", trigger, trigger_controls(kind))
    conditions = document.get("conditions")
    if conditions is not None:
        _condition_to_form(form, "conditions", conditions, 0)
    actions = document.get("actions")
    if isinstance(actions, list):
        for i, action in enumerate(actions[:MAX_ITEMS]):
            if isinstance(action, Mapping):
                kind = str(action.get("type", ""))
                form[f"actions.{i}.type"] = kind
                _params_to_form(form, f"actions.{i}", action, action_controls(kind))
    return form


def _params_to_form(
    form: Form, prefix: str, spec: Mapping[str, Any], shown: Sequence[Control]
) -> None:
    for control in shown:
        if control.key in spec:
            form[f"{prefix}.params.{control.key}"] = control.show(spec[control.key])


def _condition_to_form(form: Form, path: str, node: Any, depth: int) -> None:
    if depth > MAX_DEPTH or not isinstance(node, Mapping):
        return
    group = next((g for g in GROUPS if g in node), None)
    if group is None:
        form[f"{path}.kind"] = "leaf"
        op = node.get("op")
        form[f"{path}.field"] = _show_text(node.get("field", ""))
        form[f"{path}.op"] = _show_text(op if op is not None else "")
        if "value" in node and (node["value"] is not None or takes_value(str(op))):
            form[f"{path}.value"] = _leaf_value_text(str(op), node["value"])
        return
    form[f"{path}.kind"] = group
    children = [node[group]] if group == "not" else node[group]
    if isinstance(children, list):
        for i, child in enumerate(children[:MAX_ITEMS]):
            _condition_to_form(form, f"{path}.{i}", child, depth + 1)


def _leaf_value_text(op_name: str, value: Any) -> str:
    op = OPERATOR_NAMES.get(op_name)
    if op is not None and op.value is ValueShape.LIST:
        return _show_list_value(value)
    return show_value(value)


def _leaf_value(op_name: str, text: str) -> Any:
    op = OPERATOR_NAMES.get(op_name)
    if op is not None and op.value is ValueShape.LIST:
        return _read_list_value(text)
    return read_value(text)


# --------------------------------------------------------------------------------------------
# Form values → a workflow document


def form_to_document(form: Mapping[str, str]) -> dict[str, Any]:
    """The workflow document a submitted form describes, for the API's validation to judge:
    a control left empty leaves its parameter out; text that is not what its control takes
    (``abc`` for a number) goes as typed, so the API reports it at its field."""
    document: dict[str, Any] = {"name": form.get("name", "")}
    version = form.get("version", "").strip()
    if version.isascii() and version.isdigit() and len(version) < 19:
        document["version"] = int(version)
    kind = form.get("trigger.type", "")
    document["trigger"] = {
        "type": kind,
        **_params_from_form(form, "trigger", trigger_controls(kind)),
    }
    tree = _tree(form, "conditions")
    if tree is not None:
        condition = _condition_from_tree(tree, 0)
        if condition is not OMIT:
            document["conditions"] = condition
    document["actions"] = [
        {
            "type": form.get(f"actions.{i}.type", ""),
            **_params_from_form(
                form, f"actions.{i}", action_controls(form.get(f"actions.{i}.type", ""))
            ),
        }
        for i in action_indices(form)
    ]
    return document


def action_indices(form: Mapping[str, str]) -> list[int]:
    """The action blocks a form has, in their order (numbers need not be consecutive)."""
    found = set()
    for name in form:
        match = _ACTION_TYPE.fullmatch(name)
        if match:
            found.add(int(match.group(1)))
    return sorted(found)[:MAX_ITEMS]


_ACTION_TYPE = re.compile(r"actions\.([0-9]{1,6})\.type")


def _params_from_form(
    form: Mapping[str, str], prefix: str, shown: Sequence[Control]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for control in shown:
        text = form.get(f"{prefix}.params.{control.key}")
        if text is None:
            continue
        value = control.read(text)
        if control.kind == "fixed" and value not in control.choices:
            continue  # another kind's value (a lead's record type kept from the last trigger)
        if value is OMIT:
            if not control.required or control.kind in ("number", "boolean", "select", "fixed"):
                continue
            value = ""  # a required text left empty: "must not be blank" at its field
        params[control.key] = value
    return params


@dataclass
class _Node:
    values: dict[str, str] = field(default_factory=dict)
    children: dict[int, _Node] = field(default_factory=dict)


_INDEX = re.compile(r"[0-9]{1,6}")


def _tree(form: Mapping[str, str], root: str) -> _Node | None:
    """The condition nodes a form names under ``root``, as a tree (read once, bounded)."""
    top: _Node | None = None
    prefix = root + "."
    for name, text in form.items():
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split(".")
        if len(parts) > MAX_DEPTH + 1:
            continue
        *path, leaf_key = parts
        if not all(_INDEX.fullmatch(p) for p in path):
            continue
        node = top = top or _Node()
        for part in path:
            node = node.children.setdefault(int(part), _Node())
        node.values[leaf_key] = text
    return top


def _condition_from_tree(node: _Node, depth: int) -> Any:
    kind = node.values.get("kind", "")
    if kind == "leaf":
        op = node.values.get("op", "")
        leaf: dict[str, Any] = {"field": node.values.get("field", ""), "op": op}
        text = node.values.get("value")
        if text is not None:
            value = _leaf_value(op, text)
            if value is not OMIT:
                leaf["value"] = value
        return leaf
    if kind not in GROUPS or depth >= MAX_DEPTH:
        return OMIT
    children = [
        child
        for _, sub in sorted(node.children.items())[:MAX_ITEMS]
        if (child := _condition_from_tree(sub, depth + 1)) is not OMIT
    ]
    if kind == "not":
        if len(children) > 1:  # a group changed to "not": not (all of them), none lost
            return {"not": {"all": children}}
        return {"not": children[0] if children else {}}  # empty: the API says what is missing
    return {kind: children}


# --------------------------------------------------------------------------------------------
# The API's problems at their controls


def control_name(loc: str) -> str:
    """The form name a problem's location (``actions.1.subject``,
    ``conditions.all.0.leaf.value``) points at; its closest enclosing control's name when it
    is deeper (``actions.0.cc.1`` → the ``cc`` control)."""
    parts = loc.split(".") if loc else []
    if not parts:
        return ""
    head = parts[0]
    if head in ("name", "version"):
        return head
    if head == "trigger":
        if len(parts) == 1 or parts[1] == "type":
            return "trigger.type"
        return f"trigger.params.{parts[1]}"
    if head == "actions":
        if len(parts) == 1 or not _INDEX.fullmatch(parts[1]):
            return "actions"
        if len(parts) == 2 or parts[2] == "type":
            return f"actions.{parts[1]}.type"
        return f"actions.{parts[1]}.params.{parts[2]}"
    if head == "conditions":
        return _condition_name(parts[1:])
    return ""


def _condition_name(parts: list[str]) -> str:
    """Group keywords out, positions in: the schema's ``all.all.0.leaf.field`` (a tag, then
    the field) and the compiler's ``all.0.field`` both become ``conditions.0.field``."""
    schema_form = "leaf" in parts or (
        len(parts) > 1 and parts[0] in ("all", "any") and parts[1] == parts[0]
    )
    out = ["conditions"]
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "leaf":
            i += 1
        elif part in GROUPS:
            i += 2 if schema_form and i + 1 < len(parts) and parts[i + 1] == part else 1
            if part == "not":
                out.append("0")
            elif i < len(parts) and _INDEX.fullmatch(parts[i]):
                out.append(parts[i])
                i += 1
        else:
            out.append(part)
            break
    return ".".join(out)


def control_names(form: Mapping[str, str]) -> set[str]:
    """Every control the builder shows for ``form``: each step's own, every parameter of the
    trigger kind and of each action type (filled in or not), and the condition nodes."""
    names = {"name", "trigger.type", "conditions", "actions"}
    names |= {f"trigger.params.{c.key}" for c in trigger_controls(form.get("trigger.type", ""))}
    names |= {n for n in form if n.startswith("conditions.")}
    for i in action_indices(form):
        kind = form.get(f"actions.{i}.type", "")
        names.add(f"actions.{i}.type")
        names |= {f"actions.{i}.params.{c.key}" for c in action_controls(kind)}
    return names


def problems_at_controls(problems: Iterable[Problem], names: Iterable[str]) -> dict[str, list[str]]:
    """Each problem's message under the control that shows it: the control its location
    names, or the closest enclosing one (a leaf's, an action's ``type``); what fits no
    control is under ``""``, shown at the top. Nothing is dropped."""
    known = set(names)
    placed: dict[str, list[str]] = {}
    for problem in problems:
        name = control_name(problem.loc)
        while name and name not in known:
            name = _enclosing(name)
        message = _plain(name, problem.msg) if name else str(problem)
        placed.setdefault(name, []).append(message)
    return placed


_PLAIN = {
    ("actions", "List should have at least 1 item"): "Add at least one action",
}
"""Validation messages that read as pydantic's at a control: what the builder says instead."""


def _plain(name: str, message: str) -> str:
    for (control, start), plain in _PLAIN.items():
        if name == control and message.startswith(start):
            return plain
    return message


def _enclosing(name: str) -> str:
    """``actions.0.params.cc`` → ``actions.0.type`` (the block's own control);
    ``conditions.0.1.value`` → ``conditions.0.1.kind``…, up to ``""``."""
    parts = name.split(".")
    if parts[-1] == "kind":
        parts = parts[:-2] if len(parts) > 2 else []
        return ".".join([*parts, "kind"]) if parts else ""
    if parts[0] == "actions" and len(parts) > 2 and parts[-1] != "type":
        return f"actions.{parts[1]}.type"
    if parts[0] == "trigger" and parts[-1] != "type":
        return "trigger.type"
    if parts[0] == "conditions" and len(parts) > 1:
        return ".".join([*parts[:-1], "kind"])
    return ""


# --------------------------------------------------------------------------------------------
# The builder's step list


@dataclass(frozen=True, slots=True)
class Step:
    """One block of the vertical flow: what it is and the form prefix it edits."""

    kind: Literal["trigger", "condition", "action", "end"]
    prefix: str
    title: str
    index: int | None = None
    """An action's position among the actions (0 for Action 1)."""


def flow(form: Mapping[str, str]) -> tuple[Step, ...]:
    """Trigger ↓ Condition ↓ Action 1 ↓ Action 2 ↓ … ↓ End of Workflow."""
    steps = [Step("trigger", "trigger", "Trigger"), Step("condition", "conditions", "Condition")]
    for position, i in enumerate(action_indices(form)):
        steps.append(Step("action", f"actions.{i}", f"Action {position + 1}", position))
    steps.append(Step("end", "", "End of Workflow"))
    return tuple(steps)
