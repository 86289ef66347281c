"""Merge fields (``{{record.email}}``) rendered in a sandbox that can read data, nothing else.

A template sees four mappings: ``record`` (the record after the change), ``before``, ``event``
and ``workflow``. Attribute syntax only reads mapping keys, so ``{{record.__class__}}`` or
``{{record.items}}`` reach no Python object; names starting with ``_`` are refused when the
workflow is saved. A missing field renders as an empty string.
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


@dataclass(frozen=True, slots=True)
class MergeText:
    """A string with merge fields, compiled on first render and shared by equal strings."""

    text: str


@lru_cache(maxsize=8192)
def _compiled(text: str) -> Any:
    return ENV.from_string(text)


def compile_tree(value: Any) -> Any:
    """``value`` with every string that holds merge fields marked for rendering."""
    if isinstance(value, str):
        return MergeText(value) if has_merge_fields(value) else value
    if isinstance(value, dict):
        return {k: compile_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_tree(v) for v in value]
    return value


def render_tree(tree: Any, context: Mapping[str, Any]) -> Any:
    """Render a compiled tree for one event; ``ActionRenderError`` says what went wrong."""
    if isinstance(tree, MergeText):
        try:
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
