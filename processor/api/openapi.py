"""The admin API's OpenAPI document, built from the views' own declarations (``ROUTES`` and
each method's ``operation``) and the pydantic models of its bodies, so it cannot drift from
the code. Served at ``/api/v1/openapi.json``; ``docs/openapi.json`` is a copy a test keeps
equal (``make openapi`` writes it).

A workflow's trigger and actions are described as unions discriminated by ``type``, one member
per trigger kind and action type with the schema of the model that validates its parameters,
so a client generator gets real types. Validation stays with the compiler (one place): the
topics' ``TriggerSpec`` and ``ActionSpec`` keep only ``type`` and hand the rest to the kind.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson
from faust.web import Request, Response
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from actions.registry import REGISTRY as ACTIONS
from processor.api import (  # noqa: F401
    backtests,
    catalog,
    logs,
    runs,
    tokens,
    versions,
    workflows,
)
from processor.api.views import API, ROUTES, ApiView, Operation, operation, route
from processor.core.triggers import KINDS
from topics.api import ErrorBody

_METHODS = ("get", "post", "put", "delete")
_ERRORS = {
    400: "The body is not a JSON object",
    401: "No token, or an unknown or revoked one",
    403: "The token's scope does not allow this",
    404: "No such workflow, run, record or token for this token's tenant",
    409: "Conflicts with the current state (an id taken, a stale version)",
    413: "The body is larger than the API accepts",
    422: "The body or query is invalid; `problems` lists every reason",
    503: "The worker is still loading; retry shortly",
    504: "Written, but this worker has not read the change back in time",
}


@functools.cache
def document() -> dict[str, Any]:
    operations = [
        (path, method, spec)
        for path, view in sorted(ROUTES, key=lambda route: route[0])  # not import order
        for method in _METHODS
        if (spec := getattr(getattr(view, method), "operation", None)) is not None
    ]
    used: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    used += [(kind.params, "validation") for kind in KINDS]
    used += [(action.params, "validation") for action in ACTIONS.values()]
    for _, _, spec in operations:
        if spec.body is not None:
            used.append((spec.body, "validation"))
        if spec.response is not None:
            used.append((spec.response, "serialization"))
    refs, schemas = models_json_schema(
        list(dict.fromkeys(used)), ref_template="#/components/schemas/{model}"
    )
    components = _with_unions(schemas.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for path, method, spec in operations:
        paths.setdefault(path, {})[method] = _operation(path, method, spec, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Coeffection Workflows admin API",
            "version": "1",
            "description": "Workflows, their versions and runs, and API tokens. Bearer "
            "tokens: the operator's (every tenant) or a tenant's (its tenant only; "
            "another tenant's workflows, runs and tokens are 404).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _with_unions(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` with ``TriggerSpec`` and ``ActionSpec`` as unions on ``type``: a member
    per trigger kind and action type, its parameter model's schema with ``type`` its name."""
    out = dict(schemas)
    params = {kind.params.__name__ for kind in KINDS} | {
        a.params.__name__ for a in ACTIONS.values()
    }
    triggers = {kind.name: (kind.params.__name__, "Trigger") for kind in KINDS}
    actions = {a.name: (a.params.__name__, "Action") for a in ACTIONS.values()}
    for spec, members in (("TriggerSpec", triggers), ("ActionSpec", actions)):
        mapping: dict[str, str] = {}
        for name, (model, suffix) in members.items():
            member = _camel(name) + suffix
            schema = dict(schemas[model])
            properties = {k: v for k, v in schema.get("properties", {}).items() if k != "type"}
            required = [r for r in schema.get("required", []) if r != "type"]
            out[member] = {
                **schema,
                "title": member,
                "properties": {"type": {"const": name, "type": "string"}, **properties},
                "required": ["type", *required],
            }
            mapping[name] = f"#/components/schemas/{member}"
        out[spec] = {
            "description": schemas[spec].get("description", ""),
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }
    text = orjson.dumps({k: v for k, v in out.items() if k not in params}).decode()
    for model in params:  # the models themselves, unless something else refers to one
        if f'"#/components/schemas/{model}"' not in text:
            del out[model]
    return dict(sorted(out.items()))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _operation(
    path: str, method: str, spec: Operation, refs: dict[tuple[Any, JsonSchemaMode], Any]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    if spec.query is not None:
        properties = spec.query.model_json_schema()["properties"]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": field.is_required(),
                "schema": {k: v for k, v in properties[name].items() if k != "title"},
            }
            for name, field in spec.query.model_fields.items()
        ]
    success: dict[str, Any] = {"description": spec.summary}
    if spec.response is not None:
        schema = refs[(spec.response, "serialization")]
        success["content"] = {"application/json": {"schema": schema}}
    error = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
    statuses = [401, 403, 503] if spec.scope is not None else []
    if parameters and any(p["in"] == "path" for p in parameters):
        statuses.append(404)
    if spec.query is not None:
        statuses.append(422)
    if spec.body is not None:
        statuses += [400, 413, 422]
    if spec.scope in ("write", "admin"):
        statuses += [409, 504]
    described: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": f"{method}_{path.removeprefix(API)}",
        "responses": {
            str(spec.status): success,
            **{
                str(s): {"description": _ERRORS[s], "content": error} for s in sorted(set(statuses))
            },
        },
    }
    if parameters:
        described["parameters"] = parameters
    if spec.body is not None:
        schema = refs[(spec.body, "validation")]
        described["requestBody"] = {
            "required": method != "post" or "webhook-secret" not in path,
            "content": {"application/json": {"schema": schema}},
        }
    if spec.scope is None:
        described["security"] = []
    else:
        described["description"] = f"Needs a token with scope `{spec.scope}` or above."
    return described


@route("/openapi.json")
class OpenApi(ApiView):
    @operation("This document", scope=None)
    async def get(self, request: Request) -> Response:
        return self.reply(document())


def text() -> str:
    """The document as ``docs/openapi.json`` holds it."""
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2).decode() + "\n"
