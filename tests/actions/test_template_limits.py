"""Merge-field templates are bounded in time and memory before they allocate.

Each bomb either is refused when the workflow is saved (``template_problems``, with a message
that names the construct) or fails its render with ``ActionRenderError`` naming the limit,
within a loose bound on wall time and on traced memory. The values that blow up come from the
record (so the save-time check cannot see them) unless the test is about a constant.
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc
from typing import Any

import pytest

from actions import merge_ops
from actions.templating import (
    MAX_BRACKETS,
    MAX_NESTING,
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_TOKENS,
    compile_tree,
    render_tree,
    template_problems,
)
from coeflow.errors import ActionRenderError

WALL_SECONDS = 2.0
"""A loose bound, not a timing: the bombs took 20 s and more; this catches a render that is
no longer bounded, on a loaded machine too (speed is the bench's to measure)."""
PEAK_BYTES = 4_000_000

BIG = "x" * 100_000
RECORD: dict[str, Any] = {
    "name": "Ada",
    "n": 999_999_999,
    "neg": -999_999_999,
    "huge_int": 2**62,
    "big": BIG,
    "k10": "y" * 10_000,
    "k30": "z" * 30_000,
    "words": "lorem ipsum " * 8_000,
    "lt": "<" * 30_000,
    "fmt_width": "%999999999d",
    "fmt_precision": "%.999999999f",
    "fmt_star": "%*d",
    "fmt_many": "%s" * 2_000,
    "digits": "9" * 1_000_000,
    "hexdigits": "f" * 1_000_000,
    "items": list(range(200_000)),
    "strings": ["ab"] * 100_000,
    "empties": [""] * 500_000,
    "nested": {"a": [{"b": "c" * 100}] * 2_000},
    "deep": [[[[[[[[[[["x"] * 30] * 30] * 30]]]]]]]],
}
CONTEXT = {"record": RECORD, "before": {}, "event": {}, "workflow": {}}


def bounded_render(text: str, context: dict[str, Any] | None = None) -> str | ActionRenderError:
    """Render ``text``, asserting the loose bounds; an ``ActionRenderError`` is returned.
    Time is measured on one render and memory on a second (tracing slows Python down)."""
    tree = compile_tree(text)  # as the workflow's compile does, before any event
    started = time.perf_counter()
    try:
        result: str | ActionRenderError = render_tree(tree, context or CONTEXT)
    except ActionRenderError as exc:
        result = exc
    elapsed = time.perf_counter() - started
    assert elapsed < WALL_SECONDS, f"{text[:60]!r} took {elapsed * 1000:.0f} ms"
    tracemalloc.start()
    with contextlib.suppress(ActionRenderError):
        render_tree(tree, context or CONTEXT)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{text[:60]!r} traced {peak:,} bytes"
    return result


def fails(text: str, *expected: str) -> str:
    """``text`` saves, and its render fails with a message holding each of ``expected``."""
    assert template_problems(text) == []
    result = bounded_render(text)
    if "rendering took longer" in str(result) and not any("longer" in e for e in expected):
        result = bounded_render(text)  # a render near the deadline, once
    assert isinstance(result, ActionRenderError), f"{text[:60]!r} rendered"
    message = str(result)
    for part in expected:
        assert part in message, message
    return message


def refused(text: str, *expected: str) -> list[str]:
    """``text`` is refused when saved (quickly), with a problem holding each of ``expected``;
    rendering it anyway is refused too."""
    started = time.perf_counter()
    problems = template_problems(text)
    assert time.perf_counter() - started < WALL_SECONDS
    assert problems, f"{text[:60]!r} was accepted"
    joined = "; ".join(problems)
    for part in expected:
        assert part in joined, joined
    assert isinstance(bounded_render(text), ActionRenderError)
    return problems


# -- the tester's three, and their relatives ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ '%999999999d'|format(1) }}", "format width 999,999,999 is above the limit of 1,000"),
        ("{{ '%.999999999f'|format(1.0) }}", "format precision 999,999,999 is above the limit"),
        ("{{ 'a'|center(999999999) }}", "center width 999,999,999 is above the limit of 1,000"),
        ("{{ '%999999999d' % 1 }}", "'%' formatting width 999,999,999"),
        ("{{ '%(a)999999999s' % {'a': 1} }}", "'%' formatting width"),
        ("{{ '%s %999999999s'|format(1, 2) }}", "format width 999,999,999"),
        ("{{ 'a'|center(-999999999) }}", "center width -999,999,999"),
        ("{{ 1|round(-999999999) }}", "round precision -999,999,999"),
        ("{{ 'a'|indent(999999999) }}", "indent width"),
        ("{{ 'a'|wordwrap(999999999) }}", "wordwrap width"),
        ("{{ 'a'|wordwrap(0) }}", "wordwrap width 0"),
        ("{{ 'a'|tojson(indent=99999) }}", "tojson indent 99,999"),
        ("{{ 'x' * 100001 }}", "repetition ('*'): a text of 100,001 characters is above"),
        ("{{ 9999999999 * 'x' }}", "repetition"),
        ("{{ '%y'|format(1) }}", "unsupported format character 'y'"),
        ("{{ 'abc%'|format(1) }}", "incomplete format"),
    ],
)
def test_constant_sizes_are_refused_when_saved(text: str, expected: str) -> None:
    refused(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ record.fmt_width|format(1) }}", "format width 999,999,999 is above the limit"),
        ("{{ record.fmt_precision|format(1.0) }}", "format precision 999,999,999"),
        ("{{ record.name|center(record.n) }}", "center width 999,999,999"),
        ("{{ record.fmt_width % 1 }}", "'%' formatting width 999,999,999"),
        ("{{ record.fmt_star % (record.n, 1) }}", "width 999,999,999"),
        ("{{ record.fmt_many % record.big }}", "not enough arguments"),
        ("{{ record.name|indent(record.n) }}", "indent width 999,999,999"),
        ("{{ record.name|indent(record.big) }}", "indent width 100,000"),
        ("{{ record.k30|indent(10) }}", None),
        ("{{ record.name|wordwrap(record.n) }}", "wordwrap width 999,999,999"),
        (
            "{{ record.big|wordwrap(1) }}",
            "wordwrap: a text of 100,000 characters is above the limit of 10,000",
        ),
        (
            "{{ record.k10|wordwrap(1, wrapstring=record.k10) }}",
            "wordwrap: a text of 200,010,000 characters",
        ),
        ("{{ record.k10|wordwrap(79) }}", "wordwrap (one paragraph): a text of 10,000 characters"),
        ("{{ record.words[:9000]|replace('m ', 'm\n')|wordwrap(1)|length }}", None),
        ("{{ 1|round(record.neg) }}", "round precision -999,999,999"),
        ("{{ record.n|round(record.neg, 'floor') }}", "round precision"),
        ("{{ record.name|tojson(indent=record.n) }}", "tojson indent 999,999,999"),
    ],
)
def test_sizes_from_the_record_fail_the_render(text: str, expected: str | None) -> None:
    if expected is None:
        assert isinstance(bounded_render(text), str)
        return
    fails(text, "merge field", expected)


