"""DeadLetter: a message that could not be processed (topic ``workflow.dead-letter``).

Keyed by the original key. The original value travels base64-encoded, because it may be
neither UTF-8 nor JSON; a value larger than the configured limit is cut and says so.
"""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from topics.runs import SourcePosition


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: SourcePosition
    error: str
    key_base64: str | None
    value_base64: str | None
    value_size: int | None
    value_truncated: bool
    failed_at: datetime

    @classmethod
    def of(
        cls,
        *,
        key: bytes | None,
        value: bytes | None,
        source: SourcePosition,
        error: str,
        failed_at: datetime,
        max_value_bytes: int,
    ) -> DeadLetter:
        kept = value[:max_value_bytes] if value is not None else None
        return cls(
            source=source,
            error=error,
            key_base64=base64.b64encode(key).decode() if key is not None else None,
            value_base64=base64.b64encode(kept).decode() if kept is not None else None,
            value_size=len(value) if value is not None else None,
            value_truncated=value is not None and len(value) > max_value_bytes,
            failed_at=failed_at,
        )

    def original_value(self) -> bytes | None:
        """The original bytes (or the first ``max_value_bytes`` of them, if cut)."""
        return base64.b64decode(self.value_base64) if self.value_base64 is not None else None
