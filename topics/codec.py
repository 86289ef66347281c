"""The one JSON codec: orjson for bytes, pydantic for shape."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_DUMP_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
_OUTGOING_OPTIONS = orjson.OPT_UTC_Z
"""Without ``OPT_NON_STR_KEYS``, orjson takes its faster path: it costs a run record a third of
its encoding, for keys that are text in everything the core builds (what is not falls back)."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python", by_alias=True)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Encode models, and plain data holding models, as compact UTF-8 JSON.

    Copied once: orjson's result keeps the memory block of its output buffer (kilobytes
    behind a short value), which tables holding many values multiply (docs/performance.md)."""
    return bytes(memoryview(orjson.dumps(value, default=_default, option=_DUMP_OPTIONS)))


def dumps_outgoing(value: Any) -> bytes:
    """``dumps`` for plain data that is sent at once (a batch's outputs): not copied, since it
    is held only while its batch is in flight, never kept in a table, and encoded without
    the models' hook unless it holds a model, and without non-text keys unless it has one."""
    try:
        return orjson.dumps(value, option=_OUTGOING_OPTIONS)
    except TypeError:  # a model inside (a run built off the hot path embeds its ChangeEvent)
        return dumps(value)


def loads(raw: bytes | str) -> Any:
    """Decode JSON; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on bad input."""
    return orjson.loads(raw)


def decode(raw: bytes | str, model: type[M]) -> M:
    """Decode JSON bytes into ``model``: one orjson parse, one pydantic validation."""
    return model.model_validate(orjson.loads(raw))
