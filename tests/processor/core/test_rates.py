from __future__ import annotations

from processor.core.rates import RateLimit


def test_a_key_gets_its_burst_then_its_rate_and_others_are_not_touched() -> None:
    limit = RateLimit(per_second=10, burst=3)
    assert [limit.allow("acme", 0.0) for _ in range(3)] == [None, None, None]
    wait = limit.allow("acme", 0.0)
    assert wait is not None and abs(wait - 0.1) < 1e-9
    assert limit.allow("evil", 0.0) is None, "another key has its own bucket"
    assert limit.allow("acme", 0.1) is None and limit.allow("acme", 0.1) is not None
    assert [limit.allow("acme", 10.0) for _ in range(4)].count(None) == 3, "refilled to the burst"
