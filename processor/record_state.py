"""The record state of the partitions this worker processes, restored from its changelog.

Each change's new state goes to ``<app id>-record-state-changelog`` (compacted, keyed by
``tenant/record type/record id``) in the partition of the change, with the change's other
outputs, before the change is committed: the log always holds at least what was committed.
When the group gives this worker a partition, it reads that partition of the log up to a
fence it appends itself (exact on any broker, unlike end offsets) before it processes a
change of it. ``COEFLOW_STORE`` picks where the states live: a dict in memory, or RocksDB
through ``rocksdict`` on disk under ``COEFLOW_DATA_DIR`` (off the heap; a new assignment still
reads the log from its start).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from coeflow.settings import Settings
from processor.core.pipeline import Outbound, StateOf
from processor.core.records import StateChange
from processor.replica import FENCE_KEY, write_fences
from topics import codec
from topics.catalog import record_state_changelog
from topics.records import RecordState

log = logging.getLogger(__name__)


class MemoryStore:
    """States as their JSON in a dict: compact, for a parse when one is read again."""

    def __init__(self) -> None:
        self._states: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> RecordState | None:
        encoded = self._states.get(key)
        return RecordState.model_validate_json(encoded) if encoded is not None else None

    def put(self, key: bytes, state: RecordState, encoded: bytes) -> None:
        self._states[key] = encoded

    def load(self, key: bytes, encoded: bytes) -> None:
        self._states[key] = encoded

    def delete(self, key: bytes) -> None:
        self._states.pop(key, None)

    def close(self) -> None:
        self._states.clear()


class RocksStore:
    """States as their JSON in RocksDB (``rocksdict``), off the heap."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Rdict  # the `rocksdb` extra

        shutil.rmtree(path, ignore_errors=True)  # rebuilt from the log: never a stale copy
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path))

    def get(self, key: bytes) -> RecordState | None:
        encoded = self._db.get(key)
        return RecordState.model_validate_json(encoded) if encoded is not None else None

    def put(self, key: bytes, state: RecordState, encoded: bytes) -> None:
        self._db[key] = encoded

    def load(self, key: bytes, encoded: bytes) -> None:
        self._db[key] = encoded

    def delete(self, key: bytes) -> None:
        del self._db[key]

    def close(self) -> None:
        self._db.close()


Store = MemoryStore | RocksStore


class RecordStates:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = record_state_changelog(settings.app_id)
        self._stores: dict[int, Store] = {}

    def of(self, partition: int) -> StateOf:
        """The state lookup of one partition, for ``process_change``."""
        store = self._stores[partition]
        return lambda key: store.get(key.encode())

    def apply(self, partition: int, change: StateChange) -> Outbound:
        """Keep ``change`` and return its changelog message."""
        key, store = change.key.encode(), self._stores[partition]
        if change.state is None:
            store.delete(key)
            return Outbound(self.topic, key, None, partition)
        # The model's own attributes as plain data: iterating the model costs 10 µs a change.
        encoded = codec.dumps(change.state.__dict__)
        store.put(key, change.state, encoded)
        return Outbound(self.topic, key, encoded, partition)

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
            client_id=f"{self.settings.app_id}-record-state-restore",
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
                            store.load(record.key, record.value)
                    if records[-1].offset >= pending.get(tp, 1 << 62):
                        del pending[tp]
        finally:
            await consumer.stop()
        log.info("record state of partitions %s restored from %d changes", partitions, restored)

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
        return RocksStore(
            self.settings.data_dir / "record-state" / self.settings.app_id / str(partition)
        )
