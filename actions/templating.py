"""Merge fields (``{{record.email}}``) rendered in a sandbox that can read data, nothing else.

A template sees four mappings: ``record`` (the record after the change), ``before``, ``event``
and ``workflow``. Attribute syntax only reads mapping keys, so ``{{record.__class__}}`` or
``{{record.items}}`` reach no Python object; names starting with ``_`` are refused when the
workflow is saved. A missing field renders as an empty string.

A template is refused when it is saved unless every piece of it is one merge fields offer
(``template_problems``): literal text, ``{{ expressions }}``, ``{% if %}``/``elif``/``else``,
comparisons, arithmetic and ``~``, and the filters and tests of ``actions.merge_ops``. There
are no loops, macros, assignments or includes, so each operation runs at most once per
render, and ``actions.merge_ops`` bounds each one before it allocates; the rendered text is
counted as it is produced, and a render has a deadline. A template that saves therefore
renders, or fails its run with an ``ActionRenderError`` that says which limit it hit.

Most merge fields are plain reads (``Dear {{ record.first_name }},``): those are rendered by
looking the fields up, as the sandbox would, without a Jinja context per render.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.tests import TESTS as JINJA_TESTS

from actions import merge_ops
from actions.merge_ops import (
    ARGUMENT_CHECKS,
    BUDGET,
    FILTERS,
    MAX_INT_BITS,
    MAX_VALUE_CHARS,
    TESTS,
    Budget,
    MergeFieldLimit,
    OperatorRefused,
    check_format,
)
from coeflow.errors import ActionRenderError

ROOTS = frozenset({"record", "before", "event", "workflow"})
MAX_RENDERED_CHARS = 100_000
"""Longest text one merge-field string renders to."""
MAX_TEMPLATE_TOKENS = 2_000
"""Most tokens (names, operators, literals, pieces of text) in one merge-field string."""
MAX_NESTING = 32
"""Deepest nesting of a template's syntax tree (``{% if %}`` in ``{% if %}``, ``a|f|g``, ...)."""
MAX_BRACKETS = 16
"""Deepest nesting of brackets (``((a))``, ``[[a]]``): Jinja's parser recurses on each."""
MAX_LITERAL_FIELDS = 16
"""Most non-constant items in one ``[...]``, ``(...)`` or ``{...}`` literal."""


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` and comparisons going through bounded operations."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.merge_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.merge_compared(")
        super().visit_Compare(node, frame)
        self.write(")")


@pass_context
def _finalize(context: Any, value: Any) -> str:
    """What ``{{ value }}`` prints: ``str(value)``, bounded (``pass_context``: never folded
    into a constant at compile time, so compiling does no template work)."""
    return merge_ops.text(value, "output", MAX_RENDERED_CHARS)


class MergeFieldEnvironment(SandboxedEnvironment):
    """A jinja2 sandbox where ``a.b`` is ``a["b"]`` on mappings and undefined on anything else,
    ``a[i]`` indexes lists and text, and every operator is bounded (``actions.merge_ops``)."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and not attribute.startswith("_"):
            return obj.get(attribute, self.undefined(obj=obj, name=attribute))
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Mapping):
            if not (isinstance(argument, str) and argument.startswith("_")):
                try:
                    return obj[argument]
                except (KeyError, TypeError):
                    pass
        elif isinstance(obj, list | tuple | str) and isinstance(argument, int | slice):
            if isinstance(argument, slice):
                merge_ops.tick()
            try:
                return obj[argument]
            except (IndexError, TypeError):
                pass
        return self.undefined(obj=obj, name=argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        try:
            return merge_ops.binop(operator, left, right)
        except OperatorRefused as exc:
            raise SecurityError(str(exc)) from None

    @staticmethod
    def merge_concat(parts: tuple[Any, ...]) -> str:
        return merge_ops.concat(parts)

    @staticmethod
    def merge_compared(result: Any) -> Any:
        return merge_ops.compared(result)


ENV = MergeFieldEnvironment(
    undefined=ChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=_finalize,
    optimized=False,  # no constant folding: compiling never evaluates a template's expressions
)
ENV.filters = dict(FILTERS)
ENV.tests = dict(TESTS)
ENV.globals.clear()


def has_merge_fields(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def template_problems(text: str) -> list[str]:
    """Why ``text`` cannot be a merge-field template (empty when it can)."""
    return list(_problems(text))


@lru_cache(maxsize=16384)
def _problems(text: str) -> tuple[str, ...]:
    """Parsing is most of the cost of compiling a workflow; equal texts are checked once.
    A template that is not a plain read is compiled too, so what saves can render."""
    if plain_pieces(text) is not None:
        return _analyse(text)[0]
    compiled = _compiled(text)
    return compiled if isinstance(compiled, tuple) else ()


def _parse(text: str) -> nodes.Template | str:
    """The syntax tree of ``text``, or why it has none; the tokens are counted before parsing,
    so a huge template costs a bounded look, not a parse."""
    try:
        tokens = brackets = 0
        for _, kind, value in ENV.lex(text):
            if kind == "whitespace":
                continue
            tokens += 1
            if tokens > MAX_TEMPLATE_TOKENS:
                return (
                    f"merge field template too long: more than {MAX_TEMPLATE_TOKENS:,} "
                    "names, operators, values and pieces of text (split it up)"
                )
            if kind == "operator":
                brackets += (value in "([{") - (value in ")]}")
                if brackets > MAX_BRACKETS:
                    return f"merge field nesting too deep (brackets more than {MAX_BRACKETS} deep)"
        return ENV.parse(text)
    except TemplateSyntaxError as exc:
        return f"merge field syntax error: {exc.message}"
    except RecursionError:
        return _NESTING
    except Exception as exc:  # the lexer converts numbers: a 5,000-digit one raises ValueError
        if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
            digits = sys.get_int_max_str_digits()
            return f"a number of more than {digits:,} digits (the limit is {MAX_INT_BITS:,} bits)"
        return f"merge field syntax error: {type(exc).__name__}: {str(exc)[:200]}"


_NESTING = f"merge field nesting too deep (more than {MAX_NESTING} levels)"

_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.For: "{% for %} is not available in merge fields (to list values, use |join)",
    nodes.Macro: "{% macro %} is not available in merge fields",
    nodes.CallBlock: "{% call %} is not available in merge fields",
    nodes.Assign: "{% set %} is not available in merge fields",
    nodes.AssignBlock: "{% set %} is not available in merge fields",
    nodes.Include: "{% include %} is not available in merge fields",
    nodes.Import: "{% import %} is not available in merge fields",
    nodes.FromImport: "{% from ... import %} is not available in merge fields",
    nodes.Extends: "{% extends %} is not available in merge fields",
    nodes.Block: "{% block %} is not available in merge fields",
    nodes.FilterBlock: "{% filter %} is not available in merge fields (use {{ x|filter }})",
    nodes.With: "{% with %} is not available in merge fields",
    nodes.Scope: "{% autoescape %} is not available in merge fields",
    nodes.ScopedEvalContextModifier: "{% autoescape %} is not available in merge fields",
    nodes.EvalContextModifier: "{% autoescape %} is not available in merge fields",
    nodes.Call: "calling a function (f()) is not available in merge fields",
    nodes.Pow: "'**' is not allowed in merge fields",
}
_ALLOWED = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.Compare,
    nodes.Operand,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Concat,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
)
_LITERALS = (nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair)
_SIGNATURES = {name: inspect.signature(func) for name, func in FILTERS.items()}
_TEST_SIGNATURES = {name: inspect.signature(func) for name, func in TESTS.items()}


def _analyse(text: str) -> tuple[tuple[str, ...], nodes.Template | None]:
    """Every problem of ``text`` as a merge-field template, and its syntax tree."""
    tree = _parse(text)
    if isinstance(tree, str):
        return (tree,), None
    names: set[str] = set()
    problems: dict[str, None] = {}  # ordered and without repeats
    stack: list[tuple[nodes.Node, int, nodes.Node | None]] = [(tree, 1, None)]
    while stack:
        node, depth, parent = stack.pop()
        if depth > MAX_NESTING:
            problems[_NESTING] = None
            continue
        for problem in _node_problems(node, parent, names):
            problems[problem] = None
        if isinstance(node, _ALLOWED):
            stack.extend((child, depth + 1, node) for child in node.iter_child_nodes())
    unknown = [
        f"unknown merge field {name!r}; merge fields start with one of: " + ", ".join(sorted(ROOTS))
        for name in sorted(names - ROOTS)
    ]
    return (*unknown, *problems), tree


def _node_problems(node: nodes.Node, parent: nodes.Node | None, names: set[str]) -> Iterator[str]:
    if not isinstance(node, _ALLOWED):
        yield _STATEMENTS.get(type(node)) or (
            f"{type(node).__name__} is not available in merge fields"
        )
    elif isinstance(node, nodes.Name):
        names.add(node.name)
    elif isinstance(node, nodes.Getattr):
        if node.attr.startswith("_"):
            yield f"merge field attribute {node.attr!r} is not allowed"
    elif isinstance(node, nodes.Getitem):
        arg = node.arg
        if (
            isinstance(arg, nodes.Const)
            and isinstance(arg.value, str)
            and arg.value.startswith("_")
        ):
            yield f"merge field key {arg.value!r} is not allowed"
    elif isinstance(node, nodes.Filter):
        yield from _filter_problems(node)
    elif isinstance(node, nodes.Test):
        yield from _test_problems(node)
    elif isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            yield (
                f"a {value.bit_length():,}-bit number is above the limit of {MAX_INT_BITS:,} bits"
            )
    elif isinstance(node, nodes.Mod) and isinstance(fmt := _constant(node.left), str):
        yield from _limit(check_format, "'%' formatting", fmt)
    elif isinstance(node, nodes.Div | nodes.FloorDiv | nodes.Mod):
        left, right = _constant(node.left), _constant(node.right)
        numeric = not isinstance(node, nodes.Mod) or isinstance(left, int | float)  # or '%'
        if numeric and isinstance(right, int | float) and right == 0:
            yield "division by zero"
    elif isinstance(node, nodes.Mul):
        yield from _repetition_problems(node)
    elif isinstance(node, _LITERALS) and not isinstance(parent, _LITERALS):
        fields = _literal_fields(node)
        if fields > MAX_LITERAL_FIELDS:
            yield (
                f"a list, tuple or mapping of {fields} merge fields is above the limit of "
                f"{MAX_LITERAL_FIELDS}"
            )


_NOT_CONSTANT = object()


def _constant(node: nodes.Node) -> Any:
    """The value of a constant argument (``3``, ``-3``, ``'x'``), else ``_NOT_CONSTANT``."""
    sign = 1
    while isinstance(node, nodes.Neg | nodes.Pos):
        sign = -sign if isinstance(node, nodes.Neg) else sign
        node = node.node
    if not isinstance(node, nodes.Const):
        return _NOT_CONSTANT
    if sign == -1:
        return -node.value if isinstance(node.value, int | float) else _NOT_CONSTANT
    return node.value


def _const(node: nodes.Node, kind: type | tuple[type, ...]) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, kind)


def _limit(check: Callable[..., None], *args: Any) -> Iterator[str]:
    """The problem a limit check finds in constant arguments, if any."""
    try:
        check(*args)
    except MergeFieldLimit as exc:
        yield str(exc)
    except (ValueError, TypeError) as exc:
        yield f"merge field format: {exc}"


def _filter_problems(node: nodes.Filter) -> Iterator[str]:
    name = node.name
    if name not in FILTERS:
        if name == "attr":
            yield "filter 'attr' is not allowed in merge fields (read a field as a.b or a['b'])"
        elif name in TESTS:
            yield f"{name!r} is a test, not a filter: write x is {name}"
        elif name in JINJA_FILTERS:
            yield f"filter {name!r} is not available in merge fields; they have: {_FILTER_LIST}"
        else:
            yield f"unknown filter {name!r}; merge fields have: {_FILTER_LIST}"
        return
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        yield f"filter {name!r}: *args and **kwargs are not available in merge fields"
        return
    try:
        bound = _SIGNATURES[name].bind(None, *node.args, **_keywords(node))
    except TypeError as exc:
        yield f"filter {name!r}: {exc}"
        return
    for param, check in ARGUMENT_CHECKS.get(name, {}).items():
        arg = bound.arguments.get(param)
        if arg is not None and (value := _constant(arg)) is not _NOT_CONSTANT:
            yield from _limit(check, value)
    fmt = _constant(node.node) if node.node is not None else _NOT_CONSTANT
    if name == "format" and isinstance(fmt, str):
        yield from _limit(check_format, "format", fmt)


def _keywords(node: nodes.Filter | nodes.Test) -> dict[str, Any]:
    return {str(kw.key): kw.value for kw in node.kwargs}


def _test_problems(node: nodes.Test) -> Iterator[str]:
    name = node.name
    if name not in TESTS:
        kind = "is not available in merge fields" if name in JINJA_TESTS else "is unknown"
        yield f"test {name!r} {kind}; merge fields have: {_TEST_LIST}"
        return
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        yield f"test {name!r}: *args and **kwargs are not available in merge fields"
        return
    try:
        _TEST_SIGNATURES[name].bind(None, *node.args, **_keywords(node))
    except TypeError as exc:
        yield f"test {name!r}: {exc}"


def _repetition_problems(node: nodes.Mul) -> Iterator[str]:
    for count, repeated in ((node.right, node.left), (node.left, node.right)):
        if _const(count, int) and _const(repeated, str):
            size = max(count.value, 0) * len(repeated.value)  # type: ignore[attr-defined]
            if size > MAX_VALUE_CHARS:
                yield str(merge_ops.too_long("repetition ('*')", size))


def _literal_fields(node: nodes.Node) -> int:
    """Items of a literal that are not constants, through nested literals."""
    count = 0
    stack = [node]
    while stack:
        for child in stack.pop().iter_child_nodes():
            if isinstance(child, _LITERALS):
                stack.append(child)
            elif not isinstance(child, nodes.Const):
                count += 1
    return count


_FILTER_LIST = ", ".join(sorted(FILTERS))
_TEST_LIST = ", ".join(sorted(TESTS))


Piece = str | tuple[str, ...]
"""Literal text, or the path of a plain merge field (``("record", "owner", "name")``)."""


@dataclass(frozen=True, slots=True)
class MergeText:
    """A string with merge fields, compiled when its workflow is and shared by equal strings."""

    text: str
    pieces: tuple[Piece, ...] | None = None
    """The text as literal pieces and plain field reads, when that is all it holds (rendered
    without Jinja); ``None``: rendered by Jinja."""
    template: Template | tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    """The compiled template (for ``pieces is None``), or why it was refused."""


@lru_cache(maxsize=16384)
def plain_pieces(text: str) -> tuple[Piece, ...] | None:
    """``text`` as pieces if Jinja parses it into literal text and ``{{ root.a.b }}`` reads
    only (the parse decides, so this never disagrees with Jinja on what a field is)."""
    tree = _parse(text)
    if isinstance(tree, str):
        return None
    body = tree.body
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


_SCALARS = frozenset({int, float, bool, type(None)})


def _render_plain(pieces: tuple[Piece, ...], context: Mapping[str, Any]) -> str:
    """What Jinja renders for ``pieces``: ``str`` of each value, ``""`` for a missing one.
    The fields' length is counted before joining (the literal text is at most the template's),
    so a text of many large fields is never built."""
    out = []
    size = 0
    for piece in pieces:
        if type(piece) is str:
            out.append(piece)
            continue
        value: Any = context[piece[0]]
        for key in piece[1:]:
            if not (type(value) is dict or isinstance(value, Mapping)) or key not in value:
                value = ""
                break
            value = value[key]
        if type(value) is not str:
            value = (
                str(value)  # what plain_text gives a number, without the call
                if type(value) in _SCALARS
                else merge_ops.plain_text(value, MAX_RENDERED_CHARS - size)
            )
        out.append(value)
        size += len(value)
        if size > MAX_RENDERED_CHARS:
            raise merge_ops.too_long("output", size, MAX_RENDERED_CHARS)
    text = "".join(out)
    if len(text) > MAX_RENDERED_CHARS:
        raise merge_ops.too_long("output", len(text), MAX_RENDERED_CHARS)
    return text


@lru_cache(maxsize=8192)
def _compiled(text: str) -> Template | tuple[str, ...]:
    """The template of ``text``, or its problems: nothing that fails the checks is compiled."""
    problems, tree = _analyse(text)
    if problems or tree is None:
        return problems
    try:
        return ENV.from_string(tree)
    except RecursionError:
        return (_NESTING,)
    except Exception as exc:
        return (f"merge field could not be compiled: {type(exc).__name__}: {str(exc)[:200]}",)


def compile_tree(value: Any) -> Any:
    """``value`` with every string that holds merge fields marked for rendering."""
    if isinstance(value, str):
        if not has_merge_fields(value):
            return value
        problems = _problems(value)  # refused when saved: refused when rendered too
        if problems:
            return MergeText(value, None, problems)
        pieces = plain_pieces(value)
        return MergeText(value, pieces, None if pieces is not None else _compiled(value))
    if isinstance(value, dict):
        return {k: compile_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_tree(v) for v in value]
    return value


def merge_roots(tree: Any) -> frozenset[str]:
    """The roots of the merge context (``ROOTS``) that rendering ``tree`` can read: those of
    its plain field reads, and every root for a text that Jinja renders (or refuses), so a
    caller may leave the others out of the context it builds for each event."""
    if isinstance(tree, MergeText):
        if tree.pieces is None:
            return ROOTS
        return frozenset(piece[0] for piece in tree.pieces if not isinstance(piece, str))
    if isinstance(tree, dict):
        return frozenset().union(*(merge_roots(v) for v in tree.values()))
    if isinstance(tree, list):
        return frozenset().union(*(merge_roots(v) for v in tree))
    return frozenset()


def render_tree(tree: Any, context: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Render a compiled tree for one event; ``ActionRenderError`` says what went wrong.
    The strings of one tree (an action's parameters) share one deadline; pass one ``Budget``
    to several calls (every action of a run) to share it among them."""
    if isinstance(tree, MergeText) and tree.pieces is not None:  # the hot path: plain reads
        try:
            return _render_plain(tree.pieces, context)
        except Exception as exc:
            raise _render_error(exc) from None
    budget = budget or Budget()  # one deadline for the whole tree
    if type(tree) is dict:  # an action's parameters: their plain texts read here, in one pass
        try:
            return {
                k: _render_plain(v.pieces, context)
                if type(v) is MergeText and v.pieces is not None
                else _render(v, context, budget)
                for k, v in tree.items()
            }
        except Exception as exc:  # what _render_text would raise (an ActionRenderError as is)
            raise _render_error(exc) from None
    return _render(tree, context, budget)


def _render(tree: Any, context: Mapping[str, Any], budget: Budget) -> Any:
    if isinstance(tree, MergeText):
        return _render_text(tree, context, budget)
    if isinstance(tree, dict):
        return {k: _render(v, context, budget) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_render(v, context, budget) for v in tree]
    return tree


def _render_text(tree: MergeText, context: Mapping[str, Any], budget: Budget) -> str:
    try:
        if tree.pieces is not None:
            return _render_plain(tree.pieces, context)
        return _render_jinja(tree, context, budget)
    except Exception as exc:
        raise _render_error(exc) from None


def _render_error(exc: Exception) -> ActionRenderError:
    if isinstance(exc, ActionRenderError):
        return exc
    if isinstance(exc, MergeFieldLimit):
        return ActionRenderError(f"merge field over a limit: {exc}")
    if isinstance(exc, SecurityError):
        return ActionRenderError(f"merge field refused: {exc}")
    # a template is user code: any failure is a render error
    return ActionRenderError(f"merge field failed: {type(exc).__name__}: {exc}")


def _render_jinja(tree: MergeText, context: Mapping[str, Any], budget: Budget) -> str:
    template = tree.template if tree.template is not None else _compiled(tree.text)
    if isinstance(template, tuple):
        raise ActionRenderError("merge field refused: " + "; ".join(template))
    budget.start()
    token = BUDGET.set(budget)
    pieces = cast(Generator[str, None, None], template.generate(context))
    try:
        out = []
        size = 0
        for piece in pieces:  # counted as produced: a render stops at the limit, not after
            size += len(piece)
            if size > MAX_RENDERED_CHARS:
                raise merge_ops.too_long("output", None, MAX_RENDERED_CHARS)
            out.append(piece)
            merge_ops.tick()
        return "".join(out)
    finally:
        pieces.close()
        BUDGET.reset(token)
