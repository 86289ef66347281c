"""The partition of a keyed message, as the Kafka clients' default partitioner chooses it
(murmur2 of the key), at half aiokafka's cost.

The processor picks the partition of each run record and command itself, to build record
batches per partition, and it must pick what every other producer of the same keys picks: the
executors' outcomes are keyed by run id too, and a run's record and its outcomes meet in one
partition of the run tracker. aiokafka's ``murmur2`` reads the key a byte at a time and masks
every step, a few µs a key, paid for every run record and command; this reads it four bytes at
a time and masks once a word (``(a & m) ^ (b & m)`` is ``(a ^ b) & m``).
``tests/processor/test_key_partitions.py`` shows both agree on any key.
"""

from __future__ import annotations

import sys
from struct import iter_unpack

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (``org.apache.kafka.common.utils.Utils.murmur2``), as an
    unsigned 32-bit number, like aiokafka's."""
    length = len(data)
    h = _SEED ^ length
    end = length & ~3
    for (k,) in iter_unpack("<I", data[:end]):
        k = k * _M & _MASK
        h = (h * _M ^ (k ^ k >> 24) * _M) & _MASK
    extra = length & 3
    if extra:
        if extra >= 3:
            h ^= data[end + 2] << 16
        if extra >= 2:
            h ^= data[end + 1] << 8
        h = (h ^ data[end]) * _M & _MASK
    h ^= h >> 13
    h = h * _M & _MASK
    return h ^ (h >> 15)


_LANE = 64
"""Bits of a lane in ``murmur2_many``: a 32-bit value times ``_M`` (under 2**31) fits in one."""


def murmur2_many(keys: list[bytes]) -> list[int]:
    """``murmur2`` of each of ``keys``, in order, at a fraction of a call each: keys of one
    length are hashed together, one 64-bit lane of a Python integer per key, so that each step
    of the hash is one operation on every key at once (run ids, the keys of nearly every
    output, all have one length). A lane holds at most 32 bits between steps; a product with
    ``_M`` stays within its 64; a shift right leaks the next lane's low bits into bits 32 and
    up of a lane, which the mask after it clears."""
    lengths = set(map(len, keys))
    if len(lengths) == 1 and len(keys) >= 4 and sys.byteorder == "little":
        return _murmur2_lanes(keys, lengths.pop())  # the usual batch: run ids alone
    hashes = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for n, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(n)
    for length, places in by_length.items():
        if len(places) < 4 or sys.byteorder != "little":  # few: one call each is cheaper
            for n in places:
                hashes[n] = murmur2(keys[n])
            continue
        for n, h in zip(places, _murmur2_lanes([keys[n] for n in places], length), strict=True):
            hashes[n] = h
    return hashes


def _murmur2_lanes(keys: list[bytes], length: int) -> list[int]:
    """``murmur2`` of each of ``keys``, all ``length`` bytes long, in lanes."""
    count = len(keys)
    joined = b"".join(keys)
    ones = int.from_bytes(b"\x01" + b"\x00" * (_LANE // 8 - 1), "little")
    ones = int.from_bytes((ones.to_bytes(_LANE // 8, "little")) * count, "little")
    masks = ones * _MASK
    m = _M

    def word(start: int, size: int) -> int:
        """Bytes ``start`` to ``start + size`` of every key, little-endian, one a lane."""
        lanes = bytearray(count * _LANE // 8)
        for t in range(size):
            lanes[t :: _LANE // 8] = joined[start + t :: length]
        return int.from_bytes(lanes, "little")

    h = ones * (_SEED ^ length)
    end = length & ~3
    for start in range(0, end, 4):
        k = word(start, 4) * m & masks
        h = (h * m & masks) ^ ((k ^ k >> 24) & masks) * m & masks
    extra = length & 3
    if extra:
        h = (h ^ word(end, extra)) * m & masks
    h = (h ^ h >> 13) & masks
    h = h * m & masks
    h = (h ^ h >> 15) & masks
    return memoryview(h.to_bytes(count * _LANE // 8, "little")).cast("Q").tolist()
