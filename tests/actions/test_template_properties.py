"""Properties of merge-field templates over generated templates and records.

Templates are drawn from a grammar of the pieces merge fields allow and of pieces they refuse
(loops, macros, unknown filters, ``attr``, ``**``, huge widths, broken syntax), with records of
arbitrary JSON and a few values chosen to blow things up. Whatever comes out:
``template_problems`` never raises; a template it accepts renders to text or fails with
``ActionRenderError`` only, within the time bound; one it refuses is refused at render too.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions import merge_ops
from actions.templating import compile_tree, render_tree, template_problems
from coeflow.errors import ActionRenderError

WALL_SECONDS = 2.0
"""A loose bound, not a timing: the bombs took 20 s and more; this catches a render that is
no longer bounded, on a loaded machine too (speed is the bench's to measure)."""
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky CI; explore with a seed locally
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = ["a", "s", "n", "f", "l", "d", "big", "fmt"]
BOMBS = [
    "%999999999d",
    "%*d",
    "%.999999999f",
    "x" * 100_000,
    "lorem ipsum " * 5_000,
    "<&>'\"" * 4_000,
    "9" * 5_000,
    999_999_999,
    -999_999_999,
    2**62,
    [0] * 50_000,
    [""] * 50_000,
    {"k": ["v" * 100] * 1_000},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
record_values = json_values | st.sampled_from(BOMBS)
records = st.dictionaries(st.sampled_from(KEYS), record_values, max_size=len(KEYS))

fields = st.sampled_from(
    [
        "record.a",
        "record.s",
        "record.n",
        "record.f",
        "record.l",
        "record.d",
        "record.d.a",
        "record.big",
        "record.fmt",
        "record.missing",
        "record['a']",
        "record.l[0]",
        "record.l[1:]",
        "record.s[::-1]",
        "before.a",
        "event.event_id",
        "workflow.name",
        "record",
        # refused, or reach nothing
        "foo",
        "range(3)",
        "record.__class__",
        "record['__class__']",
        "record.s['upper']",
        "lipsum(999)",
    ]
)
constants = (
    st.integers(-(10**6), 10**6).map(str)
    | st.sampled_from(["999999999", "-999999999", "2**70", "0", "1.5", "1e308", "true", "none"])
    | st.text(
        alphabet=st.characters(blacklist_characters="'\\{}%", blacklist_categories=["Cs"]),
        max_size=6,
    ).map(lambda s: f"'{s}'")
    | st.sampled_from(["'%s'", "'%5.2f'", "'%999999999d'", "'%(a)s'", "'%*s'", "'%y'", "'%'"])
)
atoms = fields | constants

FILTERS = [
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "length",
    "count",
    "first",
    "last",
    "string",
    "int",
    "float",
    "abs",
    "escape",
    "e",
    "tojson",
    "urlencode",
    "wordcount",
    "round",
    "join",
    "default",
    "d",
    # refused
    "attr('x')",
    "sort",
    "list",
    "unique",
    "batch(999999999)",
    "filesizeformat",
    "frobnicate",
    "pprint",
]
FILTERS_WITH_ARGS = [
    "center({})",
    "indent({})",
    "wordwrap({})",
    "truncate({})",
    "round({})",
    "round(2, {})",
    "join({})",
    "replace({}, {})",
    "format({})",
    "format({}, {})",
    "default({})",
    "int({})",
    "tojson(indent={})",
    "format(*{})",
    "upper({})",
]
TESTS = ["defined", "none", "number", "string", "odd", "even", "lower", "upper", "callable", "foo"]
OPERATORS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "in", "and", "or", "**"]


def _filtered(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    plain = st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]})|{t[1]}")
    with_args = st.tuples(
        inner, st.sampled_from(FILTERS_WITH_ARGS), st.lists(inner, min_size=2, max_size=2)
    ).map(lambda t: f"({t[0]})|" + t[1].format(*t[2]))
    return plain | with_args


expressions = st.recursive(
    atoms,
    lambda inner: (
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        | _filtered(inner)
        | st.tuples(inner, st.sampled_from(TESTS)).map(lambda t: f"({t[0]} is {t[1]})")
        | inner.map(lambda e: f"(not {e})")
        | inner.map(lambda e: f"(-{e})")
        | st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})")
        | st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
        | st.lists(inner, min_size=2, max_size=3).map(lambda items: "(" + ", ".join(items) + ")")
    ),
    max_leaves=8,
)
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=10) | st.sampled_from(
    ["Dear ", "\n", " {x} ", "}}", "%"]
)

