"""What a merge-field template may do, each operation bounded before it allocates.

Every operation a template can reach (filters, tests, ``+ - * / // %``, ``~``, comparisons,
printing a value) is here, and each one checks its sizes first: a width, a precision, a
repetition count, the length of the text it would make. Nothing a template computes is longer
than ``MAX_VALUE_CHARS``; a number in arithmetic has at most ``MAX_INT_BITS`` bits. A render
also has a deadline in CPU time (``RENDER_DEADLINE_SECONDS``, ``work_clock``) that these
operations check as they go, so a template with many cheap steps stops too.

A template has no loops, no macros and no assignments (``actions.templating`` refuses them
when a workflow is saved), so each operation runs at most once per render: its cost is bounded
by the size of its inputs, which are the record's values (at most an event) or values that
these bounds already limited.

A limit that is hit raises ``MergeFieldLimit`` with what was too large and the limit;
``actions.templating`` turns it into ``ActionRenderError`` (the run fails with that message).
"""

from __future__ import annotations

import gc
import json
import math
import operator
import re
import textwrap
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import wraps
from itertools import islice
from time import thread_time
from typing import Any, cast
from urllib.parse import quote_from_bytes

from jinja2 import Undefined
from jinja2.exceptions import FilterArgumentError
from jinja2.filters import do_indent, do_title, do_truncate, make_attrgetter
from markupsafe import Markup, escape

MAX_VALUE_CHARS = 100_000
"""Longest text a template may compute (a filter's input or result, ``~``, ``+``, ``*``, ``%``)."""
MAX_WIDTH = 1_000
"""Largest width: ``center``, ``indent``, ``wordwrap``, and ``%10s`` in ``format`` and ``%``."""
MAX_PRECISION = 100
"""Largest precision of a number: ``%.2f`` in ``format`` and ``%``; ``round`` (either sign).
A text's precision (``%.200s``) only cuts it: at most ``MAX_VALUE_CHARS``."""
MAX_INT_BITS = 4_096
"""Largest integer in arithmetic and number formatting (about 1,233 decimal digits)."""
MAX_WRAP_CHARS = 10_000
"""Longest text ``wordwrap`` takes (wrapping is the slowest filter per character)."""
MAX_WRAP_PARAGRAPH = 2_000
"""Longest paragraph (line) ``wordwrap`` wraps: one paragraph is wrapped in one go."""
MAX_JSON_INDENT = 16
"""Largest ``tojson(indent=...)``."""
MAX_NUMBER_CHARS = 100
"""``int`` and ``float`` read text of at most this length as a number (longer: the default)."""
RENDER_DEADLINE_SECONDS = 0.05
"""Wall-clock time the merge fields of one event (every action of every run it starts) may take
to render; rendering takes microseconds."""


class MergeFieldLimit(Exception):
    """A template asked for more than a limit allows (the message says what, and the limit)."""


def too_long(what: str, size: int | None, limit: int = MAX_VALUE_CHARS) -> MergeFieldLimit:
    """``what`` would make (or was given) a text over ``limit`` (``size``: its length if known)."""
    made = f"{size:,} characters" if size is not None else f"more than {limit:,} characters"
    return MergeFieldLimit(f"{what}: a text of {made} is above the limit of {limit:,}")


_collecting = 0.0
"""``thread_time()`` when the cyclic collector started its current collection."""
_collected = 0.0
"""CPU seconds spent in the cyclic collector since the process started."""


def _count_collection(phase: str, info: dict[str, int]) -> None:
    global _collecting, _collected
    if phase == "start":
        _collecting = thread_time()
    else:
        _collected += thread_time() - _collecting


gc.callbacks.append(_count_collection)


def work_clock() -> float:
    """The rendering thread's CPU seconds, less those the cyclic collector took: what a
    template's own work has spent. A collection that happens to fall inside a render walks the
    whole heap (tens of milliseconds in a large one), which says nothing about the template."""
    return thread_time() - _collected


class Budget:
    """The deadline of one render (a run's actions, or one action's parameters), started by
    its first template that Jinja renders.

    Counted by ``work_clock`` (the rendering thread's CPU time without the cyclic
    collector's), not the wall clock: a worker descheduled on a busy machine, or a collection
    of its heap, must not turn the same event's render into a ``failed`` run on one processing
    and a success on its replay (runs are decided again after a crash and must come out the
    same); the deadline bounds what a template costs."""

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline = math.inf

    def start(self) -> None:
        if self.deadline == math.inf:
            self.deadline = work_clock() + RENDER_DEADLINE_SECONDS


