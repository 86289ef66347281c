from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from processor.key_partitions import murmur2, murmur2_many


@given(st.binary(max_size=200))
def test_murmur2_is_aiokafkas_on_any_key(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_a_key_goes_to_the_partition_the_default_partitioner_gives_it(
    key: bytes, count: int
) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert partitions[(murmur2(key) & 0x7FFFFFFF) % count] == expected


def test_a_run_id_hashes_as_kafka_hashes_it() -> None:
    """A value from the Java client (Utils.murmur2 of "21"), so both cannot be wrong alike."""
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF


@given(
    st.lists(st.binary(max_size=40), max_size=30)
    | st.integers(min_value=0, max_value=41).flatmap(
        lambda size: st.lists(st.binary(min_size=size, max_size=size), max_size=60)
    )
)
def test_murmur2_many_is_murmur2_of_each_key(keys: list[bytes]) -> None:
    """Keys of one length are hashed together in lanes: every lane as alone, whatever its
    neighbours (all ones, all zeros, any tail)."""
    assert murmur2_many(keys) == [aiokafka_murmur2(key) for key in keys]


def test_murmur2_many_of_extreme_lanes() -> None:
    for length in range(0, 41):
        keys = [b"\xff" * length, b"\x00" * length] * 5 + [bytes(range(length))] * 3
        assert murmur2_many(keys) == [aiokafka_murmur2(key) for key in keys]