# -- every filter with a size or count -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{{ record.k10|replace('', record.k10) }}",
            "replace: a text of 100,020,000 characters is above the limit of 100,000",
        ),
        ("{{ record.k30|replace('z', 'zzzz') }}", "replace: a text of 120,000 characters"),
        ("{{ record.strings|join(record.k10) }}", "join: a text of more than 100,000 characters"),
        ("{{ record.items|join(', ') }}", "join: a text of more than 100,000 characters"),
        ("{{ record.empties|join }}", ""),  # 500,000 items: the deadline, or a text
        ("{{ record.big|truncate(999999999) }}", None),
        ("{{ record.digits|truncate(20) }}", None),  # 1,000,000 characters: cut, not copied
        ("{{ (record.big ~ 'x')|upper }}", "'~': a text of 100,001 characters"),
        ("{{ record.lt|escape }}", "escape: a text of 120,000 characters"),
        ("{{ record.lt|e|length }}", "escape: a text of"),
        ("{{ record.lt|urlencode|length }}", None),
        ("{{ (record.lt ~ record.lt)|urlencode }}", "urlencode: a text of 180,000 characters"),
        ("{{ record.items|tojson }}", "tojson: a text of more than 100,000 characters"),
        ("{{ record.nested|tojson }}", "tojson: a text of more than 100,000 characters"),
        ("{{ record|tojson }}", "tojson: a text of more"),
        ("{{ record|string }}", "string: a text of more than 100,000"),
        ("{{ record.items|string|length }}", "string: a text of more than 100,000"),
        ("{{ record.items }}", "output: a text of more than 100,000 characters"),
        ("{{ record.deep }}", "output: a text of more than 100,000 characters"),
        ("{{ record.nested|upper }}", "upper: a text of more"),
        ("{{ (record.big ~ record.big)|title }}", "'~': a text of 200,000 characters"),
        ("{{ record.words|wordcount }}", None),
        ("{{ record.words|title|length }}", None),
        ("{{ record.digits|int }}", None),
        ("{{ record.hexdigits|int(base=16) }}", None),
        ("{{ record.digits|float }}", None),
        ("{{ record.items|first }}{{ record.items|last }}{{ record.items|length }}", None),
        ("{{ record.items|count }}", None),
        (
            "{{ {'a': record.big, 'b': record.big}|urlencode }}",
            "urlencode: a text of more than 100,000",
        ),
    ],
)
def test_filters_are_bounded(text: str, expected: str | None) -> None:
    if expected is None:
        assert isinstance(bounded_render(text), str)
    elif not expected:
        bounded_render(text)
    else:
        fails(text, expected)


