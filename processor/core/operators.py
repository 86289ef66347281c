"""The condition operator registry: name (or alias) → a test over a field's before/after values.

Every test answers ``False`` for a missing field or values of different kinds rather than
raising: a condition can only pass or fail, never crash a run. ``is_empty`` treats a missing
field as empty. Text tests (contains, starts_with, ends_with) ignore case; ``eq`` does not.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from coeflow.errors import UnknownOperator
from processor.core.paths import MISSING


class ValueShape(Enum):
    """What a condition's ``value`` must be for an operator."""

    NONE = "no value"
    SCALAR = "a string, number or boolean"
    LIST = "a list of strings, numbers or booleans"
    ANY = "any JSON value"

    def accepts(self, value: Any) -> bool:
        if self is ValueShape.NONE:
            return value is None
        if self is ValueShape.SCALAR:
            return _is_scalar(value)
        if self is ValueShape.LIST:
            return isinstance(value, list) and all(_is_scalar(v) for v in value)
        return True


FIELD_TYPES: tuple[str, ...] = ("string", "number", "boolean", "list", "object")
"""The JSON types a record field may hold, as the builder tells them apart (``field_type``)."""
_EVERY = frozenset(FIELD_TYPES)
_TEXT, _ORDERED = frozenset({"string"}), frozenset({"string", "number"})
_SCALARS = frozenset({"string", "number", "boolean"})


def field_type(value: Any) -> str | None:
    """A field value's type among ``FIELD_TYPES`` (``None`` for null or a missing field)."""
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return None


Test = Callable[[Any, Any, Any], bool]
"""``test(before, after, expected)``: ``before``/``after`` are the field's values or MISSING."""


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    test: Test
    value: ValueShape
    uses_before: bool = False
    aliases: tuple[str, ...] = ()
    fits: frozenset[str] = _EVERY
    """The field types (``FIELD_TYPES``) its test can pass for: on any other it answers
    ``False``, so the builder offers it only for these."""


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def is_number(value: Any) -> bool:
    kind = type(value)  # JSON's numbers are exactly int or float: no isinstance for them
    return kind is int or kind is float or (kind is not bool and isinstance(value, int | float))


def same(a: Any, b: Any) -> bool:
    """Equality without Python's ``True == 1``: booleans only equal booleans."""
    if a is MISSING or b is MISSING:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


_JSON_NUMBERS = (int, float)


def _ordered(compare: Callable[[Any, Any], bool]) -> Test:
    """A comparison of two numbers or two texts (``compare`` is ``operator``'s, in C: this runs
    for every leaf on the hot path, where JSON's numbers are exactly ``int`` or ``float``)."""

    def test(_before: Any, actual: Any, expected: Any) -> bool:
        if type(actual) in _JSON_NUMBERS and type(expected) in _JSON_NUMBERS:
            return compare(actual, expected)  # no call of is_number for what JSON gives
        if is_number(actual) and is_number(expected):
            return compare(actual, expected)
        if isinstance(actual, str) and isinstance(expected, str):
            return compare(actual, expected)
        return False

    return test


def _eq(_b: Any, actual: Any, expected: Any) -> bool:
    return actual is not MISSING and same(actual, expected)


def _ne(_b: Any, actual: Any, expected: Any) -> bool:
    return actual is not MISSING and not same(actual, expected)


def _in(_b: Any, actual: Any, expected: Any) -> bool:
    return actual is not MISSING and any(same(actual, e) for e in expected)


def _not_in(_b: Any, actual: Any, expected: Any) -> bool:
    return actual is not MISSING and not any(same(actual, e) for e in expected)


def _contains(_b: Any, actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected.casefold() in actual.casefold()
    if isinstance(actual, list):
        return any(same(item, expected) for item in actual)
    return False


def _not_contains(_b: Any, actual: Any, expected: Any) -> bool:
    if (isinstance(actual, str) and isinstance(expected, str)) or isinstance(actual, list):
        return not _contains(_b, actual, expected)
    return False


def _starts_with(_b: Any, actual: Any, expected: Any) -> bool:
    return (
        isinstance(actual, str)
        and isinstance(expected, str)
        and actual.casefold().startswith(expected.casefold())
    )


def _ends_with(_b: Any, actual: Any, expected: Any) -> bool:
    return (
        isinstance(actual, str)
        and isinstance(expected, str)
        and actual.casefold().endswith(expected.casefold())
    )


def is_empty(value: Any) -> bool:
    if value is MISSING or value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


def _is_empty(_b: Any, actual: Any, _e: Any) -> bool:
    return is_empty(actual)


def _is_not_empty(_b: Any, actual: Any, _e: Any) -> bool:
    return not is_empty(actual)


def _changed(before: Any, after: Any, _e: Any) -> bool:
    return not same(before, after)


def _changed_from(before: Any, after: Any, expected: Any) -> bool:
    return not same(before, after) and same(before, expected)


def _changed_to(before: Any, after: Any, expected: Any) -> bool:
    return not same(before, after) and same(after, expected)


_S = ValueShape
OPERATORS: tuple[Operator, ...] = (
    Operator("eq", _eq, _S.ANY, aliases=("=", "==", "equals", "is")),
    Operator("ne", _ne, _S.ANY, aliases=("!=", "not_equals", "is_not")),
    Operator("gt", _ordered(operator.gt), _S.SCALAR, aliases=(">", "greater_than"), fits=_ORDERED),
    Operator("gte", _ordered(operator.ge), _S.SCALAR, aliases=(">=", "at_least"), fits=_ORDERED),
    Operator("lt", _ordered(operator.lt), _S.SCALAR, aliases=("<", "less_than"), fits=_ORDERED),
    Operator("lte", _ordered(operator.le), _S.SCALAR, aliases=("<=", "at_most"), fits=_ORDERED),
    Operator("in", _in, _S.LIST, aliases=("one_of",), fits=_SCALARS),
    Operator("not_in", _not_in, _S.LIST, aliases=("none_of",)),
    Operator("contains", _contains, _S.SCALAR, aliases=("includes",), fits=_TEXT | {"list"}),
    Operator(
        "not_contains", _not_contains, _S.SCALAR, aliases=("excludes",), fits=_TEXT | {"list"}
    ),
    Operator("starts_with", _starts_with, _S.SCALAR, fits=_TEXT),
    Operator("ends_with", _ends_with, _S.SCALAR, fits=_TEXT),
    Operator("is_empty", _is_empty, _S.NONE, aliases=("empty",)),
    Operator("is_not_empty", _is_not_empty, _S.NONE, aliases=("not_empty",)),
    Operator("changed", _changed, _S.NONE, uses_before=True),
    Operator("changed_from", _changed_from, _S.ANY, uses_before=True),
    Operator("changed_to", _changed_to, _S.ANY, uses_before=True),
)


def _by_name(operators: tuple[Operator, ...]) -> Mapping[str, Operator]:
    table: dict[str, Operator] = {}
    for op in operators:
        for name in (op.name, *op.aliases):
            if name in table:
                raise ValueError(f"operator name {name!r} registered twice")
            table[name] = op
    return table


REGISTRY: Mapping[str, Operator] = _by_name(OPERATORS)
NAMES: tuple[str, ...] = tuple(op.name for op in OPERATORS)


def resolve(name: str, loc: str = "op") -> Operator:
    """The operator called ``name`` (or one of its aliases); ``UnknownOperator`` otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownOperator(loc, name, NAMES) from None
