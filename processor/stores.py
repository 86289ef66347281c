"""Keyed state of the partitions one worker processes, kept with its own changelog topic.

A batch processor (``processor/batches.py``) writes each new value to the changelog, in the
partition of the input it came from, with the batch's other outputs and before the batch's
commit: the log always holds at least what was committed. When the group gives the worker a
partition, it reads that partition of the log up to a fence it appends itself (exact on any
broker, unlike end offsets) before it processes an input of it. ``COEFLOW_STORE`` picks where
values live: a dict in memory, or RocksDB through ``rocksdict`` on disk under
``COEFLOW_DATA_DIR`` (off the heap; a new assignment still reads the log from its start).
Values are kept as the bytes written to the log; their owner decodes them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from coeflow.settings import Settings
from processor.core.pipeline import Outbound
from processor.replica import write_fences
from topics.catalog import FENCE_KEY

log = logging.getLogger(__name__)


class MemoryStore:
    """Values in a dict."""

    def __init__(self) -> None:
        self._values: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._values[key] = value

    def delete(self, key: bytes) -> None:
        self._values.pop(key, None)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._values.items())

    def close(self) -> None:
        self._values.clear()


class RocksStore:
    """Values in RocksDB (``rocksdict``), off the heap."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Rdict  # the `rocksdb` extra

        shutil.rmtree(path, ignore_errors=True)  # rebuilt from the log: never a stale copy
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path))

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._db[key] = value

    def delete(self, key: bytes) -> None:
        del self._db[key]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items():
            yield cast(bytes, key), value

    def close(self) -> None:
        self._db.close()


Store = MemoryStore | RocksStore


class ChangelogStore:
    """One store per assigned partition, written through to ``topic``."""

    def __init__(self, settings: Settings, topic: str, name: str) -> None:
        self.settings = settings
        self.topic = topic
        self.name = name
        """Names the store in logs and its directory under ``COEFLOW_DATA_DIR``."""
        self._stores: dict[int, Store] = {}

    def partition(self, partition: int) -> Store:
        return self._stores[partition]

    @property
    def partitions(self) -> list[int]:
        return sorted(self._stores)

    def put(self, partition: int, key: bytes, value: bytes | None) -> Outbound:
        """Keep ``value`` (``None`` deletes) and return its changelog message."""
        store = self._stores[partition]
        if value is None:
            store.delete(key)
        else:
            store.put(key, value)
        return Outbound(self.topic, key, value, partition)

    async def restore(self, partitions: list[int], producer: AIOKafkaProducer) -> None:
        """Read the log of ``partitions`` into fresh stores, up to fences appended now."""
        if not partitions:
            return
        tps = [TopicPartition(self.topic, p) for p in partitions]
        fences = await write_fences(producer, tps)
        for partition in partitions:
            self.open(partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{self.settings.app_id}-{self.name}-restore",
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            pending, restored = dict(fences), 0
            while pending:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    store = self._stores[tp.partition]
                    restored += len(records)
                    for record in records:
                        if record.key is None or record.key == FENCE_KEY:
                            continue
                        if record.value is None:
                            store.delete(record.key)
                        else:
                            store.put(record.key, record.value)
                    if records[-1].offset >= pending.get(tp, 1 << 62):
                        del pending[tp]
        finally:
            await consumer.stop()
        log.info("%s of partitions %s restored from %d entries", self.name, partitions, restored)

    def drop(self, partitions: list[int]) -> None:
        for partition in partitions:
            store = self._stores.pop(partition, None)
            if store is not None:
                store.close()

    def open(self, partition: int) -> Store:
        """A fresh, empty store for ``partition`` (its log fills it)."""
        self._stores[partition] = store = self._store(partition)
        return store

    def _store(self, partition: int) -> Store:
        if self.settings.store == "memory://":
            return MemoryStore()
        settings = self.settings
        return RocksStore(settings.data_dir / self.name / settings.app_id / str(partition))
