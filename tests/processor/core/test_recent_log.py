"""The recent log behind the audit and dead-letter views: bounded per lane (one tenant's flood
evicts its own events only), newest first, filtered, paged without losses or repeats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coeflow.errors import InvalidInput
from processor.core.recent_log import PAGE_MAX_EXAMINED, RecentLog


def test_each_lane_keeps_its_newest_by_count_and_bytes() -> None:
    log: RecentLog[str] = RecentLog(per_lane=3, lane_bytes=100)
    for n in range(10):
        log.add("flood", f"f{n}", 1)
    log.add("quiet", "q0", 1)
    assert log.page(["flood"], limit=10).items == ["f9", "f8", "f7"]
    assert log.page(["quiet"], limit=10).items == ["q0"]
    log.add("quiet", "big", 150)  # over the bytes alone: kept, the older ones go
    assert log.page(["quiet"], limit=10).items == ["big"]
    assert len(log) == 4


def test_lanes_merge_newest_first_and_filters_apply() -> None:
    log: RecentLog[str] = RecentLog(per_lane=10, lane_bytes=1000)
    for name in ["a1", "b1", "a2", "b2", "a3"]:
        log.add(name[0], name, 1)
    assert log.page(["a", "b"], limit=10).items == ["a3", "b2", "a2", "b1", "a1"]
    assert log.page(["a", "b"], limit=10, where=lambda s: s.endswith("2")).items == ["b2", "a2"]
    assert log.page(["b", "nobody"], limit=10).items == ["b2", "b1"]
    assert log.page([], limit=10).items == []


@given(
    names=st.lists(st.sampled_from("abc"), max_size=20),
    limit=st.integers(1, 5),
    odd_only=st.booleans(),
)
def test_paging_shows_each_item_once(names: list[str], limit: int, odd_only: bool) -> None:
    log: RecentLog[int] = RecentLog(per_lane=100, lane_bytes=10_000)
    for n, lane in enumerate(names):
        log.add(lane, n, 1)
    keep = (lambda n: n % 2 == 1) if odd_only else (lambda n: True)
    shown, cursor = [], None
    while True:
        page = log.page(["a", "b", "c"], limit=limit, where=keep, cursor=cursor)
        assert len(page.items) <= limit
        shown += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert shown == [n for n in reversed(range(len(names))) if keep(n)]


@pytest.mark.parametrize("cursor", ["", "x", "-1", "1" * 19, "١٢"])
def test_a_cursor_it_did_not_give_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        RecentLog[int](1, 1).page(["a"], limit=1, cursor=cursor)
    assert caught.value.problems[0].loc == "cursor"


def test_a_filter_few_pass_answers_within_bounded_work_and_the_cursor_reaches_them() -> None:
    log: RecentLog[int] = RecentLog(per_lane=10_000, lane_bytes=1 << 30)
    for n in range(PAGE_MAX_EXAMINED * 3):
        log.add(f"lane-{n % 7}", n, 1)
    first = log.page([f"lane-{k}" for k in range(7)], limit=5, where=lambda n: n == 0)
    assert first.items == [] and first.next_cursor is not None
    found, cursor, pages = [], first.next_cursor, 1
    while cursor is not None:
        page = log.page(
            [f"lane-{k}" for k in range(7)], limit=5, where=lambda n: n == 0, cursor=cursor
        )
        found += page.items
        cursor, pages = page.next_cursor, pages + 1
    assert found == [0] and pages == 3