def test_int_and_float_of_huge_text_are_the_default() -> None:
    assert bounded_render("{{ record.digits|int }}|{{ record.digits|float(-1) }}") == "0|-1"


@pytest.mark.parametrize(
    "name",
    [
        "list",
        "unique",
        "sort",
        "batch(999999999)",
        "slice(999999999)",
        "filesizeformat",
        "sum",
        "max",
        "map('upper')",
        "select",
        "dictsort",
        "groupby('a')",
        "xmlattr",
        "pprint",
        "random",
        "reverse",
        "striptags",
        "urlize",
        "safe",
        "items",
    ],
)
def test_other_jinja_filters_are_not_available(name: str) -> None:
    refused(f"{{{{ record.items|{name} }}}}", "is not available in merge fields")


# -- operators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ record.big * 10000 }}", "repetition ('*'): a text of 1,000,000,000 characters"),
        ("{{ 10000 * record.big }}", "repetition"),
        (
            "{{ record.k10 * 11 }}",
            "repetition ('*'): a text of 110,000 characters is above the limit of 100,000",
        ),
        ("{{ record.big + record.big }}", "'+': a text of 200,000 characters"),
        ("{{ record.big ~ record.big }}", "'~': a text of 200,000 characters"),
        ("{{ record.k30 ~ record.k30 ~ record.k30 ~ record.k30 }}", "'~': a text of 120,000"),
        ("{{ (record.k30 + record.k30) + (record.k30 + record.k30) }}", "'+': a text of 120,000"),
        ("{{ record.items * 1000 }}", "not on lists"),
        ("{{ [record.big] * 1000 }}", "not on lists"),
        ("{{ record.items + record.items }}", "not on lists"),
        ("{{ record.huge_int * record.huge_int * record.huge_int }}", None),
        ("{{ record.hexdigits[:1000]|int(base=16) * 2 }}", None),
        ("{{ record.fmt_width % (1,) }}", "width 999,999,999"),
        ("{{ record.name % record.name }}", "not all arguments converted"),
        ("{{ record.big|length * record.big|length }}", None),
    ],
)
def test_operators_are_bounded(text: str, expected: str | None) -> None:
    if expected is None:
        assert isinstance(bounded_render(text), str)
    else:
        fails(text, expected)


def test_huge_numbers_are_refused() -> None:
    # 1,100 characters are not a number (more than MAX_NUMBER_CHARS): the default
    assert bounded_render("{{ record.hexdigits[:1100]|int(base=16) }}") == "0"
    group = "(" + " * ".join(["record.huge_int"] * 10) + ")"
    many = "{{ " + " * ".join([group] * 8) + " }}"  # 80 * 63 bits > 4,096
    fails(many, "numbers are limited to 4,096 bits")
    refused("{{ 2 ** 10 }}", "'**' is not allowed")
    refused("{{ 1" + "0" * 1300 + " }}", "bit number is above the limit of 4,096 bits")
    refused("{{ 1" + "0" * 5000 + " }}", "more than 4,300 digits")
    refused("{{ record.n / 0 }}", "division by zero")
    refused("{{ record.n // 0.0 }}", "division by zero")


