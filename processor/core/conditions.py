"""Compile a condition tree once into a closure that evaluates it and explains every leaf.

Every leaf is evaluated (no short-circuit), so a run record can show each condition's actual
value: the answer to "why didn't it fire?". A result is a ``ConditionResult``
(``topics/runs.py``) as plain data, the run record's own: built on the hot path, it is not
validated (``tests/processor/core/test_outputs.py`` shows that it validates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coeflow.errors import InvalidWorkflow, Problem
from processor.core import operators
from processor.core.paths import MISSING, compile_path, lookup, plain
from topics.workflows import AllOf, AnyOf, Condition, ConditionLeaf, NotOf

Snapshot = Mapping[str, Any] | None
ConditionDoc = dict[str, Any]
"""One leaf's ``ConditionResult`` as plain data: field, op, expected, actual, passed."""
Evaluator = Callable[[Snapshot, Snapshot, list[ConditionDoc]], bool]
"""``evaluate(before, after, results)``: appends one result per leaf, returns the verdict."""


def compile_condition(condition: Condition, loc: str = "conditions") -> Evaluator:
    """Compile ``condition``; ``InvalidWorkflow`` lists every bad leaf."""
    problems: list[Problem] = []
    evaluator = _compile(condition, loc, problems)
    if problems:
        raise InvalidWorkflow(problems)
    return evaluator


def _compile(node: Condition, loc: str, problems: list[Problem]) -> Evaluator:
    if isinstance(node, AllOf):
        children = [_compile(c, f"{loc}.all.{i}", problems) for i, c in enumerate(node.all)]
        return _all(children)
    if isinstance(node, AnyOf):
        children = [_compile(c, f"{loc}.any.{i}", problems) for i, c in enumerate(node.any)]
        return _any(children)
    if isinstance(node, NotOf):
        return _not(_compile(node.not_, f"{loc}.not", problems))
    return _leaf(node, loc, problems)


def _all(children: list[Evaluator]) -> Evaluator:
    if len(children) == 1:  # the usual tree, one leaf: the same verdict and result, one call
        return children[0]

    def evaluate(before: Snapshot, after: Snapshot, out: list[ConditionDoc]) -> bool:
        verdicts = [child(before, after, out) for child in children]
        return all(verdicts)

    return evaluate


def _any(children: list[Evaluator]) -> Evaluator:
    if len(children) == 1:
        return children[0]

    def evaluate(before: Snapshot, after: Snapshot, out: list[ConditionDoc]) -> bool:
        verdicts = [child(before, after, out) for child in children]
        return any(verdicts)

    return evaluate


def _not(child: Evaluator) -> Evaluator:
    def evaluate(before: Snapshot, after: Snapshot, out: list[ConditionDoc]) -> bool:
        return not child(before, after, out)

    return evaluate


def _leaf(leaf: ConditionLeaf, loc: str, problems: list[Problem]) -> Evaluator:
    try:
        op = operators.resolve(leaf.op, f"{loc}.op")
    except InvalidWorkflow as exc:
        problems.extend(exc.problems)
        return _never
    if not op.value.accepts(leaf.value):
        problems.append(
            Problem(
                f"{loc}.value", f"operator {op.name!r} takes {op.value.value}, not {leaf.value!r}"
            )
        )
        return _never
    keys = compile_path(leaf.field)
    test, expected, field, name = op.test, leaf.value, leaf.field, op.name
    uses_before = op.uses_before
    if len(keys) == 1 and not uses_before:  # the usual leaf: one field of the record as it is
        key = keys[0]

        def evaluate_field(before: Snapshot, after: Snapshot, out: list[ConditionDoc]) -> bool:
            now = after.get(key, MISSING) if type(after) is dict else lookup(after, keys)
            passed = test(MISSING, now, expected)
            out.append(
                {
                    "field": field,
                    "op": name,
                    "expected": expected,
                    "actual": None if now is MISSING else now,
                    "passed": passed,
                }
            )
            return passed

        return evaluate_field

    def evaluate(before: Snapshot, after: Snapshot, out: list[ConditionDoc]) -> bool:
        now = lookup(after, keys)
        was = lookup(before, keys) if uses_before else MISSING
        passed = test(was, now, expected)
        actual = (
            {"from": plain(was), "to": plain(now)}
            if uses_before
            else (None if now is MISSING else now)  # plain(now), without the call
        )
        out.append(
            {"field": field, "op": name, "expected": expected, "actual": actual, "passed": passed}
        )
        return passed

    return evaluate


def _never(_before: Snapshot, _after: Snapshot, _out: list[ConditionDoc]) -> bool:
    return False
