"""The audit log and the dead letters as the admin API shows them: replicas of
``workflow.audit`` and ``workflow.dead-letter`` into bounded recent logs
(``processor/core/recent_log.py``).

Neither is fenced: the API answers at once with what has been read so far, as the run history
does (the audit log is kept forever on its topic; a worker keeps its newest events). A write's
audit event is waited for like its definition (``ApiView.publish``), so a read that follows
shows who made the change.
"""

from __future__ import annotations

import logging
from typing import Any

from coeflow.settings import Settings
from processor.core.recent_log import RecentLog
from processor.replica import TopicReplica
from topics import codec
from topics.audit import AuditEvent
from topics.catalog import AUDIT, DEAD_LETTER
from topics.dead_letter import DeadLetter

log = logging.getLogger(__name__)

AUDIT_PER_TENANT = 5_000
AUDIT_TENANT_BYTES = 16 << 20
"""A tenant's newest audit events kept by each worker: at most this many, and bytes."""
DEAD_LETTERS_KEPT = 2_000
DEAD_LETTER_BYTES = 64 << 20
"""The newest dead letters kept by each worker (each holds at most
``COEFLOW_DEAD_LETTER_MAX_BYTES`` of its message)."""
_DEAD_LETTERS = "dead-letters"
"""The one lane of the dead letters: they belong to no tenant (the operator's to read)."""


class AuditReplica(TopicReplica):
    topic = AUDIT
    read_back = True
    fenced = False

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.kept: RecentLog[AuditEvent] = RecentLog(AUDIT_PER_TENANT, AUDIT_TENANT_BYTES)
        self._seen: dict[str, None] = {}
        """Audit ids read (deterministic: a change sent again after a retry is one event)."""

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        event = _decoded(self.topic, value, AuditEvent)
        if event is None or event.audit_id in self._seen:
            return
        self._seen[event.audit_id] = None
        if len(self._seen) > 4 * AUDIT_PER_TENANT:  # only the recent repeat: forget the oldest
            del self._seen[next(iter(self._seen))]
        self.kept.add(event.tenant_id, event, len(value))


class DeadLetterReplica(TopicReplica):
    topic = DEAD_LETTER
    fenced = False

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.kept: RecentLog[DeadLetter] = RecentLog(DEAD_LETTERS_KEPT, DEAD_LETTER_BYTES)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        letter = _decoded(self.topic, value, DeadLetter)
        if letter is not None:
            self.kept.add(_DEAD_LETTERS, letter, len(value))

    def lanes(self) -> list[str]:
        return [_DEAD_LETTERS]


def _decoded(topic: str, value: bytes, model: type[Any]) -> Any:
    try:
        return codec.decode(value, model)
    except ValueError as exc:  # pydantic's ValidationError is one
        log.warning("%s: skipping an undecodable value: %s", topic, exc)
        return None
