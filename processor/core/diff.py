"""What changed between two JSON documents (two versions of a workflow): one change per
field path that differs, in document order. Pure.

Objects are compared key by key and lists item by item (an action added in the middle shows
as the items after it changed, and one added at the end); a value whose kind differs is one
change. A workflow is bounded (50 actions, 64 levels), and so is the diff: past
``MAX_CHANGES`` it stops and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MAX_CHANGES = 1000

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    """Dotted, with list indexes: ``actions.1.subject``."""
    kind: ChangeKind
    before: Any = None
    after: Any = None


_ABSENT = object()


def diff(before: Any, after: Any, limit: int = MAX_CHANGES) -> tuple[list[Change], bool]:
    """The changes from ``before`` to ``after``, and whether there were more than ``limit``."""
    changes: list[Change] = []
    complete = _walk(before, after, "", changes, limit)
    return changes, not complete


def _walk(before: Any, after: Any, path: str, out: list[Change], limit: int) -> bool:
    """False once ``limit`` changes are found (and there are more)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = list(before) + [k for k in after if k not in before]
        pairs = [(str(k), before.get(k, _ABSENT), after.get(k, _ABSENT)) for k in keys]
    elif isinstance(before, list) and isinstance(after, list):
        n = max(len(before), len(after))
        pairs = [
            (
                str(i),
                before[i] if i < len(before) else _ABSENT,
                after[i] if i < len(after) else _ABSENT,
            )
            for i in range(n)
        ]
    else:
        if _same(before, after):
            return True
        if len(out) >= limit:
            return False
        kind: ChangeKind = (
            "added" if before is _ABSENT else "removed" if after is _ABSENT else "changed"
        )
        out.append(
            Change(
                path or ".",
                kind,
                None if before is _ABSENT else before,
                None if after is _ABSENT else after,
            )
        )
        return True
    for key, was, now in pairs:
        child = f"{path}.{key}" if path else key
        if was is _ABSENT or now is _ABSENT:
            if len(out) >= limit:
                return False
            kind = "added" if was is _ABSENT else "removed"
            out.append(
                Change(
                    child, kind, None if was is _ABSENT else was, None if now is _ABSENT else now
                )
            )
        elif not _walk(was, now, child, out, limit):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``True`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
