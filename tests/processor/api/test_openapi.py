from __future__ import annotations

from pathlib import Path

import schemathesis

from processor.api.openapi import document, text
from processor.api.views import ROUTES

CHECKED_IN = Path(__file__).parents[3] / "docs" / "openapi.json"


def test_the_checked_in_document_is_the_one_the_api_serves() -> None:
    assert CHECKED_IN.read_text() == text(), "docs/openapi.json is stale: run `make openapi`"


def test_every_view_method_is_described_with_its_scope() -> None:
    paths = document()["paths"]
    assert {path for path, _ in ROUTES} == set(paths)
    runs = paths["/api/v1/workflows/{workflow_id}/runs"]["get"]
    assert [p["name"] for p in runs["parameters"]] == [
        "workflow_id",
        "status",
        "since",
        "until",
        "cursor",
        "limit",
        "record_type",
        "record_id",
    ]
    assert runs["description"] == "Needs a token with scope `read` or above."
    assert "409" in paths["/api/v1/workflows"]["post"]["responses"]
    assert paths["/api/v1/tokens"]["post"]["description"].endswith("`admin` or above.")
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []


def test_the_document_is_valid_openapi() -> None:
    schema = schemathesis.openapi.from_dict(document())
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document()["paths"].values())
