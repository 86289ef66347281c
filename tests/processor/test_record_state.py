"""Both stores keep and give back the same states, whether applied or restored from the log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from coeflow.settings import Settings
from processor.core.records import apply_change
from processor.record_state import RecordStates
from tests.factories import make_event
from topics.records import changed_at

DEAL = {"stage": "proposal", "amount": 100}


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_state_kept_or_restored_reads_back_the_same(store: str, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, kafka_bootstrap="127.0.0.1:1", store=store, data_dir=tmp_path
    )  # type: ignore[call-arg]
    states = RecordStates(settings)
    states.open(3)
    event = make_event(record_type="deal", record_id="D-1", after=DEAL)
    change = apply_change(None, event, 41)
    assert change is not None and change.state is not None
    message = states.apply(3, change)
    assert message.topic == "coeflow-record-state-changelog" and message.partition == 3
    kept = states.of(3)("acme/deal/D-1")
    assert kept == change.state

    restored = RecordStates(settings.model_copy(update={"data_dir": tmp_path / "restored"}))
    store = restored.open(3)
    assert message.value is not None
    store.put(message.key or b"", message.value)
    again = restored.of(3)("acme/deal/D-1")
    assert again == change.state
    assert changed_at(again, "stage") == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)

    deleted = apply_change(
        change.state,
        make_event(record_type="deal", record_id="D-1", operation="deleted", before=DEAL),
        42,
    )
    assert deleted is not None
    assert states.apply(3, deleted).value is None
    assert states.of(3)("acme/deal/D-1") is None
    states.drop([3])
    restored.drop([3])
