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
position it last reported) and would want it (``wants``); the oldest goes first past
``LIMIT`` entries, so a reader that stops or falls far behind costs memory that is bounded, and
then decodes for itself as before.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from processor.core.history import IndexedRun
from topics import codec
from topics.outcomes import ActionOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")

LIMIT = 10_000
"""Decoded messages kept for the other reader, at most (a few MB of outcomes)."""

Wants = Callable[[int, bytes], bool]
"""Whether a reader will want the message ``value`` of ``partition`` (say, of the partitions it
holds, and of the kind it does not skip by a byte test)."""


@dataclass
class _Reader:
    name: str
    wants: Wants


_UNDECODABLE: Any = object()
"""Left for the other reader when a message does not decode: it skips it without trying (the
first reader logged why)."""


class SharedDecodes:
    """The decoded messages the readers of each topic leave for each other in one worker."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._readers: dict[str, list[_Reader]] = {}
        self._left: OrderedDict[tuple[str, str, int, int], Any] = OrderedDict()
        """(reader, topic, partition, offset) → what was decoded for that reader."""
        self._next: dict[tuple[str, str, int], int] = {}
        """(reader, topic, partition) → the offset the reader comes to next."""
        self.decodes = 0
        """Messages decoded by a reader (for the measurements and the tests)."""
        self.shared = 0
        """Messages a reader took decoded from another instead."""

    def join(self, reader: str, topic: str, wants: Wants) -> None:
        """``reader`` reads ``topic``; of its messages it wants those ``wants`` accepts."""
        self._readers.setdefault(topic, []).append(_Reader(reader, wants))

    def passed(self, reader: str, topic: str, partition: int, offset: int) -> None:
        """``reader`` has read ``partition`` of ``topic`` up to ``offset`` (not included)."""
        self._next[(reader, topic, partition)] = offset

    def decoded(
        self,
        reader: str,
        topic: str,
        partition: int,
        offset: int,
        value: bytes,
        decode: Callable[[bytes], T | None],
    ) -> T | None:
        """The message at ``offset``, decoded by ``decode`` (``None``: it does not decode, and
        ``decode`` said why), or taken as another reader left it."""
        self._next[(reader, topic, partition)] = offset + 1
        item = self._left.pop((reader, topic, partition, offset), None)
        if item is not None:
            self.shared += 1
            return None if item is _UNDECODABLE else item
        result = decode(value)
        self.decodes += 1
        for other in self._readers.get(topic, ()):
            if (
                other.name != reader
                and self._next.get((other.name, topic, partition), 0) <= offset
                and other.wants(partition, value)
            ):
                self._left[(other.name, topic, partition, offset)] = (
                    _UNDECODABLE if result is None else result
                )
                if len(self._left) > self.limit:
                    self._left.popitem(last=False)
        return result

    def forget(self, reader: str, topic: str, partitions: set[int]) -> None:
        """``reader`` no longer reads ``partitions`` of ``topic``: drop what was left for it."""
        for key in [k for k in self._left if k[:2] == (reader, topic) and k[2] in partitions]:
            del self._left[key]
        for partition in partitions:
            self._next.pop((reader, topic, partition), None)

    def __len__(self) -> int:
        return len(self._left)


def decode_outcome(value: bytes) -> ActionOutcome | None:
    """An outcome; ``None``, logged, for a value that is not one."""
    try:
        return codec.decode(value, ActionOutcome)
    except (ValueError, ValidationError) as exc:
        log.warning("skipping an undecodable action outcome: %s", exc)
        return None


def index_run(value: bytes) -> IndexedRun | None:
    """What the run history and the run tracker read of a run record first (its indexed
    fields, the status among them); ``None``, logged, for a value that is not a run."""
    try:
        return IndexedRun.model_validate_json(value)
    except ValueError as exc:  # pydantic's ValidationError is one
        log.warning("skipping an undecodable run record: %s", exc)
        return None
