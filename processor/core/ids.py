"""Deterministic ids: reprocessing an event yields the same run and action ids.

Each id is the RFC 4122 version-5 UUID of a name in our namespace (``uuid.uuid5``'s value),
written from the SHA-1 digest's hex directly: a run makes two or more, and ``uuid.UUID``
objects cost more than the hash. The version is the 13th hex digit (``5``); the variant takes
the top two bits of the 17th (``10``: one of ``89ab``).
"""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f6c3a52-2f63-4f1e-9b52-636f65666c6f").bytes
_HASHED_NAMESPACE = hashlib.sha1(_NAMESPACE, usedforsecurity=False)
"""The digest state after the namespace, copied for each id instead of hashing it again."""


_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def _uuid5(name: bytes) -> str:
    digest = _HASHED_NAMESPACE.copy()
    digest.update(name)
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def run_id(workflow_id: str, workflow_version: int, event_id: str) -> str:
    return run_id_after(run_id_prefix(workflow_id, workflow_version), event_id)


def run_id_prefix(workflow_id: str, workflow_version: int) -> bytes:
    """The part of a run id's name that one workflow version's runs share: made when the
    workflow is compiled (``CompiledWorkflow.run_id_prefix``), not for every event."""
    return f"run\x1f{workflow_id}\x1f{workflow_version}\x1f".encode()


def run_id_after(prefix: bytes, event_id: str) -> str:
    """``run_id`` of the workflow version whose ``run_id_prefix`` is ``prefix``."""
    return _uuid5(prefix + event_id.encode())


def action_id(run: str, step: int) -> str:
    return _uuid5(f"action\x1f{run}\x1f{step}".encode())


def derived_id(kind: str, source: str) -> str:
    """A stable id for something made from ``source`` (say, the change an action made)."""
    return _uuid5(f"{kind}\x1f{source}".encode())
