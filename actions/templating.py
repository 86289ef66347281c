"""Merge fields (``{{record.email}}``) rendered in a sandbox that can read data, nothing else.

A template sees four mappings: ``record`` (the record after the change), ``before``, ``event``
and ``workflow``. Attribute syntax only reads mapping keys, so ``{{record.__class__}}`` or
``{{record.items}}`` reach no Python object; names starting with ``_`` are refused when the
workflow is saved. A missing field renders as an empty string.

Most merge fields are plain reads (``Dear {{ record.first_name }},``): those are rendered by
looking the fields up, as the sandbox would, without a Jinja context per render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from coeflow.errors import ActionRenderError

ROOTS = frozenset({"record", "before", "event", "workflow"})
MAX_RENDERED_CHARS = 100_000
_MAX_REPEAT = 10_000


class MergeFieldEnvironment(SandboxedEnvironment):
    """A jinja2 sandbox where ``a.b`` is ``a["b"]`` on mappings and undefined on anything else."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and not attribute.startswith("_"):
            return obj.get(attribute, self.undefined(obj=obj, name=attribute))
        return self.undefined(obj=obj, name=attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise SecurityError("'**' is not allowed in merge fields")
        if isinstance(left, str | list) and isinstance(right, int) and right > _MAX_REPEAT:
            raise SecurityError("repetition too large in merge field")
        if isinstance(right, str | list) and isinstance(left, int) and left > _MAX_REPEAT:
            raise SecurityError("repetition too large in merge field")
        return super().call_binop(context, operator, left, right)


ENV = MergeFieldEnvironment(
    undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True
)


def has_merge_fields(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def template_problems(text: str) -> list[str]:
    """Why ``text`` cannot be a merge-field template (empty when it can)."""
    return list(_problems(text))


@lru_cache(maxsize=16384)
def _problems(text: str) -> tuple[str, ...]:
    """Parsing is most of the cost of compiling a workflow; equal texts are checked once."""
    try:
        tree = ENV.parse(text)
    except TemplateSyntaxError as exc:
        return (f"merge field syntax error: {exc.message}",)
    problems = []
    for name in sorted({n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - ROOTS):
        problems.append(
            f"unknown merge field {name!r}; merge fields start with one of: "
            + ", ".join(sorted(ROOTS))
        )
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            problems.append(f"merge field attribute {node.attr!r} is not allowed")
    for getitem in tree.find_all(nodes.Getitem):
        arg = getitem.arg
        if (
            isinstance(arg, nodes.Const)
            and isinstance(arg.value, str)
            and arg.value.startswith("_")
        ):
            problems.append(f"merge field key {arg.value!r} is not allowed")
    return tuple(problems)


Piece = str | tuple[str, ...]
"""Literal text, or the path of a plain merge field (``("record", "owner", "name")``)."""


@dataclass(frozen=True, slots=True)
class MergeText:
    """A string with merge fields, compiled on first render and shared by equal strings."""

    text: str
    pieces: tuple[Piece, ...] | None = None
    """The text as literal pieces and plain field reads, when that is all it holds (rendered
    without Jinja); ``None``: rendered by Jinja."""


@lru_cache(maxsize=16384)
def plain_pieces(text: str) -> tuple[Piece, ...] | None:
    """``text`` as pieces if Jinja parses it into literal text and ``{{ root.a.b }}`` reads
    only (the parse decides, so this never disagrees with Jinja on what a field is)."""
    try:
        body = ENV.parse(text).body
    except TemplateSyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    pieces: list[Piece] = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            pieces.append(node.data)
            continue
        path: list[str] = []
        while isinstance(node, nodes.Getattr) and not node.attr.startswith("_"):
            path.append(node.attr)
            node = node.node
        if not (isinstance(node, nodes.Name) and node.name in ROOTS and path):
            return None
        pieces.append((node.name, *reversed(path)))
    return tuple(pieces)


def _render_plain(pieces: tuple[Piece, ...], context: Mapping[str, Any]) -> str:
    """What Jinja renders for ``pieces``: ``str`` of each value, ``""`` for a missing one."""
    out = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        value: Any = context[piece[0]]
        for key in piece[1:]:
            if not isinstance(value, Mapping) or key not in value:
                value = ""
                break
            value = value[key]
        out.append(value if isinstance(value, str) else str(value))
    return "".join(out)


@lru_cache(maxsize=8192)
def _compiled(text: str) -> Any:
    return ENV.from_string(text)


def compile_tree(value: Any) -> Any:
    """``value`` with every string that holds merge fields marked for rendering."""
    if isinstance(value, str):
        return MergeText(value, plain_pieces(value)) if has_merge_fields(value) else value
    if isinstance(value, dict):
        return {k: compile_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_tree(v) for v in value]
    return value


def render_tree(tree: Any, context: Mapping[str, Any]) -> Any:
    """Render a compiled tree for one event; ``ActionRenderError`` says what went wrong."""
    if isinstance(tree, MergeText):
        try:
            if tree.pieces is not None:
                text = _render_plain(tree.pieces, context)
            else:
                text = _compiled(tree.text).render(context)
        except SecurityError as exc:
            raise ActionRenderError(f"merge field refused: {exc}") from None
        except Exception as exc:  # a template is user code: any failure is a render error
            raise ActionRenderError(f"merge field failed: {type(exc).__name__}: {exc}") from None
        if len(text) > MAX_RENDERED_CHARS:
            raise ActionRenderError(f"rendered text longer than {MAX_RENDERED_CHARS} characters")
        return text
    if isinstance(tree, dict):
        return {k: render_tree(v, context) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, context) for v in tree]
    return tree
