"""Deterministic ids: the same as ``uuid.uuid5`` in our namespace, so ids never change."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.core import ids

NAMESPACE = uuid.UUID("6f6c3a52-2f63-4f1e-9b52-636f65666c6f")


@pytest.mark.parametrize("event_id", ["e-1", "évènement", "x" * 500, ""])
def test_ids_are_the_version_5_uuids_of_their_names(event_id: str) -> None:
    run = ids.run_id("wf-1", 3, event_id)
    assert run == str(uuid.uuid5(NAMESPACE, f"run\x1fwf-1\x1f3\x1f{event_id}"))
    assert ids.action_id(run, 2) == str(uuid.uuid5(NAMESPACE, f"action\x1f{run}\x1f2"))
    assert ids.derived_id("change", event_id) == str(uuid.uuid5(NAMESPACE, f"change\x1f{event_id}"))
    assert uuid.UUID(run).version == 5


def test_a_known_id_never_changes() -> None:
    """Ids already written to topics must stay the same across releases."""
    assert ids.run_id("wf-1", 1, "e-1") == "dfc1426e-2aa7-5eae-9098-783d048c5422"
    assert ids.run_id("wf-1", 1, "e-1") != ids.run_id("wf-1", 2, "e-1")


@given(st.text())
def test_any_name_gets_its_version_5_uuid(name: str) -> None:
    assert ids.derived_id("x", name) == str(uuid.uuid5(NAMESPACE, f"x\x1f{name}"))
