"""Deterministic ids: reprocessing an event yields the same run and action ids."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f6c3a52-2f63-4f1e-9b52-636f65666c6f")


def run_id(workflow_id: str, workflow_version: int, event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"run\x1f{workflow_id}\x1f{workflow_version}\x1f{event_id}"))


def action_id(run: str, step: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"action\x1f{run}\x1f{step}"))


def derived_id(kind: str, source: str) -> str:
    """A stable id for something made from ``source`` (say, the change an action made)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\x1f{source}"))