pieces = st.recursive(
    texts
    | expressions.map(lambda e: "{{ " + e + " }}")
    | st.sampled_from(
        [
            "{# a comment #}",
            "{% raw %}{{ x }}{% endraw %}",
            "{{- record.a -}}",
            # refused
            "{% for x in record.l %}{{ x }}{% endfor %}",
            "{% set record = record ~ record %}",
            "{% include 'x' %}",
            "{% macro record(n) %}{{ record(n) }}{% endmacro %}",
            "{% filter upper %}x{% endfilter %}",
            # broken
            "{{",
            "{%",
            "{{ record.a",
            "{% if %}",
            "{{ |upper }}",
        ]
    ),
    lambda inner: (
        st.tuples(expressions, st.lists(inner, max_size=3), st.lists(inner, max_size=2)).map(
            lambda t: (
                "{% if "
                + t[0]
                + " %}"
                + "".join(t[1])
                + "{% else %}"
                + "".join(t[2])
                + "{% endif %}"
            )
        )
        | st.tuples(expressions, inner, expressions, inner).map(
            lambda t: (
                "{% if " + t[0] + " %}" + t[1] + "{% elif " + t[2] + " %}" + t[3] + "{% endif %}"
            )
        )
    ),
    max_leaves=6,
)
templates = st.lists(pieces, min_size=1, max_size=6).map("".join)


def _context(record: dict[str, Any]) -> dict[str, Any]:
    return {"record": record, "before": {}, "event": {"event_id": "e-1"}, "workflow": {"name": "W"}}


@SETTINGS
@given(template=templates, record=records)
def test_accepted_templates_render_or_fail_cleanly_within_the_budget(
    template: str, record: dict[str, Any]
) -> None:
    problems = template_problems(template)
    assert all(isinstance(p, str) and p for p in problems)
    tree = compile_tree(template)
    started = time.perf_counter()
    try:
        rendered = render_tree(tree, _context(record))
    except ActionRenderError as exc:
        assert str(exc)
    else:
        assert not problems, f"refused when saved, rendered anyway: {problems}"
        assert isinstance(rendered, str)
        assert len(rendered) <= 100_000
    assert time.perf_counter() - started < WALL_SECONDS


@SETTINGS
@given(value=json_values)
def test_text_is_str(value: Any) -> None:
    assert merge_ops.text(value) == str(value)


prose = st.text(alphabet=st.sampled_from(list("aZ é-(\t\n{[<ßx")), max_size=400)


@SETTINGS
@given(s=prose, width=st.integers(1, 30), hyphens=st.booleans(), long_words=st.booleans())
def test_bounded_filters_are_jinjas(s: str, width: int, hyphens: bool, long_words: bool) -> None:
    from jinja2.filters import do_title, do_wordwrap

    from actions.templating import ENV

    assert merge_ops.FILTERS["title"](s) == do_title(s)
    assert merge_ops.FILTERS["wordwrap"](s, width, long_words, None, hyphens) == do_wordwrap(
        ENV, s, width, long_words, None, hyphens
    )


@SETTINGS
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(["", "-", "0", "+", " ", "#", "-0"]),
            st.sampled_from(["", "1", "5", "12"]),
            st.sampled_from([None, "", "0", "3"]),
            st.sampled_from(list("sdifgeExXorac%")),
        ),
        max_size=4,
    ),
    literal=st.sampled_from(["", "x", "a b", "(%%)"]),
    args=st.lists(
        st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=4),
        max_size=5,
    ),
)
def test_bounded_formatting_is_pythons(
    specs: list[tuple[str, str, str | None, str]], literal: str, args: list[Any]
) -> None:
    fmt = literal.join(
        "%" + flags + width + ("" if precision is None else "." + precision) + conversion
        for flags, width, precision, conversion in specs
    )
    try:
        expected: Any = fmt % tuple(args)
    except Exception as exc:
        expected = type(exc)
    try:
        got: Any = merge_ops.printf("'%'", fmt, tuple(args))
    except Exception as exc:
        got = type(exc)
    assert got == expected, fmt