NO_DEADLINE = Budget()
"""Outside a render (a template rendered directly, as tests do): sizes bounded, time not."""
BUDGET: ContextVar[Budget] = ContextVar("merge_field_budget", default=NO_DEADLINE)


def tick() -> None:
    """Fail the render once its deadline has passed."""
    if work_clock() > BUDGET.get().deadline:
        raise MergeFieldLimit(
            f"rendering took longer than {RENDER_DEADLINE_SECONDS * 1000:g} ms, "
            "the limit for the merge fields of one event (all the runs it starts)"
        )


# -- sizes of arguments ---------------------------------------------------------------------


def check_width(what: str, width: Any) -> None:
    if isinstance(width, str):
        width = len(width)
    if isinstance(width, int) and abs(width) > MAX_WIDTH:
        raise MergeFieldLimit(f"{what} width {width:,} is above the limit of {MAX_WIDTH:,}")


def check_precision(what: str, precision: Any) -> None:
    if isinstance(precision, int) and abs(precision) > MAX_PRECISION:
        raise MergeFieldLimit(
            f"{what} precision {precision:,} is above the limit of {MAX_PRECISION:,}"
        )


def check_int(what: str, value: Any) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise MergeFieldLimit(
            f"{what} of a {value.bit_length():,}-bit number; numbers are limited to "
            f"{MAX_INT_BITS:,} bits"
        )


def _check_wrap_width(width: Any) -> None:
    check_width("wordwrap", width)
    if isinstance(width, int) and width < 1:
        raise MergeFieldLimit(f"wordwrap width {width} is below the least, 1")


def _check_json_indent(indent: Any) -> None:
    size = len(indent) if isinstance(indent, str) else indent
    if isinstance(size, int) and size > MAX_JSON_INDENT:
        raise MergeFieldLimit(f"tojson indent {size:,} is above the limit of {MAX_JSON_INDENT}")


ARGUMENT_CHECKS: dict[str, dict[str, Callable[[Any], None]]] = {
    "center": {"width": lambda w: check_width("center", w)},
    "indent": {"width": lambda w: check_width("indent", w)},
    "wordwrap": {"width": _check_wrap_width},
    "round": {"precision": lambda p: check_precision("round", p)},
    "tojson": {"indent": _check_json_indent},
}
"""Per filter, the parameters that size its result; also applied to constants when saved."""


# -- text ----------------------------------------------------------------------------------


class _Raw(str):
    """Punctuation of a container's text (``[``, ``, ``, ``: ``)."""

    __slots__ = ()


class _Chunk(list[Any]):
    """Consecutive items of a list or tuple, printed together when they are all scalars."""

    __slots__ = ()


class _DictChunk(dict[Any, Any]):
    """Consecutive items of a dict, printed together when they are all scalars."""

    __slots__ = ()


_CHUNK = 256


def _sequence_pieces(seq: list[Any] | tuple[Any, ...], opening: str, closing: str) -> Iterator[Any]:
    yield _Raw(opening)
    for start in range(0, len(seq), _CHUNK):
        if start:
            yield _Raw(", ")
        yield _Chunk(seq[start : start + _CHUNK])
    yield _Raw(closing)


def _dict_pieces(mapping: dict[Any, Any]) -> Iterator[Any]:
    yield _Raw("{")
    items = iter(mapping.items())
    first = True
    while chunk := _DictChunk(islice(items, _CHUNK)):
        if not first:
            yield _Raw(", ")
        first = False
        yield chunk
    yield _Raw("}")


def _chunk_items(chunk: list[Any] | dict[Any, Any]) -> Iterator[Any]:
    if isinstance(chunk, dict):
        for i, (key, item) in enumerate(chunk.items()):
            if i:
                yield _Raw(", ")
            yield key
            yield _Raw(": ")
            yield item
    else:
        for i, item in enumerate(chunk):
            if i:
                yield _Raw(", ")
            yield item


