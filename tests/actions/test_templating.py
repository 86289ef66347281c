"""Merge fields: rendering, and a sandbox that reads record data and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from actions.templating import (
    ENV,
    ROOTS,
    MergeText,
    compile_tree,
    merge_roots,
    plain_pieces,
    render_tree,
    template_problems,
)
from coeflow.errors import ActionRenderError

CONTEXT: dict[str, Any] = {
    "record": {
        "email": "ada@example.com",
        "name": "Ada",
        "owner": {"name": "Maria"},
        "items": [1, 2],
        "score": 72,
    },
    "before": {},
    "event": {"occurred_at": "2026-11-25T19:00:00+00:00"},
    "workflow": {"name": "Welcome"},
}


def render(text: str) -> Any:
    return render_tree(compile_tree(text), CONTEXT)


def test_merge_fields_render() -> None:
    assert render("{{record.email}}") == "ada@example.com"
    assert render("Hi {{ record.owner.name }} from {{workflow.name}}") == "Hi Maria from Welcome"
    assert render("{{event.occurred_at}}") == "2026-11-25T19:00:00+00:00"
    assert render("{{record.score}}") == "72"
    assert render("{{record['name']}}") == "Ada"


def test_missing_fields_render_empty_and_filters_work() -> None:
    assert render("[{{record.phone}}]") == "[]"
    assert render("[{{record.owner.team.lead}}]") == "[]"
    assert render("{{record.phone | default('n/a')}}") == "n/a"
    assert render("{{record.name | upper}}") == "ADA"


VALUES: dict[str, Any] = {
    "none": None,
    "yes": True,
    "no": False,
    "zero": 0,
    "ratio": 1.5,
    "huge": 1e20,
    "negative_zero": -0.0,
    "empty": "",
    "text": "héllo {x}",
    "nested": {"inner": {"deep": [1, "x"]}, "gone": None},
    "list": [1, {"a": 2}],
}
PLAIN = [
    "{{record.text}}",
    "Dear {{ record.text }},\n\n{{record.nested.inner.deep}} {{ record.missing }}!\n",
    "{{record.none}}|{{record.yes}}|{{record.no}}|{{record.zero}}|{{record.ratio}}",
    "{{record.huge}} {{record.negative_zero}} [{{record.empty}}]",
    "{{record.nested}} {{record.list}} {{record.list.a}} {{record.nested.gone.deeper}}",
    "{{record.text.upper}} {{ before.text }} {{event.id}} {{workflow.name}}",
    "{{ record.nested.x.y }}",
    "a { b } {{record.zero}}}} c",
    "x  \n {{- record.text }}{# a comment #} y",
]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_merge_fields_render_as_jinja_does(text: str) -> None:
    context = {"record": VALUES, "before": {}, "event": {"id": "e-1"}, "workflow": {"name": "W"}}
    tree = compile_tree(text)
    assert isinstance(tree, MergeText) and tree.pieces is not None, "rendered without Jinja"
    assert render_tree(tree, context) == ENV.from_string(text).render(context)


@pytest.mark.parametrize(
    "text",
    [
        "{{ record.name | upper }}",
        "{{ record['name'] }}",
        "{{ record.items.0 }}",
        "{{ record }}",
        "{% if record.name %}x{% endif %}",
        "{{ record._hidden }}",
        "{{ other.name }}",
        "{{ 'x' }}",
        "{{ record.name",
    ],
)
def test_anything_beyond_plain_reads_is_left_to_jinja(text: str) -> None:
    assert plain_pieces(text) is None


def test_strings_without_merge_fields_are_left_alone() -> None:
    tree = compile_tree({"a": "plain {not a field}", "b": ["x", 1], "c": None})
    assert tree == {"a": "plain {not a field}", "b": ["x", 1], "c": None}


def test_trees_render_nested_strings() -> None:
    tree = compile_tree({"body": {"email": "{{record.email}}", "tags": ["{{record.name}}", 3]}})
    assert render_tree(tree, CONTEXT) == {"body": {"email": "ada@example.com", "tags": ["Ada", 3]}}


@pytest.mark.parametrize(
    "text",
    [
        "{{ record.__class__ }}",
        "{{ record.__class__.__mro__ }}",
        "{{ record['__class__'] }}",
        "{{ record.items.__func__ }}",
    ],
)
def test_dunder_access_is_refused_when_saved(text: str) -> None:
    assert any("not allowed" in p for p in template_problems(text))


@pytest.mark.parametrize(
    "text",
    [
        "{{ record.__class__ }}",
        "{{ record.items }}",
        "{{ record.email.upper() }}",
        "{{ record.name.__len__() }}",
        "{{ record.name['upper'] }}",
        "{{ record.items[0]['real'] }}",
        "{{ record.items|join(attribute='__class__') }}",
        "{{ record.owner|attr('__class__') }}",
    ],
)
def test_at_render_time_nothing_reaches_python_objects(text: str) -> None:
    """Even a template that skipped save-time checks reads only mapping keys."""
    try:
        rendered = render(text)
    except ActionRenderError:
        return
    assert "<" not in rendered and "built-in" not in rendered and "method" not in rendered


def test_record_items_is_the_field_not_the_dict_method() -> None:
    assert render("{{ record.items }}") == "[1, 2]"


def test_unknown_roots_and_syntax_errors_are_named() -> None:
    assert "unknown merge field 'recrd'" in template_problems("{{recrd.email}}")[0]
    assert "syntax error" in template_problems("{{record.email")[0]
    assert template_problems("{{record.email}} {{before.x}} {{event.event_id}}") == []


def test_resource_abuse_is_refused() -> None:
    with pytest.raises(ActionRenderError):
        render("{{ 'x' * 100000000 }}")
    with pytest.raises(ActionRenderError):
        render("{{ 10 ** 100000 }}")


def test_merge_roots_are_what_plain_reads_name_and_every_root_for_jinja() -> None:
    assert merge_roots(compile_tree("no fields")) == frozenset()
    assert merge_roots(compile_tree({"a": "{{record.name}}", "b": ["x {{ workflow.name }}"]})) == {
        "record",
        "workflow",
    }
    assert merge_roots(compile_tree("{{ record.name | upper }}")) == ROOTS  # Jinja renders it
    assert merge_roots(compile_tree({"a": 1, "b": ["{% if x %}{% endif %}"]})) == ROOTS