def test_tests_do_not_format_text() -> None:
    """``x is odd`` computes ``x % 2``: on text, that would be formatting."""
    fails("{{ record.fmt_width is odd }}", "'is odd' needs a number, not str")
    fails("{{ record.fmt_width is divisibleby(3) }}", "needs a number")
    fails("{{ record.items is lower }}", "'is lower': a text of more")
    assert bounded_render("{{ record.name is upper }} {{ 4 is even }}") == "False True"
    refused("{{ record.name is callable }}", "test 'callable' is not available")
    refused("{{ record.name is frobnicated }}", "test 'frobnicated' is unknown")


# -- time ----------------------------------------------------------------------------------


def test_a_render_stops_at_its_deadline() -> None:
    """Many steps that each take a while (comparing large records) stop at the deadline."""
    left = [[i] for i in range(100_000)]
    context = {"record": {"l": left, "r": [[i] for i in range(100_000)]}}
    context |= {"before": {}, "event": {}, "workflow": {}}
    one = "{% if record.l == record.r %}{% endif %}"
    text = one * (MAX_TEMPLATE_TOKENS // 14)
    assert template_problems(text) == []
    message = fails_with(text, context)
    assert "rendering took longer than 50 ms" in message


def fails_with(text: str, context: dict[str, Any]) -> str:
    result = bounded_render(text, context)
    assert isinstance(result, ActionRenderError)
    return str(result)


def test_the_deadline_is_shared_by_an_actions_strings() -> None:
    left = list(range(100_000))
    context = {"record": {"l": left, "r": list(left)}, "before": {}, "event": {}, "workflow": {}}
    one = "{% if record.l == record.r %}{% endif %}x"
    tree = compile_tree({f"field{i}": one * 40 for i in range(40)})
    started = time.perf_counter()
    with pytest.raises(ActionRenderError, match="took longer than"):
        render_tree(tree, context)
    assert time.perf_counter() - started < WALL_SECONDS


def test_a_deadline_outside_a_render_does_not_apply() -> None:
    """Rendering a template directly (as tests do) has size limits but no deadline."""
    assert merge_ops.BUDGET.get() is merge_ops.NO_DEADLINE
    merge_ops.tick()


# -- the language: what a merge field may contain -----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ record.name|frobnicate }}", "unknown filter 'frobnicate'; merge fields have: abs,"),
        ("{{ record|attr('__class__') }}", "filter 'attr' is not allowed"),
        ("{{ record|attr('name') }}", "filter 'attr' is not allowed"),
        ("{{ record.n|divisibleby(3) }}", "'divisibleby' is a test, not a filter"),
        ("{% include 'other' %}", "{% include %} is not available in merge fields"),
        ("{% import 'm' as m %}", "{% import %} is not available"),
        ("{% from 'm' import f %}", "{% from ... import %} is not available"),
        ("{% extends 'base' %}", "{% extends %} is not available"),
        ("{% block b %}x{% endblock %}", "{% block %} is not available"),
        ("{% for x in record.items %}{{ x }}{% endfor %}", "{% for %} is not available"),
        ("{% for record in record.items %}{% endfor %}", "{% for %} is not available"),
        (
            "{% for record in record.items %}{% for record in record.items %}"
            "{% for record in record.items %}x{% endfor %}{% endfor %}{% endfor %}",
            "{% for %} is not available",
        ),
        ("{% for x in range(999999999) %}{% endfor %}", "{% for %} is not available"),
        ("{% set record = record ~ record %}{{ record }}", "{% set %} is not available"),
        ("{% set x %}{{ record }}{% endset %}", "{% set %} is not available"),
        (
            "{% macro f(n) %}{{ f(n-1) }}{{ f(n-1) }}{% endmacro %}{{ f(40) }}",
            "{% macro %} is not available",
        ),
        (
            "{% macro record(record) %}{{ record(record) }}{% endmacro %}{{ record(1) }}",
            "calling a function (f()) is not available",
        ),
        ("{% call record() %}x{% endcall %}", "{% call %} is not available"),
        ("{% filter upper %}{{ record.name }}{% endfilter %}", "{% filter %} is not available"),
        ("{% with x = 1 %}{% endwith %}", "{% with %} is not available"),
        ("{% autoescape true %}x{% endautoescape %}", "{% autoescape %} is not available"),
        ("{{ record.name.upper() }}", "calling a function (f()) is not available"),
        ("{{ lipsum(999999) }}", "calling a function (f()) is not available"),
        ("{{ lipsum }}", "unknown merge field 'lipsum'"),
        ("{{ range }}", "unknown merge field 'range'"),
        ("{{ record.name|format(*record.items) }}", "*args and **kwargs are not available"),
        ("{{ record.name|center(**record) }}", "*args and **kwargs are not available"),
        ("{{ record.name|upper(1) }}", "filter 'upper': too many positional arguments"),
        ("{{ record.name|replace('a') }}", "filter 'replace': missing a required argument"),
        ("{{ record.name|center(widht=3) }}", "unexpected keyword argument 'widht'"),
        ("{{ record.name is divisibleby }}", "test 'divisibleby': missing a required argument"),
        ("{{ record._secret }}", "merge field attribute '_secret' is not allowed"),
        ("{{ record['__class__'] }}", "merge field key '__class__' is not allowed"),
        ("{% do record.items.append(1) %}", "syntax error"),
        ("{{ record.name", "syntax error"),
        ("{% frobnicate %}", "syntax error"),
        (
            "{{ [" + ", ".join(["record.name"] * 17) + "] }}",
            "of 17 merge fields is above the limit",
        ),
    ],
)
def test_what_merge_fields_cannot_do_is_refused_with_its_name(text: str, expected: str) -> None:
    refused(text, expected)