def _scalars_bound(items: Any, depth: int = 0) -> int:
    """At most how long the text of these items is, or -1 when that takes a walk: an item is
    not a scalar, nor a small container of them (at most eight levels deep)."""
    bound = 0
    for item in items:
        kind = type(item)
        if kind is str:
            bound += 10 * len(item) + 4  # repr escapes a character in at most 10 ("\\U0001f9ff")
        elif kind is int:
            bound += item.bit_length() // 3 + 4
        elif kind is float or kind is bool or item is None:
            bound += 26
        elif (kind is list or kind is tuple or kind is dict) and depth < 8 and len(item) <= 16:
            inner = _scalars_bound(
                (x for pair in item.items() for x in pair) if kind is dict else item, depth + 1
            )
            if inner < 0:
                return -1
            bound += inner + 2 * len(item) + 4
        else:
            return -1
    return bound


def _container_text(value: Any, what: str, limit: int) -> str:
    """``str(value)`` of a list, tuple or dict, stopped as soon as it would pass ``limit``
    (the walk is iterative: a deeply nested record cannot exhaust the stack). Runs of scalars
    whose text surely fits are printed by Python in one go."""
    out: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    end = object()
    while stack:
        item: Any = next(stack[-1], end)
        if item is end:
            stack.pop()
            continue
        kind = type(item)
        if kind is _Raw:
            piece: str = item
        elif kind is _Chunk or kind is _DictChunk:
            scalars = (x for pair in item.items() for x in pair) if kind is _DictChunk else item
            if 0 <= _scalars_bound(scalars) <= limit - size:
                piece = repr(dict(item) if kind is _DictChunk else list(item))[1:-1]
            else:
                stack.append(_chunk_items(item))
                continue
        elif kind is list:
            stack.append(_sequence_pieces(item, "[", "]"))
            continue
        elif kind is tuple:
            stack.append(_sequence_pieces(item, "(", ",)" if len(item) == 1 else ")"))
            continue
        elif kind is dict:
            stack.append(_dict_pieces(item))
            continue
        elif isinstance(item, str):
            if len(item) > limit - size:
                raise too_long(what, None, limit)
            piece = repr(item)
        else:
            check_int(what, item)
            piece = repr(item)
        size += len(piece)
        if size > limit:
            raise too_long(what, None, limit)
        out.append(piece)
        if len(out) & 255 == 0:
            tick()
    return "".join(out)


def text(value: Any, what: str = "the text", limit: int = MAX_VALUE_CHARS) -> str:
    """``str(value)``, refused before it is built when it would pass ``limit`` characters."""
    if isinstance(value, str):
        if len(value) > limit:
            raise too_long(what, len(value), limit)
        return value
    kind = type(value)
    if kind is list or kind is tuple or kind is dict:
        return _container_text(value, what, limit)
    check_int(what, value)
    return str(value)


def plain_text(value: Any, limit: int) -> str:
    """``str(value)`` for the plain-read path, where a value is a record's."""
    if isinstance(value, (list, tuple, dict)):  # a tuple: isinstance of a union is slower
        return _container_text(value, "output", max(limit, 0))
    return str(value)


def _repr_text(value: Any, what: str, ascii_only: bool) -> str:
    if isinstance(value, str):
        if len(value) + 2 > MAX_VALUE_CHARS:
            raise too_long(what, len(value) + 2)
        rendered = repr(value)
    elif type(value) in (list, tuple, dict):
        rendered = _container_text(value, what, MAX_VALUE_CHARS)
    else:
        check_int(what, value)
        rendered = repr(value)
    if ascii_only:
        rendered = rendered.encode("ascii", "backslashreplace").decode("ascii")
    return rendered


def _result(value: str, what: str) -> str:
    if len(value) > MAX_VALUE_CHARS:
        raise too_long(what, len(value))
    return value


# -- printf-style formatting ('%' and the format filter) -----------------------------------

_CONVERSIONS = frozenset("diouxXeEfFgGcrsa%")
_NUMERIC = frozenset("diouxXeEfFgG")


def _count_at(fmt: str, j: int) -> tuple[str, int]:
    """The width or precision at ``j`` (``"*"``, digits, or ``""``) and where it ends."""
    if j < len(fmt) and fmt[j] == "*":
        return "*", j + 1
    start = j
    while j < len(fmt) and fmt[j] in "0123456789":
        j += 1
    return fmt[start:j], j


