"""The admin writes' locks: one holder per key, keys overlap, forgotten when idle, bounded."""

from __future__ import annotations

import asyncio

import pytest

from processor.write_locks import KeyedLocks


async def _settle() -> None:
    """Let every runnable task run until it blocks."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_one_key_has_one_holder_at_a_time_in_the_order_asked() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    most = 0
    order: list[int] = []

    async def write(n: int) -> None:
        nonlocal most
        async with locks.hold("workflow:a"):
            inside.append("a")
            most = max(most, len(inside))
            order.append(n)
            await asyncio.sleep(0.001)  # a publish and its read back
            inside.remove("a")

    await asyncio.gather(*(write(n) for n in range(20)))
    assert most == 1
    assert order == list(range(20))
    assert len(locks) == 0


async def test_different_keys_are_held_together() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()
    holding: set[str] = set()

    async def write(key: str) -> None:
        async with locks.hold(key):
            holding.add(key)
            await release.wait()

    tasks = [asyncio.create_task(write(f"workflow:{n}")) for n in range(8)]
    await _settle()
    assert holding == {f"workflow:{n}" for n in range(8)}  # none waits for another
    assert len(locks) == 8
    release.set()
    await asyncio.gather(*tasks)
    assert len(locks) == 0


async def test_a_waiting_write_of_one_key_does_not_hold_up_another_key() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()
    got: list[str] = []

    async def write(key: str, wait: bool) -> None:
        async with locks.hold(key):
            got.append(key)
            if wait:
                await release.wait()

    first = asyncio.create_task(write("a", wait=True))
    second = asyncio.create_task(write("a", wait=False))
    other = asyncio.create_task(write("b", wait=False))
    await _settle()
    assert got == ["a", "b"] and not second.done() and other.done()
    release.set()
    await asyncio.gather(first, second, other)
    assert got == ["a", "b", "a"]


async def test_idle_keys_are_forgotten_so_many_ids_leave_nothing_behind() -> None:
    locks = KeyedLocks()
    for n in range(10_000):
        async with locks.hold(f"workflow:hostile-{n}"):
            assert f"workflow:hostile-{n}" in locks and len(locks) == 1
    assert len(locks) == 0


async def test_a_key_is_kept_while_a_write_awaits_it_and_forgotten_after() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()

    async def write() -> None:
        async with locks.hold("k"):
            await release.wait()

    tasks = [asyncio.create_task(write()) for _ in range(3)]
    await _settle()
    assert len(locks) == 1  # one entry for the holder and both waiting
    release.set()
    await asyncio.gather(*tasks)
    assert "k" not in locks


async def test_past_max_keys_a_new_key_waits_for_room_and_old_keys_still_go() -> None:
    locks = KeyedLocks(max_keys=2)
    entered: list[str] = []

    def write(key: str) -> tuple[asyncio.Task[None], asyncio.Event]:
        release = asyncio.Event()

        async def run() -> None:
            async with locks.hold(key):
                entered.append(key)
                await release.wait()

        return asyncio.create_task(run()), release

    (a, release_a), (b, release_b) = write("a"), write("b")
    c, release_c = write("c")
    again, release_again = write("a")  # a key that exists needs no room
    await _settle()
    assert entered == ["a", "b"] and len(locks) == 2  # the bound holds: "c" is not in
    release_a.set()
    await _settle()
    assert entered == ["a", "b", "a"] and "c" not in locks  # "a" is still awaited
    release_again.set()
    await _settle()
    assert entered == ["a", "b", "a", "c"] and set(locks._entries) == {"b", "c"}
    release_b.set()
    release_c.set()
    await asyncio.gather(a, b, c, again)
    assert len(locks) == 0


async def test_a_write_that_raises_or_is_cancelled_lets_go() -> None:
    locks = KeyedLocks(max_keys=1)
    with pytest.raises(RuntimeError):
        async with locks.hold("a"):
            raise RuntimeError("publish failed")
    assert len(locks) == 0

    held = asyncio.Event()
    never = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("a"):
            held.set()
            await never.wait()

    first = asyncio.create_task(holder())
    await held.wait()
    waiting = asyncio.create_task(holder())  # the same key: waits on its lock
    other = asyncio.create_task(_hold_once(locks, "b"))  # a new key: waits for room
    await _settle()
    assert not other.done() and len(locks) == 1
    waiting.cancel()  # cancelled while awaiting the lock: the holder keeps it
    await asyncio.gather(waiting, return_exceptions=True)
    assert not other.done() and "a" in locks
    first.cancel()  # cancelled while holding it: the key is forgotten, "b" gets the room
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(other, 1)
    assert len(locks) == 0


async def _hold_once(locks: KeyedLocks, key: str) -> None:
    async with locks.hold(key):
        pass


def test_max_keys_must_allow_a_write() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        KeyedLocks(max_keys=0)