@pytest.mark.parametrize(
    "text",
    [
        "{{ " + "(" * 5_000 + "1" + ")" * 5_000 + " }}",
        "{{ " + "[" * 5_000 + "1" + "]" * 5_000 + " }}",
        "{{ " + "not " * 3_000 + "1 }}",
        "{{ " + "- " * 3_000 + "1 }}",
        "{{ " + " + ".join(["1"] * 600) + " }}",
        "{{ " + " and ".join(["record.a"] * 600) + " }}",
        "{{ record.a" + "|upper" * 400 + " }}",
        "{{ record" + ".a" * 600 + " }}",
        "{{ 1 if " * 600 + "1" + " else 1" * 600 + " }}",
        "{% if record.a %}" * 200 + "x" + "{% endif %}" * 200,
        "{% if record.a %}" * 40 + "x" + "{% endif %}" * 40,
        "{{ " + "(" * (MAX_BRACKETS + 1) + "1" + ")" * (MAX_BRACKETS + 1) + " }}",
        "{{ " + "[" * (MAX_BRACKETS + 1) + "1" + "]" * (MAX_BRACKETS + 1) + " }}",
        "{{ record.name" + "|lower" * MAX_NESTING + " }}",
    ],
)
def test_deep_nesting_is_refused_without_recursing(text: str) -> None:
    problems = refused(text)
    assert any("nesting too deep" in p or "too long" in p for p in problems), problems


def test_nesting_within_the_limit_renders() -> None:
    text = "{{ " + "(" * MAX_BRACKETS + "record.name" + ")" * MAX_BRACKETS + " }}"
    assert template_problems(text) == []
    assert bounded_render(text) == "Ada"
    text = "{{ record.name" + "|lower" * (MAX_NESTING - 5) + " }}"
    assert template_problems(text) == []
    assert bounded_render(text) == "ada"
    text = "{% if record.name %}" * (MAX_NESTING - 3) + "x" + "{% endif %}" * (MAX_NESTING - 3)
    assert template_problems(text) == []
    assert bounded_render(text) == "x"


@pytest.mark.parametrize(
    "text",
    [
        "{{ record.name|upper }} " * 2_500,  # 50,000 characters of expressions
        "{{ record.name }}" * 3_000,
        "{% if record.n > 1 %}x{% endif %}" * 1_400,
        "{{ " + " ~ ".join(["record.name"] * 12_000) + " }}",
        "{{ [" + ", ".join(["1"] * 16_000) + "]|length }}",
        "{" * 50_000,
        "{{" * 25_000,
        "{%" * 25_000,
        "{#" + "x" * 49_990,
        "{{ '" + "x" * 49_990,
    ],
)
def test_a_huge_template_is_refused_quickly(text: str) -> None:
    started = time.perf_counter()
    problems = template_problems(text)
    assert time.perf_counter() - started < WALL_SECONDS
    assert problems


