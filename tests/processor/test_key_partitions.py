from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from processor.key_partitions import murmur2


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
