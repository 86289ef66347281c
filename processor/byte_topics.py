"""Topics read as raw bytes: Faust's own decoding could skip a message it cannot decode, and
our agents must see every message to dead-letter what is bad."""

from __future__ import annotations

from faust.types import AppT, TopicT


def byte_topic(app: AppT, *names: str) -> TopicT:
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
