"""The collector as a worker has it, for what measures the core outside a worker."""

from __future__ import annotations

import gc

import pytest

from coeflow.collector import WORKER_THRESHOLDS, as_in_a_worker


def test_the_block_runs_with_the_workers_thresholds_and_what_was_there_frozen() -> None:
    before = gc.get_threshold()
    with as_in_a_worker():
        assert gc.get_threshold() == WORKER_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_collector_is_given_back_when_the_block_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), as_in_a_worker():
        raise RuntimeError("measured code failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