def test_a_template_at_the_token_limit_compiles_once_and_renders_fast() -> None:
    text = "Hello {{ record.name|upper }}! " * (MAX_TEMPLATE_TOKENS // 9)
    assert template_problems(text) == []
    tree = compile_tree(text)
    started = time.perf_counter()
    assert render_tree(tree, CONTEXT).startswith("Hello ADA! Hello ADA!")
    assert time.perf_counter() - started < WALL_SECONDS


# -- output --------------------------------------------------------------------------------


def test_output_is_counted_while_it_is_rendered() -> None:
    fails(
        "{{ record.big }}{{ record.big }}",
        f"output: a text of 200,000 characters is above the limit of {MAX_RENDERED_CHARS:,}",
    )
    fails("{{ record.big }}{{ record.name|upper }}{{ record.big }}", "output: a text of more than")
    many = "{% if record.n %}{{ record.k30 }}{% endif %}" * 100
    fails(many, "output: a text of more than 100,000 characters")


def test_plain_reads_are_counted_before_they_are_joined() -> None:
    text = "{{ record.big }}" * 300  # 30 MB if joined
    assert template_problems(text) == []
    tree = compile_tree(text)
    assert tree.pieces is not None  # the plain path
    result = bounded_render(text)
    assert isinstance(result, ActionRenderError)
    assert "output: a text of 200,000 characters is above the limit" in str(result)
    deep = bounded_render("{{ record.deep }}")
    assert isinstance(deep, ActionRenderError)


def test_messages_name_the_operation_and_the_limit() -> None:
    message = fails("{{ record.big * 2 }}")
    assert message == (
        "merge field over a limit: repetition ('*'): a text of 200,000 characters is above "
        "the limit of 100,000"
    )


def test_title_a_piece_at_a_time_is_jinjas_title() -> None:
    from jinja2.filters import do_title

    for text in ("aB-c (dE\tßx " * 9_000, "x" * 20_000 + " yZ" * 9_000, "a" + "-" * 30_000 + "b"):
        assert merge_ops.FILTERS["title"](text[:80_000]) == do_title(text[:80_000])


def test_calls_can_share_one_deadline() -> None:
    """``build_commands`` could pass one budget for every action of a run (50 actions × 50 ms
    is otherwise the most one event's rendering takes)."""
    left = [[i] for i in range(100_000)]
    context = {"record": {"l": left, "r": [[i] for i in range(100_000)]}}
    context |= {"before": {}, "event": {}, "workflow": {}}
    step = compile_tree({"body": "{% if record.l == record.r %}{% endif %}x" * 2})
    budget = merge_ops.Budget()
    started = time.perf_counter()
    with pytest.raises(ActionRenderError, match="took longer than"):
        for _ in range(50):
            render_tree(step, context, budget)
    assert time.perf_counter() - started < WALL_SECONDS


def test_the_deadline_counts_the_renders_cpu_not_the_time_the_worker_waits() -> None:
    """A worker descheduled mid-render (a busy machine) must not fail a run that its replay
    would pass: the deadline is spent by work, not by waiting."""
    budget = merge_ops.Budget()
    token = merge_ops.BUDGET.set(budget)
    try:
        budget.start()
        time.sleep(merge_ops.RENDER_DEADLINE_SECONDS * 1.5)
        merge_ops.tick()  # waiting spent none of it
        spin_until = time.thread_time() + merge_ops.RENDER_DEADLINE_SECONDS * 1.5
        while time.thread_time() < spin_until:
            pass
        with pytest.raises(merge_ops.MergeFieldLimit):
            merge_ops.tick()
    finally:
        merge_ops.BUDGET.reset(token)


def test_a_collection_inside_a_render_spends_none_of_its_deadline() -> None:
    """The cyclic collector's time is the heap's, not the template's (a full collection of a
    large heap failed a run in a full test session)."""
    budget = merge_ops.Budget()
    token = merge_ops.BUDGET.set(budget)
    try:
        budget.start()
        merge_ops._count_collection("start", {})
        spin_until = time.thread_time() + merge_ops.RENDER_DEADLINE_SECONDS * 1.5
        while time.thread_time() < spin_until:
            pass
        merge_ops._count_collection("stop", {})
        merge_ops.tick()  # the collection spent none of it
    finally:
        merge_ops.BUDGET.reset(token)
