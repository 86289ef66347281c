"""One lock per subject of an admin write (a workflow id, a token id), so that writes of one
subject take turns and writes of different subjects overlap.

A write holds its subject's lock from the read of the current state to the read back of
what it sent (``ApiView.publish``), so the next write of that subject sees it: a create's id
is checked free and taken by one write only, versions of one workflow count up one by one, a
secret rotation or a revocation does not interleave with another change of its subject, and
the audit events of one subject are sent in the order of its changes. Nothing a write checks
or computes reads another subject, so nothing more is held.

The locks are bounded, whatever ids requests name: a key's lock exists only while a write
holds or awaits it (it is forgotten when the last one lets go), and at most ``max_keys`` keys
exist at once; a write of a new key past that waits until one is forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

MAX_KEYS = 1024
"""Subjects written at once on one worker; a write of one more waits for one to finish."""


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Writes holding or awaiting ``lock``: at 0 the entry is forgotten."""


class KeyedLocks:
    """``async with locks.hold(key):`` — one holder per key at a time, in the order asked
    (``asyncio.Lock`` is fair); holders of different keys run together."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be 1 or more")
        self.max_keys = max_keys
        self._entries: dict[str, _Entry] = {}
        self._room = asyncio.Event()
        """Set when a key is forgotten: a write waiting for room looks again."""

    def __len__(self) -> int:
        """Keys held or awaited now."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = await self._enter(key)
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
                self._room.set()

    async def _enter(self, key: str) -> _Entry:
        # No await between the check and the entry's count: nothing can take the room between.
        while key not in self._entries and len(self._entries) >= self.max_keys:
            self._room.clear()
            await self._room.wait()
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        return entry
