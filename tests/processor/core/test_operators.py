"""Every operator of the contract: values, missing fields, mismatched kinds, aliases."""

from __future__ import annotations

from typing import Any

import pytest

from coeflow.errors import UnknownOperator
from processor.core import operators
from processor.core.paths import MISSING

CONTRACT_OPERATORS = [
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
    "changed",
    "changed_from",
    "changed_to",
]


def check(op: str, actual: Any, expected: Any = None, before: Any = MISSING) -> bool:
    return operators.resolve(op).test(before, actual, expected)


def test_every_contract_operator_is_registered() -> None:
    assert set(CONTRACT_OPERATORS) <= set(operators.NAMES)


@pytest.mark.parametrize(
    ("op", "actual", "expected", "result"),
    [
        ("eq", 50, 50, True),
        ("eq", 50, 50.0, True),
        ("eq", "Ada", "ada", False),
        ("eq", True, 1, False),
        ("eq", 1, True, False),
        ("eq", None, None, True),
        ("ne", 50, 51, True),
        ("ne", 50, 50, False),
        ("gt", 72, 50, True),
        ("gt", 50, 50, False),
        ("gte", 50, 50, True),
        ("gte", 49.9, 50, False),
        ("lt", 10, 50, True),
        ("lte", 50, 50, True),
        ("lte", 51, 50, False),
        ("gt", "2026-12-01", "2026-11-30", True),
        ("in", "DE", ["DE", "FR"], True),
        ("in", "US", ["DE", "FR"], False),
        ("in", 1, [True], False),
        ("not_in", "US", ["DE", "FR"], True),
        ("not_in", "DE", ["DE", "FR"], False),
        ("contains", "ada@Gmail.com", "gmail", True),
        ("contains", "ada@example.com", "gmail", False),
        ("contains", ["vip", "eu"], "vip", True),
        ("contains", ["vip", "eu"], "us", False),
        ("not_contains", "ada@example.com", "gmail", True),
        ("not_contains", ["vip"], "vip", False),
        ("starts_with", "Acme Corp", "acme", True),
        ("starts_with", "Corp Acme", "acme", False),
        ("ends_with", "ada@example.com", "@EXAMPLE.com", True),
        ("ends_with", "ada@example.org", ".com", False),
        ("is_empty", "", None, True),
        ("is_empty", "   ", None, True),
        ("is_empty", None, None, True),
        ("is_empty", [], None, True),
        ("is_empty", {}, None, True),
        ("is_empty", 0, None, False),
        ("is_empty", "x", None, False),
        ("is_not_empty", "x", None, True),
        ("is_not_empty", 0, None, True),
        ("is_not_empty", "", None, False),
    ],
)
def test_operator_values(op: str, actual: Any, expected: Any, result: bool) -> None:
    assert check(op, actual, expected) is result


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("eq", 1),
        ("ne", 1),
        ("gt", 1),
        ("gte", 1),
        ("lt", 1),
        ("lte", 1),
        ("in", [1]),
        ("not_in", [1]),
        ("contains", "x"),
        ("not_contains", "x"),
        ("starts_with", "x"),
        ("ends_with", "x"),
    ],
)
def test_a_missing_field_makes_a_comparison_false(op: str, expected: Any) -> None:
    assert check(op, MISSING, expected) is False


def test_a_missing_field_is_empty() -> None:
    assert check("is_empty", MISSING) is True
    assert check("is_not_empty", MISSING) is False


@pytest.mark.parametrize(
    ("op", "actual", "expected"),
    [
        ("gt", "72", 50),
        ("gte", 72, "50"),
        ("lt", True, 5),
        ("lte", None, 5),
        ("gt", [1], 0),
        ("contains", 123, "1"),
        ("not_contains", 123, "1"),
        ("starts_with", 123, "1"),
        ("ends_with", {"a": 1}, "a"),
        ("contains", "abc", 1),
    ],
)
def test_values_of_different_kinds_compare_false_without_raising(
    op: str, actual: Any, expected: Any
) -> None:
    assert check(op, actual, expected) is False


@pytest.mark.parametrize(
    ("op", "before", "after", "expected", "result"),
    [
        ("changed", "new", "won", None, True),
        ("changed", "won", "won", None, False),
        ("changed", MISSING, "won", None, True),
        ("changed", "won", MISSING, None, True),
        ("changed", MISSING, MISSING, None, False),
        ("changed", 1, True, None, True),
        ("changed_from", "open", "won", "open", True),
        ("changed_from", "lost", "won", "open", False),
        ("changed_from", "open", "open", "open", False),
        ("changed_to", "open", "won", "won", True),
        ("changed_to", "open", "lost", "won", False),
        ("changed_to", "won", "won", "won", False),
        ("changed_to", MISSING, "won", "won", True),
    ],
)
def test_change_operators_compare_before_and_after(
    op: str, before: Any, after: Any, expected: Any, result: bool
) -> None:
    assert check(op, after, expected, before=before) is result


@pytest.mark.parametrize(
    ("alias", "name"),
    [("==", "eq"), ("!=", "ne"), (">", "gt"), (">=", "gte"), ("<", "lt"), ("<=", "lte")],
)
def test_aliases_resolve_to_the_operator(alias: str, name: str) -> None:
    assert operators.resolve(alias).name == name


def test_an_unknown_operator_is_a_typed_error_listing_valid_names() -> None:
    with pytest.raises(UnknownOperator) as raised:
        operators.resolve("bigger_than", "conditions.all.0.op")
    error = raised.value
    assert error.name == "bigger_than"
    assert set(CONTRACT_OPERATORS) <= set(error.valid)
    assert "conditions.all.0.op" in str(error) and "gte" in str(error)


def test_value_shapes() -> None:
    assert operators.ValueShape.LIST.accepts(["a", 1])
    assert not operators.ValueShape.LIST.accepts("a")
    assert not operators.ValueShape.LIST.accepts([{"a": 1}])
    assert operators.ValueShape.SCALAR.accepts(5)
    assert not operators.ValueShape.SCALAR.accepts([5])
    assert operators.ValueShape.NONE.accepts(None)
    assert not operators.ValueShape.NONE.accepts(0)
