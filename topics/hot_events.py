"""The hot path's decode of a ChangeEvent: one msgspec typed decode of the bytes, a third of
orjson and pydantic's cost (docs/performance.md).

``ChangeEvent`` (``topics/events.py``) stays the one schema. ``fast_change`` accepts a subset
of what it accepts, and gives equal values: whatever falls outside that subset gets ``None``,
and the caller decodes it the careful way (orjson, the nesting check, pydantic), which also
gives the reasons for a refusal. What is left to the careful way:

- a run of 19 or more digits anywhere (orjson reads an integer beyond 64 bits as a double,
  msgspec as an exact integer; a long fraction may round differently);
- more ``{`` and ``[`` than ``MAX_NESTING`` (the nesting check is orjson's);
- a full stop followed by seven digits or more anywhere (pydantic truncates the seventh digit
  of a time's fraction, msgspec rounds it);
- anything msgspec refuses (pydantic's lax mode takes ``"5"`` or ``5.0`` for a depth).

``tests/topics/test_hot_events.py`` shows, with generated events, that every event this
accepts ``ChangeEvent`` accepts with equal values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from topics.events import MAX_DEPTH, ChangeProperties
from topics.types import MAX_NESTING, in_time_range

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_SHAPE = bytes(
    ord("0") if b in b"0123456789" else ord("[") if b in b"{[" else b if b == ord(".") else 32
    for b in range(256)
)
"""Each byte as what ``fast_change`` looks for in one pass: a digit is ``0``, an opening
bracket ``[``, a full stop stays, anything else is a space (``bytes.translate`` costs a tenth
of a regular expression looking for runs of digits)."""
_LONG_NUMBER = b"0" * 19
_LONG_FRACTION = b"." + b"0" * 7


class HotCausation(msgspec.Struct, frozen=True):
    """``topics.events.Causation`` as the hot path reads it."""

    run_id: _Text
    workflow_id: _Text
    depth: Annotated[int, msgspec.Meta(ge=0, le=MAX_DEPTH)]


class HotChangeEvent(ChangeProperties, msgspec.Struct, frozen=True):
    """A ``ChangeEvent`` read by ``fast_change``: the same fields and properties (its
    ``ChangeProperties``), which is all the core reads of an event (it is handed over as a
    ``ChangeEvent``, so it must not grow fields or lose any: ``tests/topics/test_hot_events.py``
    compares them)."""

    event_id: _Text
    tenant_id: _Text
    record_type: _Text
    record_id: _Text
    operation: Literal["created", "updated", "deleted"]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    actor_id: str | None = None
    causation: HotCausation | None = None


_DECODER = msgspec.json.Decoder(HotChangeEvent)


def fast_change(value: bytes) -> HotChangeEvent | None:
    """The event in ``value`` if it is in the subset read here and ``ChangeEvent`` accepts it;
    ``None``: decode it the careful way (it may be valid, or not)."""
    shape = value.translate(_SHAPE)
    if (  # brackets counted by deleting them (memchr: a third of ``count``'s byte-by-byte
        # loop where they are sparse), patterns looked for by ``find`` (cheaper than ``in``)
        len(shape) - len(shape.replace(b"[", b"")) > MAX_NESTING
        or shape.find(_LONG_NUMBER) >= 0
        or shape.find(_LONG_FRACTION) >= 0
    ):
        return None
    try:
        event = _DECODER.decode(value)
    except msgspec.DecodeError:  # ValidationError too
        return None
    operation = event.operation
    if (
        not in_time_range(event.occurred_at)
        or (event.after is None and operation != "deleted")
        or (event.before is None and operation != "created")
    ):
        return None
    return event


def embeddable(event: Any) -> Any:
    """``event`` as a run record may embed it: a ``ChangeEvent`` as it is, a
    ``HotChangeEvent`` as plain data (its values, times as ISO 8601 text)."""
    return msgspec.to_builtins(event) if isinstance(event, HotChangeEvent) else event
