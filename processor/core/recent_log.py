"""The recent part of an append-only log, for the admin API's audit and dead-letter views.
Pure: a replica feeds it, the API pages through it.

Each lane (a tenant's audit events; the dead letters are one lane) keeps its newest items,
bounded in count and bytes, so one tenant's flood of changes evicts its own oldest events,
never another tenant's. An item's place is the order it was read in (``seq``): the cursor of
a page is the last place it showed.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from coeflow.errors import InvalidInput, Problem

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Kept(Generic[T]):
    seq: int
    item: T
    size: int


@dataclass(slots=True)
class _Lane(Generic[T]):
    items: list[Kept[T]] = field(default_factory=list)
    """Oldest first (a list, so a cursor is found by bisection; a lane is bounded)."""
    size: int = 0


PAGE_MAX_EXAMINED = 2_000
"""A page looks at this many items at most: a filter that few pass answers fewer than its
limit, with a cursor that goes on, rather than reading every lane through."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class RecentLog(Generic[T]):
    """The newest items of each lane: at most ``per_lane`` items and ``lane_bytes`` bytes."""

    def __init__(self, per_lane: int, lane_bytes: int) -> None:
        self.per_lane, self.lane_bytes = per_lane, lane_bytes
        self._lanes: dict[str, _Lane[T]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return sum(len(lane.items) for lane in self._lanes.values())

    def add(self, lane: str, item: T, size: int) -> None:
        kept = self._lanes.setdefault(lane, _Lane())
        self._seq += 1
        kept.items.append(Kept(self._seq, item, size))
        kept.size += size
        items, drop = kept.items, 0  # the oldest go in one slice, not a shift of each
        while len(items) - drop > 1 and (
            len(items) - drop > self.per_lane or kept.size > self.lane_bytes
        ):
            kept.size -= items[drop].size
            drop += 1
        if drop:
            del items[:drop]

    def lanes(self) -> list[str]:
        return list(self._lanes)

    def page(
        self,
        lanes: Iterable[str],
        *,
        limit: int,
        where: Callable[[T], bool] = lambda _: True,
        cursor: str | None = None,
    ) -> Page[T]:
        """The newest items of ``lanes`` that ``where`` keeps, before ``cursor`` (the previous
        page's ``next_cursor``), newest first."""
        before = decode_cursor(cursor) if cursor is not None else None
        heads: list[tuple[int, list[Kept[T]], int]] = []
        for name in dict.fromkeys(lanes):
            lane = self._lanes.get(name)
            if lane is None:
                continue
            end = len(lane.items)
            if before is not None:
                end = bisect.bisect_left(lane.items, before, key=lambda k: k.seq)
            if end > 0:
                heads.append((lane.items[end - 1].seq, lane.items, end))
        heads.sort(key=lambda head: head[0], reverse=True)  # only lanes that can be on the page
        streams = [_newest_first(items, end) for _, items, end in heads[: PAGE_MAX_EXAMINED + 1]]
        found: list[T] = []
        last: int | None = None
        for examined, kept in enumerate(heapq.merge(*streams, key=lambda k: k.seq, reverse=True)):
            if len(found) >= limit or examined >= PAGE_MAX_EXAMINED:
                return Page(found, str(last))
            last = kept.seq
            if where(kept.item):
                found.append(kept.item)
        return Page(found, None)


def _newest_first(items: list[Kept[T]], end: int) -> Iterator[Kept[T]]:
    return (items[i] for i in range(end - 1, -1, -1))


def decode_cursor(cursor: str) -> int:
    if cursor.isascii() and cursor.isdigit() and len(cursor) <= 18:
        return int(cursor)
    raise InvalidInput([Problem("cursor", "not a cursor this API gave out")], "invalid query")
