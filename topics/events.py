"""ChangeEvent: a CRM record changed (topic ``crm.record-changes``, keyed by record id)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from topics.types import EventTime, NonEmptyStr

Operation = Literal["created", "updated", "deleted"]

MAX_DEPTH = 1_000_000
"""A bound on ``causation.depth`` far above any loop limit, so that counting on is safe."""


class Causation(BaseModel):
    """Which workflow run caused a change; ``depth`` counts the chain of workflow actions."""

    model_config = ConfigDict(frozen=True)

    run_id: NonEmptyStr
    workflow_id: NonEmptyStr
    depth: int = Field(ge=0, le=MAX_DEPTH)


class RecordRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: NonEmptyStr
    id: NonEmptyStr


class _Caused(Protocol):
    @property
    def depth(self) -> int: ...


class ChangeProperties:
    """What the core reads of a change event besides its fields: ``ChangeEvent``'s and the
    hot path's ``HotChangeEvent``'s (``topics/hot_events.py``) one definition."""

    __slots__ = ()

    if TYPE_CHECKING:
        record_type: str
        record_id: str
        before: dict[str, Any] | None
        after: dict[str, Any] | None

        @property
        def causation(self) -> _Caused | None: ...

    @property
    def depth(self) -> int:
        """How many workflow actions led to this change (0 for a change made by a person)."""
        return self.causation.depth if self.causation else 0

    @property
    def record(self) -> dict[str, Any]:
        """The record as it now is; for a delete, as it was."""
        return self.after if self.after is not None else (self.before or {})

    @property
    def record_ref(self) -> RecordRef:
        return RecordRef(type=self.record_type, id=self.record_id)


class ChangeEvent(ChangeProperties, BaseModel):
    """A change as the CRM reports it. Bytes from Kafka or the API are read by
    ``processor.core.pipeline.decode_change``, which also refuses what JSON cannot carry to
    our other consumers: NaN and infinite numbers, and snapshots nested deeper than
    ``topics.types.MAX_NESTING``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: NonEmptyStr
    tenant_id: NonEmptyStr
    record_type: NonEmptyStr
    record_id: NonEmptyStr
    operation: Operation
    occurred_at: EventTime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    actor_id: str | None = None
    causation: Causation | None = None

    @model_validator(mode="after")
    def _snapshots_fit_operation(self) -> ChangeEvent:
        if self.operation == "created" and self.after is None:
            raise ValueError("a 'created' event needs the 'after' snapshot")
        if self.operation == "updated" and (self.before is None or self.after is None):
            raise ValueError("an 'updated' event needs both 'before' and 'after' snapshots")
        if self.operation == "deleted" and self.before is None:
            raise ValueError("a 'deleted' event needs the 'before' snapshot")
        return self
