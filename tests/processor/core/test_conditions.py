"""Condition trees: all/any/not nesting, explanations per leaf, refusals at save time."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from coeflow.errors import InvalidWorkflow
from processor.core.conditions import compile_condition
from topics.runs import ConditionResult
from topics.workflows import Condition

CONDITION: TypeAdapter[Any] = TypeAdapter(Condition)


def evaluate(
    tree: dict[str, Any], after: dict[str, Any], before: dict[str, Any] | None = None
) -> tuple[bool, list[ConditionResult]]:
    results: list[dict[str, Any]] = []
    verdict = compile_condition(CONDITION.validate_python(tree))(before, after, results)
    return verdict, [ConditionResult.model_validate(r, strict=True) for r in results]


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def test_all_any_not_nest_freely() -> None:
    tree = {
        "all": [
            leaf("score", "gte", 50),
            {"any": [leaf("country", "eq", "DE"), leaf("vip", "eq", True)]},
            {"not": leaf("email", "ends_with", "@competitor.com")},
        ]
    }
    assert evaluate(tree, {"score": 60, "country": "FR", "vip": True, "email": "a@b.com"})[0]
    assert not evaluate(tree, {"score": 60, "country": "FR", "vip": False, "email": "a@b.com"})[0]
    assert not evaluate(tree, {"score": 60, "country": "DE", "email": "x@competitor.com"})[0]


def test_every_leaf_is_explained_with_its_actual_value() -> None:
    tree = {"all": [leaf("score", "gte", 50), leaf("owner.name", "eq", "Maria")]}
    verdict, results = evaluate(tree, {"score": 10})
    assert not verdict
    assert [(r.field, r.op, r.expected, r.actual, r.passed) for r in results] == [
        ("score", "gte", 50, 10, False),
        ("owner.name", "eq", "Maria", None, False),
    ]


def test_change_leaves_show_from_and_to() -> None:
    _, results = evaluate(leaf("stage", "changed_to", "won"), {"stage": "won"}, {"stage": "open"})
    assert results[0].actual == {"from": "open", "to": "won"} and results[0].passed


def test_empty_all_passes_and_empty_any_fails() -> None:
    assert evaluate({"all": []}, {})[0] is True
    assert evaluate({"any": []}, {})[0] is False


def test_aliases_are_recorded_under_the_operator_name() -> None:
    _, results = evaluate(leaf("score", ">=", 50), {"score": 50})
    assert results[0].op == "gte"


def test_unknown_operators_and_wrong_value_shapes_are_all_named() -> None:
    tree = {
        "any": [
            leaf("score", "bigger", 1),
            leaf("country", "in", "DE"),
            leaf("email", "is_empty", "x"),
            {"not": leaf("a", "gt", [1])},
        ]
    }
    with pytest.raises(InvalidWorkflow) as raised:
        compile_condition(CONDITION.validate_python(tree))
    locs = [p.loc for p in raised.value.problems]
    assert locs == [
        "conditions.any.0.op",
        "conditions.any.1.value",
        "conditions.any.2.value",
        "conditions.any.3.not.value",
    ]
    assert "bigger" in str(raised.value) and "a list" in str(raised.value)


@pytest.mark.parametrize(
    "tree",
    [
        {"field": "a b", "op": "eq", "value": 1},
        {"field": "", "op": "eq", "value": 1},
        {"field": "a", "op": "eq", "value": 1, "extra": True},
        {"all": "not a list"},
        ["not", "an", "object"],
    ],
)
def test_malformed_trees_are_refused_by_the_schema(tree: Any) -> None:
    with pytest.raises(ValidationError):
        CONDITION.validate_python(tree)
