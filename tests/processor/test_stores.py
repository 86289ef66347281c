"""Both kinds of store keep, list and forget values alike, and write each change to the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from coeflow.settings import Settings
from processor.stores import ChangelogStore


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_values_are_kept_listed_and_forgotten(store: str, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, kafka_bootstrap="127.0.0.1:1", store=store, data_dir=tmp_path
    )  # type: ignore[call-arg]
    values = ChangelogStore(settings, "coeflow-things-changelog", "things")
    values.open(2)
    values.open(7)
    message = values.put(7, b"a", b'{"n":1}')
    assert (message.topic, message.key, message.value, message.partition) == (
        "coeflow-things-changelog",
        b"a",
        b'{"n":1}',
        7,
    )
    values.put(7, b"b", b'{"n":2}')
    assert values.partitions == [2, 7]
    assert sorted(values.partition(7).items()) == [(b"a", b'{"n":1}'), (b"b", b'{"n":2}')]
    assert list(values.partition(2).items()) == []
    assert values.put(7, b"a", None).value is None
    assert values.partition(7).get(b"a") is None
    assert values.partition(7).get(b"b") == b'{"n":2}'
    values.drop([2, 7])
    assert values.partitions == []
