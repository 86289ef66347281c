"""Deterministic ids: reprocessing an event yields the same run and action ids.

Each id is the RFC 4122 version-5 UUID of a name in our namespace (``uuid.uuid5``'s value),
built from the SHA-1 digest directly: a run makes two or more, and ``uuid.UUID`` objects cost
more than the hash.
"""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f6c3a52-2f63-4f1e-9b52-636f65666c6f").bytes


def _uuid5(name: str) -> str:
    digest = bytearray(hashlib.sha1(_NAMESPACE + name.encode(), usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def run_id(workflow_id: str, workflow_version: int, event_id: str) -> str:
    return _uuid5(f"run\x1f{workflow_id}\x1f{workflow_version}\x1f{event_id}")


def action_id(run: str, step: int) -> str:
    return _uuid5(f"action\x1f{run}\x1f{step}")


def derived_id(kind: str, source: str) -> str:
    """A stable id for something made from ``source`` (say, the change an action made)."""
    return _uuid5(f"{kind}\x1f{source}")
