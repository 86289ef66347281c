"""RecordState: when each field of a record last changed, and which change said so.

The value of the processor's record state (its changelog topic is
``<app id>-record-state-changelog``, compacted, keyed by ``tenant/record type/record id``).
Time-based triggers read it: a stalled record is one whose field has not changed for a while.

A typed dict rather than a model, its times ISO 8601 strings, and no copy of the record (the
change itself has it): the record-change path reads, folds and writes one state per change,
and a model with the record's fields, built, encoded and parsed per change, cost a large part
of a change's time (docs/performance.md has the figures).
``RECORD_STATE`` is its pydantic schema: it checks a state from outside (tests, tools) as
strictly as a model would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NotRequired

from pydantic import AfterValidator, AwareDatetime, TypeAdapter
from typing_extensions import TypedDict  # pydantic reads its annotations on Python 3.11

_AWARE = TypeAdapter(AwareDatetime)


def _aware_time(text: str) -> str:
    _AWARE.validate_python(text)
    return text


IsoTime = Annotated[str, AfterValidator(_aware_time)]
"""An ISO 8601 date and time with its offset, as ``datetime.isoformat`` writes it."""


class RecordState(TypedDict):
    """Keyed by ``tenant/record type/record id`` (``state_key``)."""

    changed_at: dict[str, IsoTime]
    """Top-level field → the ``occurred_at`` of the change that last gave it its value."""
    updated_at: IsoTime
    """The ``occurred_at`` of the last change applied."""
    offset: int
    """Where the last change applied was read in ``crm.record-changes`` (a record's changes
    share one partition): a change read again after a restart is not applied twice."""
    watch: NotRequired[str]
    """Which ``record_stalled`` workflows (id and version) watched the record's type when the
    state was written: a state is kept only while some do, so one written under other watchers
    may have missed changes since, and counts as none (``processor/core/records.py``)."""


RECORD_STATE: TypeAdapter[RecordState] = TypeAdapter(RecordState)


def changed_at(state: RecordState, field: str) -> datetime | None:
    """When ``field`` got its current value, if the record has it."""
    text = state["changed_at"].get(field)
    return datetime.fromisoformat(text) if text is not None else None
