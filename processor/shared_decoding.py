"""One decode per message for the readers of a topic in one worker.

A worker with every role reads ``workflow.runs`` and ``workflow.action-outcomes`` twice: a
replica (``processor/replica.py``, ``processor/projections.py``: all partitions, outside any
group, from the start, so every worker has a full copy) and the run tracker
(``processor/run_tracker.py``: its partitions only, in a group, committing once its outputs are
stored). The two cannot be one consumer: they start from different offsets (the beginning,
the group's commit), move at different paces (an in-memory fold, a send and a commit), and a
partition that moves to the tracker must be read again from its commit while the replica is
already past it. They can share the decoding: whichever reader comes to a message first
decodes it and leaves the result for the other, which takes it instead of decoding again.

What is left for a reader waits only while that reader has yet to come to the message (by the
position it last reported) and would want it (``wants``); the oldest goes first past ``LIMIT``
entries a reader, so a reader that stops or falls far behind costs memory that is bounded, and
then decodes for itself as before.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from coeflow.redact import without_values
from processor.core.history import HotIndexedRun, index_fields
from topics import codec
from topics.outcomes import ActionOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")

LIMIT = 4_000
"""Decoded messages kept for one reader, at most: two fetches of the batched path (an outcome
decoded takes a few KB, so this is about ten MB of outcomes, when a reader falls behind)."""

Wants = Callable[[int, bytes], bool]
"""Whether a reader will want the message ``value`` of ``partition`` (say, of the partitions it
holds, and of the kind it does not skip by a byte test)."""

_UNDECODABLE: Any = object()
"""Left for the other reader when a message does not decode: it skips it without trying (the
first reader logged why)."""


class TopicReader:
    """One reader of one topic in a worker, with what the other readers left for it decoded."""

    def __init__(self, name: str, wants: Wants | None, limit: int) -> None:
        self.name, self.wants, self.limit = name, wants, limit
        self.others: list[TopicReader] = []
        self.left: OrderedDict[tuple[int, int], Any] = OrderedDict()
        """(partition, offset) → the message decoded by another reader, oldest first (ordered:
        a dict would step over the slots of every entry taken from its front to find the
        oldest, ``RunHistory._runs``)."""
        self.next: dict[int, int] = {}
        """Partition → the offset this reader comes to next."""
        self.decodes = 0
        """Messages this reader decoded (for the measurements and the tests)."""
        self.taken = 0
        """Messages it took decoded from another reader instead."""

    def decoded(
        self, partition: int, offset: int, value: bytes, decode: Callable[[bytes], T | None]
    ) -> T | None:
        """The message at ``offset``, decoded by ``decode`` (``None``: it does not decode, and
        ``decode`` said why), or taken as another reader left it."""
        self.next[partition] = offset + 1
        if self.left:
            item = self.left.pop((partition, offset), None)
            if item is not None:
                self.taken += 1
                return None if item is _UNDECODABLE else item
        result = decode(value)
        self.decodes += 1
        for other in self.others:
            if other.next.get(partition, 0) <= offset and (
                other.wants is None or other.wants(partition, value)
            ):
                left = other.left
                left[(partition, offset)] = _UNDECODABLE if result is None else result
                if len(left) > other.limit:
                    left.popitem(last=False)
        return result

    def passed(self, partition: int, offset: int) -> None:
        """This reader has read ``partition`` up to ``offset`` (not included)."""
        self.next[partition] = offset

    def forget(self, partitions: set[int]) -> None:
        """This reader no longer reads ``partitions``: drop what was left for it there."""
        for key in [key for key in self.left if key[0] in partitions]:
            del self.left[key]
        for partition in partitions:
            self.next.pop(partition, None)


class SharedDecodes:
    """The readers of each topic in one worker, which leave what they decode for each other."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._readers: dict[str, list[TopicReader]] = {}

    def join(self, name: str, topic: str, wants: Wants | None = None) -> TopicReader:
        """A reader of ``topic`` (``wants``: which of its messages it reads; all if ``None``)."""
        reader = TopicReader(name, wants, self.limit)
        readers = self._readers.setdefault(topic, [])
        for other in readers:
            other.others.append(reader)
            reader.others.append(other)
        readers.append(reader)
        return reader

    @property
    def decodes(self) -> int:
        return sum(r.decodes for readers in self._readers.values() for r in readers)

    @property
    def taken(self) -> int:
        return sum(r.taken for readers in self._readers.values() for r in readers)

    def __len__(self) -> int:
        return sum(len(r.left) for readers in self._readers.values() for r in readers)


def decode_outcome(value: bytes) -> ActionOutcome | None:
    """An outcome; ``None``, logged, for a value that is not one."""
    try:
        return codec.decode(value, ActionOutcome)
    except (ValueError, ValidationError) as exc:
        log.warning("skipping an undecodable action outcome: %s", without_values(str(exc)))
        return None


def index_run(value: bytes) -> HotIndexedRun | None:
    """What the run history and the run tracker read of a run record first (its indexed
    fields, the status among them); ``None``, logged, for a value that is not a run."""
    try:
        return index_fields(value)
    except ValueError as exc:  # pydantic's ValidationError is one
        log.warning("skipping an undecodable run record: %s", without_values(str(exc)))
        return None
