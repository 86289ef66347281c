"""Everything a workflow may say, read from the registries: each trigger kind with the
operations it fires on, each condition operator with the value it takes, each action type,
and the JSON Schema of every one's parameters, generated from the pydantic models that
validate them. The reference in ``docs/reference.md`` and the admin API's catalog
(``GET /api/v1/catalog``, which the builder's forms read) are written from this; nothing lists
a parameter a second time.
"""

from __future__ import annotations

from typing import Any

from actions.registry import REGISTRY as ACTIONS
from processor.core.operators import FIELD_TYPES, OPERATORS
from processor.core.triggers import KINDS


def vocabulary() -> dict[str, Any]:
    """Trigger kinds, operators and action types, in registry order, as plain data."""
    return {
        "triggers": [
            {
                "type": kind.name,
                "fires_on": sorted(kind.operations) or None,
                "summary": _first_paragraph(kind.params.__doc__),
                "parameters": _parameters(kind.params.model_json_schema(by_alias=True)),
            }
            for kind in KINDS
        ],
        "operators": [
            {
                "op": op.name,
                "aliases": list(op.aliases),
                "value": op.value.value,
                "value_kind": op.value.name.lower(),
                "compares_before": op.uses_before,
                "fits": [t for t in FIELD_TYPES if t in op.fits],
            }
            for op in OPERATORS
        ],
        "actions": [
            {
                "type": action.name,
                "summary": action.description,
                "topic": action.topic,
                "parameters": _parameters(action.params.model_json_schema(by_alias=True)),
            }
            for action in ACTIONS.values()
        ],
        "field_types": list(FIELD_TYPES),
    }


def _parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON Schema without ``type``, which names the kind rather than a parameter."""
    properties = {k: v for k, v in schema.get("properties", {}).items() if k != "type"}
    required = [name for name in schema.get("required", []) if name != "type"]
    return {**schema, "properties": properties, "required": required}


def _first_paragraph(text: str | None) -> str | None:
    """A docstring's first paragraph as plain text: one line, its RST ````code```` quotes as
    Markdown's single backticks (the catalog's readers and the reference show it as is)."""
    if not text:
        return None
    return " ".join(text.strip().split("\n\n", 1)[0].split()).replace("``", "`")
