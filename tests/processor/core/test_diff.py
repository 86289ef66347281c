"""The diff between two versions: one change per differing path, in document order, bounded."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from processor.core.diff import Change, diff


def test_changed_added_and_removed_fields_with_their_paths() -> None:
    before = {"name": "A", "trigger": {"type": "record_created"}, "actions": [{"to": "x"}]}
    after = {
        "name": "B",
        "trigger": {"type": "record_created", "record_type": "lead"},
        "actions": [{"to": "y"}, {"to": "z"}],
    }
    changes, truncated = diff(before, after)
    assert not truncated
    assert changes == [
        Change("name", "changed", "A", "B"),
        Change("trigger.record_type", "added", None, "lead"),
        Change("actions.0.to", "changed", "x", "y"),
        Change("actions.1", "added", None, {"to": "z"}),
    ]
    assert diff(after, before)[0][-1] == Change("actions.1", "removed", {"to": "z"}, None)


def test_a_value_of_another_kind_is_one_change_and_true_is_not_one() -> None:
    assert diff({"c": {"all": []}}, {"c": [1]})[0] == [Change("c", "changed", {"all": []}, [1])]
    assert diff({"v": True}, {"v": 1})[0] == [Change("v", "changed", True, 1)]
    assert diff({"v": None}, {"v": None}) == ([], False)


def test_past_the_limit_it_stops_and_says_so() -> None:
    before = {f"k{n}": n for n in range(50)}
    after = {f"k{n}": -n - 1 for n in range(50)}
    changes, truncated = diff(before, after, limit=10)
    assert len(changes) == 10 and truncated
    assert diff(before, after, limit=50) == (diff(before, after)[0], False)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=10,
)


def apply(document: Any, changes: list[Change]) -> Any:
    """``document`` with ``changes`` made (what the diff claims is the difference)."""
    if changes and changes[0].path == ".":
        return changes[0].after
    for change in changes:
        *parents, last = change.path.split(".")
        node = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            if change.kind == "added":
                node.append(change.after)
            elif change.kind == "removed":
                node.pop()  # removals come in index order from the end of the shorter list
            else:
                node[int(last)] = change.after
        elif change.kind == "removed":
            del node[last]
        else:
            node[last] = change.after
    return document


@given(before=JSON, after=JSON)
def test_making_the_changes_turns_before_into_after(before: Any, after: Any) -> None:
    changes, truncated = diff(before, after)
    assert not truncated
    removed = [c for c in changes if c.kind == "removed"]
    rest = [c for c in changes if c.kind != "removed"]
    result = apply(copy.deepcopy(before), rest + list(reversed(removed)))
    assert result == after