def format_specs(fmt: str) -> Iterator[tuple[str, str | None, str, str, str | None, str]]:
    """``fmt`` as (literal text, key, flags, width, precision, conversion) per conversion, the
    way Python's ``%`` reads it; the last item has conversion ``""`` (the rest of the text).
    Widths and precisions are ``"*"``, digits, or ``""``/``None`` when absent."""
    pos, n = 0, len(fmt)
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            yield fmt[pos:], None, "", "", None, ""
            return
        j = i + 1
        key = None
        if j < n and fmt[j] == "(":
            depth, j = 1, j + 1
            start = j
            while j < n and depth:
                depth += (fmt[j] == "(") - (fmt[j] == ")")
                j += 1
            if depth:
                raise ValueError("incomplete format key")
            key = fmt[start : j - 1]
        start = j
        while j < n and fmt[j] in "-+ #0":
            j += 1
        flags = fmt[start:j]
        width, j = _count_at(fmt, j)
        precision = None
        if j < n and fmt[j] == ".":
            precision, j = _count_at(fmt, j + 1)
        if j < n and fmt[j] in "hlL":
            j += 1
        if j >= n:
            raise ValueError("incomplete format")
        conversion = fmt[j]
        if conversion not in _CONVERSIONS:
            raise ValueError(
                f"unsupported format character {conversion!r} (0x{ord(conversion):x}) at index {j}"
            )
        yield fmt[pos:i], key, flags, width, precision, conversion
        pos = j + 1


def _digits(what: str, digits: str, check: Callable[[str, Any], None]) -> int:
    value = int(digits[:20])  # more digits are beyond any limit (and slow to read)
    check(what, value)
    return value


def _check_text_precision(what: str, precision: Any) -> None:
    if isinstance(precision, int) and abs(precision) > MAX_VALUE_CHARS:
        raise MergeFieldLimit(
            f"{what} precision {precision:,} is above the limit of {MAX_VALUE_CHARS:,}"
        )


def _precision_check(conversion: str) -> Callable[[str, Any], None]:
    """A number's precision makes digits (``%.2f``); a text's only cuts it (``%.200s``)."""
    return _check_text_precision if conversion in "sra" else check_precision


def check_format(what: str, fmt: str) -> None:
    """Refuse a constant format string whose widths or precisions are over the limits."""
    for _, key, flags, width, precision, conversion in format_specs(fmt):
        if conversion == "%" and (key is not None or flags or width or precision is not None):
            raise ValueError("unsupported format character '%' (0x25)")
        if width not in ("", "*"):
            _digits(what, width, check_width)
        if precision not in (None, "", "*"):
            _digits(what, precision, _precision_check(conversion))


def printf(what: str, fmt: str, args: Any) -> str:
    """``fmt % args`` with every width, precision and the result's length bounded first."""
    positional: tuple[Any, ...] = args if isinstance(args, tuple) else (args,)
    mapping = (
        args if not isinstance(args, tuple | str) and hasattr(type(args), "__getitem__") else None
    )
    used = 0

    def take() -> Any:
        nonlocal used
        if used >= len(positional):
            raise TypeError("not enough arguments for format string")
        used += 1
        return positional[used - 1]

    def star(kind: str, check: Callable[[str, Any], None]) -> int:
        value = take()
        if not isinstance(value, int):
            raise TypeError(f"* wants int ({kind})")
        check(what, value)
        return value

    out: list[str] = []
    size = 0
    for literal, key, flags, width, precision, conversion in format_specs(fmt):
        size += len(literal)
        if size > MAX_VALUE_CHARS:
            raise too_long(what, None)
        out.append(literal)
        if not conversion:
            break
        spec = "%" + flags
        if width == "*":
            spec += str(star("width", check_width))
        elif width:
            spec += str(_digits(what, width, check_width))
        check = _precision_check(conversion)
        if precision == "*":
            spec += "." + str(star("precision", check))
        elif precision is not None:
            spec += "." + str(_digits(what, precision, check) if precision else 0)
        if conversion == "%":
            if spec != "%" or key is not None or precision is not None:
                if key is None:
                    take()  # as Python does: an argument, then the error
                raise ValueError("unsupported format character '%' (0x25)")
            piece = "%"
        else:
            if key is not None:
                if mapping is None:
                    raise TypeError("format requires a mapping")
                value = mapping[key]
            else:
                value = take()
            if conversion == "s":
                piece = (spec + "s") % (text(value, what),)
            elif conversion in "ra":
                piece = (spec + "s") % (_repr_text(value, what, conversion == "a"),)
            else:
                if conversion in _NUMERIC:
                    check_int(what, value)
                piece = (spec + conversion) % (value,)
        size += len(piece)
        if size > MAX_VALUE_CHARS:
            raise too_long(what, None)
        out.append(piece)
        tick()
    if mapping is None and used < len(positional):
        raise TypeError("not all arguments converted during string formatting")
    return "".join(out)


