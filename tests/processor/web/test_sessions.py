"""Server-side sessions: bounded in number and time, a new id at every sign-in, gone at
sign-out; CSRF tokens compared whole."""

from __future__ import annotations

from pydantic import SecretStr

from processor.web.sessions import SessionStore, csrf_matches


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def start(store: SessionStore, tenant: str | None = "t-1") -> str:
    return store.start(
        SecretStr("s3cr3t-value"), operator=tenant is None, tenant_id=tenant, who="ops"
    ).id


def test_a_session_is_found_by_its_id_and_ends_at_sign_out() -> None:
    store = SessionStore(clock=Clock())
    sid = start(store)
    found = store.get(sid)
    assert found is not None and found.tenant_id == "t-1"
    assert found.token.get_secret_value() == "s3cr3t-value"
    store.end(sid)
    assert store.get(sid) is None
    assert store.get(None) is None and store.get("") is None


def test_every_sign_in_makes_a_new_unguessable_id_and_csrf_token() -> None:
    store = SessionStore(clock=Clock())
    one, two = store.get(start(store)), store.get(start(store))
    assert one is not None and two is not None
    assert one.id != two.id and one.csrf != two.csrf
    assert len(one.id) >= 43 and len(one.csrf) >= 43  # 256 bits, url-safe


def test_an_idle_session_is_over() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, clock=clock)
    sid = start(store)
    clock.now += 59
    assert store.get(sid) is not None  # used: the idle time starts again
    clock.now += 59
    assert store.get(sid) is not None
    clock.now += 61
    assert store.get(sid) is None


def test_a_session_is_over_after_its_lifetime_even_when_used() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, lifetime_seconds=100, clock=clock)
    sid = start(store)
    for _ in range(3):
        clock.now += 30
        assert store.get(sid) is not None
    clock.now += 30
    assert store.get(sid) is None


def test_sessions_are_bounded_dropping_the_one_idle_longest() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=3, clock=clock)
    first, second, third = start(store), start(store), start(store)
    clock.now += 1
    store.get(first)  # used: the second is now the one idle longest
    fourth = start(store)
    assert len(store) == 3
    assert store.get(second) is None
    assert all(store.get(s) is not None for s in (first, third, fourth))


def test_starting_drops_sessions_that_are_over() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=10, clock=clock)
    for _ in range(5):
        start(store)
    clock.now += 11
    start(store)
    assert len(store) == 1


def test_csrf_tokens_match_only_whole_and_ascii() -> None:
    assert csrf_matches("abc123", "abc123")
    assert not csrf_matches("abc123", "abc12")
    assert not csrf_matches("abc123", "abc1234")
    assert not csrf_matches("abc123", "")
    assert not csrf_matches("abc123", None)
    assert not csrf_matches("abc123", "abc12\u00e9")


def test_one_tenant_signing_in_again_and_again_pushes_out_only_its_own_sessions() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=100, max_per_tenant=3, clock=clock)
    others = [start(store, "t-other"), start(store, None)]
    flood = []
    for _ in range(10):
        clock.now += 1
        flood.append(start(store, "t-flood"))
    assert all(store.get(s) is not None for s in others)
    assert [store.get(s) is not None for s in flood] == [False] * 7 + [True] * 3


def test_a_session_shows_neither_its_id_nor_its_token_when_printed() -> None:
    store = SessionStore(clock=Clock())
    session = store.get(start(store))
    assert session is not None
    text = repr(session)
    assert session.id not in text and session.csrf not in text and "s3cr3t-value" not in text