# -- operators -----------------------------------------------------------------------------

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}
_CONTAINERS = (list, tuple, dict)


class OperatorRefused(Exception):
    """An operator merge fields do not offer (``**``, lists added or repeated)."""


def binop(op: str, left: Any, right: Any) -> Any:
    """``left op right`` for a template, sizes checked before the result is made."""
    tick()
    if op == "**":
        raise OperatorRefused("'**' is not allowed in merge fields")
    what = f"'{op}'"
    if op == "%" and isinstance(left, str):
        return printf("'%' formatting", left, right)
    if op in ("+", "*") and (isinstance(left, _CONTAINERS) or isinstance(right, _CONTAINERS)):
        raise OperatorRefused(
            f"'{op}' works on numbers and text in merge fields, not on lists or mappings"
        )
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        factor = 5 if isinstance(left, Markup) or isinstance(right, Markup) else 1
        size = (len(left) + len(right)) * factor
        if size > MAX_VALUE_CHARS:
            raise too_long(what, size)
    elif op == "*" and (isinstance(left, str) or isinstance(right, str)):
        count, repeated = (right, left) if isinstance(left, str) else (left, right)
        if isinstance(count, int) and isinstance(repeated, str):
            size = max(count, 0) * len(repeated)
            if size > MAX_VALUE_CHARS:
                raise too_long("repetition ('*')", size)
    elif isinstance(left, int) or isinstance(right, int):
        check_int(what, left)
        check_int(what, right)
        if (
            op == "*"
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise MergeFieldLimit(
                f"'*' would make a number of about {left.bit_length() + right.bit_length():,} "
                f"bits; numbers are limited to {MAX_INT_BITS:,} bits"
            )
    return _BINOPS[op](left, right)


def concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: the texts joined, refused before joining when too long."""
    tick()
    texts = []
    size = 0
    for part in parts:
        piece = text(part, "'~'")
        size += len(piece)
        if size > MAX_VALUE_CHARS:
            raise too_long("'~'", size)
        texts.append(piece)
    return "".join(texts)


def compared(result: Any) -> Any:
    """A comparison's result, after checking the deadline (comparing records takes time)."""
    tick()
    return result


# -- filters -------------------------------------------------------------------------------


def _op(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test: checks the deadline first (its signature is the function's)."""

    @wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        tick()
        return func(*args, **kwargs)

    return checked


def _undefined(hint: str) -> Any:
    from actions.templating import ENV

    return ENV.undefined(hint)


@_op
def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def _text_filter(name: str, method: Callable[[str], str]) -> Callable[..., Any]:
    def apply(value: Any) -> str:
        return _result(method(text(value, name)), name)

    apply.__name__ = apply.__qualname__ = f"_{name}"
    return _op(apply)


@_op
def _trim(value: Any, chars: str | None = None) -> str:
    return text(value, "trim").strip(chars)


@_op
def _title(value: Any) -> str:
    """Jinja's ``title``, a piece at a time: cut after a separator, a word is never split."""
    s = text(value, "title")
    out = []
    start = 0
    while start < len(s):
        end = start + _TITLE_PIECE
        if end < len(s):
            separator = _TITLE_SEPARATOR.search(s, end)
            end = separator.end() if separator else len(s)
        out.append(do_title(s[start:end]))
        start = end
        tick()
    return _result("".join(out), "title")


_TITLE_PIECE = 8_192
_TITLE_SEPARATOR = re.compile(r"[-\s({\[<]")  # what jinja's title splits words on


@_op
def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    s, old, new = (str(text(v, "replace")) for v in (value, old, new))
    found = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    size = len(s) + found * (len(new) - len(old))
    if size > MAX_VALUE_CHARS:
        raise too_long("replace", size)
    return s.replace(old, new, -1 if count is None else count)


@_op
def _truncate(
    value: Any,
    length: int = 255,
    killwords: bool = False,
    end: str = "...",
    leeway: int | None = None,
) -> str:
    from actions.templating import ENV

    s = value if isinstance(value, str) else text(value, "truncate")  # any length: cut, not copied
    return str(do_truncate(ENV, s, length, killwords, end, leeway))


@_op
def _length(value: Any) -> int:
    return len(value)


@_op
def _round(value: Any, precision: int = 0, method: str = "common") -> float:
    check_precision("round", precision)
    check_int("round", value)
    if method not in {"common", "ceil", "floor"}:
        raise FilterArgumentError("method must be common, ceil or floor")
    if method == "common":
        return round(value, precision)
    func = getattr(math, method)
    return func(value * (10**precision)) / (10**precision)


@_op
def _int(value: Any, default: int = 0, base: int = 10) -> int:
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        return default
    try:
        if isinstance(value, str):
            return int(value, base)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return default


@_op
def _float(value: Any, default: float = 0.0) -> float:
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@_op
def _string(value: Any) -> str:
    return text(value, "string")


@_op
def _join(value: Any, d: Any = "", attribute: str | int | None = None) -> str:
    from actions.templating import ENV

    separator = text(d, "join")
    if attribute is not None:
        value = map(make_attrgetter(ENV, attribute), value)
    out = []
    size = 0
    for i, item in enumerate(value):
        piece = text(item, "join")
        size += len(piece) + (len(separator) if i else 0)
        if size > MAX_VALUE_CHARS:
            raise too_long("join", None)
        out.append(piece)
        if i & 1023 == 1023:
            tick()
    return separator.join(out)


@_op
def _first(value: Any) -> Any:
    try:
        return next(iter(value))
    except StopIteration:
        return _undefined("No first item, sequence was empty.")


@_op
def _last(value: Any) -> Any:
    try:
        return next(iter(reversed(value)))
    except StopIteration:
        return _undefined("No last item, sequence was empty.")


@_op
def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise FilterArgumentError("can't handle positional and keyword arguments at the same time")
    return printf("format", text(value, "format"), kwargs or args)


@_op
def _abs(value: Any) -> Any:
    return abs(value)


_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@_op
def _indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    check_width("indent", width)
    s = text(value, "indent")
    step = len(width) if isinstance(width, str) else max(width, 0)
    lines = sum(map(s.count, _LINE_BREAKS)) + 2
    size = len(s) + lines * step + 1
    if size > MAX_VALUE_CHARS:
        raise too_long("indent", size)
    return str(do_indent(s, width, first, blank))


@_op
def _center(value: Any, width: int = 80) -> str:
    check_width("center", width)
    return text(value, "center").center(width)


@_op
def _wordwrap(
    value: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    from actions.templating import ENV

    _check_wrap_width(width)
    s = text(value, "wordwrap", MAX_WRAP_CHARS)
    joint = text(wrapstring if wrapstring is not None else ENV.newline_sequence, "wordwrap")
    size = len(s) * (1 + 2 * len(joint))  # at most a line per character, and per paragraph
    if size > MAX_VALUE_CHARS:
        raise too_long("wordwrap", size)
    wrapper = textwrap.TextWrapper(
        width=width,
        expand_tabs=False,
        replace_whitespace=False,
        break_long_words=break_long_words,
        break_on_hyphens=break_on_hyphens,
    )
    paragraphs = []
    for line in s.splitlines():  # as jinja's wordwrap does, a paragraph at a time
        if len(line) > MAX_WRAP_PARAGRAPH:
            raise too_long("wordwrap (one paragraph)", len(line), MAX_WRAP_PARAGRAPH)
        paragraphs.append(joint.join(wrapper.wrap(line)))
        tick()
    return joint.join(paragraphs)


_WORD = re.compile(r"\w+")


@_op
def _wordcount(value: Any) -> int:
    count = 0
    for _ in _WORD.finditer(text(value, "wordcount")):
        count += 1
        if count & 4095 == 0:
            tick()
    return count


def _quote(value: Any, for_qs: bool) -> str:
    raw = value if isinstance(value, bytes) else text(value, "urlencode").encode("utf-8")
    if len(raw) > MAX_VALUE_CHARS:
        raise too_long("urlencode", len(raw))
    quoted = quote_from_bytes(raw, b"" if for_qs else b"/")
    return quoted.replace("%20", "+") if for_qs else quoted


@_op
def _urlencode(value: Any) -> str:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return _result(_quote(value, False), "urlencode")
    items = value.items() if isinstance(value, dict) else value
    out = []
    size = 0
    for i, (key, item) in enumerate(items):
        piece = f"{_quote(key, True)}={_quote(item, True)}"
        size += len(piece) + (1 if i else 0)
        if size > MAX_VALUE_CHARS:
            raise too_long("urlencode", None)
        out.append(piece)
        tick()
    return "&".join(out)


@_op
def _escape(value: Any) -> Markup:
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    s = text(value, "escape")
    size = (
        len(s)
        + 4 * (s.count("&") + s.count('"') + s.count("'"))
        + 3 * (s.count("<") + s.count(">"))
    )
    if size > MAX_VALUE_CHARS:
        raise too_long("escape", size)
    return escape(s)


_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


@_op
def _tojson(value: Any, indent: int | None = None) -> Markup:
    _check_json_indent(indent)
    encoder = json.JSONEncoder(sort_keys=True, indent=indent)
    out = []
    size = 0
    for i, chunk in enumerate(encoder.iterencode(value)):
        piece = chunk.translate(_HTML_SAFE)
        size += len(piece)
        if size > MAX_VALUE_CHARS:
            raise too_long("tojson", None)
        out.append(piece)
        if i & 255 == 255:
            tick()
    return Markup("".join(out))


FILTERS: dict[str, Callable[..., Any]] = {
    "abs": _abs,
    "capitalize": _text_filter("capitalize", str.capitalize),
    "center": _center,
    "count": _length,
    "d": _default,
    "default": _default,
    "e": _escape,
    "escape": _escape,
    "first": _first,
    "float": _float,
    "format": _format,
    "indent": _indent,
    "int": _int,
    "join": _join,
    "last": _last,
    "length": _length,
    "lower": _text_filter("lower", str.lower),
    "replace": _replace,
    "round": _round,
    "string": _string,
    "title": _title,
    "tojson": _tojson,
    "trim": _trim,
    "truncate": _truncate,
    "upper": _text_filter("upper", str.upper),
    "urlencode": _urlencode,
    "wordcount": _wordcount,
    "wordwrap": _wordwrap,
}
"""The filters merge fields have, each bounded."""


# -- tests ---------------------------------------------------------------------------------


def _number(value: Any, test: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"'is {test}' needs a number, not {type(value).__name__}")
    check_int(f"'is {test}'", value)
    return value


@_op
def _odd(value: Any) -> bool:
    return _number(value, "odd") % 2 == 1


@_op
def _even(value: Any) -> bool:
    return _number(value, "even") % 2 == 0


@_op
def _divisibleby(value: Any, num: Any) -> bool:
    return _number(value, "divisibleby") % _number(num, "divisibleby") == 0


@_op
def _lower(value: Any) -> bool:
    return text(value, "'is lower'").islower()


@_op
def _upper(value: Any) -> bool:
    return text(value, "'is upper'").isupper()


def _builtin_tests() -> dict[str, Callable[..., Any]]:
    from jinja2.tests import TESTS

    names = [
        *("defined", "undefined", "none", "boolean", "false", "true", "integer", "float"),
        *("number", "string", "mapping", "sequence", "iterable", "sameas", "in"),
        *("==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", ">=", "ge"),
        *("<", "lt", "lessthan", "<=", "le"),
    ]
    return {name: _op(cast(Callable[..., Any], TESTS[name])) for name in names}


TESTS: dict[str, Callable[..., Any]] = {
    **_builtin_tests(),
    "odd": _odd,
    "even": _even,
    "divisibleby": _divisibleby,
    "lower": _lower,
    "upper": _upper,
}
"""The tests (``x is defined``) merge fields have."""
